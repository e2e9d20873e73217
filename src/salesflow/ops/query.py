"""``salesflow query "SQL"``: SQL over the stored records and the state tables, with DuckDB.

Relations a query can name (only those it names are built):

- one view per dataset (``order_items``, ``online_retail``, ...): the current version of each
  record, never a superseded one;
- ``kpis`` (alias ``order_kpis``), ``category_kpis``, ``totals``: the aggregate tables;
- ``lineage`` (alias ``files``): one row per file version, the fields of ``salesflow files``;
- ``dead_letters``: one row per letter, ``reasons`` and ``raw`` as JSON text
  (``raw->>'email'``), ``rules`` as a list;
- ``alerts`` and ``pending``.

A dataset is read by DuckDB from the lake's visible fragments (``Lake.local_paths``: the
files themselves locally, downloaded copies from S3), which hold exactly the current records.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from salesflow.datasets import SPECS
from salesflow.errors import SalesflowError
from salesflow.kpis import CATEGORY_KPIS, ORDER_KPIS, TOTALS
from salesflow.ops.lineage import list_files
from salesflow.ports import Backend

if TYPE_CHECKING:
    import duckdb

FILE_RETRIES = 3
"""A fragment may vanish between listing and reading (compaction): list again, this often."""


def _dataset_sql(paths: list[Path]) -> str:
    """A view over the visible fragments: exactly the current version of each record."""
    files = "[" + ", ".join(_literal(p.as_posix()) for p in paths) + "]"
    return f"SELECT * FROM read_parquet({files}, union_by_name = true, hive_partitioning = false)"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


LINEAGE_SCHEMA: dict[str, pl.DataType] = {
    "seq": pl.Int64(),
    "file": pl.String(),
    "dataset": pl.String(),
    "status": pl.String(),
    "rows_in": pl.Int64(),
    "valid": pl.Int64(),
    "rejected": pl.Int64(),
    "superseded": pl.Int64(),
    "started_at": pl.Datetime(time_zone="UTC"),
    "finished_at": pl.Datetime(time_zone="UTC"),
    "duration_s": pl.Float64(),
    "sha256": pl.String(),
    "size": pl.Int64(),
    "attempts": pl.Int64(),
    "error": pl.String(),
    "archive_key": pl.String(),
    "report_key": pl.String(),
    "arrived_at": pl.Datetime(time_zone="UTC"),
    "version": pl.String(),
    "source": pl.String(),
    "origin": pl.String(),
    "settled": pl.Boolean(),
}


def _lineage(backend: Backend) -> pl.DataFrame:
    rows = [vars(f) for f in list_files(backend)]
    return pl.DataFrame(rows, schema=LINEAGE_SCHEMA)


LETTER_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.String(),
    "dataset": pl.String(),
    "source_file": pl.String(),
    "record": pl.Int64(),
    "status": pl.String(),
    "rules": pl.List(pl.String()),
    "reasons": pl.String(),
    "raw": pl.String(),
    "attempts": pl.Int64(),
    "seq": pl.Int64(),
    "created_at": pl.Datetime(time_zone="UTC"),
    "updated_at": pl.Datetime(time_zone="UTC"),
}


def _dead_letters(backend: Backend) -> pl.DataFrame:
    from salesflow.ops.dlq_view import find_letters

    rows = [
        {
            "id": x.id,
            "dataset": x.dataset,
            "source_file": x.source_file,
            "record": x.record,
            "status": x.status.value,
            "rules": x.rules,
            "reasons": json.dumps([r.to_dict() for r in x.reasons]),
            "raw": json.dumps(x.raw, default=str),
            "attempts": x.attempts,
            "seq": x.seq,
            "created_at": x.created_at,
            "updated_at": x.updated_at,
        }
        for x in find_letters(backend, status=None)
    ]
    return pl.DataFrame(rows, schema=LETTER_SCHEMA)


def _alerts(backend: Backend) -> pl.DataFrame:
    rows = [a.to_dict() for a in backend.tables.list_alerts()]
    schema: dict[str, pl.DataType] = {
        "id": pl.String(),
        "dataset": pl.String(),
        "record_key": pl.String(),
        "amount": pl.Float64(),
        "threshold": pl.Float64(),
        "source_file": pl.String(),
        "message": pl.String(),
        "status": pl.String(),
        "attempts": pl.Int64(),
        "created_at": pl.String(),
        "sent_at": pl.String(),
        "error": pl.String(),
    }
    return pl.DataFrame(rows, schema=schema)


def _pending(backend: Backend) -> pl.DataFrame:
    rows = [
        {"key": p.key, "dataset": p.dataset, "arrived_at": p.arrived_at}
        for p in backend.tables.list_pending()
    ]
    schema = {"key": pl.String(), "dataset": pl.String(), "arrived_at": pl.Datetime("us", "UTC")}
    return pl.DataFrame(rows, schema=schema)


def tables(backend: Backend) -> dict[str, Callable[[], pl.DataFrame]]:
    """The state tables a query can name, each built only when named."""
    return {
        "kpis": lambda: backend.tables.read_aggregates(ORDER_KPIS),
        "order_kpis": lambda: backend.tables.read_aggregates(ORDER_KPIS),
        "category_kpis": lambda: backend.tables.read_aggregates(CATEGORY_KPIS),
        "totals": lambda: backend.tables.read_aggregates(TOTALS),
        "lineage": lambda: _lineage(backend),
        "files": lambda: _lineage(backend),
        "dead_letters": lambda: _dead_letters(backend),
        "alerts": lambda: _alerts(backend),
        "pending": lambda: _pending(backend),
    }


def relations() -> list[str]:
    """Every name a query can use: the datasets, then the tables."""
    return sorted(SPECS) + list(_TABLE_NAMES)


_TABLE_NAMES = (
    "kpis",
    "order_kpis",
    "category_kpis",
    "totals",
    "lineage",
    "files",
    "dead_letters",
    "alerts",
    "pending",
)


def _connect() -> duckdb.DuckDBPyConnection:
    try:
        import duckdb
    except ImportError as exc:  # pragma: no cover - duckdb is a core dependency
        from salesflow.errors import MissingDependencyError

        raise MissingDependencyError("query", "duckdb") from exc
    con = duckdb.connect(":memory:")
    # Never reach for the network: extensions neither install nor load by themselves.
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    return con


def _bind(
    con: duckdb.DuckDBPyConnection, backend: Backend, names: set[str], files: ExitStack
) -> None:
    """Views of ``names``: datasets over the lake's visible fragments (local files, kept
    while ``files`` is open), the state tables as frames."""
    builders = tables(backend)
    for name in sorted(names):
        if name in SPECS:
            paths = files.enter_context(backend.lake.local_paths(name))
            if paths:
                con.execute(f'CREATE OR REPLACE TEMP VIEW "{name}" AS {_dataset_sql(paths)}')
            else:
                con.register(name, backend.lake.read(name))
        elif name in builders:
            con.register(name, builders[name]())


def _named(con: duckdb.DuckDBPyConnection, sql: str) -> set[str]:
    import duckdb

    try:
        found = con.get_table_names(sql)
    except duckdb.Error as exc:
        raise QueryError(sql, exc) from exc
    known = set(SPECS) | set(_TABLE_NAMES)
    return {n for n in found if n in known}


class QueryError(SalesflowError):
    """DuckDB refused the query: its own message, and the names a query can use."""

    def __init__(self, sql: str, exc: Exception) -> None:
        first = " ".join(str(exc).split())
        super().__init__(
            f"query failed: {first}",
            hint=f"relations: {', '.join(relations())}; "
            'see them with: salesflow query "DESCRIBE order_items"',
        )
        self.sql = sql


def _whole_numbers(frame: pl.DataFrame) -> pl.DataFrame:
    """DuckDB sums integers into 128-bit decimals; scale-0 decimals read back as integers."""
    whole = [
        name
        for name, dtype in frame.schema.items()
        if isinstance(dtype, pl.Decimal) and (dtype.scale or 0) == 0
    ]
    return frame.with_columns(pl.col(whole).cast(pl.Int64)) if whole else frame


def query(backend: Backend, sql: str) -> pl.DataFrame:
    """Run ``sql`` and return its result, e.g.
    ``query(backend, "SELECT status, count(*) AS files FROM lineage GROUP BY ALL")``."""
    import duckdb

    for attempt in range(FILE_RETRIES):
        con = _connect()
        try:
            with ExitStack() as files:
                _bind(con, backend, _named(con, sql), files)
                relation = con.sql(sql)
                result: pl.DataFrame = relation.pl() if relation is not None else pl.DataFrame()
            return _whole_numbers(result)
        except duckdb.IOException as exc:
            if attempt + 1 == FILE_RETRIES:
                raise QueryError(sql, exc) from exc
        except duckdb.Error as exc:
            raise QueryError(sql, exc) from exc
        finally:
            con.close()
    raise AssertionError("unreachable")  # pragma: no cover
