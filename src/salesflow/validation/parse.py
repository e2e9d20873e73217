"""Typed values from the strings a record arrived with.

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


_CANDIDATES = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%dT%H:%M:%S%.fZ",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%z",
    "%Y-%m-%dT%H:%M:%S%.f%z",
)
"""Whole-column formats tried for ISO-like timestamps (after dropping a `` UTC`` suffix)."""

_SAMPLE = 64


def _strptime(values: pl.Series, fmt: str) -> pl.Series:
    """Naive UTC date-times parsed with ``fmt`` (offsets converted), null where it fails."""
    if "%z" in fmt:
        aware = values.str.to_datetime(fmt, strict=False, time_unit="us", time_zone="UTC")
        return aware.dt.replace_time_zone(None)
    return values.str.to_datetime(fmt, strict=False, time_unit="us", cache=False)


def _best_format(values: pl.Series, formats: tuple[str, ...]) -> str:
    """The format that parses most of the first non-empty values (a file sticks to one)."""
    sample = values.filter(values != "").head(_SAMPLE)
    if sample.is_empty():
        return formats[0]
    return max(formats, key=lambda f: _strptime(sample, f).is_not_null().sum())


def parse_datetime(values: pl.Series, spec: FieldSpec) -> pl.Series:
    """Parse a column of date-time strings to UTC.

    The format that fits a sample of the column is applied to every value (one strptime
    pass is ~10x cheaper than the regex-normalising ISO parser); only the values it fails
    on go through the other formats.
    """
    formats = spec.formats or _CANDIDATES
    base = values if spec.formats else values.str.strip_suffix(" UTC")
    first = _best_format(base, formats)
    out = _strptime(base, first)
    failed = (out.is_null() & (values != "")).fill_null(False)
    if failed.any():
        frame = values.filter(failed).to_frame("s")
        rest = [_to_utc(pl.col("s"), f) for f in formats if f != first] if spec.formats else []
        fallback = pl.coalesce(rest) if rest else iso_datetime(pl.col("s"))
        again = frame.select(fallback.dt.replace_time_zone(None)).to_series()
        out = out.scatter(failed.arg_true(), again)
    return out.dt.replace_time_zone("UTC").alias(values.name)


def _parse(values: pl.Series, spec: FieldSpec) -> pl.Series:
    dtype = spec.dtype
    if isinstance(dtype, pl.Datetime):
        return parse_datetime(values, spec)
    if dtype == pl.Float64:
        number = values.cast(pl.Float64, strict=False)
        return number.to_frame().select(pl.when(number.is_finite()).then(number)).to_series()
    return values.cast(dtype, strict=False)


def parse_field(raw: pl.Series, spec: FieldSpec) -> tuple[pl.Series, pl.Series]:
    """The typed values of field ``spec`` and whether each is missing (null, blank or only
    whitespace), from the strings ``raw`` it arrived with.

    Text is stripped. Numbers and dates are parsed from the raw strings directly and only
    the values that fail are stripped and tried again: padding is rare, and stripping a
    whole column costs as much as parsing it.
    """
    if spec.dtype == pl.Utf8:
        text = raw.str.strip_chars().replace("", None)
        return text, text.is_null()
    value = _parse(raw, spec)
    missing = (raw.is_null() | (raw == "")).fill_null(True)
    retry = value.is_null() & ~missing
    if retry.any():
        rows = retry.arg_true()
        stripped = raw.gather(rows).str.strip_chars()
        value = value.scatter(rows, _parse(stripped, spec))
        blank = stripped == ""
        if blank.any():
            missing = missing.scatter(rows.filter(blank), True)
    return value.alias(raw.name), missing


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
