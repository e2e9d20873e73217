"""``salesflow dlq``: list, show, export, redrive and discard dead letters.

Every command reads the store a page at a time (``salesflow.ops.dlq``): a queue of millions
of letters costs one page of memory. Exit codes: 0 done, 1 a redrive file failed, 2 bad usage
or an unknown letter.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer

from salesflow.entrypoints.cli.common import (
    BackendName,
    DataDir,
    Json,
    console,
    emit_json,
    err_console,
    fail,
    open_backend,
    processing_lock,
    safe,
    settings_for,
    table,
)
from salesflow.logs import mask_secrets
from salesflow.models import LetterStatus

if TYPE_CHECKING:
    from salesflow.ops.dlq import Filters

app = typer.Typer(help="Work with rejected records (the dead-letter queue).", no_args_is_help=True)

FileOpt = Annotated[str | None, typer.Option("--file", help="only letters from this source file")]
RuleOpt = Annotated[str | None, typer.Option("--rule", help="only letters that broke this rule")]
DatasetOpt = Annotated[str | None, typer.Option("--dataset", help="only letters of this dataset")]
StatusOpt = Annotated[
    str, typer.Option("--status", help="NEW, REDRIVEN, DISCARDED, SUPERSEDED or ALL")
]
STATUSES = ", ".join(s.value for s in LetterStatus)


def _status(value: str) -> LetterStatus | None:
    if value.upper() == "ALL":
        return None
    try:
        return LetterStatus(value.upper())
    except ValueError as exc:
        raise typer.BadParameter(f"--status takes {STATUSES} or ALL") from exc


def _filters(status: str, dataset: str | None, file: str | None, rule: str | None) -> Filters:
    from salesflow.ops.dlq import Filters

    return Filters(status=_status(status), dataset=dataset, source_file=file, rule=rule)


@app.command("list")
def list_letters(
    status: StatusOpt = "NEW",
    dataset: DatasetOpt = None,
    rule: RuleOpt = None,
    file: FileOpt = None,
    limit: Annotated[int, typer.Option(min=0, help="show at most this many")] = 50,
    data_dir: DataDir = None,
    backend: BackendName = None,
    json_out: Json = False,
) -> None:
    """List dead letters with their reasons, and how many match in all.

    Example: salesflow dlq list --dataset order_items --rule ref.order_id
    """
    from salesflow.ops.dlq import listing

    with open_backend(settings_for(data_dir, backend)) as be:
        found = listing(be.letters, _filters(status, dataset, file, rule), limit=limit)
    shown = len(found.letters)
    summary = f"showing {shown:,} of {found.total:,}"
    if json_out:
        emit_json([x.to_dict() for x in found.letters])
        if shown < found.total:
            err_console.print(f"{summary} (raise --limit or use dlq export for all)")
        return
    rows = [
        [
            x.id,
            x.dataset,
            x.source_file,
            x.record,
            x.status.value,
            "\n".join(f"{r.rule}: {mask_secrets(r.message)}" for r in x.reasons),
        ]
        for x in found.letters
    ]
    columns = ("id", "dataset", "file", "record", "status", "reasons")
    console.print(table("Dead letters", columns, rows))
    more = " (raise --limit, or export them all with: salesflow dlq export)"
    console.print(summary + (more if shown < found.total else ""))


@app.command()
def show(
    letter_id: Annotated[str, typer.Argument(help="the letter id from dlq list")],
    data_dir: DataDir = None,
    backend: BackendName = None,
    json_out: Json = False,
) -> None:
    """One letter: every reason, the raw record and its history. Example: salesflow dlq show 12:7"""
    with open_backend(settings_for(data_dir, backend)) as be:
        found = be.letters.get([letter_id])
    if not found:
        raise fail(f"no dead letter with id {letter_id!r}", "list them with: salesflow dlq list")
    letter = found[0]
    if json_out:
        emit_json(letter.to_dict())
        return
    console.print(
        f"[bold]{safe(letter.id)}[/bold] {letter.status.value} {safe(letter.dataset)} "
        f"{safe(letter.source_file)} record {letter.record} (attempts: {letter.attempts})",
        markup=True,
        highlight=False,
    )
    console.print("reasons:")
    for r in letter.reasons:
        console.print(f"  - {r.rule} [{r.field or '-'}]: {mask_secrets(r.message)}", markup=False)
    console.print("raw record:")
    console.print_json(data=letter.raw)
    console.print("history:")
    for e in letter.history:
        run = f" (run {e.run})" if e.run is not None else ""
        note = f": {e.note}" if e.note else ""
        console.print(f"  {e.at.isoformat()} {e.event}{run}{note}", markup=False)


@contextlib.contextmanager
def _output(out: Path | None) -> Iterator[IO[str]]:
    """stdout, or a temporary file beside ``out`` renamed over it once complete (a partial
    export never takes the name)."""
    if out is None:
        yield sys.stdout
        return
    if out.is_dir():
        raise fail(f"--out {out} is a directory", "give a file name, e.g. --out fix.csv")
    if not out.parent.is_dir():
        raise fail(f"--out {out}: folder {out.parent} does not exist", "create it first")
    fd, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            yield fh
        Path(name).replace(out)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


@app.command()
def export(
    fmt: Annotated[str, typer.Option("--format", help="csv or jsonl")] = "jsonl",
    out: Annotated[Path | None, typer.Option(help="write here instead of stdout")] = None,
    status: StatusOpt = "NEW",
    dataset: DatasetOpt = None,
    rule: RuleOpt = None,
    file: FileOpt = None,
    data_dir: DataDir = None,
    backend: BackendName = None,
) -> None:
    """Export letters to fix by hand, streamed (CSV cells that look like formulas are
    neutralised; a re-import gives the records back exactly).

    Example: salesflow dlq export --format csv --out fix.csv
    """
    from salesflow.ops.dlq import FORMATS, export_letters

    if fmt not in FORMATS:
        raise fail(f"unknown export format {fmt!r}", "use --format csv or jsonl")
    filters = _filters(status, dataset, file, rule)
    with open_backend(settings_for(data_dir, backend)) as be, _output(out) as fh:
        spool = out.parent if out is not None else None
        written = export_letters(be.letters, filters, fmt, fh, spool=spool)
    if out is not None:
        console.print(f"wrote {written:,} letters to {out}")


@app.command()
def redrive(
    corrected: Annotated[
        Path | None, typer.Option("--from", help="an exported file you corrected")
    ] = None,
    letter_id: Annotated[list[str] | None, typer.Option("--id", help="only these letters")] = None,
    dataset: DatasetOpt = None,
    rule: RuleOpt = None,
    file: FileOpt = None,
    data_dir: DataDir = None,
    backend: BackendName = None,
    json_out: Json = False,
) -> None:
    """Run letters through validation again (corrected from --from, or as they are, e.g.
    after the missing products arrived); what passes is stored and marked REDRIVEN, what
    fails again stays NEW under the same id.

    Example: salesflow dlq redrive --from fix.csv
    """
    from salesflow.ops import dlq as ops

    if corrected is not None and not corrected.is_file():
        what = "is a folder, not a file" if corrected.is_dir() else "does not exist"
        raise fail(
            f"--from {corrected} {what}",
            "pass the file you exported with 'salesflow dlq export' and corrected",
        )
    settings = settings_for(data_dir, backend)
    with open_backend(settings) as be, processing_lock(settings):
        items: Iterable[tuple[str | None, dict[str, Any]]]
        unknown: list[str] = []
        if corrected is not None:
            items = ops.read_corrections(corrected)
        elif letter_id:
            stored = be.letters.get(letter_id)
            unknown = sorted(set(letter_id) - {x.id for x in stored})
            items = [(x.id, x.raw) for x in stored]
        else:
            selected = ops.Filters(dataset=dataset, source_file=file, rule=rule)
            items = ((x.id, x.raw) for x in ops.stream(be.letters, selected))
        result = ops.redrive(be, settings, items, dataset=dataset)
        result.unknown.extend(unknown)
    if json_out:
        emit_json(result.to_dict())
    else:
        console.print(
            f"redriven: {result.redriven:,}, still failing: {result.still_failing:,}"
            + (
                f", superseded by a newer arrival: {result.superseded:,}"
                if result.superseded
                else ""
            )
            + (f", new records stored: {result.added:,}" if result.added else "")
        )
        if result.skipped:
            console.print(f"not open, left as they are: {_some(result.skipped)}")
        if result.unknown:
            console.print(f"unknown ids: {safe(', '.join(result.unknown[:20]))}")
    for state in result.failed_files:
        err_console.print(
            f"[red]redrive file failed:[/red] {safe(state.key)}: {safe(state.error or '')}"
        )
    if result.failed_files:
        raise typer.Exit(1)


def _some(found: dict[str, str]) -> str:
    shown = ", ".join(f"{k} ({v})" for k, v in list(found.items())[:20])
    return shown + (f" and {len(found) - 20:,} more" if len(found) > 20 else "")


@app.command()
def discard(
    letter_id: Annotated[
        list[str] | None, typer.Argument(help="letter ids to discard", show_default=False)
    ] = None,
    dataset: DatasetOpt = None,
    rule: RuleOpt = None,
    file: FileOpt = None,
    reason: Annotated[str, typer.Option(help="why, kept in each letter's history")] = "",
    data_dir: DataDir = None,
    backend: BackendName = None,
    json_out: Json = False,
) -> None:
    """Mark open letters DISCARDED (kept, with the reason in their history): the ids given,
    or every NEW letter matching --rule/--file/--dataset.

    Example: salesflow dlq discard --rule ref.product_id --reason "products retired"
    """
    from salesflow.ops.dlq import Filters, discard

    filters = Filters(dataset=dataset, source_file=file, rule=rule)
    if not letter_id and not filters.selects:
        raise fail(
            "nothing to discard: give letter ids or --rule, --file or --dataset",
            "e.g. salesflow dlq discard --rule email.format --reason 'test data'",
        )
    if letter_id and filters.selects:
        raise fail("give letter ids or filters, not both", "run the command twice")
    with open_backend(settings_for(data_dir, backend)) as be:
        result = discard(be.letters, ids=letter_id or (), filters=filters, reason=reason)
    if json_out:
        emit_json(result.to_dict())
    else:
        console.print(f"discarded {result.discarded:,}")
        if result.skipped:
            console.print(f"not open, left as they are: {_some(result.skipped)}")
    if result.unknown:
        raise fail(
            f"unknown letter ids: {', '.join(result.unknown[:20])}",
            "list them with: salesflow dlq list --status ALL",
        )
