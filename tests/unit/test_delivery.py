"""Alert delivery: once per sink, retried, never blocking, given up after max attempts."""

from __future__ import annotations

import polars as pl

from salesflow.models import AlertStatus
from salesflow.pipeline.delivery import deliver_alerts
from salesflow.pipeline.routing import high_value_alerts
from tests.fixtures.memory import ListNotifier, memory_backend

VALID = pl.DataFrame({"_key": ["a", "b", "c"], "amount": [399.99, 400.0, 400.01]})


def test_only_amounts_above_the_threshold_alert_once_per_sink() -> None:
    alerts = high_value_alerts("sale_events", "f", VALID, threshold=400, sinks=["log", "mail"])
    assert sorted(a.id for a in alerts) == ["sale_events:c@log", "sale_events:c@mail"]


def test_replay_does_not_alert_twice() -> None:
    sink = ListNotifier()
    backend = memory_backend(sink)
    for _ in range(2):
        backend.tables.add_alerts(
            high_value_alerts("sale_events", "f", VALID, threshold=400, sinks=["list"])
        )
        deliver_alerts(backend)
    assert [a.record_key for a in sink.sent] == ["c"]


def test_failing_sink_is_retried_and_does_not_hold_the_other() -> None:
    good, bad = ListNotifier("good"), ListNotifier("bad", fail_times=1)
    backend = memory_backend(good, bad)
    backend.tables.add_alerts(
        high_value_alerts("sale_events", "f", VALID, threshold=400, sinks=["good", "bad"])
    )
    first = deliver_alerts(backend)
    assert (first.sent, first.retrying) == (1, 1) and len(good.sent) == 1
    second = deliver_alerts(backend)
    assert second.sent == 1 and len(bad.sent) == 1 and len(good.sent) == 1


def test_sink_that_never_recovers_is_given_up() -> None:
    backend = memory_backend(ListNotifier("bad", fail_times=99))
    backend.tables.add_alerts(
        high_value_alerts("sale_events", "f", VALID, threshold=400, sinks=["bad", "gone"])
    )
    for _ in range(3):
        deliver_alerts(backend, max_attempts=3)
    statuses = {a.id: a.status for a in backend.tables.list_alerts()}
    assert statuses == {
        "sale_events:c@bad": AlertStatus.FAILED,
        "sale_events:c@gone": AlertStatus.FAILED,
    }
