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
from rich.markup import escape
from rich.table import Table

from salesflow.config import Settings, load_settings
from salesflow.errors import UsageError
from salesflow.logs import one_line, printable
from salesflow.ports import Backend, Tables

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
def open_backend(settings: Settings, *, create: bool = False) -> Iterator[Backend]:
    """The configured backend, closed on exit.

    Only commands that bring data in (``create=True``: ingest, run, demo) may create a local
    data dir; the others refuse a folder that holds neither ``salesflow.db`` nor ``bucket/``
    rather than leave an empty one behind (a typo in ``--data-dir`` would otherwise show an
    empty, healthy pipeline).
    """
    from salesflow.adapters import build_backend

    if settings.backend == "local":
        if create:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        else:
            _require_data(settings)
    backend = build_backend(settings)
    try:
        yield backend
    finally:
        backend.close()


@contextlib.contextmanager
def open_tables(settings: Settings) -> Iterator[Tables]:
    """The state tables alone, for commands that read nothing else (``kpis``, ``totals``):
    locally, the SQLite file without the lake, so no Polars is imported."""
    if settings.backend != "local":
        with open_backend(settings) as backend:
            yield backend.tables
        return
    from salesflow.adapters.sqlite.tables import SqliteTables

    _require_data(settings)
    tables = SqliteTables(settings.db_path, busy_seconds=settings.sqlite_busy_seconds)
    try:
        yield tables
    finally:
        tables.close()


def _require_data(settings: Settings) -> None:
    if not (settings.db_path.is_file() or settings.bucket_dir.is_dir()):
        raise UsageError(
            f"no salesflow data in {settings.data_dir}"
            + ("" if settings.data_dir.is_dir() else " (the folder does not exist)"),
            hint="pass --data-dir (or set SALESFLOW_DATA_DIR) to where salesflow ingested "
            "files; nothing has been ingested here yet",
        )


@contextlib.contextmanager
def processing_lock(settings: Settings) -> Iterator[None]:
    """One process at a time processes files on a local data dir (the service and
    ``ingest`` may run together); readers never take it."""
    if settings.backend != "local":
        yield
        return
    from salesflow.validation.text import clean_scratch

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with (settings.data_dir / ".processing.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        clean_scratch(settings.scratch_dir)  # decoded copies a killed process left behind
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def emit_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    """A Rich table; every cell is shown as plain text (a key holding ``[red]`` or a newline
    prints as it is, on its own line: it cannot restyle or forge output)."""
    out = Table(title=title, title_justify="left")
    for column in columns:
        out.add_column(column, overflow="fold")
    for row in rows:
        out.add_row(*("" if v is None else safe(_fmt(v)) for v in row))
    return out


def safe(text: str) -> str:
    """``text`` (a file name, key or message from the data) ready for ``console.print``:
    control characters escaped, Rich markup disarmed."""
    return escape(printable(text))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def print_error(message: str, hint: str = "", *, label: str = "error") -> None:
    """One line on stderr: ``error: <message> (<hint>)``, emails masked, URLs redacted and
    control characters escaped."""
    text = one_line(f"{message} ({hint})" if hint else message)
    err_console.print(f"[red]{label}:[/red] {escape(text)}", soft_wrap=True)


def fail(message: str, hint: str = "", code: int = 2) -> typer.Exit:
    print_error(message, hint)
    return typer.Exit(code)
