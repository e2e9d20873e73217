"""Smart batching for products, orders and order_items (seed 004).

A batch runs at once when ``min_files`` files wait, or when at least ``min_trio`` files with
one of each dataset wait and ``quiet_seconds`` pass with no new file. Files of a batch run
in dependency order (products, then orders, then order_items) so referential checks see the
batch's own products and orders. Every other dataset is processed as soon as it lands.
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


def batch_due(pending: Sequence[PendingFile], rules: BatchingSettings, now: datetime) -> str | None:
    """Why the waiting files should run now (``"count"`` or ``"timer"``), or None to wait."""
    if not pending:
        return None
    if len(pending) >= rules.min_files:
        return "count"
    types = {f.dataset for f in pending}
    quiet = (now - max(f.arrived_at for f in pending)).total_seconds()
    if (
        len(pending) >= rules.min_trio
        and set(rules.datasets) <= types
        and quiet >= rules.quiet_seconds
    ):
        return "timer"
    return None


def seconds_until_due(
    pending: Sequence[PendingFile], rules: BatchingSettings, now: datetime
) -> float | None:
    """How long until the timer would fire with no new file, or None if it cannot fire."""
    types = {f.dataset for f in pending}
    if len(pending) < rules.min_trio or not set(rules.datasets) <= types:
        return None
    quiet = (now - max(f.arrived_at for f in pending)).total_seconds()
    return max(0.0, rules.quiet_seconds - quiet)


def decide_batch(
    tables: Tables, rules: BatchingSettings, now: datetime
) -> list[PendingFile] | None:
    """The batch to run now, in order, or None. The caller removes them from pending once
    it has handed them over (``Tables.remove_pending``)."""
    pending = tables.list_pending()
    if batch_due(pending, rules, now) is None:
        return None
    return order_batch(pending, rules.datasets)
