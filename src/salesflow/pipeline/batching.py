"""Smart batching for products, orders and order_items, exactly as seed 004 runs it.

A batch runs when **both** at least ``min_files`` files wait **and** each of the batched
datasets has at least one file waiting; or ``quiet_seconds`` (20 minutes) after the trio
*first became complete*, however many files arrive meanwhile (the timer never restarts).
Files of a batch run in dependency order (products, then orders, then order_items) and by
arrival within a dataset, so referential checks see the batch's own products and orders.
Every other dataset is processed as soon as it lands.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from salesflow.config import BatchingSettings
from salesflow.models import PendingFile
from salesflow.ports import Tables


def order_batch(files: Sequence[PendingFile], datasets: Sequence[str]) -> list[PendingFile]:
    """Files in dependency order, then by arrival."""
    rank = {name: i for i, name in enumerate(datasets)}
    return sorted(files, key=lambda f: (rank.get(f.dataset, len(rank)), f.arrived_at, f.key))


def trio_complete_at(pending: Sequence[PendingFile], rules: BatchingSettings) -> datetime | None:
    """When the waiting files first held one file of each batched dataset (the latest of
    each dataset's earliest arrival), or None while one dataset has no file waiting."""
    if not rules.datasets:
        return None  # nothing is batched
    firsts = []
    for dataset in rules.datasets:
        arrivals = [f.arrived_at for f in pending if f.dataset == dataset]
        if not arrivals:
            return None
        firsts.append(min(arrivals))
    return max(firsts)


def batch_due(pending: Sequence[PendingFile], rules: BatchingSettings, now: datetime) -> str | None:
    """Why the waiting files should run now (``"count"`` or ``"timer"``), or None to wait."""
    complete = trio_complete_at(pending, rules)
    if complete is None:
        return None
    if len(pending) >= rules.min_files:
        return "count"
    if (now - complete).total_seconds() >= rules.quiet_seconds:
        return "timer"
    return None


def seconds_until_due(
    pending: Sequence[PendingFile], rules: BatchingSettings, now: datetime
) -> float | None:
    """How long until the timer fires, or None while the trio is incomplete."""
    complete = trio_complete_at(pending, rules)
    if complete is None:
        return None
    return max(0.0, rules.quiet_seconds - (now - complete).total_seconds())


def decide_batch(
    tables: Tables, rules: BatchingSettings, now: datetime
) -> list[PendingFile] | None:
    """The batch to run now, in order, capped at ``rules.max_files``, or None. The caller
    removes them from pending once it has started them (``Tables.remove_pending``)."""
    pending = tables.list_pending()
    if batch_due(pending, rules, now) is None:
        return None
    return order_batch(pending, rules.datasets)[: rules.max_files]


def unbatched(pending: Sequence[PendingFile], rules: BatchingSettings) -> list[PendingFile]:
    """Waiting files whose dataset the rules no longer batch (they waited under an older
    configuration): they run now, as they would have had they landed today."""
    return [f for f in pending if f.dataset not in rules.datasets]
