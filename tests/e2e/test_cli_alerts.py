"""Alerts through the real ``salesflow`` program: the service beside a webhook that hangs,
``ingest`` that leaves undelivered alerts PENDING and says so, ``alerts`` filters, and
``alerts retry`` for users who only run ``ingest``. Receivers are real loopback servers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.cli import Cli, backend_of, drop_file, wait_for
from tests.fixtures.servers import WebhookServer, webhook_server  # noqa: F401 - fixture

pytestmark = [pytest.mark.subprocess, pytest.mark.network]

REACT_SECONDS = 30.0
"""Ceiling for the service to notice and process a small file on a loaded machine."""


def sale(sale_id: str, price: float) -> dict[str, Any]:
    return {
        "sale_id": sale_id,
        "product": "Desk",
        "category": "Office",
        "price": price,
        "quantity": 1,
        "timestamp": "2024-05-04T10:30:00Z",
    }


def sales_file(path: Path, *sales: dict[str, Any]) -> Path:
    path.write_text("\n".join(json.dumps(s) for s in sales) + "\n")
    return path


def hook_env(url: str, **more: str) -> dict[str, str]:
    return {
        "SALESFLOW_ALERTS__SINKS": '["jsonl", "webhook"]',
        "SALESFLOW_ALERTS__WEBHOOK_URL": url,
        **more,
    }


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "data")


def alerts_by_id(cli: Cli) -> dict[str, dict[str, Any]]:
    return {a["id"]: a for a in cli.json("alerts", "--limit", "1000")}


def test_a_hanging_webhook_never_delays_the_next_file(
    cli: Cli,
    webhook_server: WebhookServer,  # noqa: F811
) -> None:
    """The webhook holds the first file's alert unanswered (its timeout is longer than the
    test); the second file is processed while that request is still open."""
    webhook_server.hang()
    env = hook_env(webhook_server.url, SALESFLOW_ALERTS__WEBHOOK_TIMEOUT="600")
    inbox = cli.data_dir / "bucket" / "inbox" / "sale_events"
    hook_id = "sale_events:vip-1@webhook"
    with cli.service(env=env) as svc:
        drop_file(inbox, "vip.json", json.dumps(sale("vip-1", 900.0)))
        assert webhook_server.wait_for(1, timeout=REACT_SECONDS), svc.stderr
        drop_file(inbox, "next.json", json.dumps(sale("small-1", 20.0)))

        def next_done() -> bool:
            with backend_of(cli.data_dir) as backend:
                rows = backend.tables.list_files(key="inbox/sale_events/next.json")
            return any(row.status.value == "SUCCESS" for row in rows)

        wait_for(next_done, timeout=REACT_SECONDS, what="the next file, while the hook hangs")
        # the order proves it: the next file is done and the alert's request is still open
        assert webhook_server.received == []
        in_flight = alerts_by_id(cli)
        assert in_flight[hook_id]["status"] == "SENDING"
        assert in_flight["sale_events:vip-1@jsonl"]["status"] == "SENT"  # never held up
        webhook_server.release()
        sent = wait_for(
            lambda: (a := alerts_by_id(cli)[hook_id])["status"] == "SENT" and a,
            timeout=REACT_SECONDS,
            what="the alert once the receiver answers",
        )
        assert svc.stop() == 0, svc.stderr
    assert sent["attempts"] == 1
    assert [r.headers["Idempotency-Key"] for r in webhook_server.received] == [hook_id]


def test_ingest_then_alerts_filters_then_alerts_retry(
    cli: Cli,
    tmp_path: Path,
    webhook_server: WebhookServer,  # noqa: F811
) -> None:
    webhook_server.answer(500)
    secret = webhook_server.url.replace("http://", "http://bot:s3cret@") + "/T0AB12CD/xYz9QwErTy"
    env = hook_env(secret)
    first = sales_file(tmp_path / "a.jsonl", sale("A1", 900), sale("A2", 950), sale("A3", 10))
    second = sales_file(tmp_path / "b.jsonl", sale("B1", 990))

    ingested = cli.run("ingest", first, second, "--dataset", "sale_events", env=env)
    out = ingested.stderr  # the warning goes to stderr, stdout stays the table
    assert "alerts not delivered yet: 3 PENDING" in " ".join(out.split()), ingested
    assert "HTTP 500" in out and "salesflow alerts retry" in " ".join(out.split())
    assert "s3cret" not in out + ingested.stdout and "xYz9QwErTy" not in out + ingested.stdout

    pending = cli.json("alerts", "--status", "pending", env=env)
    assert sorted(a["id"] for a in pending) == [
        "sale_events:A1@webhook",
        "sale_events:A2@webhook",
        "sale_events:B1@webhook",
    ]
    assert all("s3cret" not in a["error"] for a in pending if a["error"])
    by_file = cli.json("alerts", "--file", "inbox/sale_events/b.jsonl", env=env)
    assert sorted(a["id"] for a in by_file) == ["sale_events:B1@jsonl", "sale_events:B1@webhook"]
    assert cli.json("alerts", "--dataset", "orders_json", env=env) == []
    limited = cli.run("alerts", "--limit", "2", env=env).stdout
    assert "showing the newest 2 of 6 alerts" in limited  # three sales, two sinks
    table = cli.run("alerts", "--status", "PENDING", env=env).stdout
    assert "HTTP 500" in table and "***" in table
    assert "s3cret" not in table and "xYz9QwErTy" not in table and "T0AB12CD" not in table
    bad = cli.run("alerts", "--status", "LOST", env=env, code=2)
    assert "--status takes PENDING, SENDING, SENT, FAILED" in " ".join(bad.stderr.split())

    down = cli.run("alerts", "retry", env=env, code=1)
    assert "HTTP 500" in down.stdout and "s3cret" not in down.stdout

    webhook_server.answer(200)
    up = cli.run("alerts", "retry", env=env)
    assert "3 sent" in up.stdout
    keys = sorted(r.headers["Idempotency-Key"] for r in webhook_server.ok())
    assert keys == ["sale_events:A1@webhook", "sale_events:A2@webhook", "sale_events:B1@webhook"]
    assert {a["status"] for a in cli.json("alerts", env=env)} == {"SENT"}
    again = cli.run("alerts", "retry", env=env)
    assert "nothing to deliver" in again.stdout
    assert len(webhook_server.ok()) == 3


def test_alerts_retry_failed_gives_given_up_alerts_one_more_attempt(
    cli: Cli,
    tmp_path: Path,
    webhook_server: WebhookServer,  # noqa: F811
) -> None:
    webhook_server.answer(503)
    env = hook_env(webhook_server.url, SALESFLOW_ALERTS__RETRY_FOR_SECONDS="0")
    cli.run("ingest", sales_file(tmp_path / "c.jsonl", sale("C1", 900)), "--json", env=env)
    hook_id = "sale_events:C1@webhook"
    assert alerts_by_id(cli)[hook_id]["status"] == "FAILED"  # no retry horizon: given up
    assert cli.json("alerts", "--status", "failed", env=env)[0]["id"] == hook_id

    webhook_server.answer(200)
    assert "nothing to deliver" in cli.run("alerts", "retry", env=env).stdout
    assert alerts_by_id(cli)[hook_id]["status"] == "FAILED"  # plain retry leaves FAILED alone
    cli.run("alerts", "retry", "--failed", env=env)
    done = alerts_by_id(cli)[hook_id]
    assert (done["status"], done["attempts"], done["error"]) == ("SENT", 2, None)

    unknown = cli.run("alerts", "retry", "--id", "sale_events:nope@webhook", env=env, code=1)
    assert "no alert with id 'sale_events:nope@webhook'" in unknown.stderr


def test_ingest_json_stays_clean_and_warns_on_stderr(
    cli: Cli,
    tmp_path: Path,
    webhook_server: WebhookServer,  # noqa: F811
) -> None:
    webhook_server.answer(500)
    env = hook_env(webhook_server.url)
    result = cli.run("ingest", sales_file(tmp_path / "d.jsonl", sale("D1", 900)), "--json", env=env)
    (state,) = json.loads(result.stdout)
    assert state["status"] == "SUCCESS"
    assert "alerts not delivered yet: 1 PENDING" in " ".join(result.stderr.split())
