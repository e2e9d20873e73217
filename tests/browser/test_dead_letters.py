"""The dead-letter queue in a real browser: filter it, correct a letter and redrive it (then
find the correction stored, through ``salesflow query``), discard letters. Emails are shown
masked, and a masked value sent back unchanged keeps the stored one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from salesflow.samples.generate import generate
from tests.browser.conftest import dashboard
from tests.fixtures.cli import Cli

pytestmark = [pytest.mark.browser, pytest.mark.subprocess]

ORDERS = (
    "order_id,item_id,item_desc,qty,contact_name,contact_email\n"
    "R-1,7,Lamp,2,Ann Lee,ann.lee.example.com\n"  # the email has no @
    "R-2,8,Mug,0,Bo Chan,bo.chan@example.com\n"  # quantity must be > 0
    "R-3,9,Cup,1,Cy Dee,cy@example.com\n"
)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with three orders (two rejected) and a small thelook trio with faults."""
    root = tmp_path_factory.mktemp("dlq")
    cli = Cli(root / "data")
    source = root / "orders.csv"
    source.write_text(ORDERS)
    cli.json("ingest", "--dataset", "orders_json", source)
    nested = root / "orders.json"
    nested.write_text(NESTED)
    cli.json("ingest", nested)
    thelook = generate("order_items", 60, root / "thelook", invalid_rate=0.1, seed=5)
    cli.json("ingest", *thelook.files)
    return cli.data_dir


@pytest.fixture
def cli(seeded: Path, tmp_path: Path) -> Cli:
    """A copy of the seeded data dir, for a test that changes it."""
    shutil.copytree(seeded, tmp_path / "data")
    return Cli(tmp_path / "data")


NESTED = """{"orders": [{"order-info": {"OrderId": "J-1", "item-id": "5", "item-desc": "Pen",
  "qty": "0"}, "contact-info": {"name": "Di Eve", "email": "di.eve@example.com"}}]}"""


def letter_of(cli: Cli, order_id: str) -> dict[str, object]:
    [found] = [
        x
        for x in cli.json("dlq", "list", "--dataset", "orders_json")
        if x["raw"].get("order_id") == order_id
    ]
    return found


def test_filter_the_queue_by_dataset_rule_and_status(cli: Cli, page: Page) -> None:
    every = cli.json("dlq", "list", "--limit", "1000")
    datasets = {x["dataset"] for x in every}
    assert {"orders_json", "order_items"} <= datasets
    rule = sorted(
        {r["rule"] for x in every if x["dataset"] == "order_items" for r in x["reasons"]}
    )[0]
    with dashboard(cli) as ui:
        page.goto(ui.at("/dlq"))
        expect(page.locator("#count")).to_contain_text(f"{len(every)} letters")

        page.select_option("select[name=dataset]", "orders_json")
        page.click("#filters button[type=submit]")
        shown = page.locator("article.letter")
        expect(shown).to_have_count(3)
        assert sorted(shown.evaluate_all("xs => xs.map(x => x.dataset.id)")) == sorted(
            x["id"] for x in every if x["dataset"] == "orders_json"
        )

        page.select_option("select[name=dataset]", "")
        page.select_option("select[name=rule]", rule)
        page.click("#filters button[type=submit]")
        wanted = cli.json("dlq", "list", "--rule", rule, "--limit", "1000")
        expect(shown).to_have_count(len(wanted))
        for tags in shown.evaluate_all("xs => xs.map(x => x.querySelector('header').innerText)"):
            assert rule in tags

        page.select_option("select[name=rule]", "")
        page.select_option("select[name=status]", "REDRIVEN")
        page.click("#filters button[type=submit]")
        expect(page.locator("#letters")).to_contain_text("No dead letters match")


def test_redrive_a_corrected_letter_and_find_it_stored(cli: Cli, page: Page) -> None:
    bad_email = letter_of(cli, "R-1")
    bad_qty = letter_of(cli, "R-2")
    [nested] = [x for x in cli.json("dlq", "list") if "order-info" in x["raw"]]
    with dashboard(cli) as ui:
        page.goto(ui.at("/dlq?dataset=orders_json"))
        card = page.locator(f'article[data-id="{bad_qty["id"]}"]')
        email = card.locator('[data-field="contact_email"] input')
        expect(email).to_have_value("b******@example.com")  # masked, as in the logs
        expect(card.locator(".field.bad")).to_contain_text("qty")
        card.locator('[data-field="qty"] input').fill("4")
        card.get_by_role("button", name="Redrive with these values").click()
        expect(page.locator("#notice")).to_have_text("redriven: 1, still failing: 0")
        expect(page.locator(f'article[data-id="{bad_qty["id"]}"]')).to_have_count(0)

        card = page.locator(f'article[data-id="{bad_email["id"]}"]')
        card.locator('[data-field="contact_email"] input').fill("ann.lee@example.com")
        card.get_by_role("button", name="Redrive with these values").click()
        expect(page.locator("#notice")).to_have_text("redriven: 1, still failing: 0")

        # a JSON order: each nested value has its own input, the email masked
        card = page.locator(f'article[data-id="{nested["id"]}"]')
        email = card.locator('[data-field="contact-info › email"] input')
        expect(email).to_have_value("d*****@example.com")
        expect(card.locator(".field.bad")).to_have_attribute("data-field", "order-info › qty")
        card.locator('[data-field="order-info › qty"] input').fill("2")
        card.get_by_role("button", name="Redrive with these values").click()
        expect(page.locator("#notice")).to_have_text("redriven: 1, still failing: 0")

    stored = cli.json(
        "query",
        "SELECT order_id, qty, contact_email FROM orders_json ORDER BY order_id",
    )
    assert stored == [
        {"order_id": "J-1", "qty": 2, "contact_email": "di.eve@example.com"},
        {"order_id": "R-1", "qty": 2, "contact_email": "ann.lee@example.com"},
        {"order_id": "R-2", "qty": 4, "contact_email": "bo.chan@example.com"},  # not masked
        {"order_id": "R-3", "qty": 1, "contact_email": "cy@example.com"},
    ]
    assert cli.json("dlq", "show", str(bad_qty["id"]))["status"] == "REDRIVEN"
    assert cli.run("audit", code=None).returncode == 0


def test_a_correction_that_still_fails_stays_in_the_queue(cli: Cli, page: Page) -> None:
    bad_email = letter_of(cli, "R-1")
    with dashboard(cli) as ui:
        page.goto(ui.at("/dlq?dataset=orders_json"))
        card = page.locator(f'article[data-id="{bad_email["id"]}"]')
        card.locator('[data-field="contact_email"] input').fill("still-not-an-email")
        card.get_by_role("button", name="Redrive with these values").click()
        expect(page.locator("#notice")).to_have_text("redriven: 0, still failing: 1")
        expect(page.locator(f'article[data-id="{bad_email["id"]}"]')).to_have_count(1)
    assert cli.json("dlq", "show", str(bad_email["id"]))["status"] == "NEW"


def test_discard_the_selected_letters(cli: Cli, page: Page) -> None:
    chosen = [letter_of(cli, "R-1")["id"], letter_of(cli, "R-2")["id"]]
    with dashboard(cli) as ui:
        page.goto(ui.at("/dlq?dataset=orders_json"))
        for letter_id in chosen:
            page.locator(f'article[data-id="{letter_id}"] input[type=checkbox]').check()
        page.get_by_role("button", name="Discard").first.click()
        expect(page.locator("#notice")).to_have_text("discarded: 2")
        left = page.locator("article.letter").evaluate_all("xs => xs.map(x => x.dataset.id)")
        assert not set(chosen) & set(left) and len(left) == 1  # the JSON order is still open
    discarded = cli.json("dlq", "list", "--status", "DISCARDED", "--dataset", "orders_json")
    assert sorted(x["id"] for x in discarded) == sorted(chosen)
