"""Sink URLs are shown and logged without their credentials and tokens."""

from __future__ import annotations

import io
import logging

import pytest

from salesflow.logs import configure_logging
from salesflow.redact import redact_url, redact_urls


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://bot:s3cret@hooks.slack.com/services/T0AB12CD/B0CD34EF/xYz9QwErTy8",
            "https://***@hooks.slack.com/services/***/***/***",
        ),
        (
            "https://discord.com/api/webhooks/123456789012345678/abcDEF-ghi_JKL",
            "https://discord.com/api/webhooks/***/***",
        ),
        (
            "https://acme.webhook.office.com/webhookb2/1b2c@t/IncomingWebhook/0a1b/9c8d",
            "https://acme.webhook.office.com/webhookb2/***/***/***/***",
        ),
        (
            "https://hooks.zapier.com/hooks/catch/123/ab9x/",
            "https://hooks.zapier.com/hooks/catch/***/***/",
        ),
        ("http://127.0.0.1:8080/hooks/sales", "http://127.0.0.1:8080/hooks/sales"),
        ("https://api.example.com/v1/sales-alerts", "https://api.example.com/v1/sales-alerts"),
        ("https://h.example/in/a8f3e9c2d1b0", "https://h.example/in/***"),
        ("https://h.example/in/qwertyuiopasdfghjk", "https://h.example/in/***"),  # too long a word
        ("https://h.example/in/xYzQwErTyU", "https://h.example/in/***"),  # random case
        ("https://h.example/hook?token=abc&v=2", "https://h.example/hook?token=***&v=***"),
        ("https://TOKEN123@h.example/x", "https://***@h.example/x"),
        ("https://h.example/x#secret", "https://h.example/x#***"),
        ("http://[::1]:9000/hooks", "http://[::1]:9000/hooks"),
        ("not a url", "not a url"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_urls_in_text_keeps_the_words_around_them() -> None:
    text = "webhook: https://u:pw@h.example/hook/a8f3e9c2d1b0, answered HTTP 500 (see docs)."
    assert (
        redact_urls(text)
        == "webhook: https://***@h.example/hook/***, answered HTTP 500 (see docs)."
    )
    assert redact_urls("no url here") == "no url here"


def test_configured_logging_redacts_urls_in_messages_and_arguments() -> None:
    handler = configure_logging("INFO")
    stream = io.StringIO()
    handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        log = logging.getLogger("salesflow.test")
        log.info("POST https://bot:pw@hooks.slack.com/services/T0/B0/XyZ123abc")
        log.warning("delivery to %s failed", "https://u:hunter2@h.example/in/a8f3e9c2d1b0")
    finally:
        logging.getLogger().removeHandler(handler)
    text = stream.getvalue()
    assert "pw@" not in text and "XyZ123abc" not in text and "hunter2" not in text
    assert "https://***@hooks.slack.com/services/***/***/***" in text
    assert "https://***@h.example/in/***" in text
