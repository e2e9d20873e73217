"""The real 9,999-row Online Retail sample (seed 000), checked against counts computed
independently with the ``csv`` module."""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from datetime import datetime
from decimal import Decimal

import polars as pl
import pytest

from tests.fixtures.common import ONLINE_RETAIL_SAMPLE
from tests.fixtures.samples import validate


@pytest.fixture(scope="module")
def expected() -> dict[str, object]:
    with ONLINE_RETAIL_SAMPLE.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    per_invoice: dict[str, Decimal] = defaultdict(Decimal)
    for r in rows:
        per_invoice[r["InvoiceNo"]] += Decimal(r["Quantity"]) * Decimal(r["UnitPrice"])
    days = Counter(datetime.strptime(r["InvoiceDate"], "%m/%d/%Y %H:%M").date() for r in rows)
    return {
        "rows": len(rows),
        "cancellations": sum(r["InvoiceNo"].startswith("C") for r in rows),
        "guests": sum(r["CustomerID"] == "" for r in rows),
        "invoices": per_invoice,
        "days": days,
        "post": sum(r["StockCode"] == "POST" for r in rows),
    }


def test_real_sample_parses_exactly(expected: dict[str, object]) -> None:
    result = validate(ONLINE_RETAIL_SAMPLE, "online_retail")
    valid = result.valid
    assert result.report.rows_in == expected["rows"] == 9999
    assert result.report.rejected == 0, result.report.to_dict()["samples"]
    assert result.report.warnings == []
    assert int(valid["is_cancellation"].sum()) == expected["cancellations"]
    assert valid["CustomerID"].is_null().sum() == expected["guests"]
    assert (valid["StockCode"] == "POST").sum() == expected["post"]
    assert valid["_key"].n_unique() == valid.height


def test_real_sample_amount_per_invoice(expected: dict[str, object]) -> None:
    valid = validate(ONLINE_RETAIL_SAMPLE, "online_retail").valid
    totals = dict(valid.group_by("InvoiceNo").agg(pl.col("amount").sum()).iter_rows())
    invoices = expected["invoices"]
    assert isinstance(invoices, dict)
    assert set(totals) == set(invoices)
    for invoice, amount in invoices.items():
        assert totals[invoice] == pytest.approx(float(amount), abs=1e-6), invoice
    cancelled = {k: v for k, v in invoices.items() if k.startswith("C")}
    assert all(v <= 0 for v in cancelled.values())


def test_real_sample_days(expected: dict[str, object]) -> None:
    valid = validate(ONLINE_RETAIL_SAMPLE, "online_retail", chunk_rows=2500).valid
    assert dict(Counter(valid["_day"].to_list())) == expected["days"]
