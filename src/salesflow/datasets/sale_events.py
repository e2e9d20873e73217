"""``sale_events``: one JSON object per sale, the live feed of seed 003.

A file holds one object, a list of objects, ``{"sales": [...]}`` or JSON Lines (CSV with the
same columns is accepted too). Fields: sale_id (key), product, category, price, quantity,
timestamp (ISO 8601, UTC or with an offset), and the optional store_id, customer_email,
currency, channel. amount = price x quantity; seed 003 alerts when it exceeds 400.
"""

from __future__ import annotations

import polars as pl

from salesflow.datasets.spec import DATETIME, Check, DatasetSpec, FieldSpec, positive
from salesflow.rules import col, concat, text

SALE_EVENTS = DatasetSpec(
    name="sale_events",
    description="Live sale events, one JSON object per sale",
    formats=("json", "csv"),
    key=("sale_id",),
    day_column="timestamp",
    json_containers=("sales", "events", "saleevents", "records"),
    json_markers=("saleid",),
    fields=(
        FieldSpec("sale_id", pl.Utf8(), required=True, aliases=("id",)),
        FieldSpec("product", pl.Utf8(), required=True),
        FieldSpec("category", pl.Utf8(), header=False),
        FieldSpec("price", pl.Float64(), required=True, description="unit price"),
        FieldSpec("quantity", pl.Int64(), required=True, aliases=("qty",)),
        FieldSpec("timestamp", DATETIME, required=True, aliases=("ts", "time", "sold_at")),
        FieldSpec("store_id", pl.Utf8(), header=False),
        FieldSpec("customer_email", pl.Utf8(), header=False, email=True, aliases=("email",)),
        FieldSpec("currency", pl.Utf8(), header=False),
        FieldSpec("channel", pl.Utf8(), header=False),
    ),
    checks=(
        positive("price"),
        positive("quantity"),
        Check(
            "format.currency",
            "currency",
            ~col("currency").matches(r"^[A-Z]{3}$"),
            concat("currency must be a 3-letter ISO code, got ", text("currency")),
        ),
    ),
    amount=col("price") * col("quantity").cast(pl.Float64()),
)
