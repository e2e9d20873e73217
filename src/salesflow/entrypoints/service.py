"""``salesflow run``: the long-running local service.

It recovers what a crash left IN_PROGRESS, then processes the inbox, and after that wakes
on filesystem events that change the inbox (watchdog's inotify observer: created, modified,
moved; never mere opens and reads) or, failing those, every ``poll_seconds``. A file is
taken once it has settled (``settle_seconds``), or at once when its writer closed it after
writing or renamed it in and it has not changed since (``settle_on_events``: an upload
written whole and renamed, or ``cp``, costs no settle time). Batched datasets wait for
their batch; the timer is honoured by waking up when it is due. Alerts go out on their own thread
(``AlertLoop``), so a sink that is slow or down never delays the next file. SIGTERM or Ctrl-C
stops it between files.

Bad input never stops it. If the state store is locked or unreachable, it waits and
retries with backoff; only a broken store (disk full, corrupt database) stops it, with one
clear line and exit code 3.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from salesflow.config import Settings
from salesflow.entrypoints.cli.common import open_backend, processing_lock
from salesflow.errors import StoreUnavailable
from salesflow.logs import one_line, printable
from salesflow.models import utcnow
from salesflow.pipeline.alert_loop import AlertLoop
from salesflow.pipeline.batching import seconds_until_due
from salesflow.pipeline.delivery import courier_for
from salesflow.pipeline.inbox import Detections, TickResult, tick
from salesflow.pipeline.state import StepState
from salesflow.pipeline.steps import recover
from salesflow.ports import Backend

log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0


class Finished:
    """The inbox files whose writers are done, as the observer saw them: key -> the version
    the file had when it was closed after writing or renamed in. ``inbox.ready`` takes such a
    file at once if it still has that version; any later write changes the version."""

    LIMIT = 100_000

    def __init__(self, bucket: Path) -> None:
        self._bucket = bucket
        self._lock = threading.Lock()
        self._versions: dict[str, str] = {}

    def saw(self, path: str | bytes) -> None:
        from salesflow.adapters.local.store import version_of

        path = os.fsdecode(path)
        try:
            st = os.lstat(path)
            key = Path(path).relative_to(self._bucket).as_posix()
        except (OSError, ValueError):
            return
        with self._lock:
            self._versions.pop(key, None)  # re-inserted last: the oldest go first
            self._versions[key] = version_of(st)
            while len(self._versions) > self.LIMIT:
                del self._versions[next(iter(self._versions))]

    def snapshot(self) -> dict[str, str]:
        with self._lock:
            return dict(self._versions)


def _watch(settings: Settings, wake: threading.Event, finished: Finished | None) -> Any:
    """Start a watchdog observer on the inbox folder, or None if it cannot run here."""
    if settings.backend != "local":
        return None
    try:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer
    except ImportError:  # pragma: no cover - watchdog is a core dependency
        return None

    changes = {"created", "modified", "moved", "closed"}

    class Wake(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            # "closed" is a close after writing; "opened" and "closed_no_write" are reads
            # (our own detection among them) and must not wake the loop.
            if event.event_type not in changes:
                return
            if finished is not None and not event.is_directory:
                if event.event_type == "closed":
                    finished.saw(event.src_path)
                elif event.event_type == "moved" and event.dest_path:
                    finished.saw(event.dest_path)
            wake.set()

    inbox = settings.bucket_dir / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    try:
        # inotify: a file renamed in from outside the inbox is a move ("", dest), not a
        # creation, so it counts as finished
        observer = Observer(generate_full_events=True)  # type: ignore[call-arg]
    except TypeError:  # pragma: no cover - another platform's observer
        observer = Observer()
    observer.schedule(Wake(), str(inbox), recursive=True)
    try:
        observer.start()
    except OSError as exc:  # pragma: no cover - e.g. out of inotify watches
        log.warning(
            "filesystem events unavailable (%s); polling every %ss", exc, settings.poll_seconds
        )
        return None
    return observer


def _report(state: StepState, json_lines: bool) -> None:
    if json_lines:
        sys.stdout.write(json.dumps({"file": state.key, **state.to_dict()}) + "\n")
    else:
        # a key is whatever name a file arrived with: escaped, it stays on its own line
        error = f" error={one_line(state.error)}" if state.error else ""
        sys.stdout.write(
            f"{state.status:<10} {printable(state.key)} rows_in={state.rows_in} "
            f"valid={state.valid} rejected={state.rejected}{error}\n"
        )
    sys.stdout.flush()


def serve(
    settings: Settings, *, json_lines: bool = False, stop: threading.Event | None = None
) -> None:
    """Run until ``stop`` is set (or SIGTERM/SIGINT)."""
    from salesflow.logs import configure_logging

    level = "INFO" if settings.log_level.upper() in ("WARNING", "ERROR") else settings.log_level
    configure_logging(level, json=json_lines)
    stop = stop or threading.Event()
    wake = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()
        wake.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    backoff = 0.0
    while not stop.is_set():
        try:
            with open_backend(settings, create=True) as backend:
                _serve(backend, settings, json_lines, stop, wake)
            return
        except StoreUnavailable as exc:  # the store was locked while it was being opened
            backoff = min(MAX_BACKOFF, max(1.0, backoff * 2))
            log.warning("the state store is unavailable, retrying in %.0fs: %s", backoff, exc)
            wake.wait(backoff)


def _serve(
    backend: Backend,
    settings: Settings,
    json_lines: bool,
    stop: threading.Event,
    wake: threading.Event,
) -> None:
    """The loop: recover, then tick on every wake-up until ``stop``."""
    detections = Detections()
    backoff = 0.0
    recovered = False
    finished = Finished(settings.bucket_dir) if settings.settle_on_events else None
    observer = _watch(settings, wake, finished)
    alerts = AlertLoop(
        courier_for(backend, settings.alerts), poll_seconds=min(settings.poll_seconds, 5.0)
    ).start()
    try:
        while not stop.is_set():
            wake.clear()
            try:
                with processing_lock(settings):
                    if not recovered:
                        for state in recover(backend, settings):
                            _report(state, json_lines)
                        recovered = True
                    result = tick(
                        backend,
                        settings,
                        detections=detections,
                        complete=finished.snapshot() if finished else None,
                        progress=lambda s: _report(s, json_lines),
                        should_stop=stop.is_set,
                        deliver=False,
                    )
            except StoreUnavailable as exc:
                backoff = min(MAX_BACKOFF, max(1.0, backoff * 2))
                log.warning("the state store is unavailable, retrying in %.0fs: %s", backoff, exc)
                wake.wait(backoff)
                continue
            backoff = 0.0
            if result.processed:
                alerts.wake()
            wake.wait(_timeout(backend, settings, result, observer is not None))
    finally:
        if not alerts.stop(timeout=_slowest_sink(settings) + 1):
            log.warning("an alert was still being sent at exit; it is retried next time")
        if observer is not None:
            observer.stop()
            observer.join(timeout=5)


def _slowest_sink(settings: Settings) -> float:
    return max(settings.alerts.webhook_timeout, settings.alerts.smtp.timeout)


def _timeout(backend: Backend, settings: Settings, result: TickResult, watching: bool) -> float:
    """How long to sleep when nothing wakes the loop: until a settling file settles, a
    retry is due, or the batch timer fires."""
    timeout = settings.poll_seconds if not watching else max(settings.poll_seconds, 5.0)
    if result.unsettled:
        timeout = min(timeout, max(0.05, settings.settle_seconds / 4))
    if result.retry_later:
        timeout = min(timeout, 1.0)
    if result.pending:
        due = seconds_until_due(backend.tables.list_pending(), settings.batching, utcnow())
        if due is not None:
            timeout = min(timeout, due + 0.01)
    return timeout
