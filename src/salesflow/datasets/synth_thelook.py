"""Sample ``products``, ``orders`` and ``order_items`` in the thelook_ecommerce shape.

The three files are consistent: every clean order item points at a clean product and a
clean order (faulty products and orders are rejected, so nothing may depend on them),
every clean order has at least one item, and every clean date lies in the past, so only
the injected faults trip a rule.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from salesflow.datasets.synth import FaultPlan, InjectedFault, future, inject, past, write_csv

CATEGORIES = np.array(
    ["Jeans", "Tops & Tees", "Sweaters", "Accessories", "Active", "Outerwear & Coats",
     "Shorts", "Swim", "Sleep & Lounge", "Socks", "Dresses", "Intimates"]
)  # fmt: skip
BRANDS = np.array(["Levi's", "Calvin Klein", "Carhartt", "Columbia", "Nike", "Hanes"])
DEPARTMENTS = np.array(["Men", "Women"])
STATUS = np.array(["Complete", "Shipped", "Processing", "Cancelled", "Returned"])
STATUS_P = [0.30, 0.30, 0.15, 0.15, 0.10]
TS = "%Y-%m-%d %H:%M:%S UTC"

PRODUCT_FAULTS = (
    "presence.required",
    "type.number",
    "type.integer",
    "range.positive",
    "business.cost_le_retail",
    "unique.key",
)
ORDER_FAULTS = (
    "presence.required",
    "type.integer",
    "type.date",
    "business.num_of_item",
    "date.future",
    "enum.status",
    "unique.key",
)
ITEM_FAULTS = (
    "presence.required",
    "type.number",
    "type.date",
    "business.sale_price",
    "date.future",
    "enum.status",
    "ref.product_id",
    "ref.order_id",
    "unique.key",
)

Array = np.ndarray[Any, Any]


def _ts(name: str) -> pl.Expr:
    return pl.col(name).dt.strftime(TS)


def _products(
    rng: np.random.Generator, n: int, rate: float, path: Path
) -> tuple[Array, Array, list[InjectedFault]]:
    """Write ``n`` products; return the clean ids, their retail prices, and the faults."""
    plan = FaultPlan.draw(rng, n, PRODUCT_FAULTS, rate)
    ids = np.arange(1, n + 1)
    key_of = plan.earlier_clean(rng, "unique.key")
    retail = np.round(np.exp(rng.normal(3.6, 0.7, n)) + 1.5, 2)
    cost = np.round(retail * rng.uniform(0.3, 0.7, n), 2)
    cat = CATEGORIES[rng.integers(0, len(CATEGORIES), n)]
    brand = BRANDS[rng.integers(0, len(BRANDS), n)]
    frame = pl.DataFrame(
        {
            "id": ids[key_of],
            "cost": cost,
            "category": cat,
            "name": np.char.add(np.char.add(brand, " "), cat),
            "brand": brand,
            "retail_price": retail,
            "department": DEPARTMENTS[rng.integers(0, 2, n)],
            "sku": ids,
            "distribution_center_id": rng.integers(1, 11, n),
            "_fault": plan.codes,
        }
    ).with_columns(
        pl.exclude("_fault", "sku").cast(pl.Utf8),
        pl.format("SKU-{}", pl.col("sku").cast(pl.Utf8).str.zfill(8)).alias("sku"),
    )
    above_retail = (pl.col("retail_price").cast(pl.Float64) * 1.25 + 1).round(2).cast(pl.Utf8)
    frame = inject(
        frame,
        plan,
        [
            ("presence.required", "category", ""),
            ("type.number", "cost", "n/a"),
            ("type.integer", "distribution_center_id", "DC-7"),
            ("range.positive", "cost", "-" + pl.col("cost")),
            ("business.cost_le_retail", "cost", above_retail),
        ],
    ).drop("_fault")
    write_csv(frame, path)
    return ids[plan.clean], retail[plan.clean], plan.faults(path.name)


def _dates(rng: np.random.Generator, status: Array, now: datetime) -> pl.DataFrame:
    """created/returned/shipped/delivered per status, all in the past (naive UTC)."""
    n = len(status)
    day = 86400.0
    frame = pl.DataFrame(
        {
            "created_at": past(rng, n, now, 20, 120),
            "status": status,
            "_ship": rng.uniform(0.1 * day, 3 * day, n).astype(np.int64),
            "_deliver": rng.uniform(day, 5 * day, n).astype(np.int64),
            "_return": rng.uniform(day, 10 * day, n).astype(np.int64),
        }
    )
    shipped = pl.col("created_at") + pl.duration(seconds=pl.col("_ship"))
    delivered = shipped + pl.duration(seconds=pl.col("_deliver"))
    returned = delivered + pl.duration(seconds=pl.col("_return"))
    is_in = pl.col("status").is_in
    return frame.select(
        "created_at",
        pl.when(pl.col("status") == "Returned").then(returned).alias("returned_at"),
        pl.when(is_in(["Shipped", "Complete", "Returned"])).then(shipped).alias("shipped_at"),
        pl.when(is_in(["Complete", "Returned"])).then(delivered).alias("delivered_at"),
    )


def _orders(
    rng: np.random.Generator, n: int, rate: float, path: Path, now: datetime
) -> tuple[Array, pl.DataFrame, Array]:
    """Plan ``n`` orders; return their ids, their columns (typed) and fault codes.

    Written by :func:`_write_orders` once the items say how many each order has."""
    plan = FaultPlan.draw(rng, n, ORDER_FAULTS, rate)
    ids = np.arange(1, n + 1)
    key_of = plan.earlier_clean(rng, "unique.key")
    status = STATUS[rng.choice(len(STATUS), n, p=STATUS_P)]
    frame = pl.DataFrame(
        {
            "order_id": ids[key_of],
            "user_id": rng.integers(1, max(2, int(n * 0.8)), n),
            "status": status,
            "gender": np.array(["M", "F"])[rng.integers(0, 2, n)],
        }
    ).hstack(_dates(rng, status, now))
    return ids, frame, plan.codes


def _write_orders(
    rng: np.random.Generator,
    frame: pl.DataFrame,
    codes: Array,
    items_per_order: Array,
    path: Path,
    now: datetime,
) -> list[InjectedFault]:
    plan = FaultPlan(ORDER_FAULTS, codes)
    n = frame.height
    num = np.where(items_per_order > 0, items_per_order, rng.integers(1, 5, n))
    out = frame.with_columns(
        pl.col("order_id", "user_id").cast(pl.Utf8),
        *[_ts(c) for c in ("created_at", "returned_at", "shipped_at", "delivered_at")],
        pl.Series("num_of_item", num).cast(pl.Utf8),
        pl.Series("_future", future(rng, n, now)).dt.strftime(TS),
        plan.series(),
    )
    out = inject(out, plan, [
        ("presence.required", "status", ""),
        ("type.integer", "num_of_item", "two"),
        ("type.date", "created_at", "2023-02-30 10:00:00 UTC"),
        ("business.num_of_item", "num_of_item", "0"),
        ("date.future", "created_at", pl.col("_future")),
        ("enum.status", "status", "Lost"),
    ]).select(
        "order_id", "user_id", "status", "gender", "created_at",
        "returned_at", "shipped_at", "delivered_at", "num_of_item",
    )  # fmt: skip
    write_csv(out, path)
    return plan.faults(path.name)


def _items(
    rng: np.random.Generator,
    rows: int,
    rate: float,
    orders: pl.DataFrame,
    clean_orders: Array,
    products: tuple[Array, Array],
    path: Path,
    now: datetime,
) -> tuple[Array, list[InjectedFault]]:
    """Write ``rows`` items of clean orders and products; return items per order."""
    plan = FaultPlan.draw(rng, rows, ITEM_FAULTS, rate)
    key_of = plan.earlier_clean(rng, "unique.key")
    first = clean_orders[: min(rows, len(clean_orders))]
    rest = rng.choice(clean_orders, rows - len(first)) if rows > len(first) else first[:0]
    order_row = np.sort(np.concatenate([first, rest]))  # 0-based order rows
    product_ids, retail = products
    pick = rng.integers(0, len(product_ids), rows)
    ids = np.arange(1, rows + 1)
    o = orders.select(pl.all().gather(order_row))
    frame = pl.DataFrame(
        {
            "id": ids[key_of],
            "order_id": o.get_column("order_id"),
            "user_id": o.get_column("user_id"),
            "product_id": product_ids[pick],
            "inventory_item_id": ids * 3 + rng.integers(0, 3, rows),
            "status": o.get_column("status"),
            "created_at": o.get_column("created_at"),
            "shipped_at": o.get_column("shipped_at"),
            "delivered_at": o.get_column("delivered_at"),
            "returned_at": o.get_column("returned_at"),
            "sale_price": retail[pick],
            "_future": future(rng, rows, now),
            "_fault": plan.codes,
        }
    ).with_columns(
        pl.col("id", "order_id", "user_id", "product_id", "inventory_item_id", "sale_price").cast(
            pl.Utf8
        ),
        *[_ts(c) for c in ("created_at", "shipped_at", "delivered_at", "returned_at", "_future")],
    )
    bad_ref = (pl.int_range(1, pl.len() + 1) + 10_000_000).cast(pl.Utf8)
    frame = inject(
        frame,
        plan,
        [
            ("presence.required", "user_id", ""),
            ("type.number", "sale_price", "twelve"),
            ("type.date", "created_at", "31/12/2023 10:00"),
            ("business.sale_price", "sale_price", "-" + pl.col("sale_price")),
            ("date.future", "created_at", pl.col("_future")),
            ("enum.status", "status", "Lost"),
            ("ref.product_id", "product_id", bad_ref),
            ("ref.order_id", "order_id", bad_ref),
        ],
    ).drop("_future", "_fault")
    write_csv(frame, path)
    counts = np.bincount(
        order_row[plan.codes != plan.code("ref.order_id")], minlength=orders.height
    )
    return counts, plan.faults(path.name)


def generate_thelook(
    rng: np.random.Generator, rows: int, rate: float, out_dir: Path, now: datetime
) -> tuple[list[Path], list[InjectedFault], dict[str, int]]:
    """Write products.csv, orders.csv and order_items.csv (``rows`` items)."""
    n_products = max(100, rows // 50)
    n_orders = max(1, round(rows / 2.5))
    paths = [out_dir / f"{name}.csv" for name in ("products", "orders", "order_items")]
    product_ids, retail, faults = _products(rng, n_products, rate, paths[0])
    _, orders, codes = _orders(rng, n_orders, rate, paths[1], now)
    clean_orders = np.flatnonzero(codes == -1)
    per_order, item_faults = _items(
        rng, rows, rate, orders, clean_orders, (product_ids, retail), paths[2], now
    )
    faults += _write_orders(rng, orders, codes, per_order, paths[1], now) + item_faults
    records = {paths[0].name: n_products, paths[1].name: n_orders, paths[2].name: rows}
    return paths, faults, records
