"""What ``salesflow run`` says at start-up, and that it never prints a webhook's secret."""

from __future__ import annotations

from pathlib import Path

from salesflow.config import Settings
from salesflow.ops.describe import redact_url, startup_lines


def test_urls_lose_their_credentials_path_and_query() -> None:
    assert (
        redact_url("https://u:pw@hooks.example.com/T0/B0/xyz?k=1") == "https://hooks.example.com/…"
    )
    assert redact_url("http://127.0.0.1:9000/") == "http://127.0.0.1:9000/"
    assert redact_url("http://127.0.0.1:9000/hook") == "http://127.0.0.1:9000/…"


def test_startup_lines_name_the_inbox_state_batching_and_sinks(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        alerts={
            "sinks": ["log", "webhook", "smtp"],
            "webhook_url": "https://x:y@h.example/secret-path",
            "smtp": {"host": "mail.example", "port": 587, "recipients": ["a@b.example"]},
            "threshold": 250,
        },
        batching={"min_files": 12, "quiet_seconds": 90},
    )
    text = "\n".join(startup_lines(settings))
    assert f"watching   {(tmp_path / 'bucket' / 'inbox').resolve()} (local folder)" in text
    assert "once one of each waits, at once with 12 files waiting, else 1.5 min after" in text
    assert (
        "amount > 250 to log, webhook (https://h.example/…), smtp (mail.example:587, 1 recipient)"
        in text
    )
    assert "secret" not in text and "x:y" not in text

    aws = Settings(backend="aws", aws={"bucket": "b1", "stack_name": "s1"})
    assert "watching   s3://b1/inbox/ (aws)" in "\n".join(startup_lines(aws))
