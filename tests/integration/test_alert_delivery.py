"""Delivery against real receivers on loopback: a webhook that fails then recovers, one that
hangs, a mail server that defers. Alerts live in a real SQLite file. Nothing sleeps: tests
wait on what the servers saw, or step a fake clock to the next attempt."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from salesflow.adapters.alerts import JsonlNotifier, SmtpNotifier, WebhookNotifier
from salesflow.adapters.sqlite.tables import SqliteTables
from salesflow.config import Settings, SmtpSettings
from salesflow.models import Alert, AlertStatus
from salesflow.pipeline.alert_loop import AlertLoop
from salesflow.pipeline.delivery import Courier, RetryPolicy
from salesflow.pipeline.inbox import ingest
from tests.fixtures.memory import memory_backend
from tests.fixtures.servers import (  # noqa: F401 - fixtures
    SmtpServer,
    WebhookServer,
    smtp_server,
    webhook_server,
)

pytestmark = pytest.mark.network
T0 = datetime(2024, 5, 1, 12, tzinfo=UTC)


@pytest.fixture
def tables(tmp_path: Path) -> Iterator[SqliteTables]:
    found = SqliteTables(tmp_path / "salesflow.db")
    yield found
    found.close()


def alert(key: str, sink: str, created: datetime | None = None) -> Alert:
    return Alert(
        id=f"sale_events:{key}@{sink}",
        dataset="sale_events",
        record_key=key,
        amount=900.0,
        threshold=400.0,
        source_file=f"inbox/sale_events/{key}.json",
        message=f"sale {key} by foobar@test.com",
        created_at=created or datetime.now(UTC),
    )


def test_a_webhook_that_fails_for_a_while_gets_the_alert_after_backoff(
    tables: SqliteTables,
    webhook_server: WebhookServer,  # noqa: F811
) -> None:
    """Three 500s, then 200: the delivery thread keeps retrying with backoff and delivers;
    every attempt carries the same Idempotency-Key."""
    webhook_server.fail_first(3, status=500)
    hook = WebhookNotifier(webhook_server.url, timeout=5)
    tables.add_alerts([alert("vip", "webhook")])
    policy = RetryPolicy(base_seconds=0.05, max_seconds=0.2)
    loop = AlertLoop(Courier(tables, [hook], policy), poll_seconds=30).start()
    try:
        assert webhook_server.wait_for(4, timeout=30), webhook_server.received
        assert loop.stop(timeout=10)
    finally:
        loop.stop(timeout=10)
        hook.close()
    assert [r.status for r in webhook_server.received] == [500, 500, 500, 200]
    assert {r.headers["Idempotency-Key"] for r in webhook_server.received} == {
        "sale_events:vip@webhook"
    }
    (sent,) = tables.list_alerts()
    assert (sent.status, sent.attempts, sent.error) == (AlertStatus.SENT, 4, None)


def test_the_default_policy_keeps_retrying_for_an_hour() -> None:
    """The defaults retry for an hour: a sink down for minutes loses nothing."""
    policy = RetryPolicy.from_settings(Settings().alerts)
    late = alert("x", "webhook", created=T0)
    late.attempts = 5
    assert policy.next_attempt(late, T0 + timedelta(seconds=5), random.Random(1)) is not None
    assert policy.next_attempt(late, T0 + timedelta(minutes=59), random.Random(1)) is not None
    assert policy.next_attempt(late, T0 + timedelta(minutes=60), random.Random(1)) is None


def test_a_hanging_webhook_costs_one_timeout_per_pass_and_never_delays_other_sinks(
    tmp_path: Path,
    tables: SqliteTables,
    webhook_server: WebhookServer,  # noqa: F811
) -> None:
    webhook_server.hang()
    hook = WebhookNotifier(webhook_server.url, timeout=0.5)
    jsonl = JsonlNotifier(tmp_path / "alerts.jsonl")
    tables.add_alerts([alert(f"s{n}", sink) for n in range(3) for sink in ("webhook", "jsonl")])
    courier = Courier(tables, [hook, jsonl], RetryPolicy())
    try:
        result = courier.deliver_due()
    finally:
        hook.close()
    assert webhook_server.count == 1  # one attempt, not one per alert
    assert (result.sent, result.retrying, result.left) == (3, 1, 2)
    assert "did not answer within 0.5s" in result.errors["webhook"]
    lines = [json.loads(x)["id"] for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert lines == [f"sale_events:s{n}@jsonl" for n in range(3)]
    hooks = {a.id: a for a in tables.list_alerts(AlertStatus.PENDING)}
    assert [hooks[f"sale_events:s{n}@webhook"].attempts for n in range(3)] == [1, 0, 0]
    assert "did not answer within 0.5s" in (hooks["sale_events:s0@webhook"].error or "")


def test_ingest_delivers_within_its_budget_and_leaves_the_rest_pending(
    tmp_path: Path,
    webhook_server: WebhookServer,  # noqa: F811
) -> None:
    """A receiver that hangs holds ``ingest`` for at most its timeout: the files are
    stored, the alerts stay PENDING for later."""
    webhook_server.hang()
    hook = WebhookNotifier(webhook_server.url, timeout=0.5)
    backend = memory_backend(hook)
    settings = Settings(data_dir=tmp_path, alerts={"ingest_budget_seconds": 0.1})
    sales = tmp_path / "sales.jsonl"
    sales.write_text(
        "\n".join(
            json.dumps(
                {
                    "sale_id": f"S{n}",
                    "product": "Desk",
                    "category": "Office",
                    "price": 900.0,
                    "quantity": 1,
                    "timestamp": "2024-05-04T10:30:00Z",
                }
            )
            for n in range(3)
        )
    )
    try:
        (state,) = ingest(backend, settings, [sales], dataset="sale_events")
    finally:
        hook.close()
    assert state.status == "SUCCESS" and state.valid == 3
    assert webhook_server.count == 1
    pending = backend.tables.list_alerts(AlertStatus.PENDING)
    assert len(pending) == 3 and sum(a.attempts for a in pending) == 1


def test_webhook_user_info_is_sent_as_basic_auth_and_never_shown(
    tables: SqliteTables,
    webhook_server: WebhookServer,  # noqa: F811
) -> None:
    secret_url = webhook_server.url.replace("http://", "http://bot:s3cret@") + "/xYz9QwErTy12"
    webhook_server.answer(503)
    hook = WebhookNotifier(secret_url, timeout=5)
    tables.add_alerts([alert("vip", "webhook")])
    try:
        Courier(tables, [hook], RetryPolicy()).deliver_due()
    finally:
        hook.close()
    (got,) = webhook_server.received
    assert got.headers["Authorization"] == "Basic " + base64.b64encode(b"bot:s3cret").decode()
    assert got.path == "/hooks/sales/xYz9QwErTy12"
    (stored,) = tables.list_alerts()
    assert stored.error and "HTTP 503" in stored.error
    assert "s3cret" not in stored.error and "xYz9QwErTy12" not in stored.error
    assert "/hooks/sales/***" in stored.error and "***@127.0.0.1" in stored.error
    assert "s3cret" not in repr(hook.shown_url)


def test_a_mail_server_that_defers_gets_the_alert_on_the_next_attempt(
    tables: SqliteTables,
    smtp_server: SmtpServer,  # noqa: F811
) -> None:
    smtp_server.box.refuse = 1
    mail = SmtpNotifier(
        SmtpSettings(host=smtp_server.host, port=smtp_server.port, recipients=["ops@shop.test"])
    )
    tables.add_alerts([alert("vip", "smtp", created=T0)])
    clock = [T0]
    courier = Courier(tables, [mail], RetryPolicy(), clock=lambda: clock[0])

    first = courier.deliver_due()
    assert first.retrying == 1 and smtp_server.box.refused == 1
    (waiting,) = tables.list_alerts()
    assert waiting.status == AlertStatus.PENDING and "451" in (waiting.error or "")
    assert waiting.next_attempt_at is not None
    assert courier.deliver_due().sent == 0  # not due yet
    clock[0] = waiting.next_attempt_at
    assert courier.deliver_due().sent == 1
    (msg,) = smtp_server.box.messages
    assert msg["X-Salesflow-Alert-Id"] == "sale_events:vip@smtp"
    (sent,) = tables.list_alerts()
    assert (sent.status, sent.attempts) == (AlertStatus.SENT, 2)


def test_two_processes_retrying_at_once_send_each_alert_once(
    tmp_path: Path,
    webhook_server: WebhookServer,  # noqa: F811
) -> None:
    """Two couriers on two connections to one SQLite file (the service's thread and
    `alerts retry`): each alert is claimed by exactly one of them."""
    path = tmp_path / "salesflow.db"
    first, second = SqliteTables(path), SqliteTables(path)
    hooks = [WebhookNotifier(webhook_server.url), WebhookNotifier(webhook_server.url)]
    try:
        first.add_alerts([alert(f"s{n}", "webhook") for n in range(20)])
        couriers = [
            Courier(t, [h], RetryPolicy()) for t, h in zip((first, second), hooks, strict=True)
        ]
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(lambda c: c.retry(), couriers))
    finally:
        for thing in (*hooks, first, second):
            thing.close()
    keys = [r.headers["Idempotency-Key"] for r in webhook_server.received]
    assert sorted(keys) == sorted({f"sale_events:s{n}@webhook" for n in range(20)})
    assert sum(r.sent for r in results) == 20
