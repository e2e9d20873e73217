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


def _strptime(s: pl.Expr, fmt: str) -> pl.Expr:
    """Naive UTC date-times parsed with ``fmt`` (offsets converted), null where it fails."""
    if "%z" in fmt:
        aware = s.str.to_datetime(fmt, strict=False, time_unit="us", time_zone="UTC")
        return aware.dt.replace_time_zone(None)
    return s.str.to_datetime(fmt, strict=False, time_unit="us", cache=False)


def _best_format(frame: pl.DataFrame, name: str, spec: FieldSpec) -> str:
    """The format that parses most of the first non-empty values of column ``name`` (a file
    sticks to one); every format is tried in one query over the sample."""
    formats = spec.formats or _CANDIDATES
    raw = pl.col(name)
    # Without spec formats a `` UTC`` suffix is stripped first: a value that is only the
    # suffix is empty then, and left out of the sample as "" is.
    present = raw != "" if spec.formats else (raw != "") & (raw != " UTC")
    sample = frame.select(raw.filter(present).head(_SAMPLE).alias("s"))
    counts = sample.select(
        _strptime(_base(pl.col("s"), spec), f).is_not_null().sum().alias(str(i))
        for i, f in enumerate(formats)
    ).row(0)
    return formats[max(range(len(formats)), key=counts.__getitem__)]  # the first, on a tie


def _base(raw: pl.Expr, spec: FieldSpec) -> pl.Expr:
    """What the formats are tried on: the values, without a `` UTC`` suffix by default."""
    return raw if spec.formats else raw.str.strip_suffix(" UTC")


def _fallback(values: pl.Series, failed: pl.Series, first: str, spec: FieldSpec) -> pl.Series:
    """The values ``first`` failed on (``failed``) through the other formats, as UTC."""
    frame = values.filter(failed).to_frame("s")
    formats = spec.formats or _CANDIDATES
    rest = [_to_utc(pl.col("s"), f) for f in formats if f != first] if spec.formats else []
    fallback = pl.coalesce(rest) if rest else iso_datetime(pl.col("s"))
    return frame.select(fallback).to_series()


def _value(raw: pl.Expr, spec: FieldSpec, fmt: str | None) -> pl.Expr:
    """The typed value of a non-text field; a date-time is parsed with ``fmt``, to UTC.

    The format that fits a sample of the column is applied to every value (one strptime
    pass is ~10x cheaper than the regex-normalising ISO parser); only the values it fails
    on go through the other formats (``_typed``).
    """
    dtype = spec.dtype
    if isinstance(dtype, pl.Datetime):
        assert fmt is not None
        return _strptime(_base(raw, spec), fmt).dt.replace_time_zone("UTC")
    if dtype == pl.Float64:
        number = raw.cast(pl.Float64, strict=False)
        return pl.when(number.is_finite()).then(number)
    return raw.cast(dtype, strict=False)


Typed = tuple[pl.Series, pl.Series, pl.Series | None]


def _typed(frame: pl.DataFrame, fields: list[tuple[str, FieldSpec]]) -> list[Typed]:
    """Per ``(column, spec)`` of ``frame``: the typed values, whether each is missing, and
    whether a present value failed to parse (None for text: any text parses).

    One query types every field (a Polars query costs ~0.1 ms however small the frame: a
    file of one record ran ~50 of them when each field and step was its own), plus one per
    date-time field to choose its format. Date-times that format failed on go through the
    other formats.
    """
    formats = {
        c: _best_format(frame, c, spec) for c, spec in fields if isinstance(spec.dtype, pl.Datetime)
    }
    # Each field's raw column as s<i>; its value v<i> and missing flag m<i> are computed once
    # and then read by name: a 1M-row chunk parses each date once, not once per flag.
    first: list[pl.Expr] = []
    then: list[pl.Expr] = []
    for i, (column, spec) in enumerate(fields):
        raw, v, m = pl.col(f"s{i}"), pl.col(f"v{i}"), pl.col(f"m{i}")
        if spec.dtype == pl.Utf8:
            first.append(raw.str.strip_chars().replace("", None).alias(f"v{i}"))
            then += [v, v.is_null().alias(f"m{i}")]
            continue
        first += [
            _value(raw, spec, formats.get(column)).alias(f"v{i}"),
            (raw.is_null() | (raw == "")).fill_null(True).alias(f"m{i}"),
        ]
        then += [v, m, (v.is_null() & ~m).alias(f"r{i}")]
        if column in formats:
            then.append((v.is_null() & (raw != "")).fill_null(False).alias(f"f{i}"))
    out = (
        frame.lazy()
        .select(pl.col(column).alias(f"s{i}") for i, (column, _) in enumerate(fields))
        .with_columns(first)
        .select(then)
        .collect(engine="in-memory")  # "auto" picks streaming: ~5 ms on a one-record file
    )
    typed: list[Typed] = []
    for i, (column, spec) in enumerate(fields):
        value, missing = out.get_column(f"v{i}"), out.get_column(f"m{i}")
        retry = out.get_column(f"r{i}") if spec.dtype != pl.Utf8 else None
        if column in formats:
            failed = out.get_column(f"f{i}")
            if failed.any():
                again = _fallback(frame.get_column(column), failed, formats[column], spec)
                value = value.scatter(failed.arg_true(), again)
                retry = value.is_null() & ~missing
        typed.append((value, missing, retry))
    return typed


def _parse(values: pl.Series, spec: FieldSpec) -> pl.Series:
    """The typed values of a non-text field."""
    [(value, _, _)] = _typed(values.to_frame("s"), [("s", spec)])
    return value


def parse_field(raw: pl.Series, spec: FieldSpec) -> tuple[pl.Series, pl.Series]:
    """The typed values of field ``spec`` and whether each is missing (null, blank or only
    whitespace), from the strings ``raw`` it arrived with."""
    [typed] = parse_fields(raw.to_frame(), [(raw.name, spec)])
    return typed


def parse_fields(
    frame: pl.DataFrame, fields: list[tuple[str, FieldSpec]]
) -> list[tuple[pl.Series, pl.Series]]:
    """``parse_field`` for each ``(column, spec)`` of ``frame``, in one query when no value
    needs a second look.

    Text is stripped. Numbers and dates are parsed from the raw strings directly and only
    the values that fail are stripped and tried again: padding is rare, and stripping a
    whole column costs as much as parsing it.
    """
    out = []
    for (column, spec), (value, missing, retry) in zip(fields, _typed(frame, fields), strict=True):
        raw = frame.get_column(column)
        if retry is not None and retry.any():
            rows = retry.arg_true()
            stripped = raw.gather(rows).str.strip_chars()
            value = value.scatter(rows, _parse(stripped, spec))
            blank = stripped == ""
            if blank.any():
                missing = missing.scatter(rows.filter(blank), True)
        out.append((value.alias(raw.name), missing.alias(raw.name)))
    return out


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
