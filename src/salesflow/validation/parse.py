"""Typed values from the strings a record arrived with, as Polars expressions.

Every parser is lenient (``strict=False``): a value that does not parse becomes null, and
the type rule fires where the input was present but the typed value is null.
"""

from __future__ import annotations

import polars as pl

from salesflow.datasets.spec import FieldSpec

_ISO_FORMATS = ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M")


def _to_utc(s: pl.Expr, fmt: str) -> pl.Expr:
    """Parse with ``fmt``; naive values are taken as UTC, offsets converted to UTC."""
    if "%z" in fmt:
        return s.str.to_datetime(fmt, strict=False, time_unit="us", time_zone="UTC")
    return s.str.to_datetime(fmt, strict=False, time_unit="us").dt.replace_time_zone("UTC")


def iso_datetime(s: pl.Expr) -> pl.Expr:
    """ISO 8601 date-times as found in exports: ``T`` or space, optional fraction, and an
    optional `` UTC`` / ``Z`` / ``+02:00`` suffix (thelook writes ``... UTC``)."""
    norm = s.str.replace(r"^(\d{4}-\d{2}-\d{2})[Tt ]", "${1} ").str.replace(
        r"(?i)\s*(?:UTC|Z)$", ""
    )
    has_offset = norm.str.contains(r"[+-]\d{2}:?\d{2}$")
    naive = pl.coalesce([_to_utc(norm, f) for f in _ISO_FORMATS])
    aware = _to_utc(norm, "%Y-%m-%d %H:%M:%S%.f%z")
    date_only = _to_utc(norm, "%Y-%m-%d")
    return pl.when(has_offset).then(aware).otherwise(pl.coalesce(naive, date_only))


def typed(s: pl.Expr, spec: FieldSpec) -> pl.Expr:
    """The typed value of field ``spec`` from its stripped string ``s`` (null if it fails)."""
    dtype = spec.dtype
    if isinstance(dtype, pl.Datetime):
        if spec.formats:
            return pl.coalesce([_to_utc(s, f) for f in spec.formats])
        return iso_datetime(s)
    if dtype == pl.Float64:
        value = s.cast(pl.Float64, strict=False)
        return pl.when(value.is_finite()).then(value)
    if dtype == pl.Utf8:
        return s
    return s.cast(dtype, strict=False)


def type_rule(spec: FieldSpec) -> str | None:
    """The rule that fires when a present value of ``spec`` does not parse."""
    dtype = spec.dtype
    if isinstance(dtype, pl.Datetime):
        return "type.date"
    if dtype == pl.Float64:
        return "type.number"
    if dtype.is_integer():
        return "type.integer"
    return None
