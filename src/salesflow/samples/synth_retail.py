"""Sample Online Retail invoice lines (seed 000's UCI/Kaggle shape).

Like the real file: UTF-8 with a BOM, US dates (``12/1/2010 8:26``), invoices of 1 to 24
lines, about 2% cancellation invoices (``C...``, negative quantities), stock adjustments
(negative quantity, no price, no description), free lines (price 0), postage and other
non-product stock codes, guests without CustomerID, and descriptions with commas (quoted).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

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

FAULTS = (
    "presence.required",
    "type.integer",
    "type.number",
    "type.date",
    "range.non_negative",
    "range.nonzero",
    "business.quantity_sign",
    "date.future",
)
US_DATE = ("%-m/%-d/%Y", " ", "%-H:%M")
WORDS = np.array(
    ["WHITE", "RED", "VINTAGE", "REGENCY", "HEART", "JUMBO", "PINK", "RETROSPOT", "GLASS",
     "WOODEN", "PAPER", "SET OF 3", "LUNCH BAG", "T-LIGHT HOLDER", "CAKE TINS, PANTRY DESIGN",
     "ALARM CLOCK", "CHRISTMAS", "BUNTING", "HOT WATER BOTTLE", "DOORMAT"]
)  # fmt: skip
SPECIAL = ("POST", "M", "DOT", "BANK CHARGES", "C2")
SPECIAL_DESC = ("POSTAGE", "Manual", "DOTCOM POSTAGE", "Bank Charges", "CARRIAGE")
COUNTRIES = ("France", "Germany", "EIRE", "Spain", "Netherlands", "Belgium", "Norway")
QTY = np.array([1, 2, 3, 4, 6, 8, 10, 12, 24, 48])
QTY_P = [0.25, 0.15, 0.08, 0.08, 0.14, 0.06, 0.05, 0.14, 0.04, 0.01]


def _catalog(rng: np.random.Generator, n: int) -> pl.DataFrame:
    codes = np.char.add(
        rng.integers(10000, 90000, n).astype(str),
        np.array(["", "", "A", "B", "C"])[rng.integers(0, 5, n)],
    )
    first, second = rng.integers(0, len(WORDS), (2, n))
    return pl.DataFrame(
        {
            "StockCode": codes,
            "Description": np.char.add(np.char.add(WORDS[first], " "), WORDS[second]),
            "UnitPrice": np.round(np.exp(rng.normal(1.0, 0.8, n)) + 0.2, 2),
        }
    )


def _invoices(rng: np.random.Generator, n: int, now: datetime) -> pl.DataFrame:
    """One row per line: invoice number (C for cancellations), date, customer, country."""
    sizes = rng.integers(1, 25, n // 2 + 2)
    invoice = np.searchsorted(np.cumsum(sizes), np.arange(n), side="right")
    m = int(invoice[-1]) + 1
    cancelled = rng.random(m) < 0.02
    guest = rng.random(m) < 0.25
    abroad = rng.random(m) < 0.1
    heads = pl.DataFrame(
        {
            "InvoiceNo": pl.Series(536365 + np.arange(m)).cast(pl.Utf8),
            "_cancel": cancelled,
            "InvoiceDate": format_times(past(rng, m, now, 1, 60).sort(), *US_DATE),
            "CustomerID": pl.Series(rng.integers(12346, 18288, m)).cast(pl.Utf8),
            "Country": pick(COUNTRIES, rng.integers(0, len(COUNTRIES), m)),
        }
    ).with_columns(
        pl.when(pl.col("_cancel")).then("C" + pl.col("InvoiceNo")).otherwise(pl.col("InvoiceNo"))
        .alias("InvoiceNo"),
        pl.when(pl.Series(guest)).then(pl.lit("")).otherwise(pl.col("CustomerID"))
        .alias("CustomerID"),
        pl.when(pl.Series(abroad)).then(pl.col("Country")).otherwise(pl.lit("United Kingdom"))
        .alias("Country"),
    )  # fmt: skip
    return heads.select(pl.all().gather(invoice))


def generate_online_retail(
    rng: np.random.Generator, rows: int, rate: float, out_dir: Path, now: datetime
) -> tuple[list[Path], list[InjectedFault], dict[str, int]]:
    """Write online_retail.csv with ``rows`` lines."""
    path = out_dir / "online_retail.csv"
    plan = FaultPlan.draw(rng, rows, FAULTS, rate)
    catalog = _catalog(rng, max(50, rows // 20))
    lines = catalog.select(pl.all().gather(rng.integers(0, catalog.height, rows)))
    special = rng.random(rows) < 0.005
    which = rng.integers(0, len(SPECIAL), rows)
    qty = QTY[rng.choice(len(QTY), rows, p=QTY_P)]
    inv = _invoices(rng, rows, now)
    cancel = inv.get_column("_cancel").to_numpy()
    adjust = ~cancel & ~special & (rng.random(rows) < 0.004)
    free = ~adjust & (rng.random(rows) < 0.003)
    unit = np.where(special, np.round(rng.uniform(1, 40, rows), 2), lines["UnitPrice"].to_numpy())
    unit = np.where(adjust | free, 0.0, unit)
    is_special, is_adjust = pl.Series(special), pl.Series(adjust)
    frame = inv.with_columns(
        pl.when(is_special).then(pick(SPECIAL, which)).otherwise(lines["StockCode"])
        .alias("StockCode"),
        pl.when(is_special).then(pick(SPECIAL_DESC, which))
        .when(is_adjust).then(pl.lit(""))
        .otherwise(lines["Description"]).alias("Description"),
        pl.Series("Quantity", np.where(cancel | adjust, -qty, qty)).cast(pl.Utf8),
        pl.Series("UnitPrice", unit).cast(pl.Utf8),
    )  # fmt: skip
    frame = _inject(plan, frame, lambda k: format_times(future(rng, k, now), *US_DATE))
    frame = frame.select(
        "InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
        "CustomerID", "Country",
    )  # fmt: skip
    write_csv(frame, path, bom=True)
    return [path], plan.faults(path.name), {path.name: rows}


def _inject(
    plan: FaultPlan, frame: pl.DataFrame, future_dates: Callable[[int], pl.Series]
) -> pl.DataFrame:
    abs_qty = pl.col("Quantity").str.strip_prefix("-")
    priced = pl.when(pl.col("UnitPrice").cast(pl.Float64) > 0).then(pl.col("UnitPrice"))
    sign = "business.quantity_sign"
    return inject(
        frame,
        plan,
        [
            ("presence.required", "StockCode", ""),
            ("type.integer", "Quantity", "six"),
            ("type.number", "UnitPrice", "2,55"),
            ("type.date", "InvoiceDate", "2010-13-01 08:26"),
            ("range.non_negative", "UnitPrice", "-11.08"),
            ("range.nonzero", "Quantity", "0"),
            (sign, "Quantity", pl.when(pl.col("_cancel")).then(abs_qty).otherwise("-" + abs_qty)),
            (
                sign,
                "UnitPrice",
                pl.when(pl.col("_cancel"))
                .then(pl.col("UnitPrice"))
                .otherwise(priced.otherwise(pl.lit("1.25"))),
            ),
            ("date.future", "InvoiceDate", future_dates),
        ],
    )
