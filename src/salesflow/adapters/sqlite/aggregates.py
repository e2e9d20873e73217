"""Aggregate tables (totals, KPIs) in SQLite, shaped by an ``AggregateSpec``.

Each spec becomes a table ``agg_<name>`` created on first use, with the spec's key as its
PRIMARY KEY. Polars types map to SQLite's: integers and booleans to INTEGER, floats to REAL,
strings to TEXT, dates and datetimes to ISO text (so they sort and compare as text), and back to
exactly the spec's types on read.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import polars as pl

from salesflow.errors import TerminalError
from salesflow.ports import AggregateSpec

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


def sql_type(dtype: pl.DataType) -> str:
    """The SQLite column type for a Polars type."""
    if dtype.is_integer() or dtype == pl.Boolean:
        return "INTEGER"
    if dtype.is_float():
        return "REAL"
    if dtype in (pl.String, pl.Date) or isinstance(dtype, pl.Datetime):
        return "TEXT"
    raise TerminalError(
        f"aggregate column type {dtype} has no SQLite mapping",
        hint="use an integer, float, boolean, string, date or datetime column",
    )


def ensure_table(conn: sqlite3.Connection, spec: AggregateSpec) -> None:
    """Create ``agg_<name>`` if missing; add columns the spec gained since it was created."""
    table = table_of(spec)
    # NOT NULL on the key: SQLite would otherwise accept NULLs in a non-integer PRIMARY KEY.
    columns = ", ".join(
        f"{quote(c)} {sql_type(t)}{' NOT NULL' if c in spec.key else ''}"
        for c, t in spec.schema.items()
    )
    key = ", ".join(quote(c) for c in spec.key)
    conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ({columns}, PRIMARY KEY ({key}))")
    present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
    for name, dtype in spec.schema.items():
        if name not in present:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {quote(name)} {sql_type(dtype)}")


def _to_sql(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """``frame`` with dates and datetimes as ISO text and booleans as 0/1, ready to bind."""
    exprs = []
    for name, dtype in schema.items():
        col = pl.col(name)
        if dtype == pl.Date:
            exprs.append(col.cast(pl.Date).dt.to_string("%Y-%m-%d"))
        elif isinstance(dtype, pl.Datetime):
            exprs.append(col.cast(dtype).dt.to_string("iso"))
        elif dtype == pl.Boolean:
            exprs.append(col.cast(pl.Int64))
        else:
            exprs.append(col.cast(dtype))
    return frame.select(exprs)


def to_rows(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> list[tuple[Any, ...]]:
    return _to_sql(frame, schema).rows()


def to_value(value: Any) -> Any:
    """A Python value as it is stored: dates as ISO text."""
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


def from_rows(rows: Sequence[tuple[Any, ...]], spec: AggregateSpec) -> pl.DataFrame:
    """Rows read back from SQLite, cast to exactly ``spec.schema``."""
    stored = {name: _stored_dtype(dtype) for name, dtype in spec.schema.items()}
    frame = pl.DataFrame(list(rows), schema=stored, orient="row")
    exprs = []
    for name, dtype in spec.schema.items():
        col = pl.col(name)
        if dtype == pl.Date:
            exprs.append(col.str.to_date("%Y-%m-%d"))
        elif isinstance(dtype, pl.Datetime):
            exprs.append(col.str.to_datetime(time_unit=dtype.time_unit, time_zone=dtype.time_zone))
        else:
            exprs.append(col.cast(dtype))
    return frame.select(exprs)


def _stored_dtype(dtype: pl.DataType) -> pl.DataType:
    if dtype.is_integer() or dtype == pl.Boolean:
        return pl.Int64()
    if dtype.is_float():
        return pl.Float64()
    return pl.String()


def replace(
    conn: sqlite3.Connection, spec: AggregateSpec, delete: pl.DataFrame, upsert: pl.DataFrame
) -> None:
    """Delete rows by key, then upsert rows, with ``executemany`` (inside the caller's
    transaction, so both happen or neither)."""
    table = table_of(spec)
    key_schema = {k: spec.schema[k] for k in spec.key}
    if not delete.is_empty():
        where = " AND ".join(f"{quote(k)} = ?" for k in spec.key)
        conn.executemany(f"DELETE FROM {table} WHERE {where}", to_rows(delete, key_schema))
    if not upsert.is_empty():
        names = ", ".join(quote(c) for c in spec.schema)
        marks = ", ".join("?" for _ in spec.schema)
        conn.executemany(
            f"INSERT OR REPLACE INTO {table} ({names}) VALUES ({marks})",
            to_rows(upsert, dict(spec.schema)),
        )


def select(
    conn: sqlite3.Connection,
    spec: AggregateSpec,
    column: str | None,
    values: Sequence[Any] | None,
) -> pl.DataFrame:
    """Rows of the aggregate, optionally only where ``column`` is in ``values``."""
    table = table_of(spec)
    names = ", ".join(quote(c) for c in spec.schema)
    base = f"SELECT {names} FROM {table}"
    if column is None or values is None:
        return from_rows(conn.execute(base).fetchall(), spec)
    if column not in spec.schema:
        raise TerminalError(f"{spec.name} has no column {column!r}", hint=f"use {spec.columns}")
    rows: list[tuple[Any, ...]] = []
    unique = list(dict.fromkeys(to_value(v) for v in values))
    for start in range(0, len(unique), IN_CHUNK):
        chunk = unique[start : start + IN_CHUNK]
        marks = ", ".join("?" for _ in chunk)
        rows.extend(conn.execute(f"{base} WHERE {quote(column)} IN ({marks})", chunk))
    return from_rows(rows, spec)


def add(conn: sqlite3.Connection, spec: AggregateSpec, deltas: pl.DataFrame) -> None:
    """Add ``deltas`` to the rows with the same key (inserting missing rows), then delete
    rows whose ``records`` fell to zero: exact, because the caller's transaction commits the
    file that caused the deltas in the same step, so they are applied exactly once."""
    table = table_of(spec)
    values = [c for c in spec.schema if c not in spec.key]
    names = ", ".join(quote(c) for c in spec.schema)
    marks = ", ".join("?" for _ in spec.schema)
    key = ", ".join(quote(k) for k in spec.key)
    sums = ", ".join(f"{quote(c)} = {quote(c)} + excluded.{quote(c)}" for c in values)
    conn.executemany(
        f"INSERT INTO {table} ({names}) VALUES ({marks}) ON CONFLICT ({key}) DO UPDATE SET {sums}",
        to_rows(deltas.select(spec.columns), dict(spec.schema)),
    )
    conn.execute(f"DELETE FROM {table} WHERE {quote('records')} <= 0")
