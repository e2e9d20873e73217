"""The real Online Retail sample (seed 000) through ``salesflow ingest`` on the local backend.

The expected totals per invoice are computed here independently, with the ``csv`` module and
the rules as the dataset documents them (cancellations valid with a negative Quantity,
stock adjustments valid at UnitPrice 0, a negative Quantity with a price outside a
cancellation rejected, Quantity 0 rejected, a negative UnitPrice rejected).
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import pytest

from tests.fixtures.cli import Cli, backend_of
from tests.fixtures.common import ONLINE_RETAIL_SAMPLE

pytestmark = pytest.mark.subprocess

REQUIRED = ("InvoiceNo", "StockCode", "Quantity", "InvoiceDate", "UnitPrice")


def _is_valid(row: dict[str, str]) -> bool:
    if any(not (row.get(f) or "").strip() for f in REQUIRED):
        return False
    try:
        quantity = int(row["Quantity"])
        price = float(row["UnitPrice"])
        datetime.strptime(row["InvoiceDate"].strip(), "%m/%d/%Y %H:%M")
    except ValueError:
        return False
    if not math.isfinite(price) or price < 0 or quantity == 0:
        return False
    if row["InvoiceNo"].startswith("C"):
        return quantity < 0
    return not (quantity < 0 and price > 0)


def expected_totals(path: Path) -> tuple[dict[str, tuple[float, int]], set[int], int]:
    """(invoice -> (amount, lines)) over valid lines, rejected record numbers, rows in."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    rejected: set[int] = set()
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for n, row in enumerate(rows, 1):
        if _is_valid(row):
            entry = totals[row["InvoiceNo"]]
            entry[0] += int(row["Quantity"]) * float(row["UnitPrice"])
            entry[1] += 1
        else:
            rejected.add(n)
    return {k: (v[0], int(v[1])) for k, v in totals.items()}, rejected, len(rows)


def test_online_retail_sample_totals_per_invoice_match_an_independent_count(
    tmp_path: Path,
) -> None:
    want, want_rejected, rows = expected_totals(ONLINE_RETAIL_SAMPLE)
    assert rows == 9999 and len(want) > 400

    cli = Cli(tmp_path / "data")
    [state] = cli.json("ingest", ONLINE_RETAIL_SAMPLE)
    assert state["dataset"] == "online_retail" and state["status"] == "SUCCESS"
    assert (state["rows_in"], state["rejected"]) == (rows, len(want_rejected))

    totals = cli.json("totals", "--by", "invoice", "--dataset", "online_retail")
    got = {t["id"]: (t["total_amount"], t["records"]) for t in totals}
    assert got.keys() == want.keys()
    wrong = {
        k: (got[k], want[k])
        for k in want
        if got[k][1] != want[k][1] or got[k][0] != pytest.approx(want[k][0], abs=1e-6)
    }
    assert not wrong, f"{len(wrong)} invoices differ, e.g. {list(wrong.items())[:3]}"
    cancellations = [k for k in got if k.startswith("C")]
    assert cancellations and all(got[k][0] < 0 for k in cancellations)

    with backend_of(cli.data_dir) as backend:
        letters = backend.letters.find()
    assert {x.record for x in letters} == want_rejected
    assert cli.run("audit", code=None).returncode == 0
