"""Aggregate tables (totals, KPIs) in SQLite, shaped by an ``AggregateSpec``.

Each spec becomes a table ``agg_<name>`` created on first use, with the spec's key as its
PRIMARY KEY. Column kinds map to SQLite's types: integers to INTEGER, floats to REAL, text to
TEXT, dates to ISO text (so they sort and compare as text), and back to exactly the spec's
types on read. ``select_rows`` reads without Polars (the ``salesflow kpis`` command imports
none); the frame functions import it when called.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from salesflow.errors import TerminalError
from salesflow.ports import AggregateSpec, Kind

if TYPE_CHECKING:
    import polars as pl

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
IN_CHUNK = 500
"""Values bound per ``IN (...)`` query, far below SQLite's variable limit."""


def quote(name: str) -> str:
    """A safe SQL identifier; names come from code, but never trust them into SQL blindly."""
    if not _IDENT.fullmatch(name):
        raise TerminalError(
            f"{name!r} is not a valid table or column name", hint="use [A-Za-z0-9_]"
        )
    return f'"{name}"'


def table_of(spec: AggregateSpec) -> str:
    return quote(f"agg_{spec.name}")


SQL_TYPES: dict[Kind, str] = {"int": "INTEGER", "float": "REAL", "str": "TEXT", "date": "TEXT"}


def is_complete(conn: sqlite3.Connection, spec: AggregateSpec) -> bool:
    """Whether ``agg_<name>`` exists with every column of the spec."""
    present = {row[1] for row in conn.execute(f"PRAGMA table_info({table_of(spec)})")}
    return set(spec.columns) <= present


def ensure_table(conn: sqlite3.Connection, spec: AggregateSpec) -> None:
    """Create ``agg_<name>`` if missing; add columns the spec gained since it was created."""
    table = table_of(spec)
    # NOT NULL on the key: SQLite would otherwise accept NULLs in a non-integer PRIMARY KEY.
    columns = ", ".join(
        f"{quote(c)} {SQL_TYPES[k]}{' NOT NULL' if c in spec.key else ''}"
        for c, k in spec.kinds.items()
    )
    key = ", ".join(quote(c) for c in spec.key)
    conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ({columns}, PRIMARY KEY ({key}))")
    present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
    for name, kind in spec.kinds.items():
        if name not in present:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {quote(name)} {SQL_TYPES[kind]}")


def to_rows(
    frame: pl.DataFrame, spec: AggregateSpec, columns: Sequence[str]
) -> list[tuple[Any, ...]]:
    """``columns`` of ``frame`` as rows to bind: dates as ISO text."""
    import polars as pl

    return frame.select(
        pl.col(c).cast(pl.Date).dt.to_string("%Y-%m-%d")
        if spec.kinds[c] == "date"
        else pl.col(c).cast(spec.schema[c])
        for c in columns
    ).rows()


def to_value(value: Any) -> Any:
    """A Python value as it is stored: dates as ISO text."""
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


def from_rows(rows: Sequence[tuple[Any, ...]], spec: AggregateSpec) -> pl.DataFrame:
    """Rows read back from SQLite, cast to exactly ``spec.schema``."""
    import polars as pl

    frame = pl.DataFrame(list(rows), schema=spec.columns, orient="row")
    return frame.select(
        pl.col(c).cast(pl.String).str.to_date("%Y-%m-%d")
        if kind == "date"
        else pl.col(c).cast(spec.schema[c])
        for c, kind in spec.kinds.items()
    )


def to_dicts(rows: Sequence[tuple[Any, ...]], spec: AggregateSpec) -> list[dict[str, Any]]:
    """Rows read back from SQLite as dicts of plain values (``date`` for a date column)."""
    dates = [i for i, kind in enumerate(spec.kinds.values()) if kind == "date"]
    columns = spec.columns
    out = []
    for row in rows:
        values = list(row)
        for i in dates:
            if values[i] is not None:
                values[i] = date.fromisoformat(values[i])
        out.append(dict(zip(columns, values, strict=True)))
    return out


def replace(
    conn: sqlite3.Connection, spec: AggregateSpec, delete: pl.DataFrame, upsert: pl.DataFrame
) -> None:
    """Delete rows by key, then upsert rows, with ``executemany`` (inside the caller's
    transaction, so both happen or neither)."""
    table = table_of(spec)
    if not delete.is_empty():
        where = " AND ".join(f"{quote(k)} = ?" for k in spec.key)
        conn.executemany(f"DELETE FROM {table} WHERE {where}", to_rows(delete, spec, spec.key))
    if not upsert.is_empty():
        names = ", ".join(quote(c) for c in spec.columns)
        marks = ", ".join("?" for _ in spec.columns)
        conn.executemany(
            f"INSERT OR REPLACE INTO {table} ({names}) VALUES ({marks})",
            to_rows(upsert, spec, spec.columns),
        )


def select(
    conn: sqlite3.Connection,
    spec: AggregateSpec,
    column: str | None,
    values: Sequence[Any] | None,
) -> list[tuple[Any, ...]]:
    """Rows of the aggregate as stored, optionally only where ``column`` is in ``values``."""
    table = table_of(spec)
    names = ", ".join(quote(c) for c in spec.columns)
    base = f"SELECT {names} FROM {table}"
    if column is None or values is None:
        return conn.execute(base).fetchall()
    if column not in spec.kinds:
        raise TerminalError(f"{spec.name} has no column {column!r}", hint=f"use {spec.columns}")
    rows: list[tuple[Any, ...]] = []
    unique = list(dict.fromkeys(to_value(v) for v in values))
    for start in range(0, len(unique), IN_CHUNK):
        chunk = unique[start : start + IN_CHUNK]
        marks = ", ".join("?" for _ in chunk)
        rows.extend(conn.execute(f"{base} WHERE {quote(column)} IN ({marks})", chunk))
    return rows


def add(conn: sqlite3.Connection, spec: AggregateSpec, deltas: pl.DataFrame) -> None:
    """Add ``deltas`` to the rows with the same key (inserting missing rows), then delete
    rows whose ``records`` fell to zero: exact, because the caller's transaction commits the
    file that caused the deltas in the same step, so they are applied exactly once."""
    table = table_of(spec)
    values = [c for c in spec.columns if c not in spec.key]
    names = ", ".join(quote(c) for c in spec.columns)
    marks = ", ".join("?" for _ in spec.columns)
    key = ", ".join(quote(k) for k in spec.key)
    sums = ", ".join(f"{quote(c)} = {quote(c)} + excluded.{quote(c)}" for c in values)
    conn.executemany(
        f"INSERT INTO {table} ({names}) VALUES ({marks}) ON CONFLICT ({key}) DO UPDATE SET {sums}",
        to_rows(deltas, spec, spec.columns),
    )
    conn.execute(f"DELETE FROM {table} WHERE {quote('records')} <= 0")
