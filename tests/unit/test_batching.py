"""Smart batching (seed 004): count trigger, trio + quiet timer, dependency order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from salesflow.config import BatchingSettings
from salesflow.models import PendingFile
from salesflow.pipeline.batching import batch_due, decide_batch, order_batch, seconds_until_due
from tests.fixtures.memory import MemoryTables

T0 = datetime(2024, 1, 1, tzinfo=UTC)
RULES = BatchingSettings()


def _files(*datasets: str, start: datetime = T0) -> list[PendingFile]:
    return [
        PendingFile(f"inbox/{d}/{i}.csv", d, start + timedelta(seconds=i))
        for i, d in enumerate(datasets)
    ]


def test_ten_files_run_at_once() -> None:
    files = _files(*["order_items"] * 10)
    assert batch_due(files, RULES, T0) == "count"
    assert batch_due(files[:9], RULES, T0 + timedelta(days=1)) is None


def test_trio_runs_after_twenty_quiet_minutes_only() -> None:
    files = _files("order_items", "products", "orders")
    last = files[-1].arrived_at
    assert batch_due(files, RULES, last + timedelta(minutes=19, seconds=59)) is None
    assert batch_due(files, RULES, last + timedelta(minutes=20)) == "timer"
    assert seconds_until_due(files, RULES, last + timedelta(minutes=5)) == 15 * 60


def test_three_files_of_two_types_never_fire_the_timer() -> None:
    files = _files("orders", "orders", "products")
    assert batch_due(files, RULES, T0 + timedelta(days=1)) is None
    assert seconds_until_due(files, RULES, T0) is None


def test_batch_runs_in_dependency_order() -> None:
    files = _files("order_items", "orders", "products", "order_items")
    ordered = [f.dataset for f in order_batch(files, RULES.datasets)]
    assert ordered == ["products", "orders", "order_items", "order_items"]


def test_decide_batch_reads_the_pending_table() -> None:
    tables = MemoryTables()
    for f in _files("order_items", "orders", "products"):
        tables.add_pending(f)
    rules = BatchingSettings(quiet_seconds=0)
    batch = decide_batch(tables, rules, T0 + timedelta(seconds=5))
    assert batch is not None and [f.dataset for f in batch] == ["products", "orders", "order_items"]
    assert decide_batch(MemoryTables(), rules, T0) is None
