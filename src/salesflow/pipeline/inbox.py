"""What the service does on each tick: find new files, process or batch them, send alerts.

Files are taken in arrival order once they have settled (size and mtime unchanged for
``settings.settle_seconds``), or at once when the service saw their writer finish: closed
after writing, or renamed into the inbox, with nothing changed since (``complete``).
Temporary names and dotfiles are left alone. Detection reads a
file's first bytes once per version (``Detections``), so a file waiting for its batch costs a
listing entry per tick, not a read.

Alerts go out beside this: the service delivers them on its own thread
(``pipeline.alert_loop``, ``tick(deliver=False)``); ``ingest`` delivers what is due at its end
within ``alerts.ingest_budget_seconds``.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from salesflow import layout
from salesflow.config import Settings
from salesflow.errors import StoreUnavailable, TransientError
from salesflow.models import FileStatus, ObjectInfo, PendingFile, utcnow
from salesflow.pipeline.batching import batch_due, order_batch, unbatched
from salesflow.pipeline.delivery import DeliveryResult, deliver_due
from salesflow.pipeline.state import StepState
from salesflow.pipeline.steps import HEAD_BYTES, claim, detect, process_file, recover
from salesflow.ports import Backend

log = logging.getLogger(__name__)

Progress = Callable[[StepState], None]


@dataclass
class TickResult:
    processed: list[StepState] = field(default_factory=list)
    pending: int = 0
    batch_reason: str | None = None
    alerts: DeliveryResult = field(default_factory=DeliveryResult)
    """What ``tick(deliver=True)`` delivered (the service delivers on its own thread)."""
    retry_later: list[str] = field(default_factory=list)
    unsettled: int = 0
    """Files seen but not yet settled: look again in ``settle_seconds``."""


class Detections:
    """The dataset of each object version, detected once (the service keeps one)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], str | None] = {}

    def dataset(self, backend: Backend, info: ObjectInfo) -> str | None:
        token = (info.key, info.version)
        if token not in self._seen:
            self._seen[token] = _detect(backend, info.key)
            if len(self._seen) > 100_000:  # forget the oldest half; they are long gone
                for old in list(self._seen)[:50_000]:
                    del self._seen[old]
        return self._seen[token]


def _detect(backend: Backend, key: str) -> str | None:
    """The dataset of the object at ``key``, or None; never raises."""
    try:
        with backend.store.fetch(key) as path, path.open("rb") as fh:
            head = fh.read(HEAD_BYTES)
    except Exception:  # noqa: BLE001 - a link, a vanished or unreadable file: process it to fail
        return None
    return detect(key, head)


def ready(
    infos: Sequence[ObjectInfo],
    now: datetime,
    settle_seconds: float,
    complete: Mapping[str, str] | None = None,
) -> tuple[list[ObjectInfo], int]:
    """The inbox objects to take now, in arrival order, and how many are still settling.

    Temporary names and dotfiles are skipped; an object modified less than
    ``settle_seconds`` ago may still be written in place and waits, unless ``complete``
    maps its key to the version it has now (its writer closed or renamed it, and it has not
    changed since).
    """
    complete = complete or {}
    taken: list[ObjectInfo] = []
    settling = 0
    for info in infos:
        if layout.is_temporary(info.key):
            continue
        # an empty file closed (a `touch` before the write) is no sign of a finished writer
        finished = info.size > 0 and complete.get(info.key) == info.version
        if not finished and (now - info.modified).total_seconds() < settle_seconds:
            settling += 1
            continue
        taken.append(info)
    taken.sort(key=lambda i: (i.modified, i.key))
    return taken, settling


def _prune(backend: Backend, waiting: list[PendingFile]) -> list[PendingFile]:
    """Drop pending rows whose object left the inbox (a crash mid-batch, after the file was
    processed but before its row was removed)."""
    gone = [p.key for p in waiting if not backend.store.exists(p.key)]
    if gone:
        backend.tables.remove_pending(gone)
    return [p for p in waiting if p.key not in gone]


def tick(
    backend: Backend,
    settings: Settings,
    *,
    now: datetime | None = None,
    force_batch: bool = False,
    settle_seconds: float | None = None,
    complete: Mapping[str, str] | None = None,
    detections: Detections | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    deliver: bool = True,
) -> TickResult:
    """One pass over the inbox. Batched datasets wait for their batch; the rest run now.

    ``force_batch`` runs waiting batch files at once. ``complete`` names the object versions
    whose writers are known to be done (see ``ready``). ``should_stop`` is asked before each
    file, so a SIGTERM stops the service between files. ``deliver=False`` leaves alert
    delivery to the caller (the service delivers on its own thread).
    """
    now = now or utcnow()
    settle = settings.settle_seconds if settle_seconds is None else settle_seconds
    detections = detections or Detections()
    result = TickResult()
    infos, result.unsettled = ready(backend.store.list(layout.INBOX), now, settle, complete)
    _scan(backend, settings, infos, detections, result, progress, should_stop)
    waiting = _prune(backend, backend.tables.list_pending())
    # A batch a crash interrupted is finished first, whatever the rules say now.
    resumed = backend.store.exists(layout.BATCH_MARKER)
    late = [] if resumed else unbatched(waiting, settings.batching)
    _run_each(
        backend,
        settings,
        order_batch(late, settings.batching.datasets),
        result,
        progress,
        should_stop,
    )
    waiting = [p for p in waiting if p not in late]
    if resumed or (force_batch and waiting):
        result.batch_reason = "resumed" if resumed else "forced"
    else:
        result.batch_reason = batch_due(waiting, settings.batching, now)
    if result.batch_reason and not should_stop():
        batch = order_batch(waiting, settings.batching.datasets)[: settings.batching.max_files]
        if not resumed:
            backend.store.put_bytes(layout.BATCH_MARKER, "\n".join(p.key for p in batch).encode())
        _run_batch(backend, settings, batch, result, progress, should_stop)
    result.pending = len(backend.tables.list_pending())
    if deliver:
        result.alerts = deliver_due(backend, settings.alerts)
    return result


def _scan(
    backend: Backend,
    settings: Settings,
    infos: Sequence[ObjectInfo],
    detections: Detections,
    result: TickResult,
    progress: Progress | None,
    should_stop: Callable[[], bool],
) -> None:
    """Run what is ready in the inbox now; remember batched files as pending."""
    batched = set(settings.batching.datasets)
    for info in infos:
        if should_stop():
            return
        dataset = detections.dataset(backend, info)
        if dataset not in batched or _finished(backend, info):
            _run(backend, settings, info.key, dataset, result, progress)
            continue
        backend.tables.add_pending(
            PendingFile(key=info.key, dataset=dataset, arrived_at=info.modified)
        )


def _finished(backend: Backend, info: ObjectInfo) -> bool:
    """Whether this version already has a final lineage row (a crash before its move)."""
    known = backend.tables.find_version(info.key, info.version)
    return known is not None and known.status != FileStatus.IN_PROGRESS


def _run_batch(
    backend: Backend,
    settings: Settings,
    batch: list[PendingFile],
    result: TickResult,
    progress: Progress | None,
    should_stop: Callable[[], bool],
) -> None:
    """The batch's files in order; the marker goes once every file is done."""
    if not _run_each(backend, settings, batch, result, progress, should_stop):
        return
    if not any(p.key in result.retry_later for p in batch):
        backend.store.delete(layout.BATCH_MARKER)


def _run_each(
    backend: Backend,
    settings: Settings,
    files: list[PendingFile],
    result: TickResult,
    progress: Progress | None,
    should_stop: Callable[[], bool],
) -> bool:
    """Waiting files in the order given, each off the pending list once done (unless it is
    to be retried later); False when asked to stop before the last one."""
    for pending in files:
        if should_stop():
            return False
        _run(backend, settings, pending.key, pending.dataset, result, progress)
        if pending.key not in result.retry_later:
            backend.tables.remove_pending([pending.key])
    return True


def _run(
    backend: Backend,
    settings: Settings,
    key: str,
    dataset: str | None,
    result: TickResult,
    progress: Progress | None,
) -> None:
    try:
        state = process_file(backend, settings, key, dataset=dataset)
    except StoreUnavailable:
        raise
    except TransientError as exc:
        log.warning("%s: will retry: %s", key, exc)
        result.retry_later.append(key)
        return
    result.processed.append(state)
    if progress:
        progress(state)


def _local_dataset(path: Path) -> str | None:
    """The dataset of a local file from its first bytes, or None (it then fails with a
    clear error once in the bucket)."""
    try:
        with path.open("rb") as fh:
            return detect(path.name, fh.read(HEAD_BYTES))
    except OSError:
        return None


def place(backend: Backend, settings: Settings, path: Path, dataset: str | None) -> str:
    """Put a local file into the inbox as ``inbox/<dataset>/<name>`` and return its key.

    The key is the file's name, so a file re-sent under the same name is a new version of
    the same source. If an earlier arrival still waits at that key, it is processed first.
    """
    base = posixpath.basename(str(path).replace("\\", "/")) or "upload"
    folder = f"{layout.INBOX}{dataset}/" if dataset else layout.INBOX
    key = layout.check_key(folder + base)
    if backend.store.exists(key):
        process_file(backend, settings, key, dataset=dataset)
    if backend.store.exists(key):  # another process holds it: keep both, under a new name
        stem, dot, ext = base.partition(".")
        n = 1
        while backend.store.exists(key):
            n += 1
            key = layout.check_key(f"{folder}{stem}-{n}{dot}{ext}")
    backend.store.put_file(key, path)
    return key


def ingest(
    backend: Backend,
    settings: Settings,
    paths: Sequence[Path],
    *,
    dataset: str | None = None,
    progress: Progress | None = None,
) -> list[StepState]:
    """Put local files into the inbox and process them now, bypassing the batching wait.

    Files are ordered like a batch (products, orders, order_items, then the rest) and by the
    order given, so referential checks see the products and orders given in the same call
    and a later file of the same source is the newer version.
    Due alerts are then delivered for about ``alerts.ingest_budget_seconds``; the rest
    stay PENDING for the service or ``salesflow alerts retry``.
    """
    recover(backend, settings)  # finish what a crashed run left first
    rank = {name: i for i, name in enumerate(settings.batching.datasets)}
    named = [(path, dataset or _local_dataset(path)) for path in paths]
    named.sort(key=lambda pd: rank.get(pd[1] or "", len(rank)))
    queued: list[StepState] = []
    for path, name in named:  # every file is accepted (claimed) before any is processed
        key = place(backend, settings, path, name)
        queued.append(_queue(backend, settings, key, name))
    states: list[StepState] = []
    for state in queued:
        if not state.done:
            state = process_file(backend, settings, state.key, dataset=state.dataset)
        states.append(state)
        backend.tables.remove_pending([state.key])
        if progress:
            progress(state)
    deliver_due(backend, settings.alerts, budget=settings.alerts.ingest_budget_seconds)
    return states


def _queue(backend: Backend, settings: Settings, key: str, dataset: str | None) -> StepState:
    """Claim a placed file without starting it; a file that cannot even be claimed fails."""
    try:
        return claim(backend, settings, key, dataset=dataset, queued=True)
    except StoreUnavailable:
        raise
    except Exception:  # noqa: BLE001 - process_file fails it with the reason
        return process_file(backend, settings, key, dataset=dataset)
