"""Each rule of a spec as a pair of rule expressions: where it is broken, and what to say.

Both engines take their masks from here (``salesflow.rules`` compiles them to Polars or Spark),
so the generic rules, like the spec's own checks, are written once.

Masks read the working frame the engine builds: typed columns named after the fields,
``_s:<field>`` (the string as it arrived), ``_miss:<field>`` (missing or blank),
``_g:<group>`` (a presence group has a value), ``_key``/``_dup`` and ``_ref:<column>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from salesflow.datasets.spec import DatasetSpec, FieldSpec
from salesflow.rules.expr import Expr, col, concat, lit, text
from salesflow.validation.parse import type_rule

EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s.]+$"


def src(name: str) -> str:
    """Column holding the string ``name`` arrived with."""
    return f"_s:{name}"


def miss(name: str) -> str:
    """Column flagging the rows where ``name`` is missing (null or blank)."""
    return f"_miss:{name}"


def group(name: str) -> str:
    """Column flagging the rows where presence group ``name`` has at least one value."""
    return f"_g:{name}"


def dangling(column: str) -> str:
    """Column flagging the rows whose ``column`` is not a known key of its reference."""
    return f"_ref:{column}"


@dataclass(frozen=True)
class Mask:
    """One rule on one field: ``broken`` is true where it fails (null counts as holding)."""

    rule: str
    field: str | None
    broken: Expr
    message: Expr


def _quoted(name: str) -> Expr:
    return concat("'", col(src(name)).fill_null(""), "'")


def _says(name: str, value: Expr, what: str) -> Expr:
    return concat(f"{name} ", value, f" {what}")


def field_masks(f: FieldSpec, now: datetime) -> list[Mask]:
    """The generic rules a field's declaration implies: presence, type, future dates,
    e-mail shape and allowed values."""
    missing = col(miss(f.name))
    masks: list[Mask] = []
    if f.required:
        broken: Expr = missing if f.group is None else missing & col(group(f.group))
        masks.append(Mask("presence.required", f.name, broken, lit(f"{f.name} is missing")))
    rule = type_rule(f)
    if rule is not None:
        kind = {"type.date": "a date/time", "type.number": "a number"}.get(rule, "an integer")
        broken = ~missing & col(f.name).is_null()
        masks.append(Mask(rule, f.name, broken, _says(f.name, _quoted(f.name), f"is not {kind}")))
    if f.is_date and f.not_future:
        after = f"is after now ({now:%Y-%m-%d %H:%M:%S} UTC)"
        masks.append(
            Mask(
                "date.future",
                f.name,
                col(f.name) > lit(now),
                _says(f.name, text(f.name), after),
            )
        )
    if f.email:
        broken = ~missing & ~col(f.name).matches(EMAIL)
        masks.append(
            Mask("email.format", f.name, broken, _says(f.name, _quoted(f.name), "is not an e-mail"))
        )
    if f.allowed:
        broken = ~missing & ~col(f.name).is_in(f.allowed)
        what = f"is not one of {', '.join(f.allowed)}"
        masks.append(Mask(f"enum.{f.name}", f.name, broken, _says(f.name, _quoted(f.name), what)))
    return masks


def spec_masks(spec: DatasetSpec, now: datetime) -> list[Mask]:
    """Every rule of ``spec`` except the referential ones, in reporting order."""
    masks = [
        Mask(g.rule, None, ~col(group(g.name)), lit(f"{g.label} is missing or empty"))
        for g in spec.groups
    ]
    for f in spec.fields:
        masks.extend(field_masks(f, now))
    masks.extend(Mask(c.rule, c.field, c.broken, c.message) for c in spec.checks)
    appeared = concat("key '", col("_key"), "' appeared earlier")
    masks.append(Mask("unique.key", ",".join(spec.key), col("_dup"), appeared))
    return masks


def reference_mask(column: str, dataset: str) -> Mask:
    """``ref.<column>``: the value is not a key of ``dataset``."""
    message = _says(column, text(column), f"is not a known {dataset} key")
    return Mask(f"ref.{column}", column, col(dangling(column)), message)
