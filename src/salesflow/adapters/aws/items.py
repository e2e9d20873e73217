"""Polars frames <-> DynamoDB items (the low-level attribute-value format), column by column.

Numbers become ``N`` (floats through ``Decimal(repr(x))``, exact and within DynamoDB's 38
digits; NaN and infinity, which DynamoDB cannot store, become missing attributes), text ``S``,
booleans ``BOOL``, dates and datetimes ISO-8601 ``S``, bytes ``B``, and nested values (lists,
structs) JSON text. Nulls are left out of the item. Reading back needs the frame's schema,
which ``schema_bytes`` / ``schema_from_bytes`` keep as a tiny Arrow IPC payload.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import polars as pl

Item = dict[str, Any]
Encoder = Callable[[Any], dict[str, Any] | None]


def _number(value: Any) -> dict[str, Any]:
    return {"N": str(value)}


def _float(value: float) -> dict[str, Any] | None:
    if not math.isfinite(value):
        return None
    return {"N": str(Decimal(repr(float(value))))}


def _iso(value: date | datetime | time) -> dict[str, Any]:
    return {"S": value.isoformat()}


def _json(value: Any) -> dict[str, Any]:
    return {"S": json.dumps(value, default=str, ensure_ascii=False)}


def encoder(dtype: pl.DataType) -> Encoder:
    """How to turn one Python value of a column of ``dtype`` into an attribute value."""
    if dtype.is_integer() or isinstance(dtype, pl.Decimal):
        return _number
    if dtype.is_float():
        return _float
    if isinstance(dtype, pl.Boolean):
        return lambda v: {"BOOL": bool(v)}
    if isinstance(dtype, pl.String | pl.Categorical | pl.Enum):
        return lambda v: {"S": str(v)}
    if isinstance(dtype, pl.Date | pl.Datetime | pl.Time):
        return _iso
    if isinstance(dtype, pl.Binary):
        return lambda v: {"B": bytes(v)}
    return _json


def encode(value: Any, dtype: pl.DataType) -> dict[str, Any] | None:
    """One value as an attribute value (``None`` for null or a non-finite float)."""
    return None if value is None else encoder(dtype)(value)


def frame_to_items(frame: pl.DataFrame) -> list[Item]:
    """Each row as an item; null cells are left out."""
    items: list[Item] = [{} for _ in range(frame.height)]
    for name, dtype in frame.schema.items():
        enc = encoder(dtype)
        for item, value in zip(items, frame.get_column(name).to_list(), strict=True):
            if value is not None:
                attribute = enc(value)
                if attribute is not None:
                    item[name] = attribute
    return items


def _plain(attribute: Mapping[str, Any] | None) -> Any:
    """The Python value of an attribute value, before typing by the column's dtype."""
    if attribute is None or "NULL" in attribute:
        return None
    return next(iter(attribute.values()))


def _column(name: str, dtype: pl.DataType, raw: list[Any]) -> pl.Series:
    if dtype.is_integer():
        return pl.Series(name, [None if v is None else int(v) for v in raw], dtype=dtype)
    if dtype.is_float():
        return pl.Series(name, [None if v is None else float(v) for v in raw], dtype=dtype)
    if isinstance(dtype, pl.Decimal):
        return pl.Series(name, [None if v is None else Decimal(v) for v in raw], dtype=dtype)
    if isinstance(dtype, pl.Date):
        return pl.Series(
            name, [None if v is None else date.fromisoformat(v) for v in raw], dtype=dtype
        )
    if isinstance(dtype, pl.Datetime):
        values = [None if v is None else datetime.fromisoformat(v) for v in raw]
        return pl.Series(name, values, dtype=dtype)
    if isinstance(dtype, pl.Time):
        return pl.Series(
            name, [None if v is None else time.fromisoformat(v) for v in raw], dtype=dtype
        )
    if isinstance(dtype, pl.Boolean | pl.String | pl.Categorical | pl.Enum | pl.Binary):
        return pl.Series(name, raw, dtype=dtype)
    if isinstance(dtype, pl.Null):
        return pl.Series(name, [None] * len(raw), dtype=dtype)
    return pl.Series(name, raw, dtype=pl.String).str.json_decode(dtype)


def items_to_frame(
    items: Sequence[Mapping[str, Any]], schema: Mapping[str, pl.DataType]
) -> pl.DataFrame:
    """A frame with exactly ``schema`` from items (missing attributes are nulls)."""
    columns = [
        _column(name, dtype, [_plain(item.get(name)) for item in items])
        for name, dtype in schema.items()
    ]
    return pl.DataFrame(columns) if columns else pl.DataFrame()


def schema_bytes(schema: Mapping[str, pl.DataType]) -> bytes:
    """A compact, exact serialisation of a frame schema (an empty Arrow IPC file)."""
    buffer = io.BytesIO()
    pl.DataFrame(schema=dict(schema)).write_ipc(buffer)
    return buffer.getvalue()


def schema_from_bytes(data: bytes) -> dict[str, pl.DataType]:
    """The schema ``schema_bytes`` stored."""
    return dict(pl.read_ipc(io.BytesIO(data)).schema)
