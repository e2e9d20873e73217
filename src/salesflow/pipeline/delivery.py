"""Delivering alerts to their sinks: at least once per sink, with backoff, off the ingest path.

Each alert row is one sale for one sink (id ``<dataset>:<record key>@<sink>``) and is retried
on its own. One attempt is three steps:

1. **claim**: a conditional write sets the alert SENDING with ``attempts + 1`` and a lease
   (``next_attempt_at``). One process wins, so the service's delivery thread, ``ingest``,
   ``salesflow alerts retry`` and concurrent Lambdas never send one alert at the same time,
   and the attempt is counted before it starts. If the claimer dies, the alert is due again
   when the lease ends.
2. **send**: each sink has its own timeouts.
3. **settle**, again conditionally: SENT; or PENDING with ``next_attempt_at`` drawn by
   exponential backoff with full jitter; or FAILED once the alert is older than
   ``retry_for_seconds`` or has had ``max_attempts``.

Sinks are served in parallel, one thread each. A sink that fails is left alone for the rest
of the pass (and, in a long-lived ``Courier``, until that alert's backoff ends), so a sink
that hangs costs one timeout per pass instead of one per alert, and never delays the others.

A crash between a sink accepting an alert and step 3 sends it again when the lease ends:
delivery is at least once. What a repeat means for each sink is in the README.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from salesflow.config import AlertSettings
from salesflow.errors import SalesflowError
from salesflow.models import Alert, AlertStatus, utcnow
from salesflow.ports import Backend, Notifier, Tables
from salesflow.redact import redact_urls

log = logging.getLogger(__name__)

DUE_BATCH = 500
"""Alerts read per pass; a full batch makes the delivery thread go again at once."""


@dataclass(frozen=True)
class RetryPolicy:
    """When to try a failed alert again, and when to give it up."""

    base_seconds: float = 2.0
    max_seconds: float = 300.0
    retry_for_seconds: float = 3600.0
    max_attempts: int = 50
    lease_seconds: float = 60.0
    """How long a claim holds: longer than any send can take (sinks time out well before)."""

    @classmethod
    def from_settings(cls, settings: AlertSettings) -> RetryPolicy:
        slowest = max(settings.webhook_timeout, settings.smtp.timeout)
        return cls(
            base_seconds=settings.backoff_base_seconds,
            max_seconds=settings.backoff_max_seconds,
            retry_for_seconds=settings.retry_for_seconds,
            max_attempts=settings.max_attempts,
            lease_seconds=max(60.0, 6 * slowest),
        )

    def delay(self, attempts: int, rng: random.Random) -> float:
        """Full jitter: uniform in ``[0, min(max, base * 2**(attempts - 1))]``."""
        ceiling = min(self.max_seconds, self.base_seconds * 2.0 ** min(attempts - 1, 60))
        return rng.uniform(0.0, ceiling)

    def next_attempt(self, alert: Alert, now: datetime, rng: random.Random) -> datetime | None:
        """When to try ``alert`` (which just failed its ``attempts``-th attempt) again, or
        None to give it up. The last retry is at the horizon, not after it."""
        horizon = alert.created_at + timedelta(seconds=self.retry_for_seconds)
        if alert.attempts >= self.max_attempts or now >= horizon:
            return None
        return min(now + timedelta(seconds=self.delay(alert.attempts, rng)), horizon)


@dataclass
class DeliveryResult:
    """What one pass did. Every alert it looked at is counted exactly once."""

    sent: int = 0
    retrying: int = 0
    """Failed this time; PENDING with a next attempt."""
    failed: int = 0
    """Given up: FAILED."""
    left: int = 0
    """Not attempted: the time budget ran out, or its sink failed earlier in the pass."""
    busy: int = 0
    """Claimed by another process (being sent there), or already settled."""
    unrouted: int = 0
    """No sink of its name is configured in this process; left as it was."""
    errors: dict[str, str] = field(default_factory=dict)
    """The last error per sink."""
    next_due: datetime | None = None
    """The earliest retry this pass scheduled."""

    @property
    def undelivered(self) -> int:
        return self.retrying + self.failed + self.left + self.busy + self.unrouted

    def add(self, other: DeliveryResult) -> None:
        for name in ("sent", "retrying", "failed", "left", "busy", "unrouted"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors.update(other.errors)
        dues = [d for d in (self.next_due, other.next_due) if d is not None]
        self.next_due = min(dues) if dues else None

    def summary(self) -> str:
        """``2 sent, 1 retrying (webhook: ... answered HTTP 500)``: one line for people."""
        parts = [
            f"{n} {label}"
            for n, label in (
                (self.sent, "sent"),
                (self.retrying, "retrying"),
                (self.failed, "failed"),
                (self.left, "left PENDING"),
                (self.busy, "being sent by another process"),
                (self.unrouted, "for sinks not configured here"),
            )
            if n
        ]
        text = ", ".join(parts) or "nothing to deliver"
        if self.errors:
            text += " (" + "; ".join(f"{k}: {v}" for k, v in sorted(self.errors.items())) + ")"
        return text


class Courier:
    """Delivers alerts from ``tables`` through ``notifiers`` under ``policy``.

    Keep one per process: it remembers which sinks are failing (and until when) so that a
    sink that is down is asked once per backoff, not once per alert.
    """

    def __init__(
        self,
        tables: Tables,
        notifiers: Sequence[Notifier],
        policy: RetryPolicy,
        *,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self.tables = tables
        self.sinks = {n.name: n for n in notifiers}
        self.policy = policy
        self.clock = clock
        self.rng = rng or random.Random()
        self._paused: dict[str, datetime] = {}
        """Sinks that failed, and until when this courier leaves them alone."""

    def resumes_in(self) -> float | None:
        """Seconds until the first paused sink may be tried again (None: none is paused)."""
        now = self.clock()
        waits = [(until - now).total_seconds() for until in self._paused.values() if until > now]
        return min(waits) if waits else None

    def deliver_due(self, *, budget: float | None = None, limit: int = DUE_BATCH) -> DeliveryResult:
        """Attempt every alert that is due now (at most ``limit``). With ``budget``, start no
        attempt after that many seconds (one in flight finishes within its sink's timeout)."""
        return self.deliver(self.tables.due_alerts(self.clock(), limit=limit), budget=budget)

    def deliver(self, alerts: Iterable[Alert], *, budget: float | None = None) -> DeliveryResult:
        """Attempt ``alerts`` (as read from the store) that are open and not in flight
        elsewhere, in order, each sink on its own thread."""
        return self._deliver(alerts, _deadline(budget), paused=True, reopen=False)

    def retry(
        self, *, failed: bool = False, ids: Sequence[str] = (), budget: float | None = None
    ) -> DeliveryResult:
        """Attempt open alerts now, whatever their backoff says (``salesflow alerts retry``):
        every PENDING one and every SENDING one whose lease ended, with ``failed`` the FAILED
        ones too, or only those in ``ids`` (any status but SENT). An attempt that fails
        leaves a FAILED alert FAILED."""
        if ids:
            targets = [a for a in self.tables.get_alerts(ids) if a.status != AlertStatus.SENT]
        else:
            targets = self.tables.list_alerts(AlertStatus.PENDING)
            targets += self.tables.list_alerts(AlertStatus.SENDING)
            if failed:
                targets += self.tables.list_alerts(AlertStatus.FAILED)
        return self._deliver(targets, _deadline(budget), paused=False, reopen=True)

    # -- one pass ------------------------------------------------------------------------
    def _deliver(
        self, alerts: Iterable[Alert], deadline: float | None, *, paused: bool, reopen: bool
    ) -> DeliveryResult:
        groups: dict[str, list[Alert]] = {}
        for alert in alerts:
            groups.setdefault(alert.sink, []).append(alert)
        result = DeliveryResult()
        jobs = []
        for sink, group in groups.items():
            notifier = self.sinks.get(sink)
            if notifier is None:
                result.unrouted += len(group)
                result.errors[sink] = f"no {sink!r} sink is configured in this process"
            else:
                jobs.append((notifier, group))
        if len(jobs) == 1:
            result.add(self._serve(*jobs[0], deadline, paused=paused, reopen=reopen))
        elif jobs:
            with ThreadPoolExecutor(len(jobs), thread_name_prefix="salesflow-sink") as pool:
                futures = [
                    pool.submit(self._serve, n, g, deadline, paused=paused, reopen=reopen)
                    for n, g in jobs
                ]
                for future in futures:
                    result.add(future.result())
        return result

    def _serve(
        self,
        notifier: Notifier,
        alerts: list[Alert],
        deadline: float | None,
        *,
        paused: bool,
        reopen: bool,
    ) -> DeliveryResult:
        """One sink's alerts in order, until the budget ends or the sink fails once."""
        result = DeliveryResult()
        for index, alert in enumerate(alerts):
            until = self._paused.get(notifier.name)
            held = paused and until is not None and until > self.clock()
            if held or (deadline is not None and time.monotonic() >= deadline):
                result.left += len(alerts) - index
                break
            outcome = self._attempt(notifier, alert, reopen=reopen)
            if outcome is None:
                result.busy += 1
                continue
            if outcome.status == AlertStatus.SENT:
                result.sent += 1
                self._paused.pop(notifier.name, None)
                continue
            result.errors[notifier.name] = outcome.error or "failed"
            if outcome.next_attempt_at is None:
                result.failed += 1
                wait = timedelta(seconds=self.policy.delay(outcome.attempts, self.rng))
                self._paused[notifier.name] = self.clock() + wait
            else:
                result.retrying += 1
                result.next_due = _earliest(result.next_due, outcome.next_attempt_at)
                self._paused[notifier.name] = outcome.next_attempt_at
            result.left += len(alerts) - index - 1
            break
        return result

    def _attempt(self, notifier: Notifier, alert: Alert, *, reopen: bool) -> Alert | None:
        """Claim, send, settle one alert; its settled row, or None if it was not ours."""
        now = self.clock()
        if alert.status == AlertStatus.SENT:
            return None
        if alert.status == AlertStatus.FAILED and not reopen:
            return None
        if (
            alert.status == AlertStatus.SENDING
            and alert.next_attempt_at is not None
            and alert.next_attempt_at > now
        ):
            return None  # another process is sending it right now
        claimed = replace(
            alert,
            status=AlertStatus.SENDING,
            attempts=alert.attempts + 1,
            next_attempt_at=now + timedelta(seconds=self.policy.lease_seconds),
        )
        if not self.tables.update_alert(claimed, expect=alert):
            return None
        try:
            # the receiver gets the alert and this attempt's number, not the claim's lease
            notifier.send(
                replace(claimed, status=AlertStatus.PENDING, next_attempt_at=None, error=None)
            )
        except Exception as exc:  # any sink failure, even a bug, is this alert's failure
            error = redact_urls(_describe(exc))
            when = None
            if alert.status != AlertStatus.FAILED:
                when = self.policy.next_attempt(claimed, self.clock(), self.rng)
            done = replace(
                claimed,
                status=AlertStatus.PENDING if when else AlertStatus.FAILED,
                next_attempt_at=when,
                error=error,
            )
            log.warning(
                "alert %s not delivered (attempt %d): %s; %s",
                alert.id,
                claimed.attempts,
                error,
                f"next attempt at {when:%H:%M:%S}" if when else "given up (FAILED)",
            )
        else:
            done = replace(
                claimed,
                status=AlertStatus.SENT,
                sent_at=self.clock(),
                next_attempt_at=None,
                error=None,
            )
        if not self.tables.update_alert(done, expect=claimed):
            log.warning("alert %s: its claim expired during the attempt; not settled", alert.id)
        return done


def _deadline(budget: float | None) -> float | None:
    return None if budget is None else time.monotonic() + budget


def _earliest(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b < a else a


def _describe(exc: Exception) -> str:
    """The cause alone for a sink's own error (``SinkError.cause``), else type and message."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, str):
        return cause
    if isinstance(exc, SalesflowError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


def courier_for(backend: Backend, settings: AlertSettings) -> Courier:
    """A ``Courier`` over the backend's tables and sinks with the configured retry policy."""
    return Courier(backend.tables, backend.notifiers, RetryPolicy.from_settings(settings))


def deliver_due(
    backend: Backend, settings: AlertSettings, *, budget: float | None = None
) -> DeliveryResult:
    """One pass over the due alerts, by a fresh courier (``ingest``, a Lambda)."""
    return courier_for(backend, settings).deliver_due(budget=budget)
