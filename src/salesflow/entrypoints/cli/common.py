"""What every command shares: options, settings, the backend, output and errors."""

from __future__ import annotations

import contextlib
import fcntl
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from salesflow.config import Settings, load_settings
from salesflow.ports import Backend

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="where the bucket and tables live [env SALESFLOW_DATA_DIR]"),
]
BackendName = Annotated[
    str | None, typer.Option("--backend", help="local or aws [env SALESFLOW_BACKEND]")
]
Json = Annotated[bool, typer.Option("--json", help="print machine-readable JSON on stdout")]
EngineName = Annotated[
    str | None,
    typer.Option(
        "--engine",
        help="polars (this process) or spark: where validation and KPIs run [env SALESFLOW_ENGINE]",
    ),
]
SparkMaster = Annotated[
    str | None,
    typer.Option(
        "--spark-master",
        help="Spark master URL for --engine spark: local[*], spark://host:7077, yarn "
        "[env SALESFLOW_SPARK__MASTER]",
    ),
]

# Wide enough for keys and numbers when piped (Rich assumes 80 columns off a terminal).
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)


def settings_for(
    data_dir: Path | None,
    backend: str | None = None,
    *,
    engine: str | None = None,
    spark_master: str | None = None,
    **more: Any,
) -> Settings:
    settings = load_settings(data_dir=data_dir, backend=backend, engine=engine, **more)
    if spark_master:
        settings.spark.master = spark_master
    return settings


@contextlib.contextmanager
def open_backend(settings: Settings) -> Iterator[Backend]:
    """The configured backend, closed on exit."""
    from salesflow.adapters import build_backend

    if settings.backend == "local":
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    backend = build_backend(settings)
    try:
        yield backend
    finally:
        backend.close()


@contextlib.contextmanager
def processing_lock(settings: Settings) -> Iterator[None]:
    """One process at a time processes files on a local data dir (the service and
    ``ingest`` may run together); readers never take it."""
    if settings.backend != "local":
        yield
        return
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with (settings.data_dir / ".processing.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def emit_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    out = Table(title=title, title_justify="left")
    for column in columns:
        out.add_column(column, overflow="fold")
    for row in rows:
        out.add_row(*("" if v is None else _fmt(v) for v in row))
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def fail(message: str, hint: str = "", code: int = 2) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}" + (f" [dim]({hint})[/dim]" if hint else ""))
    return typer.Exit(code)
