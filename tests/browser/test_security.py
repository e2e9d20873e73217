"""What the dashboard must refuse: a bind beyond loopback without a token, a request without
the token (or with a wrong one), a foreign ``Host`` on loopback, and a POST without a valid
CSRF token, from a script or from another page in the browser.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.conftest import dashboard
from tests.fixtures.cli import Cli

pytestmark = [pytest.mark.browser, pytest.mark.subprocess]

ORDERS = (
    "order_id,item_id,item_desc,qty,contact_name,contact_email\n"
    "S-1,7,Lamp,0,Ann Lee,ann@example.com\n"
)
TOKEN = "test-token-0123456789"


def load(tmp_path: Path) -> tuple[Cli, str]:
    cli = Cli(tmp_path / "data")
    source = tmp_path / "orders.csv"
    source.write_text(ORDERS)
    cli.json("ingest", "--dataset", "orders_json", source)
    [letter] = cli.json("dlq", "list")
    return cli, str(letter["id"])


def test_binding_beyond_loopback_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "data")
    result = cli.run("ui", "--host", "0.0.0.0", "--port", "0", code=2, timeout=60)
    assert "refusing to bind the dashboard to 0.0.0.0 without a token" in result.stderr
    assert "SALESFLOW_UI__TOKEN" in result.stderr
    assert result.stdout == ""  # it never served


def test_with_a_token_every_request_needs_it(tmp_path: Path, context: BrowserContext) -> None:
    cli, _ = load(tmp_path)
    with dashboard(cli, env={"SALESFLOW_UI__TOKEN": TOKEN}) as ui:
        assert ui.login == f"{ui.url}?token={TOKEN}"
        for path in ("/", "/files", "/dlq", "/api/state", "/static/app.js"):
            assert httpx.get(ui.at(path)).status_code == 401, path
            wrong = httpx.get(ui.at(path), headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 403, path
        assert httpx.get(ui.at("/?token=nope")).status_code == 403
        bearer = httpx.get(ui.at("/api/state"), headers={"Authorization": f"Bearer {TOKEN}"})
        assert bearer.status_code == 200 and "version" in bearer.json()

        page = context.new_page()
        page.goto(ui.login)  # sets the cookie and drops the token from the address bar
        assert page.url == ui.url
        expect(page.locator("#chart-revenue")).to_be_attached()
        page.goto(ui.at("/dlq"))
        expect(page.locator("article.letter")).to_have_count(1)
        cookie = {c["name"]: c for c in context.cookies()}["salesflow_token"]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"


def test_on_loopback_without_a_token_a_foreign_host_is_refused(tmp_path: Path) -> None:
    cli, _ = load(tmp_path)
    with dashboard(cli) as ui:
        assert httpx.get(ui.url).status_code == 200
        rebound = httpx.get(ui.url, headers={"Host": "attacker.example:8050"})
        assert rebound.status_code == 403  # a DNS-rebinding page cannot read the dashboard


def test_a_post_without_a_valid_csrf_token_is_refused(tmp_path: Path, page: Page) -> None:
    cli, letter_id = load(tmp_path)
    with dashboard(cli) as ui:
        page.goto(ui.at("/dlq"))  # the browser now holds the CSRF cookie
        no_token = page.request.post(ui.at("/dlq/discard"), form={"ids": letter_id})
        assert no_token.status == 403
        forged = page.request.post(
            ui.at("/dlq/discard"), form={"ids": letter_id, "_csrf_token": "forged"}
        )
        assert forged.status == 403
        assert httpx.post(ui.at("/dlq/discard"), data={"ids": letter_id}).status_code == 403

        # another page in the same browser posts a form to the dashboard
        page.set_content(
            f'<form id="f" method="post" action="{ui.at("/dlq/discard")}">'
            f'<input name="ids" value="{letter_id}"></form>'
        )
        with page.expect_response(ui.at("/dlq/discard")) as response:
            page.evaluate("document.getElementById('f').submit()")
        assert response.value.status == 403
    assert cli.json("dlq", "show", letter_id)["status"] == "NEW"  # nothing changed
