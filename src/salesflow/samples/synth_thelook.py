"""Sample ``products``, ``orders`` and ``order_items`` in the thelook_ecommerce shape.

The three files are consistent: every clean order item points at a clean product and a
clean order (faulty products and orders are rejected, so nothing may depend on them),
every clean order has at least one item, and every clean date lies in the past, so only
the injected faults trip a rule. Columns stay typed where no fault needs a string, and the
CSV writer formats them: 5M order items take a few seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

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

CATEGORIES = (
    "Jeans", "Tops & Tees", "Sweaters", "Accessories", "Active", "Outerwear & Coats",
    "Shorts", "Swim", "Sleep & Lounge", "Socks", "Dresses", "Intimates",
)  # fmt: skip
BRANDS = ("Levi's", "Calvin Klein", "Carhartt", "Columbia", "Nike", "Hanes")
STATUS = ("Complete", "Shipped", "Processing", "Cancelled", "Returned")
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


def _ts(times: pl.Series) -> pl.Series:
    return format_times(times, "%Y-%m-%d", " ", "%H:%M:%S UTC")


def _future(rng: np.random.Generator, now: datetime) -> Callable[[int], pl.Series]:
    return lambda n: _ts(future(rng, n, now))


def _products(
    rng: np.random.Generator, n: int, rate: float, path: Path
) -> tuple[Array, pl.Series, list[InjectedFault]]:
    """Write ``n`` products; return the clean ids, their retail prices (as written), faults."""
    plan = FaultPlan.draw(rng, n, PRODUCT_FAULTS, rate)
    ids = np.arange(1, n + 1)
    key_of = plan.earlier_clean(rng, "unique.key")
    retail = np.round(np.exp(rng.normal(3.6, 0.7, n)) + 1.5, 2)
    cost = np.round(retail * rng.uniform(0.3, 0.7, n), 2)
    cat = pick(CATEGORIES, rng.integers(0, len(CATEGORIES), n))
    brand = pick(BRANDS, rng.integers(0, len(BRANDS), n))
    frame = pl.DataFrame(
        {
            "id": ids[key_of],
            "cost": pl.Series(cost).cast(pl.Utf8),
            "category": cat,
            "name": brand + " " + cat,
            "brand": brand,
            "retail_price": pl.Series(retail).cast(pl.Utf8),
            "department": pick(("Men", "Women"), rng.integers(0, 2, n)),
            "sku": pl.Series(ids).cast(pl.Utf8).str.zfill(8),
            "distribution_center_id": pl.Series(rng.integers(1, 11, n)).cast(pl.Utf8),
        }
    ).with_columns(("SKU-" + pl.col("sku")).alias("sku"))
    above = (pl.col("retail_price").cast(pl.Float64) * 1.25 + 1).round(2).cast(pl.Utf8)
    written = inject(
        frame,
        plan,
        [
            ("presence.required", "category", ""),
            ("type.number", "cost", "n/a"),
            ("type.integer", "distribution_center_id", "DC-7"),
            ("range.positive", "cost", "-" + pl.col("cost")),
            ("business.cost_le_retail", "cost", above),
        ],
    )
    write_csv(written, path)
    clean = plan.clean
    return (
        ids[clean],
        frame.get_column("retail_price").filter(pl.Series(clean)),
        plan.faults(path.name),
    )


def _dates(rng: np.random.Generator, status: pl.Series, now: datetime) -> pl.DataFrame:
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
    rng: np.random.Generator, n: int, rate: float, now: datetime
) -> tuple[pl.DataFrame, FaultPlan]:
    """Plan ``n`` orders (typed; written once the items say how many each has)."""
    plan = FaultPlan.draw(rng, n, ORDER_FAULTS, rate)
    key_of = plan.earlier_clean(rng, "unique.key")
    status = pick(STATUS, rng.choice(len(STATUS), n, p=STATUS_P))
    frame = pl.DataFrame(
        {
            "order_id": np.arange(1, n + 1)[key_of],
            "user_id": rng.integers(1, max(2, int(n * 0.8)), n),
            "status": status,
            "gender": pick(("M", "F"), rng.integers(0, 2, n)),
        }
    ).hstack(_dates(rng, status, now))
    return frame.with_columns(_ts(frame.get_column("created_at"))), plan


def _write_orders(
    rng: np.random.Generator,
    frame: pl.DataFrame,
    plan: FaultPlan,
    items_per_order: Array,
    path: Path,
    now: datetime,
) -> list[InjectedFault]:
    num = np.where(items_per_order > 0, items_per_order, rng.integers(1, 5, frame.height))
    out = frame.with_columns(pl.Series("num_of_item", num).cast(pl.Utf8))
    out = inject(
        out,
        plan,
        [
            ("presence.required", "status", ""),
            ("type.integer", "num_of_item", "two"),
            ("type.date", "created_at", "2023-02-30 10:00:00 UTC"),
            ("business.num_of_item", "num_of_item", "0"),
            ("date.future", "created_at", _future(rng, now)),
            ("enum.status", "status", "Lost"),
        ],
    )
    write_csv(out, path, datetime_format=TS)
    return plan.faults(path.name)


def _items(
    rng: np.random.Generator,
    rows: int,
    rate: float,
    orders: pl.DataFrame,
    clean_orders: Array,
    products: tuple[Array, pl.Series],
    path: Path,
    now: datetime,
) -> tuple[Array, list[InjectedFault]]:
    """Write ``rows`` items of clean orders and products; return items per order."""
    plan = FaultPlan.draw(rng, rows, ITEM_FAULTS, rate)
    key_of = plan.earlier_clean(rng, "unique.key")
    first = clean_orders[: min(rows, len(clean_orders))]
    rest = rng.choice(clean_orders, rows - len(first)) if rows > len(first) else first[:0]
    order_row = np.sort(np.concatenate([first, rest]))
    product_ids, retail = products
    product = rng.integers(0, len(product_ids), rows)
    ids = np.arange(1, rows + 1)
    o = orders.select(pl.all().gather(order_row))
    frame = pl.DataFrame(
        {
            "id": ids[key_of],
            "order_id": o.get_column("order_id"),
            "user_id": o.get_column("user_id"),
            "product_id": product_ids[product],
            "inventory_item_id": ids * 3 + rng.integers(0, 3, rows),
            "status": o.get_column("status"),
            "created_at": o.get_column("created_at"),
            "shipped_at": o.get_column("shipped_at"),
            "delivered_at": o.get_column("delivered_at"),
            "returned_at": o.get_column("returned_at"),
            "sale_price": retail.gather(product),
        }
    )
    bad_ref = (pl.int_range(1, pl.len() + 1) + 10_000_000).cast(pl.Int64)
    frame = inject(
        frame,
        plan,
        [
            ("presence.required", "user_id", None),
            ("type.number", "sale_price", "twelve"),
            ("type.date", "created_at", "31/12/2023 10:00"),
            ("business.sale_price", "sale_price", "-" + pl.col("sale_price")),
            ("date.future", "created_at", _future(rng, now)),
            ("enum.status", "status", "Lost"),
            ("ref.product_id", "product_id", bad_ref),
            ("ref.order_id", "order_id", bad_ref),
        ],
    )
    write_csv(frame, path, datetime_format=TS)
    kept = order_row[~plan.mask("ref.order_id")]
    return np.bincount(kept, minlength=orders.height), plan.faults(path.name)


def generate_products(
    rng: np.random.Generator, rows: int, rate: float, out_dir: Path
) -> tuple[list[Path], list[InjectedFault], dict[str, int]]:
    """Write products.csv alone (``rows`` products)."""
    path = out_dir / "products.csv"
    _, _, faults = _products(rng, rows, rate, path)
    return [path], faults, {path.name: rows}


def generate_orders(
    rng: np.random.Generator, rows: int, rate: float, out_dir: Path, now: datetime
) -> tuple[list[Path], list[InjectedFault], dict[str, int]]:
    """Write orders.csv alone (``rows`` orders, 1 to 4 items each)."""
    path = out_dir / "orders.csv"
    orders, plan = _orders(rng, rows, rate, now)
    no_items = np.zeros(rows, dtype=np.int64)
    faults = _write_orders(rng, orders, plan, no_items, path, now)
    return [path], faults, {path.name: rows}


def generate_thelook(
    rng: np.random.Generator, rows: int, rate: float, out_dir: Path, now: datetime
) -> tuple[list[Path], list[InjectedFault], dict[str, int]]:
    """Write products.csv, orders.csv and order_items.csv (``rows`` items): order items
    refer to products and orders, so they come with consistent ones."""
    n_products = max(100, rows // 50)
    n_orders = max(1, round(rows / 2.5))
    paths = [out_dir / f"{name}.csv" for name in ("products", "orders", "order_items")]
    product_ids, retail, faults = _products(rng, n_products, rate, paths[0])
    orders, plan = _orders(rng, n_orders, rate, now)
    clean_orders = np.flatnonzero(plan.clean)
    per_order, item_faults = _items(
        rng, rows, rate, orders, clean_orders, (product_ids, retail), paths[2], now
    )
    faults += _write_orders(rng, orders, plan, per_order, paths[1], now) + item_faults
    records = {paths[0].name: n_products, paths[1].name: n_orders, paths[2].name: rows}
    return paths, faults, records
