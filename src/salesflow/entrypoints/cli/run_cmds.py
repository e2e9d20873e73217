"""Commands that move data: demo, ingest, validate, generate, run."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from salesflow.datasets import SPECS, get_spec
from salesflow.entrypoints.cli.common import (
    BackendName,
    DataDir,
    EngineName,
    Json,
    SparkMaster,
    console,
    emit_json,
    open_backend,
    processing_lock,
    settings_for,
    table,
)
from salesflow.ops import summaries as summary
from salesflow.pipeline.state import StepState

STATE_COLUMNS = ("file", "dataset", "status", "rows_in", "valid", "rejected")


def _state_row(s: StepState) -> list[object]:
    return [s.key, s.dataset, s.status, s.rows_in, s.valid, s.rejected]


def _state_json(s: StepState) -> dict[str, object]:
    return {"file": s.key, **s.to_dict()}


def ingest(
    files: Annotated[list[Path], typer.Argument(help="CSV or JSON files to load", exists=True)],
    dataset: Annotated[str | None, typer.Option(help="skip detection: the dataset")] = None,
    data_dir: DataDir = None,
    backend: BackendName = None,
    engine: EngineName = None,
    spark_master: SparkMaster = None,
    json_out: Json = False,
) -> None:
    """Put files into the inbox and process them now, bypassing the batching wait.

    Example: salesflow ingest orders.json products.csv --json
    Example: salesflow ingest big/order_items.csv --engine spark --spark-master local[2]
    """
    from salesflow.pipeline.inbox import ingest as ingest_files

    settings = settings_for(data_dir, backend, engine=engine, spark_master=spark_master)
    if dataset:
        get_spec(dataset)
    with open_backend(settings) as be, processing_lock(settings):
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=console,
            transient=True,
            disable=json_out,
        ) as bar:
            task = bar.add_task("ingesting", total=len(files))
            states = ingest_files(
                be, settings, files, dataset=dataset, progress=lambda _: bar.advance(task)
            )
    if json_out:
        emit_json([_state_json(s) for s in states])
        return
    console.print(table("Ingested", STATE_COLUMNS, [_state_row(s) for s in states]))
    for s in states:
        if s.error:
            console.print(f"[yellow]{s.status}[/yellow] {s.error}")


def validate(
    files: Annotated[list[Path], typer.Argument(help="files to check (nothing is stored)")],
    dataset: Annotated[str | None, typer.Option(help="skip detection: the dataset")] = None,
    json_out: Json = False,
    data_dir: DataDir = None,
    engine: EngineName = None,
    spark_master: SparkMaster = None,
) -> None:
    """Validate files without storing anything; print the report per file.

    Example: salesflow validate sales.csv --json
    Example: salesflow validate sales.csv --engine spark
    """
    from salesflow.engines import engine_for
    from salesflow.ops.validate import validate_paths

    settings = settings_for(data_dir, engine=engine, spark_master=spark_master)
    reports = validate_paths(files, dataset=dataset, engine=engine_for(settings))
    if json_out:
        emit_json(reports)
        return
    rows = [[r["file"], r["dataset"], r["rows_in"], r["valid"], r["rejected"]] for r in reports]
    console.print(table("Validation", ("file", "dataset", "rows_in", "valid", "rejected"), rows))
    rule_rows = [
        [r["file"], rule, count] for r in reports for rule, count in sorted(r["rules"].items())
    ]
    if rule_rows:
        console.print(table("Rejections by rule", ("file", "rule", "records"), rule_rows))
    for r in reports:
        if r.get("error"):
            console.print(f"[red]{r['file']}[/red]: {r['error']['cause']} ({r['error']['hint']})")


def generate(
    dataset: Annotated[str, typer.Argument(help=f"one of: {', '.join(sorted(SPECS))}")],
    rows: Annotated[int, typer.Option(help="records to write", min=0)] = 1000,
    out: Annotated[Path, typer.Option(help="folder to write into")] = Path("samples"),
    invalid_rate: Annotated[float, typer.Option(help="share of records with a fault")] = 0.0,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    stream: Annotated[
        bool, typer.Option(help="live feed: one sale per tick into the inbox")
    ] = False,
    every: Annotated[str, typer.Option(help="tick for --stream, e.g. 60s, 0.1s, 2m")] = "60s",
    count: Annotated[int, typer.Option(help="stop --stream after this many (0 = forever)")] = 0,
    data_dir: DataDir = None,
    json_out: Json = False,
) -> None:
    """Write realistic sample data, with faults injected at --invalid-rate.

    Example: salesflow generate order_items --rows 1000000 --out data --invalid-rate 0.01
    """
    from salesflow.samples.generate import generate as generate_files

    if stream:
        _stream(settings_for(data_dir), parse_interval(every), count, seed)
        return
    manifest = generate_files(dataset, rows, out, invalid_rate=invalid_rate, seed=seed)
    if json_out:
        emit_json(manifest.to_dict())
        return
    console.print(f"wrote {', '.join(str(f) for f in manifest.files)}")
    console.print(f"injected faults: {len(manifest.faults)}")


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
            f"sale {event.get('sale_id')}: {event.get('price')} x {event.get('quantity')}"
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
    serve(settings, json_lines=json_out)


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
    with open_backend(settings) as be, processing_lock(settings):
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
