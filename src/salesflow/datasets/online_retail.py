"""``online_retail``: invoice lines of the UCI/Kaggle Online Retail data (seed 000).

CSV ``InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country``
with a UTF-8 BOM, US dates (``12/1/2010 8:26``, read as UTC), sometimes Latin-1 text.

What is valid, and why (checked against the real 10k-row sample):

- cancellations (InvoiceNo ``C...``) carry a negative Quantity: valid, flagged
  ``is_cancellation``; a cancellation with a positive Quantity is not.
- stock adjustments (no ``C``, negative Quantity, UnitPrice 0, often no Description) are
  valid: they move stock, not money. A negative Quantity *with* a price outside a
  cancellation is a sale with the wrong sign, and is rejected.
- UnitPrice 0 is valid (free items, adjustments); a negative UnitPrice is not. Quantity 0
  is not (a line that moves nothing).
- empty CustomerID and Description are valid; non-product StockCodes (POST, M, BANK
  CHARGES, DOT) are valid.

Key: ``InvoiceNo|n`` where n is the line's position within its invoice, counted in file
order (the data has no line id, and identical lines do occur: both are kept).
amount = Quantity x UnitPrice (negative for cancellations).
"""

from __future__ import annotations

import polars as pl

from salesflow.datasets.spec import Check, DatasetSpec, FieldSpec
from salesflow.rules import col, concat, lit, text, when

_CANCELLATION = col("InvoiceNo").starts_with("C")

ONLINE_RETAIL = DatasetSpec(
    name="online_retail",
    description="Online Retail invoice lines (the UCI data set's shape), CSV",
    formats=("csv",),
    key=("InvoiceNo",),
    line_key="InvoiceNo",
    day_column="InvoiceDate",
    fields=(
        FieldSpec("InvoiceNo", pl.Utf8(), required=True, description="C... = cancellation"),
        FieldSpec("StockCode", pl.Utf8(), required=True),
        FieldSpec("Description", pl.Utf8()),
        FieldSpec("Quantity", pl.Int64(), required=True),
        FieldSpec(
            "InvoiceDate",
            pl.Datetime("us", "UTC"),
            required=True,
            formats=(
                "%m/%d/%Y %H:%M",
                "%m/%d/%Y %H:%M:%S",
                "%Y-%m-%d %H:%M:%S",  # as pandas and Excel export it
                "%Y-%m-%d %H:%M",
                "%Y-%m-%dT%H:%M:%S",
            ),
            description="US month/day/year or ISO 8601, UK time read as UTC",
        ),
        FieldSpec("UnitPrice", pl.Float64(), required=True),
        FieldSpec("CustomerID", pl.Utf8(), description="empty for guest checkouts"),
        FieldSpec("Country", pl.Utf8()),
    ),
    checks=(
        Check(
            "range.non_negative",
            "UnitPrice",
            col("UnitPrice") < 0,
            concat("UnitPrice must be >= 0, got ", text("UnitPrice")),
        ),
        Check(
            "range.nonzero",
            "Quantity",
            col("Quantity") == 0,
            lit("Quantity must not be 0"),
        ),
        Check(
            "business.quantity_sign",
            "Quantity",
            when(_CANCELLATION)
            .then(col("Quantity") > 0)
            .otherwise((col("Quantity") < 0) & (col("UnitPrice") > 0)),
            when(_CANCELLATION)
            .then(
                concat(
                    "cancellation ",
                    text("InvoiceNo"),
                    " has a positive Quantity ",
                    text("Quantity"),
                )
            )
            .otherwise(
                concat(
                    "negative Quantity ",
                    text("Quantity"),
                    " with UnitPrice > 0 on a non-cancellation invoice ",
                    text("InvoiceNo"),
                )
            ),
        ),
    ),
    amount=col("Quantity").cast(pl.Float64()) * col("UnitPrice"),
    derived={"is_cancellation": _CANCELLATION},
)
