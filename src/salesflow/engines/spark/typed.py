"""Typed values from the strings a record arrived with, on Spark, as the Polars engine types them.

The Polars engine (``validation.parse``) is the reference. Spark 4 runs in ANSI mode, so every
conversion is a ``try_`` one (null where it fails), and Spark's own leniency is fenced off
where it accepts more than Polars: Java reads ``1.5d``, ``0x1p3`` and ``2023`` (a year alone
as a timestamp), Polars does not. ``tests/unit/test_spark_typed.py`` runs both on a corpus of
awkward strings.
"""

from __future__ import annotations

import re

import polars as pl
from pyspark.sql import Column
from pyspark.sql import functions as F

from salesflow.datasets.spec import FieldSpec

_SPACE = r"(?U)^\s+|\s+$"
_INTEGER = r"^[+-]?[0-9]+$"
_JAVA_ONLY_FLOAT = r"(?i)^[+-]?0x|[0-9.][df]$"

_DATE = r"(\d{4})-(\d{1,2})-(\d{1,2})"
_TIME = r"(\d{1,2}):(\d{1,2})"
_SECONDS = r":(\d{1,2})(?:\.(\d+))?"
_ISO_UTC = rf"^{_DATE}(?:[Tt ]+{_TIME}(?:{_SECONDS})?)?(?:\s*(?:[Zz]|[Uu][Tt][Cc]))?$"
"""ISO date-times without an offset, as Polars reads them (seconds, fraction and a `` UTC``/``Z``
suffix optional; one- or two-digit month, day, hour, minute and second)."""
_ISO_OFFSET = rf"^{_DATE}[Tt ]+{_TIME}{_SECONDS}\s*([+-]\d{{2}}):?(\d{{2}})$"
"""ISO date-times with a numeric offset; Polars needs the seconds then."""

_STRPTIME = {"%Y": "y", "%m": "M", "%d": "d", "%H": "H", "%M": "m", "%S": "s"}


def strip(value: Column) -> Column:
    """Leading and trailing Unicode whitespace removed (Polars' ``strip_chars``)."""
    return F.regexp_replace(value, _SPACE, "")


def spark_pattern(fmt: str) -> str:
    """A strptime format (``%m/%d/%Y %H:%M``) as a Spark datetime pattern (``M/d/y H:m``).

    Single letters parse one or more digits, as strptime does. Raises ``NotImplementedError``
    for a directive with no translation, so a new spec format fails at once, not silently.
    """
    out = []
    for token in re.split(r"(%.)", fmt):
        if token.startswith("%"):
            if token not in _STRPTIME:
                raise NotImplementedError(f"strptime directive {token} has no Spark pattern")
            out.append(_STRPTIME[token])
        elif token:
            if re.search(r"[A-Za-z']", token):
                raise NotImplementedError(f"literal {token!r} in a date format")
            out.append(token)
    return "".join(out)


def _iso(text: Column) -> Column:
    """ISO date-times: the shapes Polars reads are fenced in by the two patterns, then put in
    the one form Spark's cast reads (space separator, no `` UTC``/``Z``, fraction cut to
    microseconds, as Polars cuts it)."""
    canonical = F.regexp_replace(text, r"(?i)\s*(?:utc|z)$", "")
    canonical = F.regexp_replace(canonical, r"^(\d{4}-\d{1,2}-\d{1,2})[Tt ]+", "$1 ")
    canonical = F.regexp_replace(canonical, r"(\.\d{6})\d+", "$1")
    return F.when(text.rlike(_ISO_UTC) | text.rlike(_ISO_OFFSET), canonical.try_cast("timestamp"))


def _formatted(text: Column, formats: tuple[str, ...]) -> Column:
    single = F.regexp_replace(text, r"\s+", " ")
    return F.coalesce(*[F.try_to_timestamp(single, F.lit(spark_pattern(f))) for f in formats])


def parse(raw: Column, spec: FieldSpec) -> tuple[Column, Column]:
    """The typed value of field ``spec`` and whether it is missing (null, blank or only
    whitespace), from the string column ``raw``: ``validation.parse.parse_field`` on Spark."""
    text = strip(raw)
    if spec.dtype == pl.Utf8:
        value = F.when(text != "", text)
        return value, value.isNull()
    missing = raw.isNull() | (text == "")
    dtype = spec.dtype
    if isinstance(dtype, pl.Datetime):
        value = _formatted(text, spec.formats) if spec.formats else _iso(text)
    elif dtype == pl.Float64:
        number = F.when(~text.rlike(_JAVA_ONLY_FLOAT), text.try_cast("double"))
        value = F.when(~F.isnan(number) & (F.abs(number) != float("inf")), number)
    elif dtype == pl.Int64:
        value = F.when(text.rlike(_INTEGER), text.try_cast("bigint"))
    else:
        raise NotImplementedError(f"no Spark parser for {dtype}")
    return value, missing
