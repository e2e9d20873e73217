"""The dashboard in a real browser: the charts draw exactly what ``salesflow kpis`` prints,
the filters narrow them, and the pages refresh by themselves while ``salesflow run`` works.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from salesflow.samples.generate import generate
from tests.browser.conftest import dashboard
from tests.fixtures.cli import Cli, drop_file, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.subprocess]

SERIES = ("revenue", "orders", "avg_basket", "return_rate")


@dataclass
class Loaded:
    cli: Cli
    url: str

    def at(self, path: str) -> str:
        return self.url.rstrip("/") + path


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    root = tmp_path_factory.mktemp("ui")
    out = root / "files"
    files: list[Path] = []
    files += generate("order_items", 400, out / "thelook", invalid_rate=0.02, seed=31).files
    files += generate("online_retail", 300, out / "retail", invalid_rate=0.02, seed=32).files
    cli = Cli(root / "data")
    cli.json("ingest", *files)
    with dashboard(cli) as ui:  # read-only tests share one server
        yield Loaded(cli, ui.url)


def chart(page: Page, name: str) -> dict[str, Any]:
    """What the chart on the page holds: its labels and its one series."""
    data: dict[str, Any] = page.evaluate(
        """(id) => { const c = Chart.getChart(id);
                     return c && {labels: c.data.labels, values: c.data.datasets[0].data}; }""",
        f"chart-{name}",
    )
    assert data, f"no chart {name} on the page"
    return data


def same(drawn: list[Any], printed: list[Any]) -> bool:
    return len(drawn) == len(printed) and all(
        (a is None and b is None) or math.isclose(a, b, rel_tol=1e-9, abs_tol=0.005)
        for a, b in zip(drawn, printed, strict=True)
    )


def assert_charts_match(page: Page, rows: list[dict[str, Any]]) -> None:
    assert rows, "the CLI printed no KPIs: the data set has none"
    for name in SERIES:
        drawn = chart(page, name)
        assert drawn["labels"] == [r["day"] for r in rows], name
        assert same(drawn["values"], [r[name] for r in rows]), name


def test_the_charts_show_what_salesflow_kpis_prints(loaded: Loaded, page: Page) -> None:
    page.goto(loaded.url)
    expect(page.locator("#chart-revenue")).to_be_visible()
    assert_charts_match(page, loaded.cli.json("kpis"))

    by_category = loaded.cli.json("kpis", "--by", "category")
    revenue: dict[str, float] = {}
    for row in by_category:
        revenue[row["category"]] = revenue.get(row["category"], 0.0) + row["revenue"]
    drawn = chart(page, "categories")
    assert sorted(drawn["labels"]) == sorted(revenue)
    for label, value in zip(drawn["labels"], drawn["values"], strict=True):
        assert math.isclose(value, revenue[label], abs_tol=0.005), label
    assert drawn["values"] == sorted(drawn["values"], reverse=True)
    assert page.errors == []  # type: ignore[attr-defined]


def test_date_range_and_category_narrow_the_charts(loaded: Loaded, page: Page) -> None:
    days = [r["day"] for r in loaded.cli.json("kpis")]
    since, until = days[len(days) // 4], days[len(days) // 2]
    category = loaded.cli.json("kpis", "--by", "category")[0]["category"]
    page.goto(loaded.url)
    page.fill("input[name=start]", since)
    page.fill("input[name=end]", until)
    page.select_option("select[name=category]", category)
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**category=**")
    expected = loaded.cli.json("kpis", "--category", category, "--from", since, "--to", until)
    assert 0 < len(expected) < len(days)
    assert_charts_match(page, expected)
    expect(page.locator("h2", has_text=f"Daily KPIs of {category}")).to_be_visible()


def test_online_retail_totals_by_invoice_customer_and_day(loaded: Loaded, page: Page) -> None:
    for by in ("invoice", "customer", "day"):
        page.goto(loaded.at(f"/?by={by}"))
        printed = loaded.cli.json("totals", "--by", by, "--dataset", "online_retail")
        first = page.locator("#totals tbody tr").first.locator("td").all_inner_texts()
        if by == "day":
            top = max(printed, key=lambda r: r["id"])
        else:
            top = sorted(printed, key=lambda r: (-r["total_amount"], r["id"]))[0]
        assert first[0] == top["id"], by
        assert float(first[1].replace(",", "")) == pytest.approx(top["total_amount"], abs=0.005)
        expect(page.locator("#totals .hint")).to_contain_text(f"{len(printed):,} {by}")


def test_pages_refresh_by_themselves_while_salesflow_run_processes_files(
    loaded: Loaded, page: Page, tmp_path: Path
) -> None:
    cli = Cli(tmp_path / "data")
    inbox = cli.data_dir / "bucket" / "inbox"
    with contextlib.ExitStack() as stack, cli.service("--poll", "0.2") as service:
        # The dashboard refuses a folder that holds no salesflow data: wait for run to make it.
        wait_for((cli.data_dir / "salesflow.db").exists, timeout=60, what="the data dir")
        ui = stack.enter_context(dashboard(cli))
        page.goto(ui.at("/files"))
        expect(page.locator("#lineage")).to_contain_text("no files yet")
        page.evaluate("window.__stayed = true")  # gone if the page were reloaded

        event = {
            "sale_id": "S-1",
            "product": "lamp",
            "price": 12.5,
            "quantity": 2,
            "timestamp": "2024-06-01T10:00:00Z",
            "customer_email": "ann@example.com",
        }
        drop_file(inbox / "sale_events", "s1.json", json.dumps(event))
        row = page.locator('tr[data-file="inbox/sale_events/s1.json"]')
        expect(row).to_contain_text("SUCCESS", timeout=60_000)

        products = generate("products", 5, tmp_path / "gen", seed=3).files
        drop_file(inbox / "products", "p.csv", products[0].read_bytes())
        expect(page.locator("#pending")).to_contain_text("inbox/products/p.csv", timeout=60_000)
        expect(page.locator("#pending")).to_contain_text("waiting for orders, order_items")
        assert page.evaluate("window.__stayed === true")
        service.assert_alive()
