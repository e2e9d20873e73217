"""Sample ``orders_json`` (seeds 001/002) and ``sale_events`` (seed 003).

Records are rendered to JSON text column-wise with Polars (every generated string comes
from a fixed vocabulary that needs no escaping). Clean orders use the key spellings real
files mix (``OrderId``, ``orderId``, ``order_id``) and ``qty`` as a string or a number.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl

from salesflow.samples.live import CHANNELS, FIRST, ITEMS, LAST, PRODUCTS
from salesflow.samples.synth import (
    FaultPlan,
    InjectedFault,
    format_times,
    future,
    inject,
    past,
    pick,
    write_csv,
)

ORDER_FAULTS = (
    "presence.contact_info",
    "presence.order_info",
    "presence.required",
    "type.integer",
    "range.positive",
    "email.format",
    "unique.key",
)
SALE_FAULTS = (
    "presence.required",
    "type.number",
    "range.positive",
    "type.integer",
    "type.date",
    "date.future",
    "email.format",
    "format.currency",
    "unique.key",
)
ISO = "%Y-%m-%dT%H:%M:%SZ"


def _q(expr: pl.Expr) -> pl.Expr:
    """A JSON string literal of ``expr`` (values need no escaping)."""
    return pl.concat_str(pl.lit('"'), expr, pl.lit('"'))


def _pick(rng: np.random.Generator, values: Sequence[str], n: int) -> pl.Series:
    return pick(values, rng.integers(0, len(values), n))


def _people(rng: np.random.Generator, n: int) -> tuple[pl.Series, pl.Series]:
    first, last = _pick(rng, FIRST, n), _pick(rng, LAST, n)
    number = pl.Series(rng.integers(1, 999, n)).cast(pl.Utf8)
    email = first.str.to_lowercase() + "." + last.str.to_lowercase() + number + "@example.com"
    return first + " " + last, email


def _write_json(lines: pl.Series, path: Path, fmt: str, container: str | None) -> None:
    """Write one record per line: JSON Lines, or a JSON list (wrapped in ``container``)."""
    with path.open("wb") as fh:
        if fmt != "jsonl":
            fh.write(b"[\n" if container is None else f'{{"{container}": [\n'.encode())
            last = pl.int_range(pl.len()) == pl.len() - 1
            lines = (
                lines.to_frame("line")
                .select(
                    pl.concat_str(
                        pl.lit("  "), "line", pl.when(~last).then(pl.lit(",")).otherwise(pl.lit(""))
                    )
                )
                .to_series()
            )
        if len(lines):
            lines.to_frame().write_csv(fh, include_header=False, quote_style="never")
        if fmt != "jsonl":
            fh.write(b"]\n" if container is None else b"]}\n")


def generate_orders_json(
    rng: np.random.Generator, rows: int, rate: float, out_dir: Path, fmt: str
) -> tuple[list[Path], list[InjectedFault], dict[str, int]]:
    """Write orders_json.<json|jsonl|csv> with ``rows`` orders (``fmt`` "list": a bare list)."""
    plan = FaultPlan.draw(rng, rows, ORDER_FAULTS, rate)
    key_of = plan.earlier_clean(rng, "unique.key")
    name, email = _people(rng, rows)
    frame = pl.DataFrame(
        {
            "order_id": pl.Series(np.arange(1, rows + 1)[key_of]).cast(pl.Utf8),
            "item_id": pl.Series(rng.integers(100, 999, rows)).cast(pl.Utf8),
            "item_desc": _pick(rng, ITEMS, rows),
            "qty": pl.Series(rng.integers(1, 6, rows)).cast(pl.Utf8),
            "contact_name": name,
            "contact_email": email,
            "_key": pick(
                ("OrderId", "orderId", "order_id"), rng.choice(3, rows, p=[0.8, 0.1, 0.1])
            ),
            "_numeric": rng.random(rows) < 0.3,
            "_fault": plan.codes,
        }
    )
    frame = inject(
        frame,
        plan,
        [
            ("type.integer", "qty", "two"),
            ("range.positive", "qty", "0"),
            ("presence.required", "qty", None),
            ("email.format", "contact_email", pl.col("contact_email").str.replace("@", ".")),
        ],
    )
    no_contact, no_order = plan.is_("presence.contact_info"), plan.is_("presence.order_info")
    ext = "csv" if fmt == "csv" else "jsonl" if fmt == "jsonl" else "json"
    path = out_dir / f"orders_json.{ext}"
    if fmt == "csv":
        order_cols = ["order_id", "item_id", "item_desc", "qty"]
        write_csv(
            frame.with_columns(
                *[pl.when(no_order).then(None).otherwise(pl.col(c)).alias(c) for c in order_cols],
                *[
                    pl.when(no_contact).then(None).otherwise(pl.col(c)).alias(c)
                    for c in ("contact_name", "contact_email")
                ],
            ).select(*order_cols, "contact_name", "contact_email"),
            path,
        )
    else:
        numeric = pl.col("_numeric") & pl.col("qty").str.contains(r"^\d+$")
        qty = pl.when(numeric).then(pl.col("qty")).otherwise(_q(pl.col("qty")))
        qty = (
            pl.when(pl.col("qty").is_null())
            .then(pl.lit(""))
            .otherwise(pl.concat_str(pl.lit(', "qty": '), qty))
        )
        contact = pl.format(
            '"contact-info": {{"name": {}, "email": {}}}',
            _q(pl.col("contact_name")),
            _q(pl.col("contact_email")),
        )
        order = pl.format(
            '"order-info": {{{}: {}, "item-id": {}, "item-desc": {}{}}}',
            _q(pl.col("_key")),
            _q(pl.col("order_id")),
            _q(pl.col("item_id")),
            _q(pl.col("item_desc")),
            qty,
        )
        line = (
            pl.when(no_contact).then(pl.concat_str(pl.lit("{"), order, pl.lit("}")))
            .when(no_order).then(pl.concat_str(pl.lit("{"), contact, pl.lit("}")))
            .otherwise(pl.concat_str(pl.lit("{"), contact, pl.lit(", "), order, pl.lit("}")))
        )  # fmt: skip
        lines = frame.select(line.alias("line")).get_column("line")
        _write_json(lines, path, fmt, None if fmt == "list" else "orders")
    return [path], plan.faults(path.name), {path.name: rows}


def generate_sale_events(
    rng: np.random.Generator, rows: int, rate: float, out_dir: Path, fmt: str, now: datetime
) -> tuple[list[Path], list[InjectedFault], dict[str, int]]:
    """Write sale_events.<jsonl|json|csv> with ``rows`` sales (price uniform 50..500)."""
    plan = FaultPlan.draw(rng, rows, SALE_FAULTS, rate)
    key_of = plan.earlier_clean(rng, "unique.key")
    which = rng.integers(0, len(PRODUCTS), rows)
    _, email = _people(rng, rows)
    prefix = f"{int(rng.integers(0, 2**32)):08x}-"
    frame = pl.DataFrame(
        {
            "sale_id": prefix + pl.Series(np.arange(1, rows + 1)[key_of]).cast(pl.Utf8),
            "product": pick(list(PRODUCTS), which),
            "category": pick(list(PRODUCTS.values()), which),
            "price": np.round(rng.uniform(50, 500, rows), 2),
            "quantity": np.array([1, 2, 3])[rng.choice(3, rows, p=[0.8, 0.15, 0.05])],
            "timestamp": format_times(past(rng, rows, now, 0.01, 30), "%Y-%m-%d", "T", "%H:%M:%SZ"),
            "store_id": "store-" + pl.Series(rng.integers(1, 40, rows)).cast(pl.Utf8),
            "customer_email": email,
            "currency": pl.repeat("USD", rows, eager=True),
            "channel": _pick(rng, CHANNELS, rows),
            "_fault": plan.codes,
        }
    )
    future_times = lambda k: format_times(future(rng, k, now), "%Y-%m-%d", "T", "%H:%M:%SZ")  # noqa: E731
    frame = inject(
        frame.with_columns(pl.col("price", "quantity").cast(pl.Utf8)),
        plan,
        [
            ("presence.required", "product", None),
            ("type.number", "price", '"abc"'),
            ("range.positive", "price", "-" + pl.col("price")),
            ("type.integer", "quantity", '"one"'),
            ("type.date", "timestamp", "yesterday"),
            ("date.future", "timestamp", future_times),
            ("email.format", "customer_email", pl.col("customer_email").str.replace("@", " at ")),
            ("format.currency", "currency", "usd"),
        ],
    )
    columns = ["sale_id", "product", "category", "price", "quantity", "timestamp",
               "store_id", "customer_email", "currency", "channel"]  # fmt: skip
    ext = "csv" if fmt == "csv" else "json" if fmt in ("json", "list") else "jsonl"
    path = out_dir / f"sale_events.{ext}"
    if fmt == "csv":
        write_csv(
            frame.select(columns).with_columns(pl.col("price", "quantity").str.strip_chars('"')),
            path,
        )
    else:
        numeric = {"price", "quantity"}
        values = {c: pl.col(c) if c in numeric else _q(pl.col(c)) for c in columns}
        pieces: list[pl.Expr] = []
        for c in columns:
            piece = pl.concat_str(pl.lit(f', "{c}": '), values[c])
            # only product can be missing (presence.required faults drop the key)
            pieces.append(pl.coalesce(piece, pl.lit("")) if c == "product" else piece)
        line = pl.concat_str([pl.lit("{"), *pieces, pl.lit("}")]).str.replace(
            ", ", "", literal=True
        )
        lines = frame.select(line.alias("line")).get_column("line")
        _write_json(lines, path, fmt, "sales" if fmt == "json" else None)
    return [path], plan.faults(path.name), {path.name: rows}
