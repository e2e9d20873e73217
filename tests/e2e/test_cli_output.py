"""What the commands print for people and scripts: money in cents, a generator that writes
what was asked and summarises it, help that speaks of datasets by name."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from salesflow.datasets import SPECS
from tests.fixtures.cli import Cli

pytestmark = pytest.mark.subprocess

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
NOT_CENTS = re.compile(r"\.\d{3,}")


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "data")


def money(rows: list[dict[str, object]], *columns: str) -> list[float]:
    values = [r[c] for r in rows for c in columns if r.get(c) is not None]
    assert values, rows
    return [float(v) for v in values if isinstance(v, int | float)]


def test_money_in_json_output_is_in_cents(cli: Cli, tmp_path: Path) -> None:
    # 3 x 7.40 is 22.200000000000003 in floating point; 0.1 + 0.2 is 0.30000000000000004
    lines = [
        "536365,A,Lamp,3,12/1/2010 8:26,7.40,17850,United Kingdom",
        "536366,B,Pen,1,12/1/2010 9:00,0.10,17850,United Kingdom",
        "536366,C,Pad,1,12/1/2010 9:00,0.20,17850,United Kingdom",
    ]
    retail = tmp_path / "retail.csv"
    retail.write_text(HEADER + "\n" + "\n".join(lines) + "\n")
    trio = tmp_path / "thelook"
    cli.run("generate", "order_items", "--rows", "400", "--out", trio, "--seed", "3")
    env = {"SALESFLOW_ALERTS__THRESHOLD": "20"}
    cli.run("ingest", retail, *sorted(trio.glob("*.csv")), env=env)
    totals = cli.json("totals", "--by", "invoice")
    assert {t["id"]: t["total_amount"] for t in totals} == {"536365": 22.2, "536366": 0.3}
    alerts = cli.json("alerts")
    [alert] = [a for a in alerts if a["dataset"] == "online_retail"]
    assert alert["amount"] == 22.2
    for value in money(alerts, "amount"):
        assert not NOT_CENTS.search(repr(value)), value
    kpis = cli.json("kpis") + cli.json("kpis", "--by", "category")
    for value in money(kpis, "revenue", "avg_basket"):
        assert not NOT_CENTS.search(repr(value)), value
    for value in money(kpis, "return_rate"):
        assert value == round(value, 4)
    days = cli.json("totals", "--by", "day", "--dataset", "order_items")
    for value in money(days, "total_amount"):
        assert not NOT_CENTS.search(repr(value)), value


@pytest.mark.parametrize("dataset", ["products", "orders", "online_retail", "sale_events"])
def test_generate_writes_only_the_dataset_asked_for(cli: Cli, tmp_path: Path, dataset: str) -> None:
    out = tmp_path / "out"
    summary = cli.json("generate", dataset, "--rows", "200", "--out", out)
    assert len(summary["files"]) == 1 and summary["records"] == {summary["files"][0]: 200}
    assert [p.name for p in out.iterdir()] == summary["files"]
    [state] = cli.json("ingest", out / summary["files"][0])
    assert state["dataset"] == dataset and state["rows_in"] == 200


def test_generate_order_items_says_why_it_writes_three_files(cli: Cli, tmp_path: Path) -> None:
    result = cli.run("generate", "order_items", "--rows", "100", "--out", tmp_path / "o")
    text = " ".join(result.stdout.split())
    assert "refer to products and orders" in text
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "order_items.csv",
        "orders.csv",
        "products.csv",
    ]


def test_invalid_rate_is_the_share_of_records_with_a_fault_and_json_is_a_summary(
    cli: Cli, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = ("generate", "online_retail", "--rows", "14000", "--out", out, "--invalid-rate", "0.1")
    result = cli.run(*args, "--json")
    assert len(result.stdout.splitlines()) < 60, "a summary, not one line per fault"
    summary = json.loads(result.stdout)
    assert summary["faulty_records"] == 1400 and "faults" not in summary
    assert sum(summary["fault_counts"][summary["files"][0]].values()) == 1400
    [report] = cli.json("validate", out / summary["files"][0])
    assert report["rejected"] == 1400


def test_help_speaks_of_datasets_by_name(cli: Cli) -> None:
    pages = [
        cli.run(*args, "--help").stdout
        for args in (
            (),
            ("totals",),
            ("generate",),
            ("ingest",),
            ("kpis",),
            ("validate",),
            ("demo",),
        )
    ]
    text = " ".join(" ".join(pages).split())
    assert not re.search(r"seed \d", text, re.IGNORECASE), text
    assert "online_retail" in text and all(name in text for name in SPECS)
