"""Alert delivery on the memory tables: once per sink, backoff with full jitter, claims,
give-up, budgets, manual retry. Time is a fake clock; nothing sleeps."""

from __future__ import annotations

import random
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from salesflow.config import AlertSettings
from salesflow.errors import TransientError
from salesflow.models import Alert, AlertStatus
from salesflow.pipeline.alert_loop import AlertLoop
from salesflow.pipeline.delivery import Courier, RetryPolicy
from salesflow.pipeline.routing import high_value_alerts
from salesflow.ports import Backend, Notifier
from tests.fixtures.memory import ListNotifier, MemoryTables, memory_backend

VALID = pl.DataFrame({"_key": ["a", "b", "c"], "amount": [399.99, 400.0, 400.01]})
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Ceiling(random.Random):
    """Full jitter at its ceiling: every delay is the longest the policy allows."""

    def uniform(self, a: float, b: float) -> float:
        return b


def alert(key: str, sink: str, *, created: datetime = T0) -> Alert:
    return Alert(
        id=f"sale_events:{key}@{sink}",
        dataset="sale_events",
        record_key=key,
        amount=500.0,
        threshold=400.0,
        source_file=f"inbox/sale_events/{key}.json",
        message=f"sale {key}",
        created_at=created,
    )


def courier(
    backend: Backend, clock: Clock, policy: RetryPolicy | None = None, rng: random.Random = None
) -> Courier:
    return Courier(
        backend.tables,
        backend.notifiers,
        policy or RetryPolicy(),
        clock=clock,
        rng=rng or random.Random(7),
    )


def stored(backend: Backend, alert_id: str) -> Alert:
    (found,) = backend.tables.get_alerts([alert_id])
    return found


def test_only_amounts_above_the_threshold_alert_once_per_sink() -> None:
    alerts = high_value_alerts("sale_events", "f", VALID, threshold=400, sinks=["log", "mail"])
    assert sorted(a.id for a in alerts) == ["sale_events:c@log", "sale_events:c@mail"]
    assert {a.sink for a in alerts} == {"log", "mail"}


def test_replay_does_not_alert_twice() -> None:
    sink = ListNotifier()
    backend = memory_backend(sink)
    c = courier(backend, Clock())
    for _ in range(2):
        backend.tables.add_alerts(
            high_value_alerts("sale_events", "f", VALID, threshold=400, sinks=["list"])
        )
        c.deliver_due()
    assert [a.record_key for a in sink.sent] == ["c"]


def test_a_failing_sink_backs_off_on_its_own_and_delivers_when_due() -> None:
    good, bad = ListNotifier("good"), ListNotifier("bad", fail_times=1)
    backend = memory_backend(good, bad)
    backend.tables.add_alerts([alert("s1", "good"), alert("s1", "bad")])
    clock = Clock()
    c = courier(backend, clock, RetryPolicy(base_seconds=10), rng=Ceiling())

    first = c.deliver_due()
    assert (first.sent, first.retrying) == (1, 1) and len(good.sent) == 1
    waiting = stored(backend, "sale_events:s1@bad")
    assert waiting.status == AlertStatus.PENDING and waiting.attempts == 1
    assert waiting.next_attempt_at == T0 + timedelta(seconds=10)
    assert waiting.error == "bad: down"
    assert first.next_due == waiting.next_attempt_at

    clock.advance(9.9)  # not due yet: a pass leaves it alone
    assert c.deliver_due().sent == 0 and bad.sent == []
    clock.advance(0.1)
    second = c.deliver_due()
    assert second.sent == 1 and [a.id for a in bad.sent] == ["sale_events:s1@bad"]
    assert len(good.sent) == 1
    done = stored(backend, "sale_events:s1@bad")
    assert done.status == AlertStatus.SENT and done.attempts == 2 and done.error is None
    assert done.sent_at == clock.now and done.next_attempt_at is None


def test_backoff_doubles_up_to_its_cap_with_full_jitter() -> None:
    policy = RetryPolicy(base_seconds=2, max_seconds=60, retry_for_seconds=10**6)
    top = [policy.delay(n, Ceiling()) for n in range(1, 9)]
    assert top == [2, 4, 8, 16, 32, 60, 60, 60]
    rng = random.Random(1)
    draws = [policy.delay(5, rng) for _ in range(2000)]
    assert min(draws) >= 0 and max(draws) <= 32
    assert min(draws) < 2 and max(draws) > 30  # spread over the whole range: full jitter


def test_an_alert_is_given_up_at_the_horizon_after_retrying_until_then() -> None:
    backend = memory_backend(ListNotifier("bad", fail_times=10**6))
    backend.tables.add_alerts([alert("s1", "bad")])
    clock = Clock()
    policy = RetryPolicy(base_seconds=1, max_seconds=100, retry_for_seconds=1000)
    c = courier(backend, clock, policy, rng=Ceiling())
    times = []
    while (a := stored(backend, "sale_events:s1@bad")).status == AlertStatus.PENDING:
        if a.next_attempt_at:
            clock.now = a.next_attempt_at
        times.append((clock.now - T0).total_seconds())
        c.deliver_due()
    assert a.status == AlertStatus.FAILED and a.error == "bad: down"
    # 0, 1, 3, 7, ... then every 100 s, and a last attempt exactly at the horizon
    assert times[:5] == [0, 1, 3, 7, 15] and times[-1] == 1000
    assert all(b - a <= 100 for a, b in zip(times, times[1:], strict=False))
    assert a.attempts == len(times)


def test_max_attempts_gives_up_first_when_lower() -> None:
    backend = memory_backend(ListNotifier("bad", fail_times=10**6))
    backend.tables.add_alerts([alert("s1", "bad")])
    clock = Clock()
    c = courier(backend, clock, RetryPolicy(max_attempts=3), rng=Ceiling())
    for _ in range(3):
        a = stored(backend, "sale_events:s1@bad")
        clock.now = a.next_attempt_at or clock.now
        c.deliver_due()
    a = stored(backend, "sale_events:s1@bad")
    assert (a.status, a.attempts) == (AlertStatus.FAILED, 3)


def test_policy_from_settings() -> None:
    settings = AlertSettings(
        backoff_base_seconds=1, backoff_max_seconds=9, retry_for_seconds=60, max_attempts=4
    )
    policy = RetryPolicy.from_settings(settings)
    assert (policy.base_seconds, policy.max_seconds) == (1, 9)
    assert (policy.retry_for_seconds, policy.max_attempts) == (60, 4)
    assert policy.lease_seconds >= 6 * settings.webhook_timeout
    # the default horizon retries for an hour
    assert RetryPolicy.from_settings(AlertSettings()).retry_for_seconds == 3600


def test_a_failing_sink_is_tried_once_per_pass_not_once_per_alert() -> None:
    bad = ListNotifier("bad", fail_times=10**6)
    backend = memory_backend(bad, ListNotifier("good"))
    backend.tables.add_alerts([alert(f"s{n}", "bad") for n in range(5)])
    tries: list[str] = []
    real_send = bad.send

    def counted(a: Alert) -> None:
        tries.append(a.id)
        real_send(a)

    bad.send = counted  # type: ignore[method-assign]
    c = courier(backend, Clock())
    result = c.deliver_due()
    assert tries == ["sale_events:s0@bad"]
    assert (result.retrying, result.left) == (1, 4)
    # the sink stays paused until that alert's backoff ends, even for alerts that are due
    assert c.deliver_due().left == 4 and len(tries) == 1
    assert c.resumes_in() is not None


def test_two_couriers_never_send_one_alert_at_the_same_time() -> None:
    """The claim is a conditional write: the second process sees the alert in flight."""
    tables = MemoryTables()
    tables.add_alerts([alert("s1", "hook")])
    entered, release = threading.Event(), threading.Event()
    other_result = []

    class Hook:
        name = "hook"
        sent: list[str] = []

        def send(self, a: Alert) -> None:
            entered.set()
            release.wait(10)
            self.sent.append(a.id)

    hook = Hook()
    first = Courier(tables, [hook], RetryPolicy(), clock=Clock())
    second = Courier(tables, [hook], RetryPolicy(), clock=Clock())
    thread = threading.Thread(target=lambda: other_result.append(first.deliver_due()))
    thread.start()
    assert entered.wait(10)
    assert tables.alerts["sale_events:s1@hook"].status == AlertStatus.SENDING
    assert second.deliver_due().sent == 0  # not due: its lease holds
    busy = second.retry()  # even `alerts retry` leaves an alert in flight alone
    assert (busy.sent, busy.busy) == (0, 1)
    release.set()
    thread.join(10)
    assert other_result[0].sent == 1 and hook.sent == ["sale_events:s1@hook"]


def test_an_alert_whose_sender_died_is_due_when_its_lease_ends() -> None:
    sink = ListNotifier("hook")
    backend = memory_backend(sink)
    backend.tables.add_alerts([alert("s1", "hook")])
    a = stored(backend, "sale_events:s1@hook")
    clock = Clock()
    lease = RetryPolicy().lease_seconds
    # a process claimed it, then was killed before settling
    claimed = replace(
        a, status=AlertStatus.SENDING, attempts=1, next_attempt_at=T0 + timedelta(seconds=lease)
    )
    assert backend.tables.update_alert(claimed, expect=a)
    c = courier(backend, clock)
    assert c.deliver_due().sent == 0
    clock.advance(lease)
    assert c.deliver_due().sent == 1 and len(sink.sent) == 1
    assert stored(backend, a.id).attempts == 2


def test_a_stale_claim_cannot_settle_over_a_newer_one() -> None:
    tables = MemoryTables()
    tables.add_alerts([alert("s1", "x")])
    a = tables.get_alerts(["sale_events:s1@x"])[0]
    mine = replace(a, status=AlertStatus.SENDING, attempts=1)
    assert tables.update_alert(mine, expect=a)
    assert not tables.update_alert(replace(a, status=AlertStatus.SENDING, attempts=1), expect=a)
    theirs = replace(mine, attempts=2)
    assert tables.update_alert(theirs, expect=mine)
    assert not tables.update_alert(replace(mine, status=AlertStatus.SENT), expect=mine)
    assert tables.alerts[a.id].status == AlertStatus.SENDING


def test_a_budget_of_zero_attempts_nothing_and_leaves_everything_pending() -> None:
    sink = ListNotifier("hook")
    backend = memory_backend(sink)
    backend.tables.add_alerts([alert(f"s{n}", "hook") for n in range(3)])
    result = courier(backend, Clock()).deliver_due(budget=0)
    assert (result.sent, result.left) == (0, 3) and sink.sent == []
    assert backend.tables.count_alerts(AlertStatus.PENDING) == 3


def test_alerts_for_a_sink_not_configured_here_are_left_as_they_are() -> None:
    backend = memory_backend(ListNotifier("log"))
    backend.tables.add_alerts([alert("s1", "webhook")])
    result = courier(backend, Clock()).deliver_due()
    assert result.unrouted == 1 and "webhook" in result.errors["webhook"]
    a = stored(backend, "sale_events:s1@webhook")
    assert (a.status, a.attempts) == (AlertStatus.PENDING, 0)


def test_a_sink_that_raises_anything_is_a_failed_attempt_not_a_crash() -> None:
    class Broken:
        name = "broken"

        def send(self, a: Alert) -> None:
            raise KeyError("bug in the sink")

    backend = memory_backend(Broken())
    backend.tables.add_alerts([alert("s1", "broken")])
    result = courier(backend, Clock()).deliver_due()
    assert result.retrying == 1
    assert stored(backend, "sale_events:s1@broken").error == "KeyError: 'bug in the sink'"


def test_urls_in_errors_are_stored_redacted() -> None:
    class Hook:
        name = "hook"

        def send(self, a: Alert) -> None:
            raise TransientError("https://u:pw@hooks.slack.com/services/T01/B02/xYz9QwErTy: 500")

    backend = memory_backend(Hook())
    backend.tables.add_alerts([alert("s1", "hook")])
    courier(backend, Clock()).deliver_due()
    error = stored(backend, "sale_events:s1@hook").error or ""
    assert "pw" not in error and "xYz9" not in error and "T01" not in error
    assert "hooks.slack.com/services/***" in error


def test_sinks_are_served_in_parallel_so_a_slow_one_never_delays_another() -> None:
    """The slow sink waits until the fast one has delivered: served one after the other
    (slow first), this pass could never finish."""
    delivered = threading.Event()

    class Slow:
        name = "slow"

        def send(self, a: Alert) -> None:
            if not delivered.wait(10):
                raise TransientError("the fast sink was not served beside me")

    class Fast:
        name = "fast"

        def send(self, a: Alert) -> None:
            delivered.set()

    backend = memory_backend(Slow(), Fast())
    backend.tables.add_alerts([alert("s1", "slow"), alert("s1", "fast")])
    result = courier(backend, Clock()).deliver_due()
    assert result.sent == 2, result.errors


def test_retry_sends_pending_alerts_now_and_failed_ones_with_failed() -> None:
    sink = ListNotifier("hook", fail_times=1)
    backend = memory_backend(sink)
    backend.tables.add_alerts([alert("p", "hook"), alert("f", "hook")])
    f = stored(backend, "sale_events:f@hook")
    backend.tables.update_alert(replace(f, status=AlertStatus.FAILED, attempts=50, error="x"))
    clock = Clock()
    c = courier(backend, clock)
    c.deliver_due()  # p fails once and backs off
    assert stored(backend, "sale_events:p@hook").next_attempt_at > clock.now  # type: ignore[operator]

    only_pending = c.retry()
    assert (only_pending.sent, only_pending.undelivered) == (1, 0)
    assert stored(backend, "sale_events:f@hook").status == AlertStatus.FAILED
    with_failed = c.retry(failed=True)
    assert with_failed.sent == 1
    assert stored(backend, "sale_events:f@hook").status == AlertStatus.SENT
    assert [a.record_key for a in sink.sent] == ["p", "f"]


def test_a_manual_retry_that_fails_leaves_a_failed_alert_failed() -> None:
    backend = memory_backend(ListNotifier("hook", fail_times=5))
    backend.tables.add_alerts([alert("f", "hook")])
    f = stored(backend, "sale_events:f@hook")
    backend.tables.update_alert(replace(f, status=AlertStatus.FAILED, attempts=3))
    result = courier(backend, Clock()).retry(ids=["sale_events:f@hook"])
    assert (result.failed, result.undelivered) == (1, 1)
    a = stored(backend, "sale_events:f@hook")
    assert (a.status, a.attempts, a.error) == (AlertStatus.FAILED, 4, "hook: down")


def test_the_alert_loop_delivers_on_its_own_thread_when_woken() -> None:
    sink = ListNotifier("hook")
    backend = memory_backend(sink)
    loop = AlertLoop(courier(backend, Clock()), poll_seconds=3600).start()
    try:
        assert loop.wait_for_pass(0, timeout=10)  # the first pass: nothing yet
        seen = loop.passes
        backend.tables.add_alerts([alert("s1", "hook")])
        loop.wake()
        assert loop.wait_for_pass(seen, timeout=10)
        assert [a.id for a in sink.sent] == ["sale_events:s1@hook"]
    finally:
        assert loop.stop(timeout=10)


def test_the_alert_loop_survives_a_store_failure() -> None:
    class Down(MemoryTables):
        fail = True

        def due_alerts(self, now: datetime, *, limit: int) -> list[Alert]:
            if self.fail:
                self.fail = False
                raise TransientError("store down")
            return super().due_alerts(now, limit=limit)

    tables = Down()
    tables.add_alerts([alert("s1", "hook")])
    sink: Notifier = ListNotifier("hook")
    loop = AlertLoop(Courier(tables, [sink], RetryPolicy()), poll_seconds=3600).start()
    try:
        assert loop.wait_for_pass(0, timeout=10)
        loop.wake()
        assert loop.wait_for_pass(1, timeout=10)
        assert tables.alerts["sale_events:s1@hook"].status == AlertStatus.SENT
    finally:
        assert loop.stop(timeout=10)


@pytest.mark.parametrize("status", [AlertStatus.PENDING, AlertStatus.SENDING])
def test_due_alerts_of_the_memory_tables(status: AlertStatus) -> None:
    tables = MemoryTables()
    tables.add_alerts([alert("s1", "x")])
    a = tables.get_alerts(["sale_events:s1@x"])[0]
    later = replace(a, status=status, next_attempt_at=T0 + timedelta(seconds=5))
    tables.update_alert(later)
    assert tables.due_alerts(T0, limit=10) == []
    assert [x.id for x in tables.due_alerts(T0 + timedelta(seconds=5), limit=10)] == [a.id]
