"""The service's delivery thread: alerts go out beside ingestion, never in its way.

``salesflow run`` processes files on its main thread and hands alert delivery to an
``AlertLoop``: a thread that delivers whatever is due, then sleeps until the next retry is
due, ``poll_seconds`` pass, or ``wake()`` says a file raised new alerts. A sink that hangs
holds this thread for at most its timeout; the next file never waits for it.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from salesflow.models import utcnow
from salesflow.pipeline.delivery import DUE_BATCH, Courier

log = logging.getLogger(__name__)


class AlertLoop:
    """Runs ``courier.deliver_due`` on its own thread until ``stop``."""

    def __init__(self, courier: Courier, *, poll_seconds: float = 5.0) -> None:
        self.courier = courier
        self.poll_seconds = poll_seconds
        self.passes = 0
        """Completed passes (tests wait on it rather than on the clock)."""
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._done = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="salesflow-alerts", daemon=True)

    def start(self) -> AlertLoop:
        self._thread.start()
        return self

    def wake(self) -> None:
        """Deliver now: new alerts may be due."""
        self._wake.set()

    def stop(self, timeout: float | None = None) -> bool:
        """Ask the thread to stop after its current pass; whether it stopped in ``timeout``.
        An attempt in flight ends within its sink's timeout."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def wait_for_pass(self, after: int, timeout: float) -> bool:
        """Block until more than ``after`` passes completed (or ``timeout``); for tests and
        for callers that want one delivery pass before they go on."""
        with self._done:
            return self._done.wait_for(lambda: self.passes > after, timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            full = False
            try:
                result = self.courier.deliver_due()
                full = result.sent + result.retrying + result.failed >= DUE_BATCH
                wait = self._wait(result.next_due)
            except Exception as exc:  # the store may be busy or down: try again later
                log.warning("alert delivery pass failed, will retry: %s", exc)
                wait = self.poll_seconds
            with self._done:
                self.passes += 1
                self._done.notify_all()
            if not full:
                self._wake.wait(wait)

    def _wait(self, next_due: datetime | None) -> float:
        """Until the first retry this process scheduled, a paused sink resumes, or a poll
        (another process may have raised alerts)."""
        wait = self.poll_seconds
        resumes = self.courier.resumes_in()
        if resumes is not None:
            wait = min(wait, resumes)
        if next_due is not None:
            wait = min(wait, (next_due - utcnow()).total_seconds())
        return max(wait, 0.01)
