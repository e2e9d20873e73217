"""Sample ``orders_json`` (seeds 001/002) and ``sale_events`` (seed 003).

Records are rendered to JSON text column-wise with Polars (every generated string comes
from a fixed vocabulary that needs no escaping). Clean orders use the key spellings real
files mix (``OrderId``, ``orderId``, ``order_id``) and ``qty`` as a string or a number.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from salesflow.datasets.synth import FaultPlan, InjectedFault, future, inject, past, write_csv

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
FIRST = np.array(["Foo", "Ada", "Grace", "Alan", "Linus", "Maria", "Ken", "Barbara", "Joan"])
LAST = np.array(["Bar", "Lovelace", "Hopper", "Turing", "Torvalds", "Curie", "Thompson"])
ITEMS = np.array(["Item One", "Desk Lamp", "USB Cable", "Coffee Mug", "Notebook", "Backpack"])
PRODUCTS = {
    "Laptop": "Electronics", "Headphones": "Electronics", "Smartphone": "Electronics",
    "Monitor": "Electronics", "Office Chair": "Furniture", "Standing Desk": "Furniture",
    "Running Shoes": "Apparel", "Rain Jacket": "Apparel", "Espresso Machine": "Kitchen",
    "Blender": "Kitchen",
}  # fmt: skip
CHANNELS = ("web", "store", "app")
ISO = "%Y-%m-%dT%H:%M:%SZ"

Array = np.ndarray[Any, Any]


def _q(expr: pl.Expr) -> pl.Expr:
    """A JSON string literal of ``expr`` (values need no escaping)."""
    return pl.concat_str(pl.lit('"'), expr, pl.lit('"'))


def _pick(rng: np.random.Generator, values: Array, n: int) -> Array:
    return values[rng.integers(0, len(values), n)]


def _people(rng: np.random.Generator, n: int) -> tuple[Array, Array]:
    first, last = _pick(rng, FIRST, n), _pick(rng, LAST, n)
    name = np.char.add(np.char.add(first, " "), last)
    email = np.char.add(np.char.add(np.char.lower(first), "."), np.char.lower(last))
    email = np.char.add(np.char.add(email, rng.integers(1, 999, n).astype(str)), "@example.com")
    return name, email


def _write_json(lines: pl.Series, path: Path, fmt: str, container: str | None) -> None:
    if fmt == "jsonl":
        body = lines.str.join("\n").item() + "\n"
    else:
        inner = lines.str.join(",\n  ").item() if len(lines) else ""
        body = (
            f"[\n  {inner}\n]\n" if container is None else f'{{"{container}": [\n  {inner}\n]}}\n'
        )
    path.write_text(body, encoding="utf-8")


def generate_orders_json(
    rng: np.random.Generator, rows: int, rate: float, out_dir: Path, fmt: str
) -> tuple[list[Path], list[InjectedFault], dict[str, int]]:
    """Write orders_json.<json|jsonl|csv> with ``rows`` orders (``fmt`` "list": a bare list)."""
    plan = FaultPlan.draw(rng, rows, ORDER_FAULTS, rate)
    key_of = plan.earlier_clean(rng, "unique.key")
    name, email = _people(rng, rows)
    frame = pl.DataFrame(
        {
            "order_id": (np.arange(1, rows + 1)[key_of]).astype(str),
            "item_id": rng.integers(100, 999, rows).astype(str),
            "item_desc": _pick(rng, ITEMS, rows),
            "qty": rng.integers(1, 6, rows).astype(str),
            "contact_name": name,
            "contact_email": email,
            "_key": np.array(["OrderId", "orderId", "order_id"])[
                rng.choice(3, rows, p=[0.8, 0.1, 0.1])
            ],
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
    products = np.array(list(PRODUCTS))
    product = _pick(rng, products, rows)
    _, email = _people(rng, rows)
    prefix = f"{int(rng.integers(0, 2**32)):08x}"
    frame = pl.DataFrame(
        {
            "sale_id": np.char.add(f"{prefix}-", np.arange(1, rows + 1)[key_of].astype(str)),
            "product": product,
            "category": np.vectorize(PRODUCTS.__getitem__, otypes=[str])(product)
            if rows
            else product,
            "price": np.round(rng.uniform(50, 500, rows), 2),
            "quantity": np.array([1, 2, 3])[rng.choice(3, rows, p=[0.8, 0.15, 0.05])],
            "timestamp": past(rng, rows, now, 0.01, 30),
            "store_id": np.char.add("store-", rng.integers(1, 40, rows).astype(str)),
            "customer_email": email,
            "currency": np.full(rows, "USD"),
            "channel": np.array(CHANNELS)[rng.integers(0, 3, rows)],
            "_future": future(rng, rows, now),
            "_fault": plan.codes,
        }
    ).with_columns(pl.col("timestamp", "_future").dt.strftime(ISO))
    frame = inject(
        frame.with_columns(pl.col("price", "quantity").cast(pl.Utf8)),
        plan,
        [
            ("presence.required", "product", None),
            ("type.number", "price", '"abc"'),
            ("range.positive", "price", "-" + pl.col("price")),
            ("type.integer", "quantity", '"one"'),
            ("type.date", "timestamp", "yesterday"),
            ("date.future", "timestamp", pl.col("_future")),
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
        parts = [
            pl.when(pl.col(c).is_null())
            .then(pl.lit(""))
            .otherwise(
                pl.concat_str(
                    pl.lit(f'"{c}": '), pl.col(c) if c in numeric else _q(pl.col(c)), pl.lit(", ")
                )
            )
            for c in columns
        ]
        line = pl.concat_str([pl.lit("{"), *parts]).str.strip_suffix(", ") + "}"
        lines = frame.select(line.alias("line")).get_column("line")
        _write_json(lines, path, fmt, "sales" if fmt == "json" else None)
    return [path], plan.faults(path.name), {path.name: rows}


def sale_event(rng: random.Random, now: datetime) -> dict[str, Any]:
    """One live sale for ``generate --stream`` (seed 003: price uniform 50..500)."""
    product = rng.choice(list(PRODUCTS))
    first, last = rng.choice(list(FIRST)), rng.choice(list(LAST))
    when = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
    return {
        "sale_id": f"{rng.getrandbits(128):032x}",
        "product": product,
        "category": PRODUCTS[product],
        "price": round(rng.uniform(50, 500), 2),
        "quantity": 1,
        "timestamp": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "store_id": f"store-{rng.randint(1, 39)}",
        "customer_email": f"{first.lower()}.{last.lower()}{rng.randint(1, 998)}@example.com",
        "currency": "USD",
        "channel": rng.choice(CHANNELS),
    }
