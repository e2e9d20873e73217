"""Alert sinks against the real things: an SMTP server and an HTTP server on loopback ports."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from salesflow.adapters.alerts import (
    JsonlNotifier,
    LogNotifier,
    SinkError,
    SmtpNotifier,
    WebhookNotifier,
)
from salesflow.config import SmtpSettings
from salesflow.errors import SalesflowError, TransientError
from salesflow.models import Alert
from salesflow.ports import Notifier
from tests.fixtures.servers import (  # noqa: F401 - fixtures
    SmtpServer,
    WebhookServer,
    closed_port,
    smtp_server,
    webhook_server,
)

pytestmark = pytest.mark.network


def make_alert(key: str = "E-42", amount: float = 512.5) -> Alert:
    return Alert(
        id=f"sale_events:{key}",
        dataset="sale_events",
        record_key=key,
        amount=amount,
        threshold=400.0,
        source_file="inbox/sale_events/live.jsonl",
        message=f"sale {key} by foobar@test.com for {amount}",
        created_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
    )


def test_every_sink_is_a_notifier(tmp_path: Path) -> None:
    sinks = [
        LogNotifier(),
        JsonlNotifier(tmp_path / "a.jsonl"),
        SmtpNotifier(SmtpSettings(recipients=["ops@example.com"])),
        WebhookNotifier("http://127.0.0.1:1/x"),
    ]
    assert [s.name for s in sinks] == ["log", "jsonl", "smtp", "webhook"]
    assert all(isinstance(s, Notifier) for s in sinks)


# -- log ------------------------------------------------------------------------------------
def test_log_sink_logs_a_masked_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="salesflow.alerts"):
        LogNotifier().send(make_alert())
    (record,) = caplog.records
    text = record.getMessage()
    assert record.levelno == logging.INFO and record.name == "salesflow.alerts"
    assert "High value sale: 512.50 in sale_events (record E-42)" in text
    assert "foobar@test.com" not in text and "f*****@test.com" in text


# -- jsonl ----------------------------------------------------------------------------------
def test_jsonl_sink_appends_one_line_per_alert(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "alerts.jsonl"
    sink = JsonlNotifier(path)
    sink.send(make_alert("A"))
    sink.send(make_alert("B", 700))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(d["id"], d["amount"]) for d in lines] == [
        ("sale_events:A", 512.5),
        ("sale_events:B", 700),
    ]
    assert Alert.from_dict(lines[0]) == make_alert("A")


def test_jsonl_lines_stay_whole_under_concurrent_writers(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    sinks = [JsonlNotifier(path) for _ in range(4)]
    threads = [
        threading.Thread(
            target=lambda s=s, i=i: [s.send(make_alert(f"{i}-{n}")) for n in range(50)]
        )
        for i, s in enumerate(sinks)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = {json.loads(line)["id"] for line in path.read_text().splitlines()}
    assert len(ids) == 200


def test_jsonl_sink_failure_is_transient(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(TransientError) as err:
        JsonlNotifier(blocker / "alerts.jsonl").send(make_alert())
    assert isinstance(err.value, SinkError)
    assert err.value.sink == "jsonl" and "cannot append" in err.value.cause


# -- smtp -----------------------------------------------------------------------------------
def test_smtp_sink_delivers_a_clear_mail(smtp_server: SmtpServer) -> None:  # noqa: F811
    settings = SmtpSettings(
        host=smtp_server.host,
        port=smtp_server.port,
        sender="salesflow@shop.example",
        recipients=["ops@shop.example", "cfo@shop.example"],
    )
    SmtpNotifier(settings).send(make_alert())
    (msg,) = smtp_server.box.messages
    assert msg["Subject"] == "High value sale: 512.50 in sale_events (record E-42)"
    assert msg["X-Salesflow-Alert-Id"] == "sale_events:E-42"
    assert msg["Message-ID"] == "<sale_events.E-42@shop.example>"
    assert "threshold 400.00" in msg.get_payload()
    assert smtp_server.box.envelopes == [
        ("salesflow@shop.example", ["ops@shop.example", "cfo@shop.example"])
    ]


def test_smtp_sink_without_recipients_is_a_config_error() -> None:
    with pytest.raises(SalesflowError, match="no recipients"):
        SmtpNotifier(SmtpSettings())


def test_smtp_sink_starttls_refused_is_transient(smtp_server: SmtpServer) -> None:  # noqa: F811
    # The test server offers no STARTTLS: the sink must report it, not crash.
    settings = SmtpSettings(
        host=smtp_server.host, port=smtp_server.port, recipients=["a@b.c"], starttls=True
    )
    with pytest.raises(SinkError, match="STARTTLS") as err:
        SmtpNotifier(settings).send(make_alert())
    assert err.value.sink == "smtp"
    assert smtp_server.box.messages == []


def test_smtp_sink_login_refused_is_transient(smtp_server: SmtpServer) -> None:  # noqa: F811
    settings = SmtpSettings(
        host=smtp_server.host,
        port=smtp_server.port,
        recipients=["a@b.c"],
        username="u",
        password="p",
    )
    with pytest.raises(SinkError) as err:
        SmtpNotifier(settings).send(make_alert())
    assert "SMTP" in err.value.cause
    assert smtp_server.box.messages == []


def test_smtp_sink_closed_port_is_transient(closed_port: int) -> None:  # noqa: F811
    settings = SmtpSettings(host="127.0.0.1", port=closed_port, recipients=["a@b.c"], timeout=2)
    with pytest.raises(TransientError) as err:
        SmtpNotifier(settings).send(make_alert())
    assert f"127.0.0.1:{closed_port}" in str(err.value) and "smtp" in str(err.value)


# -- webhook --------------------------------------------------------------------------------
def test_webhook_sink_posts_json_with_idempotency_key(webhook_server: WebhookServer) -> None:  # noqa: F811
    WebhookNotifier(webhook_server.url, timeout=5).send(make_alert())
    (got,) = webhook_server.received
    assert got.path == "/hooks/sales"
    assert got.headers["Idempotency-Key"] == "sale_events:E-42"
    assert got.headers["Content-Type"] == "application/json"
    assert got.body == make_alert().to_dict()


def test_webhook_sink_server_error_is_transient(webhook_server: WebhookServer) -> None:  # noqa: F811
    webhook_server.answer(500)
    with pytest.raises(TransientError) as err:
        WebhookNotifier(webhook_server.url).send(make_alert())
    assert isinstance(err.value, SinkError) and err.value.sink == "webhook"
    assert "HTTP 500" in err.value.cause
    assert len(webhook_server.received) == 1


def test_webhook_sink_closed_port_is_transient(closed_port: int) -> None:  # noqa: F811
    with pytest.raises(TransientError, match="unreachable"):
        WebhookNotifier(f"http://127.0.0.1:{closed_port}/x", timeout=2).send(make_alert())


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://host/x", "not a url", "http://"])
def test_webhook_sink_refuses_non_http_urls(url: str) -> None:
    with pytest.raises(SalesflowError, match="not an http"):
        WebhookNotifier(url)


def test_webhook_sink_that_hangs_fails_within_its_timeout(webhook_server: WebhookServer) -> None:  # noqa: F811
    webhook_server.hang()
    hook = WebhookNotifier(webhook_server.url, timeout=0.3)
    try:
        with pytest.raises(SinkError, match=r"did not answer within 0\.3s") as err:
            hook.send(make_alert())
    finally:
        hook.close()
    assert webhook_server.count == 1 and err.value.sink == "webhook"


def test_webhook_sink_errors_never_show_the_url_secrets(webhook_server: WebhookServer) -> None:  # noqa: F811
    webhook_server.answer(404)
    url = webhook_server.url.replace("http://", "http://bot:s3cret@") + "?token=abc123"
    hook = WebhookNotifier(url)
    try:
        with pytest.raises(SinkError) as err:
            hook.send(make_alert())
    finally:
        hook.close()
    text = str(err.value)
    assert "HTTP 404" in text and "s3cret" not in text and "abc123" not in text
    assert "?token=***" in text
    (got,) = webhook_server.received
    assert got.path == "/hooks/sales?token=abc123"  # the real URL is what is called


def test_webhook_url_errors_at_start_up_are_redacted() -> None:
    with pytest.raises(SalesflowError) as err:
        WebhookNotifier("ftp://bot:s3cret@host/T0AB12CD/xYz9QwErTy")
    assert "s3cret" not in str(err.value) and "xYz9QwErTy" not in str(err.value)
