"""``salesflow dlq``: list, show, export, redrive and discard dead letters."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from salesflow.entrypoints.cli.common import (
    BackendName,
    DataDir,
    Json,
    console,
    emit_json,
    fail,
    open_backend,
    processing_lock,
    settings_for,
    table,
)
from salesflow.logs import mask_email
from salesflow.models import DeadLetter, LetterStatus
from salesflow.ports import Backend

app = typer.Typer(help="Work with rejected records (the dead-letter queue).", no_args_is_help=True)

FileOpt = Annotated[str | None, typer.Option("--file", help="only letters from this source file")]
RuleOpt = Annotated[str | None, typer.Option("--rule", help="only letters that broke this rule")]
StatusOpt = Annotated[str | None, typer.Option("--status", help="NEW, REDRIVEN or DISCARDED")]


def _status(value: str | None) -> LetterStatus | None:
    if value is None:
        return None
    try:
        return LetterStatus(value.upper())
    except ValueError as exc:
        raise typer.BadParameter("--status takes NEW, REDRIVEN or DISCARDED") from exc


def _select(
    be: Backend, status: str | None, source: str | None, rule: str | None, limit: int | None
) -> list[DeadLetter]:
    return be.dlq.list(status=_status(status), source_file=source, rule=rule, limit=limit)


@app.command("list")
def list_letters(
    status: StatusOpt = "NEW",
    file: FileOpt = None,
    rule: RuleOpt = None,
    dataset: Annotated[str | None, typer.Option(help="only letters of this dataset")] = None,
    limit: Annotated[int, typer.Option(help="at most this many")] = 50,
    data_dir: DataDir = None,
    backend: BackendName = None,
    json_out: Json = False,
) -> None:
    """List dead letters. Example: salesflow dlq list --rule email.format"""
    from salesflow.ops.dlq_view import find_letters

    with open_backend(settings_for(data_dir, backend)) as be:
        letters = find_letters(
            be, status=status, dataset=dataset, source_file=file, rule=rule, limit=limit
        )
    if json_out:
        emit_json([x.to_dict() for x in letters])
        return
    rows = [
        [x.id, x.dataset, x.source_file, x.record, ",".join(x.rules), x.status.value]
        for x in letters
    ]
    console.print(
        table("Dead letters", ("id", "dataset", "file", "record", "rules", "status"), rows)
    )


@app.command()
def show(
    letter_id: Annotated[str, typer.Argument(help="the letter id from dlq list")],
    data_dir: DataDir = None,
    backend: BackendName = None,
    json_out: Json = False,
) -> None:
    """One letter with every reason and its raw record. Example: salesflow dlq show ab12:7"""
    with open_backend(settings_for(data_dir, backend)) as be:
        letter = be.dlq.get(letter_id)
    if letter is None:
        raise fail(f"no dead letter with id {letter_id!r}", "list them with: salesflow dlq list")
    if json_out:
        emit_json(letter.to_dict())
        return
    console.print(
        f"[bold]{letter.id}[/bold] {letter.dataset} {letter.source_file} record {letter.record}"
    )
    for r in letter.reasons:
        console.print(f"  - {r.rule} [{r.field}]: {mask_email(r.message)}")
    console.print_json(data=letter.raw)


@app.command()
def export(
    fmt: Annotated[str, typer.Option("--format", help="csv or jsonl")] = "jsonl",
    out: Annotated[Path | None, typer.Option(help="write here instead of stdout")] = None,
    status: StatusOpt = "NEW",
    file: FileOpt = None,
    rule: RuleOpt = None,
    data_dir: DataDir = None,
    backend: BackendName = None,
) -> None:
    """Export letters to fix by hand (CSV cells that look like formulas are neutralised).

    Example: salesflow dlq export --format csv --out fix.csv
    """
    from salesflow.ops import dlq as ops

    with open_backend(settings_for(data_dir, backend)) as be:
        text = ops.export(_select(be, status, file, rule, None), fmt)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        console.print(f"wrote {out}")


@app.command()
def redrive(
    corrected: Annotated[
        Path | None, typer.Option("--from", help="an exported file you corrected")
    ] = None,
    letter_id: Annotated[list[str] | None, typer.Option("--id", help="only these letters")] = None,
    file: FileOpt = None,
    rule: RuleOpt = None,
    data_dir: DataDir = None,
    backend: BackendName = None,
    json_out: Json = False,
) -> None:
    """Run letters through validation again (corrected from --from, or as they are, e.g.
    after the missing products arrived); what passes is stored and marked REDRIVEN.

    Example: salesflow dlq redrive --from fix.csv
    """
    from salesflow.ops import dlq as ops

    settings = settings_for(data_dir, backend)
    with open_backend(settings) as be, processing_lock(settings):
        corrections = dict(ops.read_corrections(corrected)) if corrected else {}
        ids = set(letter_id or []) | set(corrections)
        if ids:
            letters = [x for x in (be.dlq.get(i) for i in sorted(ids)) if x is not None]
        else:
            letters = _select(be, "NEW", file, rule, None)
        result = ops.redrive(be, settings, letters, corrections)
        result.unknown = sorted(ids - {x.id for x in letters})
    if json_out:
        emit_json(result.to_dict())
        return
    console.print(
        f"redriven: {result.redriven}, still failing: {result.still_failing}"
        + (f", unknown ids: {', '.join(result.unknown)}" if result.unknown else "")
    )


@app.command()
def discard(
    letter_id: Annotated[list[str], typer.Argument(help="letter ids to discard")],
    data_dir: DataDir = None,
    backend: BackendName = None,
) -> None:
    """Mark letters DISCARDED (kept for the record). Example: salesflow dlq discard ab12:7"""
    from salesflow.ops import dlq as ops

    with open_backend(settings_for(data_dir, backend)) as be:
        letters = ops.discard(be, [x for x in (be.dlq.get(i) for i in letter_id) if x is not None])
    console.print(f"discarded {len(letters)}")
