"""Compile rule expressions (``rules.expr``) to PySpark columns.

Imported only by the Spark engine (the ``spark`` extra). Where Spark and Polars differ, this
module makes Spark behave as Polars does, so both engines give the same rows, reasons and
messages:

- regular expressions run in Unicode mode (``(?U)``), as Rust's do by default;
- ``text`` renders numbers as Polars prints them (``10000000.0``, ``1e-7``, ``1e+16``; Java
  would print ``1.0E7``) and date-times as ISO with ``+00:00``;
- ``sum`` of no rows is 0, as in Polars (SQL says null).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import singledispatch
from typing import Any

import polars as pl
from pyspark.sql import Column
from pyspark.sql import functions as F

from salesflow.rules.expr import (
    Binary,
    Cast,
    Col,
    Concat,
    Count,
    Expr,
    FillNull,
    IsIn,
    IsNull,
    Lit,
    Matches,
    Not,
    NUnique,
    StartsWith,
    Sum,
    Text,
    When,
)
from salesflow.rules.to_polars import MISSING

Types = Mapping[str, pl.DataType]

_BINARY: dict[str, Callable[[Column, Column], Column]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "&": lambda a, b: a & b,
    "|": lambda a, b: a | b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
}


def spark_type(dtype: pl.DataType) -> str:
    """The Spark SQL type of a Polars type the specs use."""
    if isinstance(dtype, pl.Datetime):
        return "timestamp"
    names = {pl.Int64: "bigint", pl.Float64: "double", pl.Utf8: "string", pl.Boolean: "boolean"}
    for polars_type, name in names.items():
        if dtype == polars_type:
            return name
    if dtype == pl.Date:
        return "date"
    raise NotImplementedError(f"no Spark type for {dtype}")


@singledispatch
def to_spark(expr: Expr, types: Types) -> Column:
    """The Spark column of ``expr``; ``types`` gives the Polars type of each typed column
    (``text`` renders by type)."""
    raise NotImplementedError(f"no Spark form for {type(expr).__name__}")


@to_spark.register
def _col(expr: Col, types: Types) -> Column:
    return F.col(f"`{expr.name}`")


@to_spark.register
def _lit(expr: Lit, types: Types) -> Column:
    if expr.value is None:
        return F.lit(None).cast("string")
    return F.lit(expr.value)


@to_spark.register
def _binary(expr: Binary, types: Types) -> Column:
    return _BINARY[expr.op](to_spark(expr.left, types), to_spark(expr.right, types))


@to_spark.register
def _not(expr: Not, types: Types) -> Column:
    return ~to_spark(expr.operand, types)


@to_spark.register
def _is_null(expr: IsNull, types: Types) -> Column:
    return to_spark(expr.operand, types).isNull()


@to_spark.register
def _fill_null(expr: FillNull, types: Types) -> Column:
    return F.coalesce(to_spark(expr.operand, types), F.lit(expr.value.value))


@to_spark.register
def _cast(expr: Cast, types: Types) -> Column:
    return to_spark(expr.operand, types).cast(spark_type(expr.dtype))


@to_spark.register
def _starts_with(expr: StartsWith, types: Types) -> Column:
    return to_spark(expr.operand, types).startswith(expr.prefix)


@to_spark.register
def _matches(expr: Matches, types: Types) -> Column:
    return to_spark(expr.operand, types).rlike(f"(?U){expr.pattern}")


@to_spark.register
def _is_in(expr: IsIn, types: Types) -> Column:
    values: list[Any] = list(expr.values)
    return to_spark(expr.operand, types).isin(values)


@to_spark.register
def _concat(expr: Concat, types: Types) -> Column:
    return F.concat(*[to_spark(p, types) for p in expr.parts])


@to_spark.register
def _text(expr: Text, types: Types) -> Column:
    return F.coalesce(render(F.col(f"`{expr.name}`"), types[expr.name]), F.lit(MISSING))


@to_spark.register
def _when(expr: When, types: Types) -> Column:
    return F.when(to_spark(expr.condition, types), to_spark(expr.then, types)).otherwise(
        to_spark(expr.otherwise, types)
    )


@to_spark.register
def _count(expr: Count, types: Types) -> Column:
    if expr.where is None:
        return F.count(F.lit(1))
    return F.count(F.when(to_spark(expr.where, types), F.lit(1)))


@to_spark.register
def _sum(expr: Sum, types: Types) -> Column:
    operand = to_spark(expr.operand, types)
    if expr.where is not None:
        operand = F.when(to_spark(expr.where, types), operand)
    return F.coalesce(F.sum(operand), F.lit(0))


@to_spark.register
def _n_unique(expr: NUnique, types: Types) -> Column:
    return F.count_distinct(to_spark(expr.operand, types))


def render(value: Column, dtype: pl.DataType) -> Column:
    """``value`` as the text Polars' ``cast(pl.Utf8)`` gives for ``dtype`` (null stays null)."""
    if isinstance(dtype, pl.Datetime):
        return F.date_format(value, "yyyy-MM-dd HH:mm:ss.SSSSSSxxx")
    if dtype == pl.Float64:
        return float_text(value)
    return value.cast("string")


_SCIENTIFIC = r"^(-?)(\d)\.(\d+)E(-?\d+)$"


def float_text(value: Column) -> Column:
    """A double as Polars prints it: plain from 1e-5 up to 1e16, else ``1.5e+20``/``1e-7``.

    Java (Spark's cast) prints plain only from 1e-3 up to 1e7 and writes ``1.0E7`` beyond;
    both print the shortest digits that round-trip, so only the notation is rewritten.
    """
    java = value.cast("string")
    sign = F.regexp_extract(java, _SCIENTIFIC, 1)
    lead = F.regexp_extract(java, _SCIENTIFIC, 2)
    digits = F.regexp_replace(F.concat(lead, F.regexp_extract(java, _SCIENTIFIC, 3)), "0+$", "")
    exp = F.regexp_extract(java, _SCIENTIFIC, 4).try_cast("int")
    width = F.length(digits)
    whole = F.when(width <= exp + 1, F.rpad(digits, exp + 1, "0")).otherwise(
        F.substring(digits, F.lit(1), exp + 1)
    )
    fraction = F.when(width > exp + 1, F.substring(digits, exp + 2, width)).otherwise(F.lit("0"))
    big = F.concat(sign, whole, F.lit("."), fraction)
    small = F.concat(sign, F.lit("0."), F.repeat(F.lit("0"), -exp - 1), digits)
    mantissa = F.when(width > 1, F.concat(lead, F.lit("."), F.substring(digits, F.lit(2), width)))
    scientific = F.concat(
        sign,
        F.coalesce(mantissa, lead),
        F.lit("e"),
        F.when(exp >= 0, F.lit("+")).otherwise(F.lit("-")),
        F.abs(exp).cast("string"),
    )
    rewritten = F.when((exp >= 16) | (exp < -5), scientific).when(exp >= 0, big).otherwise(small)
    return F.when(exp.isNotNull(), rewritten).otherwise(
        F.when(java == "Infinity", F.lit("inf"))
        .when(java == "-Infinity", F.lit("-inf"))
        .otherwise(java)
    )
