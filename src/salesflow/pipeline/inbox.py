"""What the service does on each tick: find new files, process or batch them, send alerts."""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from salesflow import layout
from salesflow.config import Settings
from salesflow.errors import FileLevelError, TransientError
from salesflow.models import PendingFile, utcnow
from salesflow.pipeline.batching import batch_due, order_batch
from salesflow.pipeline.delivery import DeliveryResult, deliver_alerts
from salesflow.pipeline.state import StepState
from salesflow.pipeline.steps import (
    HEAD_BYTES,
    process_file,
    recover,
    resolve_dataset,
    settle_archived,
)
from salesflow.ports import Backend

log = logging.getLogger(__name__)

Progress = Callable[[StepState], None]


@dataclass
class TickResult:
    processed: list[StepState] = field(default_factory=list)
    pending: int = 0
    batch_reason: str | None = None
    alerts: DeliveryResult = field(default_factory=DeliveryResult)
    retry_later: list[str] = field(default_factory=list)
    unsettled: int = 0


def _prune(backend: Backend, waiting: list[PendingFile]) -> list[PendingFile]:
    """Drop pending rows whose object left the inbox (a crash mid-batch, after the file was
    processed but before its row was removed)."""
    gone = [p.key for p in waiting if not backend.store.exists(p.key)]
    if gone:
        backend.tables.remove_pending(gone)
    return [p for p in waiting if p.key not in gone]


def _dataset_of(backend: Backend, key: str) -> str | None:
    prefixed = layout.inbox_dataset(key)
    if prefixed:
        return prefixed
    try:
        with backend.store.fetch(key) as path, path.open("rb") as fh:
            head = fh.read(HEAD_BYTES)
        return resolve_dataset(key, head, None)
    except (FileLevelError, FileNotFoundError):
        return None


def tick(
    backend: Backend,
    settings: Settings,
    *,
    now: datetime | None = None,
    force_batch: bool = False,
    settle_seconds: float = 0.0,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> TickResult:
    """One pass over the inbox. Batched datasets wait for their batch; the rest run now.

    ``force_batch`` runs waiting batch files at once. ``settle_seconds`` leaves alone files
    modified more recently than that (a writer that does not rename may still be writing);
    ``result.unsettled`` counts them so the caller looks again soon. ``should_stop`` is
    asked before each file, so a SIGTERM stops the service between files.
    """
    now = now or utcnow()
    result = TickResult()
    _scan(backend, settings, result, now, settle_seconds, progress, should_stop)
    waiting = _prune(backend, backend.tables.list_pending())
    # A batch a crash interrupted is finished first, whatever the rules say now.
    resumed = backend.store.exists(layout.BATCH_MARKER)
    if resumed or (force_batch and waiting):
        result.batch_reason = "resumed" if resumed else "forced"
    else:
        result.batch_reason = batch_due(waiting, settings.batching, now)
    if result.batch_reason and not should_stop():
        batch = order_batch(waiting, settings.batching.datasets)
        if not resumed:
            backend.store.put_bytes(layout.BATCH_MARKER, "\n".join(p.key for p in batch).encode())
        _run_batch(backend, settings, batch, result, progress, should_stop)
    result.pending = len(backend.tables.list_pending())
    result.alerts = deliver_alerts(backend, max_attempts=settings.alerts.max_attempts)
    return result


def _scan(
    backend: Backend,
    settings: Settings,
    result: TickResult,
    now: datetime,
    settle_seconds: float,
    progress: Progress | None,
    should_stop: Callable[[], bool],
) -> None:
    """Run what lands in the inbox now; remember batched files as pending."""
    batched = set(settings.batching.datasets)
    for info in backend.store.list(layout.INBOX):
        if should_stop():
            return
        if settle_seconds and (now - info.modified).total_seconds() < settle_seconds:
            result.unsettled += 1
            continue
        dataset = _dataset_of(backend, info.key)
        if dataset not in batched:
            _run(backend, settings, info.key, None, result, progress)
            continue
        settled = settle_archived(backend, info.key)
        if settled is not None:
            result.processed.append(settled)
            continue
        pending = PendingFile(key=info.key, dataset=dataset, arrived_at=info.modified)
        backend.tables.add_pending(pending)


def _run_batch(
    backend: Backend,
    settings: Settings,
    batch: list[PendingFile],
    result: TickResult,
    progress: Progress | None,
    should_stop: Callable[[], bool],
) -> None:
    """The batch's files in order; the marker goes once every file is done."""
    for pending in batch:
        if should_stop():
            return
        _run(backend, settings, pending.key, pending.dataset, result, progress)
        if pending.key not in result.retry_later:
            backend.tables.remove_pending([pending.key])
    if not any(p.key in result.retry_later for p in batch):
        backend.store.delete(layout.BATCH_MARKER)


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
            return resolve_dataset(path.name, fh.read(HEAD_BYTES), None)
    except (FileLevelError, OSError):
        return None


def inbox_key_for(backend: Backend, name: str, dataset: str | None) -> str:
    """A free inbox key for a file called ``name`` (``inbox/<dataset>/<name>``)."""
    base = posixpath.basename(name.replace("\\", "/")) or "upload"
    folder = f"{layout.INBOX}{dataset}/" if dataset else layout.INBOX
    key = layout.check_key(folder + base)
    stem, dot, ext = base.partition(".")
    n = 1
    while backend.store.exists(key):
        n += 1
        key = layout.check_key(f"{folder}{stem}-{n}{dot}{ext}")
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

    Files are ordered like a batch (products, orders, order_items, then the rest) so
    referential checks see the products and orders given in the same call.
    """
    recover(backend, settings)  # finish what a crashed run left first
    placed: list[tuple[str, str | None]] = []
    for path in paths:
        name = dataset or _local_dataset(path)
        key = inbox_key_for(backend, path.name, name)
        backend.store.put_file(key, path)
        placed.append((key, name))
    rank = {name: i for i, name in enumerate(settings.batching.datasets)}
    placed.sort(key=lambda kd: rank.get(kd[1] or "", len(rank)))
    states: list[StepState] = []
    for key, name in placed:
        state = process_file(backend, settings, key, dataset=name)
        states.append(state)
        if progress:
            progress(state)
    backend.tables.remove_pending([k for k, _ in placed])
    deliver_alerts(backend, max_attempts=settings.alerts.max_attempts)
    return states
