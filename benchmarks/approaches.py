"""The three approaches under test, each timed on the same files, returning one outcome.

An outcome is plain JSON: the timed seconds, per-file counts (``rows_in``, ``valid``,
``rejected``, per-rule counts) and the two KPI tables as rows, so the runner can compare
approaches that live in different processes. Only the work is timed: imports come before
the clock starts, and reading results back for the comparison comes after it stops.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from benchmarks.data import Inputs

Outcome = dict[str, Any]
KPI_COLUMNS = ["items", "revenue", "orders", "returned", "return_rate"]


def kpi_rows(frame: pl.DataFrame, keys: list[str]) -> list[dict[str, Any]]:
    """KPI rows with ``day`` as an ISO date string, sorted by ``keys``."""
    day = pl.col("day")
    if isinstance(frame.schema["day"], pl.Datetime):
        day = day.dt.date()
    out = frame.select(
        *[c for c in keys if c != "day"],
        day.cast(pl.Date).cast(pl.String).alias("day"),
        pl.col("items").cast(pl.Int64),
        pl.col("revenue").cast(pl.Float64),
        pl.col("orders").cast(pl.Int64),
        pl.col("returned").cast(pl.Int64),
        pl.col("return_rate").cast(pl.Float64),
    ).sort(keys)
    return out.to_dicts()


def _outcome(
    clock: tuple[float, float], files: dict[str, dict[str, Any]], order: Any, category: Any
) -> Outcome:
    """``clock``: (wall, CPU) seconds of the timed work; CPU counts every thread."""
    return {
        "seconds": clock[0],
        "cpu_seconds": clock[1],
        "files": files,
        "order_kpis": kpi_rows(order, ["day"]),
        "category_kpis": kpi_rows(category, ["category", "day"]),
    }


def run_salesflow(
    inputs: Inputs, now: datetime, workdir: Path, *, spark_master: str | None = None
) -> Outcome:
    """(a) ``salesflow.pipeline.inbox.ingest`` of the three files into a fresh data dir:
    validate in chunks, records to the Parquet lake, dead letters and lineage to SQLite,
    KPIs recomputed, raw files archived.

    With ``spark_master`` the same run on the Spark engine (``--engine spark``); the session
    is started before the clock, like the imports, and its start-up time is kept apart
    (``session_s``). CPU seconds then count only the Python driver, not the JVM."""
    from salesflow.adapters import build_backend
    from salesflow.config import Settings, SparkSettings
    from salesflow.engines import engine_for
    from salesflow.kpis import CATEGORY_KPIS, ORDER_KPIS
    from salesflow.pipeline.inbox import ingest

    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    if spark_master is None:
        settings = Settings(data_dir=workdir)
    else:
        spark = SparkSettings(master=spark_master, shuffle_partitions=4)
        settings = Settings(data_dir=workdir, engine="spark", spark=spark)
    session_started = time.perf_counter()
    engine_for(settings)
    session_s = time.perf_counter() - session_started
    marks: list[tuple[str, float]] = []
    started, cpu = time.perf_counter(), time.process_time()
    backend = build_backend(settings)
    states = ingest(
        backend,
        settings,
        inputs.paths,
        progress=lambda s: marks.append((s.dataset, time.perf_counter())),
    )
    seconds = time.perf_counter() - started
    clock = (seconds, time.process_time() - cpu)
    try:
        files: dict[str, dict[str, Any]] = {}
        for state in states:
            report = (
                json.loads(backend.store.get_bytes(state.report_key)) if state.report_key else {}
            )
            files[state.dataset] = {
                "status": str(state.status),
                "rows_in": state.rows_in,
                "valid": state.valid,
                "rejected": state.rejected,
                "rules": report.get("rules", {}),
            }
        order = backend.tables.read_aggregates(ORDER_KPIS)
        category = backend.tables.read_aggregates(CATEGORY_KPIS)
    finally:
        backend.close()
    outcome = _outcome(clock, files, order, category)
    previous = started
    outcome["phases"] = {}
    for dataset, mark in marks:
        outcome["phases"][dataset] = round(mark - previous, 3)
        previous = mark
    outcome["phases"]["after_files"] = round(started + seconds - previous, 3)
    outcome["lake_mb"] = round(
        sum(p.stat().st_size for p in (workdir / "bucket" / "lake").rglob("*.parquet")) / 1e6, 1
    )
    if spark_master is not None:
        outcome["session_s"] = round(session_s, 2)
    return outcome


def run_spark_local1(inputs: Inputs, now: datetime, workdir: Path) -> Outcome:
    """(d) ``salesflow ingest --engine spark --spark-master local[1]``."""
    return run_salesflow(inputs, now, workdir, spark_master="local[1]")


def run_spark_local2(inputs: Inputs, now: datetime, workdir: Path) -> Outcome:
    """(e) ``salesflow ingest --engine spark --spark-master local[2]``."""
    return run_salesflow(inputs, now, workdir, spark_master="local[2]")


def run_pandas(inputs: Inputs, now: datetime, workdir: Path) -> Outcome:
    """(b) seed 004's approach: pandas, 10,000-row chunks (``reference_pandas``)."""
    from benchmarks import reference_pandas

    shutil.rmtree(workdir, ignore_errors=True)
    reports = workdir / "validation-reports"
    reports.mkdir(parents=True)
    started, cpu = time.perf_counter(), time.process_time()
    result = reference_pandas.run(*inputs.paths, now=now, report_dir=reports)
    seconds = time.perf_counter() - started
    clock = (seconds, time.process_time() - cpu)
    files = {
        name: {
            "rows_in": f.rows_in,
            "valid": f.valid,
            "rejected": f.rejected,
            "rules": dict(f.rules),
        }
        for name, f in result.files.items()
    }
    return _outcome(
        clock, files, pl.from_pandas(result.order_kpis), pl.from_pandas(result.category_kpis)
    )


def run_floor(inputs: Inputs, now: datetime, workdir: Path) -> Outcome:
    """(c) the floor: whole files in Polars, same rules and KPIs, nothing stored."""
    from benchmarks import floor_polars

    started, cpu = time.perf_counter(), time.process_time()
    result = floor_polars.run(*inputs.paths, now=now)
    seconds = time.perf_counter() - started
    clock = (seconds, time.process_time() - cpu)
    files = {
        name: {"rows_in": f.rows_in, "valid": f.valid, "rejected": f.rejected, "rules": f.rules}
        for name, f in result.files.items()
    }
    return _outcome(clock, files, result.order_kpis, result.category_kpis)


APPROACHES: dict[str, Callable[[Inputs, datetime, Path], Outcome]] = {
    "salesflow": run_salesflow,
    "pandas": run_pandas,
    "polars_floor": run_floor,
    "spark_local1": run_spark_local1,
    "spark_local2": run_spark_local2,
}
SPARK = ("spark_local1", "spark_local2")
"""Run only at ``--spark-sizes`` (a Spark run takes minutes); not in ``--approaches``'s default."""
LABELS = {
    "salesflow": "(a) salesflow ingest, end to end",
    "pandas": "(b) seed 004 reference: pandas, 10k-row chunks",
    "polars_floor": "(c) floor: plain Polars, whole files, no persistence",
    "spark_local1": "(d) salesflow ingest --engine spark, local[1]",
    "spark_local2": "(e) salesflow ingest --engine spark, local[2]",
}
