"""Commands that move data: demo, ingest, validate, generate, run."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from salesflow.entrypoints.cli.alert_cmds import undelivered_line
from salesflow.entrypoints.cli.common import (
    BackendName,
    DataDir,
    EngineName,
    Json,
    SparkMaster,
    console,
    emit_json,
    err_console,
    fail,
    open_backend,
    print_error,
    processing_lock,
    safe,
    settings_for,
    table,
)
from salesflow.layout import DATASETS
from salesflow.ops import summaries as summary
from salesflow.pipeline.state import StepState

STATE_COLUMNS = ("file", "dataset", "status", "rows_in", "valid", "rejected")


def _state_row(s: StepState) -> list[object]:
    return [s.key, s.dataset, s.status, s.rows_in, s.valid, s.rejected]


def _state_json(s: StepState) -> dict[str, object]:
    return {"file": s.key, **s.to_dict()}


def _report_failures(states: list[StepState]) -> bool:
    """One line on stderr per FAILED file (which file, why); whether there was any."""
    failed = [s for s in states if s.status == "FAILED"]
    for s in failed:
        error = s.error or "no cause was recorded"
        print_error(error if error.startswith(s.key) else f"{s.key}: {error}", label="FAILED")
    return bool(failed)


def ingest(
    files: Annotated[
        list[Path],
        typer.Argument(help="CSV or JSON files, or folders (every file below them)", exists=True),
    ],
    dataset: Annotated[str | None, typer.Option(help="skip detection: the dataset")] = None,
    data_dir: DataDir = None,
    backend: BackendName = None,
    engine: EngineName = None,
    spark_master: SparkMaster = None,
    json_out: Json = False,
) -> None:
    """Put files into the inbox and process them now, bypassing the batching wait. Folders
    are read recursively (dotfiles and temporary names skipped); progress goes to stderr.

    Exits 1 when any file ends FAILED (each is named on stderr, with the cause); its
    records are not stored and the file is kept in failed/.

    Example: salesflow ingest ./exports/2024-06 --json
    Example: salesflow ingest big/order_items.csv --engine spark --spark-master local[2]
    """
    from salesflow.ops.folders import files_below
    from salesflow.pipeline.inbox import ingest as ingest_files

    settings = settings_for(data_dir, backend, engine=engine, spark_master=spark_master)
    if dataset:
        from salesflow.datasets import get_spec

        get_spec(dataset)
    paths = files_below(files)
    if not paths:
        raise fail(
            f"no files to ingest in {', '.join(str(f) for f in files)}",
            "dotfiles and temporary names (.part, .tmp, ~) are skipped",
        )
    with (
        open_backend(settings, create=True) as be,
        processing_lock(settings),
        IngestProgress(paths) as bar,
    ):
        states = ingest_files(be, settings, paths, dataset=dataset, progress=bar.advance)
        undelivered = undelivered_line(be, [s.key for s in states])
    if json_out:
        emit_json([_state_json(s) for s in states])
    else:
        console.print(table("Ingested", STATE_COLUMNS, [_state_row(s) for s in states]))
    if undelivered:
        err_console.print(f"[yellow]{undelivered}[/yellow]")
    if _report_failures(states):
        raise typer.Exit(1)


class IngestProgress:
    """A progress bar on stderr (stdout stays clean for ``--json``): files and rows done,
    rows per second, and the time left, estimated from the bytes still to read."""

    def __init__(self, paths: list[Path]) -> None:
        self.sizes: dict[str, list[int]] = {}
        for path in paths:
            self.sizes.setdefault(path.name, []).append(path.stat().st_size)
        self.left = sum(sum(v) for v in self.sizes.values())
        self.total_files = len(paths)
        self.done = 0
        self.rows = 0
        self.started = time.monotonic()
        self.bar = Progress(
            TextColumn("ingesting"),
            BarColumn(),
            TextColumn("{task.fields[files]}/{task.fields[total_files]} files"),
            TextColumn("{task.fields[rows]:,} rows"),
            TextColumn("{task.fields[rate]:,.0f} rows/s"),
            TimeRemainingColumn(),
            console=err_console,
            disable=not err_console.is_terminal,
        )
        self.task = self.bar.add_task(
            "ingest",
            total=max(self.left, 1),
            files=0,
            total_files=self.total_files,
            rows=0,
            rate=0.0,
        )

    def __enter__(self) -> IngestProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def advance(self, state: StepState) -> None:
        self.done += 1
        self.rows += state.rows_in
        # The inbox key keeps the file's name (or adds -2, -3... when taken).
        same = self.sizes.get(state.key.rsplit("/", 1)[-1])
        files_left = self.total_files - self.done + 1
        size = same.pop() if same else self.left // max(files_left, 1)
        self.left -= size
        elapsed = max(time.monotonic() - self.started, 1e-6)
        self.bar.update(
            self.task,
            advance=size,
            files=self.done,
            rows=self.rows,
            rate=self.rows / elapsed,
        )


def validate(
    files: Annotated[list[Path], typer.Argument(help="files to check (nothing is stored)")],
    dataset: Annotated[str | None, typer.Option(help="skip detection: the dataset")] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="exit 1 when any record is rejected")
    ] = False,
    json_out: Json = False,
    data_dir: DataDir = None,
    engine: EngineName = None,
    spark_master: SparkMaster = None,
) -> None:
    """Validate files without storing anything; print the report per file.

    Exits 1 when a file does not exist or cannot be read (named on stderr, with the cause),
    and with --strict when any record is rejected.

    Example: salesflow validate sales.csv --strict && echo clean
    Example: salesflow validate sales.csv --engine spark
    """
    from salesflow.engines import engine_for
    from salesflow.ops.validate import validate_paths

    settings = settings_for(data_dir, engine=engine, spark_master=spark_master)
    reports = validate_paths(files, dataset=dataset, engine=engine_for(settings))
    if json_out:
        emit_json(reports)
    else:
        rows = [[r["file"], r["dataset"], r["rows_in"], r["valid"], r["rejected"]] for r in reports]
        console.print(
            table("Validation", ("file", "dataset", "rows_in", "valid", "rejected"), rows)
        )
        rule_rows = [
            [r["file"], rule, count] for r in reports for rule, count in sorted(r["rules"].items())
        ]
        if rule_rows:
            console.print(table("Rejections by rule", ("file", "rule", "records"), rule_rows))
    unreadable = [r for r in reports if r.get("error")]
    for r in unreadable:
        print_error(f"{r['file']}: {r['error']['cause']}", r["error"]["hint"])
    rejected = sum(r["rejected"] for r in reports)
    if strict and rejected:
        total = sum(r["rows_in"] for r in reports)
        print_error(f"{rejected:,} of {total:,} records rejected", "--strict: none may be")
    if unreadable or (strict and rejected):
        raise typer.Exit(1)


def generate(
    dataset: Annotated[str, typer.Argument(help=f"one of: {', '.join(DATASETS)}")],
    rows: Annotated[int, typer.Option(help="records to write", min=0)] = 1000,
    out: Annotated[Path, typer.Option(help="folder to write into")] = Path("samples"),
    invalid_rate: Annotated[
        float, typer.Option(help="share of records given one fault each, 0 to 1")
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    stream: Annotated[
        bool, typer.Option(help="live feed: one sale per tick into the inbox")
    ] = False,
    every: Annotated[str, typer.Option(help="tick for --stream, e.g. 60s, 0.1s, 2m")] = "60s",
    count: Annotated[int, typer.Option(help="stop --stream after this many (0 = forever)")] = 0,
    data_dir: DataDir = None,
    json_out: Json = False,
) -> None:
    """Write realistic sample data of one dataset, with faults in --invalid-rate of the
    records (the manifest of which record has which fault: --json prints a summary).

    order_items come with the products and orders they refer to (items alone would all
    fail their references); every other dataset is written alone.

    Example: salesflow generate order_items --rows 1000000 --out data --invalid-rate 0.01
    """
    from salesflow.samples.generate import generate as generate_files

    if stream:
        _stream(settings_for(data_dir), parse_interval(every), count, seed)
        return
    manifest = generate_files(dataset, rows, out, invalid_rate=invalid_rate, seed=seed)
    if json_out:
        emit_json(manifest.summary())
        return
    for path in manifest.files:
        console.print(f"wrote {safe(str(path))}: {manifest.records[path.name]:,} records")
    if manifest.note:
        console.print(safe(manifest.note))
    total = sum(manifest.records.values())
    console.print(f"records with a fault: {len(manifest.faults):,} of {total:,}")


def parse_interval(text: str) -> float:
    """``60s``, ``0.1s``, ``2m``, ``1h`` or plain seconds."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    try:
        if text and text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not an interval like 60s or 0.5s") from exc


def _stream(settings: object, interval: float, count: int, seed: int) -> None:
    import random

    from salesflow.config import Settings
    from salesflow.models import utcnow
    from salesflow.samples.generate import sale_event

    assert isinstance(settings, Settings)
    inbox = settings.bucket_dir / "inbox" / "sale_events"
    inbox.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed or None)
    written = 0
    while count == 0 or written < count:
        now = utcnow()
        event = sale_event(rng, now)
        name = f"sale-{now:%Y%m%dT%H%M%S%f}-{written}.json"
        tmp = inbox / f".{name}.tmp"
        tmp.write_text(json.dumps(event))
        tmp.replace(inbox / name)
        written += 1
        console.print(
            safe(f"sale {event.get('sale_id')}: {event.get('price')} x {event.get('quantity')}")
        )
        if count == 0 or written < count:
            time.sleep(interval)


def run(
    data_dir: DataDir = None,
    backend: BackendName = None,
    quiet_seconds: Annotated[
        float | None, typer.Option(help="batch timer: seconds with no new file")
    ] = None,
    poll: Annotated[float | None, typer.Option(help="polling fallback interval, seconds")] = None,
    json_out: Json = False,
) -> None:
    """Run the service: watch the inbox and process files as they land (Ctrl-C stops).

    Example: salesflow run --data-dir ./salesflow-data
    """
    from salesflow.entrypoints.service import serve

    settings = settings_for(data_dir, backend, poll_seconds=poll)
    if quiet_seconds is not None:
        settings.batching.quiet_seconds = quiet_seconds
    from salesflow.ops.describe import startup_lines

    for line in startup_lines(settings):
        err_console.print(line, highlight=False, markup=False, soft_wrap=True)
    serve(settings, json_lines=json_out)


def replay(
    key: Annotated[
        str, typer.Argument(help="a failed/ archive key, or the inbox key of a failed file")
    ],
    data_dir: DataDir = None,
    backend: BackendName = None,
    json_out: Json = False,
) -> None:
    """Send a failed file through the pipeline again, once its cause is fixed: the archived
    bytes go back to their inbox key as a new version and are processed now.

    Example: salesflow replay failed/year=2024/month=06/orders/000000000012-orders.csv
    """
    from salesflow.ops.replay import replay as replay_file

    settings = settings_for(data_dir, backend)
    with open_backend(settings) as be, processing_lock(settings):
        state = replay_file(be, settings, key)
    if json_out:
        emit_json(_state_json(state))
        return
    console.print(table("Replayed", STATE_COLUMNS, [_state_row(state)]))
    if state.error:
        console.print(f"[yellow]{state.status}[/yellow] {state.error}")


def demo(
    data_dir: DataDir = None,
    rows: Annotated[int, typer.Option(help="records per dataset")] = 2000,
    json_out: Json = False,
) -> None:
    """Generate sample files of every dataset (with faults), run them through the pipeline
    and print what happened.

    Example: salesflow demo --data-dir ./salesflow-demo
    """
    from salesflow.pipeline.inbox import ingest as ingest_files
    from salesflow.samples.generate import generate as generate_files

    settings = settings_for(data_dir or Path("salesflow-demo"))
    samples = settings.data_dir / "samples"
    files: list[Path] = []
    for name, rate in (("orders_json", 0.01), ("online_retail", 0.01), ("sale_events", 0.01)):
        files += generate_files(name, rows, samples / name, invalid_rate=rate, seed=7).files
    files += generate_files(
        "order_items", rows, samples / "thelook", invalid_rate=0.02, seed=7
    ).files
    with open_backend(settings, create=True) as be, processing_lock(settings):
        states = ingest_files(be, settings, files)
        info = summary.status(be)
        kpi = summary.kpis(be).tail(5)
        alerts = be.tables.list_alerts()
        by_rule = summary.rules_by_file(be, states)
    if json_out:
        emit_json({"files": [_state_json(s) for s in states], "status": info, "rules": by_rule})
        return
    console.print(table("Files", STATE_COLUMNS, [_state_row(s) for s in states]))
    console.print(table("Rejected records by file and rule", ("file", "rule", "records"), by_rule))
    console.print(
        table("Top rejection reasons", ("rule", "records"), list(info["top_reasons"].items()))
    )
    console.print(table("Order KPIs (last days)", kpi.columns, kpi.rows()))
    console.print(
        f"alerts: {len({(a.dataset, a.record_key) for a in alerts})} high-value sales "
        f"(amount > {settings.alerts.threshold:,.0f}), sent to {len(settings.alerts.sinks)} sinks "
        f"({', '.join(settings.alerts.sinks)}); JSONL: {settings.data_dir / 'alerts.jsonl'}"
    )
    console.print(
        f"\nLook next: salesflow status|kpis|totals --by invoice|dlq list|audit "
        f"--data-dir {settings.data_dir}\n"
        f"Bucket: {settings.bucket_dir} (processed/, failed/, lake/, reports/)"
    )
