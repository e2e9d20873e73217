"""The floor: one plain Polars job with the same rules and KPIs, and no persistence.

Each file is read whole (every column as a string, so a bad value is a rule, not a read
error), validated with one expression per rule, and the KPIs computed from the valid rows.
Nothing is stored, nothing is chunked: this is how fast the same work can go on this
machine when memory is no concern. It imports nothing from salesflow, so agreeing with
salesflow is evidence, not an echo.

Dates follow salesflow's grammar (ISO 8601 with ``T`` or a space, optional fraction, an
optional `` UTC``/``Z``/offset suffix, or a bare date). The dominant form,
``YYYY-MM-DD HH:MM:SS UTC``, is parsed with one fixed format; only the values it misses
go through the full grammar.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

STATUSES = ("Processing", "Shipped", "Complete", "Cancelled", "Returned")
NOT_REVENUE = ("Cancelled", "Returned")
UNKNOWN = "(unknown)"
OVERFLOW = "_overflow"

# name -> (type, required, header must carry it)
Schema = dict[str, tuple[str, bool, bool]]
PRODUCTS: Schema = {
    "id": ("int", True, True),
    "cost": ("float", True, True),
    "category": ("text", True, True),
    "name": ("text", False, True),
    "brand": ("text", False, True),
    "retail_price": ("float", True, True),
    "department": ("text", True, True),
    "sku": ("text", True, True),
    "distribution_center_id": ("int", False, False),
}
ORDERS: Schema = {
    "order_id": ("int", True, True),
    "user_id": ("int", True, True),
    "status": ("status", True, True),
    "gender": ("text", False, False),
    "created_at": ("date", True, True),
    "returned_at": ("date", False, False),
    "shipped_at": ("date", False, False),
    "delivered_at": ("date", False, False),
    "num_of_item": ("int", True, True),
}
ORDER_ITEMS: Schema = {
    "id": ("int", True, True),
    "order_id": ("int", True, True),
    "user_id": ("int", True, True),
    "product_id": ("int", True, True),
    "inventory_item_id": ("int", False, False),
    "status": ("status", True, True),
    "created_at": ("date", True, True),
    "shipped_at": ("date", False, False),
    "delivered_at": ("date", False, False),
    "returned_at": ("date", False, False),
    "sale_price": ("float", True, True),
}
KEYS = {"products": "id", "orders": "order_id", "order_items": "id"}
TYPE_RULES = {"int": "type.integer", "float": "type.number", "date": "type.date"}

FAST_FORMAT = "%Y-%m-%d %H:%M:%S UTC"
_NAIVE = ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M")


@dataclass
class FloorFile:
    """One file validated: counts, per-rule counts and the valid rows."""

    rows_in: int
    valid: int
    rejected: int
    rules: dict[str, int]
    records: pl.DataFrame = field(repr=False)


@dataclass
class FloorResult:
    files: dict[str, FloorFile]
    order_kpis: pl.DataFrame
    category_kpis: pl.DataFrame


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def read_strings(path: Path, schema: Schema) -> pl.DataFrame:
    """The file as the strings it holds, named after the schema (absent columns all null),
    without records that are entirely blank, and ``_overflow`` true where a record has more
    fields than the header. Values are not stripped here: see :func:`typed_columns`."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        header = [c.strip() for c in next(csv.reader(fh), [])]
    names = [_norm(h) for h in header]
    missing = [c for c, (_, _, must) in schema.items() if must and _norm(c) not in names]
    if missing:
        raise ValueError(f"{path}: header lacks {missing}")
    cols = [f"c{i}" for i in range(len(header))]
    frame = pl.read_csv(
        path,
        has_header=False,
        skip_rows=1,
        schema={c: pl.Utf8 for c in cols} | {OVERFLOW: pl.Utf8},
        truncate_ragged_lines=True,
        missing_columns="insert",
        raise_if_empty=False,
    )
    frame = _drop_blank_records(frame, cols)
    picked = [
        pl.col(cols[names.index(_norm(n))]).alias(n)
        if _norm(n) in names
        else pl.lit(None, dtype=pl.Utf8).alias(n)
        for n in schema
    ]
    overflow = pl.col(OVERFLOW).is_not_null() & (pl.col(OVERFLOW) != "")
    return frame.select(*picked, overflow.alias(OVERFLOW))


def _drop_blank_records(frame: pl.DataFrame, cols: list[str]) -> pl.DataFrame:
    """Drop records with no value at all (every field empty or absent), as salesflow does;
    a field of spaces is a value. Only records whose first field is empty can be blank, so
    only those few are checked in full."""
    first = pl.col(cols[0])
    maybe = frame.select(first.is_null() | (first == "")).to_series()
    if not maybe.any():
        return frame
    rows = maybe.arg_true()
    blank = pl.all_horizontal([pl.col(c) == "" for c in cols])
    # an absent field compares as null: a record of empty and absent fields is blank too
    kept = frame[rows].select((~blank).fill_null(False)).to_series()
    keep = pl.Series(np.ones(frame.height, dtype=bool)).scatter(rows.filter(~kept), False)
    return frame.filter(keep)


def _full_grammar(s: pl.Series) -> pl.Series:
    norm = s.str.replace(r"^(\d{4}-\d{2}-\d{2})[Tt ]", "${1} ").str.replace(
        r"(?i)\s*(?:UTC|Z)$", ""
    )
    frame = pl.DataFrame({"s": norm})
    value = pl.col("s")
    naive = pl.coalesce(
        [value.str.to_datetime(f, strict=False, time_unit="us") for f in _NAIVE]
        + [value.str.to_datetime("%Y-%m-%d", strict=False, time_unit="us")]
    ).dt.replace_time_zone("UTC")
    aware = value.str.to_datetime(
        "%Y-%m-%d %H:%M:%S%.f%z", strict=False, time_unit="us", time_zone="UTC"
    )
    offset = value.str.contains(r"[+-]\d{2}:?\d{2}$")
    return frame.select(pl.when(offset).then(aware).otherwise(naive)).to_series()


def parse_datetime(s: pl.Series) -> pl.Series:
    """UTC datetimes: the fixed format first, the full grammar for what it missed."""
    fast = s.str.to_datetime(FAST_FORMAT, strict=False, time_unit="us", time_zone="UTC")
    missed = (s.is_not_null() & fast.is_null()).arg_true()
    if missed.len() == 0:
        return fast
    return fast.scatter(missed, _full_grammar(s.gather(missed)))


def _parse(kind: str, s: pl.Series) -> pl.Series:
    if kind == "int":
        return s.cast(pl.Int64, strict=False)
    if kind == "float":
        value = s.cast(pl.Float64, strict=False)
        return value.to_frame().select(pl.when(value.is_finite()).then(value)).to_series()
    return parse_datetime(s)


def typed_columns(frame: pl.DataFrame, schema: Schema) -> pl.DataFrame:
    """``t:<name>`` (typed value) and ``m:<name>`` (missing: null, empty or whitespace).

    Text is stripped. Numbers and dates are parsed from the raw strings; only values that
    fail are stripped and parsed again (padding is rare; stripping every value of a column
    costs as much as parsing it)."""
    out: list[pl.Series] = []
    for name, (kind, _, _) in schema.items():
        raw = frame.get_column(name)
        if kind in ("text", "status"):
            text = raw.str.strip_chars()
            text = text.to_frame().select(pl.when(text != "").then(text)).to_series()
            out += [text.alias(f"t:{name}"), text.is_null().alias(f"m:{name}")]
            continue
        value = _parse(kind, raw)
        missing = (raw.is_null() | (raw == "")).fill_null(True)
        retry = (value.is_null() & ~missing).arg_true()
        if retry.len():
            stripped = raw.gather(retry).str.strip_chars()
            value = value.scatter(retry, _parse(kind, stripped))
            missing = missing.scatter(retry.filter(stripped == ""), True)
        out += [value.alias(f"t:{name}"), missing.alias(f"m:{name}")]
    return frame.with_columns(out)


def _rules(
    dataset: str, schema: Schema, now: datetime, references: dict[str, pl.Series]
) -> list[tuple[str, pl.Expr]]:
    rules: list[tuple[str, pl.Expr]] = []
    for name, (kind, required, _) in schema.items():
        missing, typed = pl.col(f"m:{name}"), pl.col(f"t:{name}")
        if required:
            rules.append(("presence.required", missing))
        if kind in TYPE_RULES:
            rules.append((TYPE_RULES[kind], ~missing & typed.is_null()))
        if kind == "date":
            rules.append(("date.future", typed > pl.lit(now)))
        if kind == "status":
            rules.append(("enum.status", ~missing & ~typed.is_in(STATUSES)))
    t = {name: pl.col(f"t:{name}") for name in schema}
    if dataset == "products":
        rules += [
            ("range.positive", t["cost"] <= 0),
            ("range.positive", t["retail_price"] <= 0),
            ("business.cost_le_retail", t["cost"] > t["retail_price"]),
        ]
    elif dataset == "orders":
        rules.append(("business.num_of_item", t["num_of_item"] < 1))
    else:
        rules.append(("business.sale_price", t["sale_price"] <= 0))
    key = t[KEYS[dataset]]
    rules.append(("unique.key", key.is_not_null() & ~key.is_first_distinct()))
    for column, known in references.items():
        rules.append((f"ref.{column}", ~t[column].is_in(known.implode())))
    return rules


def validate(
    path: Path,
    dataset: str,
    schema: Schema,
    now: datetime,
    references: dict[str, pl.Series] | None = None,
) -> FloorFile:
    """Every rule over the whole file at once; a too-long record breaks only that rule."""
    frame = typed_columns(read_strings(path, schema), schema)
    rules = _rules(dataset, schema, now, references or {})
    by_rule: dict[str, list[pl.Expr]] = {"structure.field_count": [pl.col(OVERFLOW)]}
    for rule, broken in rules:
        by_rule.setdefault(rule, []).append(broken.fill_null(False) & ~pl.col(OVERFLOW))
    masks = [pl.any_horizontal(m).alias(f"m:{rule}") for rule, m in by_rule.items()]
    frame = frame.with_columns(masks).with_columns(
        pl.any_horizontal([f"m:{r}" for r in by_rule]).alias("_bad")
    )
    sums = frame.select([pl.col(f"m:{r}").sum().alias(r) for r in by_rule]).row(0, named=True)
    counts = {rule: int(n) for rule, n in sums.items() if n}
    bad = int(frame.get_column("_bad").sum())
    day = pl.col("t:created_at").dt.date() if "created_at" in schema else pl.lit(None)
    records = frame.filter(~pl.col("_bad")).select(
        *[pl.col(f"t:{n}").alias(n) for n in schema], day.alias("day")
    )
    return FloorFile(frame.height, frame.height - bad, bad, counts, records)


def _metrics() -> list[pl.Expr]:
    return [
        pl.len().cast(pl.Int64).alias("items"),
        pl.col("sale_price").filter(~pl.col("status").is_in(NOT_REVENUE)).sum().alias("revenue"),
        pl.col("order_id").n_unique().cast(pl.Int64).alias("orders"),
        (pl.col("status") == "Returned").sum().cast(pl.Int64).alias("returned"),
    ]


def _finish(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        (pl.col("revenue") / pl.col("orders")).alias("avg_basket"),
        (pl.col("returned") / pl.col("items")).alias("return_rate"),
    )


def compute_kpis(items: pl.DataFrame, products: pl.DataFrame) -> tuple[pl.DataFrame, ...]:
    """Order KPIs per day and category KPIs per category x day."""
    order = _finish(items.group_by("day").agg(_metrics()).sort("day"))
    categories = products.select(pl.col("id").alias("product_id"), "category")
    joined = items.join(categories, on="product_id", how="left").with_columns(
        pl.col("category").fill_null(UNKNOWN)
    )
    category = _finish(joined.group_by("category", "day").agg(_metrics()).sort("category", "day"))
    return order, category


def run(
    products: Path, orders: Path, order_items: Path, *, now: datetime | None = None
) -> FloorResult:
    """Validate the three files in batch order, then compute the KPIs."""
    now = now or datetime.now(UTC)
    product_file = validate(products, "products", PRODUCTS, now)
    order_file = validate(orders, "orders", ORDERS, now)
    references = {
        "product_id": product_file.records.get_column("id"),
        "order_id": order_file.records.get_column("order_id"),
    }
    items_file = validate(order_items, "order_items", ORDER_ITEMS, now, references)
    order_kpis, category_kpis = compute_kpis(items_file.records, product_file.records)
    files = {"products": product_file, "orders": order_file, "order_items": items_file}
    return FloorResult(files, order_kpis, category_kpis)
