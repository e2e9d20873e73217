"""Alert retries on AWS: the every-minute timer (the detector's scheduled event) delivers the
retries that are due, through the deployed Lambda, to the stack's SNS topic."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from salesflow.adapters import build_backend
from salesflow.models import Alert, AlertStatus
from tests.e2e.aws.harness import Stack, drain, invoke, scheduled_event, subscribe_queue

pytestmark = pytest.mark.aws


def sns_alert(key: str, created: datetime) -> Alert:
    return Alert(
        id=f"sale_events:{key}@sns",
        dataset="sale_events",
        record_key=key,
        amount=950.0,
        threshold=400.0,
        source_file=f"inbox/sale_events/{key}.json",
        message=f"sale {key}",
        created_at=created,
    )


def test_the_timer_retries_due_alerts_and_leaves_fresh_ones_to_their_file(
    module_stack: Stack,
) -> None:
    now = datetime.now(UTC)
    queue = subscribe_queue(module_stack.outputs["TopicArn"], "alert-retries")
    backend = build_backend(module_stack.settings(alerts={"sinks": ["log"]}))
    try:
        retry = sns_alert("r-1", now - timedelta(minutes=3))
        fresh = sns_alert("f-1", now)  # its own file's invocation is sending it
        backing_off = sns_alert("b-1", now - timedelta(minutes=3))
        backend.tables.add_alerts([retry, fresh, backing_off])
        backend.tables.update_alert(
            replace(
                retry, attempts=1, error="throttled", next_attempt_at=now - timedelta(seconds=1)
            )
        )
        backend.tables.update_alert(
            replace(backing_off, attempts=2, next_attempt_at=now + timedelta(minutes=5))
        )

        invoke(module_stack.functions["detector"], scheduled_event())

        got = {a.record_key: a for a in backend.tables.list_alerts()}
    finally:
        backend.close()
    assert (got["r-1"].status, got["r-1"].attempts, got["r-1"].error) == (
        AlertStatus.SENT,
        2,
        None,
    )
    assert (got["f-1"].status, got["f-1"].attempts) == (AlertStatus.PENDING, 0)
    assert (got["b-1"].status, got["b-1"].attempts) == (AlertStatus.PENDING, 2)
    published = [json.loads(body) for body in drain(queue)]
    assert [p["id"] for p in published] == ["sale_events:r-1@sns"]
