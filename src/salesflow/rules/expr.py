"""A small expression language for rules, amounts and KPIs, compiled to Polars or Spark.

Specs say *what* a rule computes with these nodes; ``rules.to_polars`` and ``rules.to_spark``
say *how* on each engine. One definition, two engines: nothing is written twice, so the
engines cannot drift. The language is deliberately small (columns, literals, comparisons,
Boolean logic, arithmetic, a few string tests, ``when``, ``concat``, ``text`` and three
aggregations); a rule that needs more adds a node here and a case to each compiler, and the
parity tests run it on both.

>>> broken = (col("Quantity") < 0) & (col("UnitPrice") > 0)
>>> message = concat("negative Quantity ", text("Quantity"))
>>> broken
(Quantity < 0) & (UnitPrice > 0)

Null semantics are SQL's (and Polars'): comparisons with null are null, ``&``/``|`` are
three-valued, ``concat`` is null if a part is null. A rule's ``broken`` that is null counts as
not broken.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Union

import polars as pl

Scalar = Union[str, int, float, bool, datetime, date, None]  # noqa: UP007 (runtime alias)


class Expr:
    """Base of every node; operators build new nodes (``==`` too, as in Polars)."""

    __slots__ = ()

    def _bin(self, op: str, other: object) -> Binary:
        return Binary(op, self, wrap(other))

    def __lt__(self, other: object) -> Binary:
        return self._bin("<", other)

    def __le__(self, other: object) -> Binary:
        return self._bin("<=", other)

    def __gt__(self, other: object) -> Binary:
        return self._bin(">", other)

    def __ge__(self, other: object) -> Binary:
        return self._bin(">=", other)

    def __eq__(self, other: object) -> Binary:  # type: ignore[override]
        return self._bin("==", other)

    def __ne__(self, other: object) -> Binary:  # type: ignore[override]
        return self._bin("!=", other)

    def __and__(self, other: object) -> Binary:
        return self._bin("&", other)

    def __or__(self, other: object) -> Binary:
        return self._bin("|", other)

    def __mul__(self, other: object) -> Binary:
        return self._bin("*", other)

    def __truediv__(self, other: object) -> Binary:
        return self._bin("/", other)

    def __invert__(self) -> Not:
        return Not(self)

    __hash__ = object.__hash__

    def is_null(self) -> IsNull:
        return IsNull(self)

    def fill_null(self, value: Scalar) -> FillNull:
        return FillNull(self, Lit(value))

    def cast(self, dtype: pl.DataType) -> Cast:
        """Convert to ``dtype`` (Int64, Float64, Utf8 or Boolean)."""
        return Cast(self, dtype)

    def starts_with(self, prefix: str) -> StartsWith:
        return StartsWith(self, prefix)

    def matches(self, pattern: str) -> Matches:
        """Whether the text matches ``pattern`` somewhere (anchor it with ``^...$``).

        Write patterns both engines read alike: the common subset of Rust's and Java's
        regex syntax (classes, quantifiers, anchors; no look-around, no named groups)."""
        return Matches(self, pattern)

    def is_in(self, values: Sequence[Scalar]) -> IsIn:
        return IsIn(self, tuple(values))


@dataclass(frozen=True, eq=False, repr=False)
class Col(Expr):
    name: str

    def __repr__(self) -> str:
        return self.name


@dataclass(frozen=True, eq=False, repr=False)
class Lit(Expr):
    value: Scalar

    def __repr__(self) -> str:
        return repr(self.value)


@dataclass(frozen=True, eq=False, repr=False)
class Binary(Expr):
    op: str
    left: Expr
    right: Expr

    def __repr__(self) -> str:
        def side(e: Expr) -> str:
            return f"({e!r})" if isinstance(e, Binary) else repr(e)

        return f"{side(self.left)} {self.op} {side(self.right)}"


@dataclass(frozen=True, eq=False)
class Not(Expr):
    operand: Expr


@dataclass(frozen=True, eq=False)
class IsNull(Expr):
    operand: Expr


@dataclass(frozen=True, eq=False)
class FillNull(Expr):
    operand: Expr
    value: Lit


@dataclass(frozen=True, eq=False)
class Cast(Expr):
    operand: Expr
    dtype: pl.DataType


@dataclass(frozen=True, eq=False)
class StartsWith(Expr):
    operand: Expr
    prefix: str


@dataclass(frozen=True, eq=False)
class Matches(Expr):
    operand: Expr
    pattern: str


@dataclass(frozen=True, eq=False)
class IsIn(Expr):
    operand: Expr
    values: tuple[Scalar, ...]


@dataclass(frozen=True, eq=False)
class Concat(Expr):
    """Text parts joined; null if any part is null."""

    parts: tuple[Expr, ...]


@dataclass(frozen=True, eq=False)
class Text(Expr):
    """The typed column ``name`` rendered for a message (``<missing>`` when null), the same
    on every engine: numbers as Polars prints them, date-times as ISO with ``+00:00``."""

    name: str


@dataclass(frozen=True, eq=False)
class When(Expr):
    condition: Expr
    then: Expr
    otherwise: Expr


@dataclass(frozen=True, eq=False)
class Count(Expr):
    """Aggregation: rows in the group (only those where ``where`` holds)."""

    where: Expr | None = None


@dataclass(frozen=True, eq=False)
class Sum(Expr):
    """Aggregation: sum of ``operand`` over the rows where ``where`` holds (0 if none)."""

    operand: Expr
    where: Expr | None = None


@dataclass(frozen=True, eq=False)
class NUnique(Expr):
    """Aggregation: distinct values of ``operand`` (the column must have no nulls)."""

    operand: Expr


def wrap(value: object) -> Expr:
    """``value`` as a node: nodes stay, Python scalars become literals."""
    if isinstance(value, Expr):
        return value
    if value is None or isinstance(value, str | int | float | bool | datetime | date):
        return Lit(value)
    raise TypeError(f"cannot use {type(value).__name__} in a rule expression")


def col(name: str) -> Col:
    """The column ``name`` of the frame the rule runs over."""
    return Col(name)


def lit(value: Scalar) -> Lit:
    return Lit(value)


def concat(*parts: Expr | str) -> Concat:
    """Text parts (strings are literals) joined without separator."""
    return Concat(tuple(wrap(p) for p in parts))


def text(name: str) -> Text:
    """The typed column ``name`` as text for messages (``<missing>`` when null)."""
    return Text(name)


class _Then:
    def __init__(self, condition: Expr, then: Expr) -> None:
        self._condition, self._then = condition, then

    def otherwise(self, value: object) -> When:
        return When(self._condition, self._then, wrap(value))


class _When:
    def __init__(self, condition: Expr) -> None:
        self._condition = condition

    def then(self, value: object) -> _Then:
        return _Then(self._condition, wrap(value))


def when(condition: Expr) -> _When:
    """``when(c).then(a).otherwise(b)``: ``a`` where ``c`` holds, else ``b`` (null: ``b``)."""
    return _When(condition)


def count(where: Expr | None = None) -> Count:
    """Rows in the group (only where ``where`` holds)."""
    return Count(where)


def total(operand: Expr, where: Expr | None = None) -> Sum:
    """Sum of ``operand`` (only where ``where`` holds)."""
    return Sum(operand, where)


def n_unique(operand: Expr) -> NUnique:
    return NUnique(operand)
