"""``products``, ``orders`` and ``order_items``: the thelook_ecommerce schema (seed 004).

CSV files; timestamps may carry a `` UTC`` suffix and fractional seconds
(``2023-01-05 10:11:12.123456 UTC``). Rules (seed 004 section 3.2): prices > 0,
``cost <= retail_price``, ``num_of_item >= 1``, ``sale_price > 0``, dates not in the future,
statuses from thelook's set, and referential integrity of ``order_items`` against the
``products`` and ``orders`` known to exist (the store plus the same batch).
"""

from __future__ import annotations

import polars as pl

from salesflow.datasets.spec import DATETIME, Check, DatasetSpec, FieldSpec, positive
from salesflow.rules import col, concat, text

STATUSES = ("Processing", "Shipped", "Complete", "Cancelled", "Returned")
"""thelook's order and order-item statuses; KPIs exclude Cancelled and Returned revenue."""

_I64 = pl.Int64()
_F64 = pl.Float64()
_STR = pl.Utf8()

PRODUCTS = DatasetSpec(
    name="products",
    description="Product catalogue (thelook_ecommerce schema), CSV",
    formats=("csv",),
    key=("id",),
    day_column=None,
    fields=(
        FieldSpec("id", _I64, required=True),
        FieldSpec("cost", _F64, required=True),
        FieldSpec("category", _STR, required=True),
        FieldSpec("name", _STR),
        FieldSpec("brand", _STR),
        FieldSpec("retail_price", _F64, required=True),
        FieldSpec("department", _STR, required=True),
        FieldSpec("sku", _STR, required=True),
        FieldSpec("distribution_center_id", _I64, header=False),
    ),
    checks=(
        positive("cost"),
        positive("retail_price"),
        Check(
            "business.cost_le_retail",
            "cost",
            col("cost") > col("retail_price"),
            concat("cost ", text("cost"), " is above retail_price ", text("retail_price")),
        ),
    ),
)

ORDERS = DatasetSpec(
    name="orders",
    description="Orders (thelook_ecommerce schema), CSV",
    formats=("csv",),
    key=("order_id",),
    day_column="created_at",
    fields=(
        FieldSpec("order_id", _I64, required=True),
        FieldSpec("user_id", _I64, required=True),
        FieldSpec("status", _STR, required=True, allowed=STATUSES),
        FieldSpec("gender", _STR, header=False),
        FieldSpec("created_at", DATETIME, required=True),
        FieldSpec("returned_at", DATETIME, header=False),
        FieldSpec("shipped_at", DATETIME, header=False),
        FieldSpec("delivered_at", DATETIME, header=False),
        FieldSpec("num_of_item", _I64, required=True),
    ),
    checks=(
        Check(
            "business.num_of_item",
            "num_of_item",
            col("num_of_item") < 1,
            concat("num_of_item must be >= 1, got ", text("num_of_item")),
        ),
    ),
)

ORDER_ITEMS = DatasetSpec(
    name="order_items",
    description="Order lines (thelook_ecommerce schema), CSV; amount = sale_price",
    formats=("csv",),
    key=("id",),
    day_column="created_at",
    references={"product_id": "products", "order_id": "orders"},
    fields=(
        FieldSpec("id", _I64, required=True),
        FieldSpec("order_id", _I64, required=True),
        FieldSpec("user_id", _I64, required=True),
        FieldSpec("product_id", _I64, required=True),
        FieldSpec("inventory_item_id", _I64, header=False),
        FieldSpec("status", _STR, required=True, allowed=STATUSES),
        FieldSpec("created_at", DATETIME, required=True),
        FieldSpec("shipped_at", DATETIME, header=False),
        FieldSpec("delivered_at", DATETIME, header=False),
        FieldSpec("returned_at", DATETIME, header=False),
        FieldSpec("sale_price", _F64, required=True),
    ),
    checks=(positive("sale_price", rule="business.sale_price"),),
    amount=col("sale_price"),
)
