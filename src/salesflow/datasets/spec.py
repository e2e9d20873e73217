"""The declarative shape of a dataset: its fields, key, formats and rules.

A :class:`DatasetSpec` says *what* a valid record looks like; rules, amounts and derived flags
are written in the engine-neutral language of ``salesflow.rules``, which compiles them to
Polars (``salesflow.validation``) or Spark (``salesflow.engines.spark``). Generic rules come
from the fields (presence, type, future dates, e-mail shape, allowed values, key uniqueness,
references); rules that only make sense for one dataset are listed as :class:`Check` objects.

Field names are matched after :func:`normalize` (lower case, letters and digits only), so a
CSV header ``OrderId``, ``order_id`` or ``ORDER-ID`` and a JSON key ``orderId`` all name the
same field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from salesflow.rules.expr import Expr, col, concat, text

DATETIME = pl.Datetime("us", "UTC")
"""Every timestamp is parsed to UTC with microsecond precision."""

_NOT_ALNUM = re.compile(r"[^a-z0-9.]")


def normalize(name: str) -> str:
    """The spelling-insensitive form of a field name or dotted JSON path.

    >>> normalize("Order-Info.OrderId"), normalize("order_info.order_id")
    ('orderinfo.orderid', 'orderinfo.orderid')
    """
    return _NOT_ALNUM.sub("", name.lower().replace("\ufeff", ""))


@dataclass(frozen=True)
class FieldSpec:
    """One column of a dataset.

    ``required``: the value must be present and non-blank. ``header``: a CSV file must carry
    this column (an absent optional column reads as all-missing). ``aliases``: other
    spellings, as dotted paths for nested JSON (``"order-info.OrderId"``); the field's own
    name is always an alias. ``group``: the record-level presence group the field belongs to
    (seeds 001/002's ``contact-info`` / ``order-info``). ``formats``: strptime formats tried
    in order for dates (ISO 8601 with an optional `` UTC``/``Z``/offset suffix when empty).
    ``email``: the value must look like an e-mail address. ``allowed``: the only values
    accepted (case-sensitive). ``not_future``: a date may not be later than now.
    """

    name: str
    dtype: pl.DataType
    required: bool = False
    header: bool = True
    aliases: tuple[str, ...] = ()
    group: str | None = None
    formats: tuple[str, ...] = ()
    email: bool = False
    allowed: tuple[str, ...] = ()
    not_future: bool = True
    description: str = ""

    @property
    def spellings(self) -> frozenset[str]:
        """Every normalized name or dotted path that denotes this field."""
        return frozenset(normalize(a) for a in (self.name, *self.aliases))

    @property
    def is_date(self) -> bool:
        return isinstance(self.dtype, pl.Datetime)


@dataclass(frozen=True, eq=False)
class Check:
    """A dataset-specific rule: ``broken`` is true on the rows that break it.

    Both are ``salesflow.rules`` expressions over the typed chunk (columns named after the
    fields). A null in ``broken`` counts as not broken, so a check never fires on a value that
    already failed its type rule. ``message`` is text, evaluated only on rejected rows.
    """

    rule: str
    field: str | None
    broken: Expr
    message: Expr


@dataclass(frozen=True)
class Group:
    """A block of fields that must not be entirely missing (seeds 001/002)."""

    name: str
    rule: str
    label: str


@dataclass(frozen=True, eq=False)
class DatasetSpec:
    """Everything salesflow knows about one dataset, in one place.

    ``key``: columns forming the record key (joined with ``|``). ``line_key``: if set, the key
    is ``<that column>|<n>`` where n counts the records with that value in file order (Online
    Retail has no line id: an invoice line is its position within the invoice).
    ``day_column``: the timestamp whose UTC date is the business day (None: the processing
    day). ``amount``: the sale amount expression (None: the dataset has no amount).
    ``derived``: extra columns added to valid rows (e.g. ``is_cancellation``).
    ``references``: column -> dataset whose keys it must match.
    """

    name: str
    fields: tuple[FieldSpec, ...]
    key: tuple[str, ...]
    day_column: str | None
    formats: tuple[str, ...]
    description: str
    checks: tuple[Check, ...] = ()
    groups: tuple[Group, ...] = ()
    references: Mapping[str, str] = field(default_factory=dict)
    amount: Expr | None = None
    derived: Mapping[str, Expr] = field(default_factory=dict)
    line_key: str | None = None
    json_containers: tuple[str, ...] = ()
    json_markers: tuple[str, ...] = ()

    @property
    def has_amount(self) -> bool:
        """Whether a valid frame carries an ``amount`` Float64 column."""
        return self.amount is not None

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    def get_field(self, name: str) -> FieldSpec:
        """The field called ``name`` (KeyError if there is none)."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def required_headers(self) -> list[str]:
        return [f.name for f in self.fields if f.header]

    def valid_schema(self) -> dict[str, pl.DataType]:
        """The exact schema of ``Chunk.valid`` for this dataset, in column order."""
        schema: dict[str, pl.DataType] = {f.name: f.dtype for f in self.fields}
        schema["_record"] = pl.Int64()
        schema["_key"] = pl.Utf8()
        schema["_day"] = pl.Date()
        if self.has_amount:
            schema["amount"] = pl.Float64()
        for name in self.derived:
            schema[name] = pl.Boolean()
        schema["_extra"] = pl.Utf8()
        return schema

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary (fields, key, formats) for docs and ``--json`` output."""
        return {
            "name": self.name,
            "description": self.description,
            "formats": list(self.formats),
            "key": list(self.key) if not self.line_key else [self.line_key, "<line in group>"],
            "day_column": self.day_column,
            "has_amount": self.has_amount,
            "references": dict(self.references),
            "fields": [
                {
                    "name": f.name,
                    "type": str(f.dtype),
                    "required": f.required,
                    "header": f.header,
                    "description": f.description,
                }
                for f in self.fields
            ],
        }


def positive(name: str, rule: str = "range.positive") -> Check:
    """``name`` must be greater than zero."""
    return Check(
        rule=rule,
        field=name,
        broken=col(name) <= 0,
        message=concat(f"{name} must be > 0, got ", text(name)),
    )


__all__ = [
    "DATETIME",
    "Check",
    "DatasetSpec",
    "FieldSpec",
    "Group",
    "normalize",
    "positive",
    "text",
]
