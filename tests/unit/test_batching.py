"""Smart batching exactly as seed 004 runs it: ten files *and* one of each dataset, or 20
minutes after the trio first became complete (the timer never restarts)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from salesflow.config import BatchingSettings
from salesflow.models import PendingFile
from salesflow.pipeline.batching import batch_due, decide_batch, order_batch, seconds_until_due
from tests.fixtures.memory import MemoryTables

T0 = datetime(2024, 1, 1, tzinfo=UTC)
RULES = BatchingSettings()
TRIO = ("products", "orders", "order_items")


def _files(*datasets: str, start: datetime = T0) -> list[PendingFile]:
    return [
        PendingFile(f"inbox/{d}/{i}.csv", d, start + timedelta(seconds=i))
        for i, d in enumerate(datasets)
    ]


def test_ten_files_run_at_once_once_each_dataset_has_one() -> None:
    files = _files(*TRIO, *["order_items"] * 7)
    assert batch_due(files, RULES, files[-1].arrived_at) == "count"
    assert batch_due(files[:9], RULES, files[-1].arrived_at) is None


def test_ten_files_of_one_dataset_wait_for_the_others() -> None:
    files = _files(*["order_items"] * 10)
    assert batch_due(files, RULES, T0 + timedelta(days=1)) is None
    assert seconds_until_due(files, RULES, T0) is None


def test_timer_runs_twenty_minutes_after_the_trio_first_became_complete() -> None:
    files = _files(*TRIO)
    complete = files[-1].arrived_at
    assert batch_due(files, RULES, complete + timedelta(minutes=19, seconds=59)) is None
    assert batch_due(files, RULES, complete + timedelta(minutes=20)) == "timer"
    assert seconds_until_due(files, RULES, complete + timedelta(minutes=5)) == 15 * 60


def test_new_files_do_not_restart_the_timer() -> None:
    files = _files(*TRIO)
    complete = files[-1].arrived_at
    later = files + _files("order_items", start=complete + timedelta(minutes=19))
    assert batch_due(later, RULES, complete + timedelta(minutes=20)) == "timer"


def test_batch_runs_in_dependency_order_then_arrival() -> None:
    files = _files("order_items", "orders", "products", "order_items", "orders")
    ordered = order_batch(files, RULES.datasets)
    assert [f.dataset for f in ordered] == [
        "products",
        "orders",
        "orders",
        "order_items",
        "order_items",
    ]
    assert ordered[1].arrived_at < ordered[2].arrived_at


def test_decide_batch_caps_the_batch_size() -> None:
    tables = MemoryTables()
    for f in _files(*TRIO, *["order_items"] * 20):
        tables.add_pending(f)
    rules = BatchingSettings(max_files=5)
    batch = decide_batch(tables, rules, T0 + timedelta(minutes=1))
    assert batch is not None and len(batch) == 5
    assert [f.dataset for f in batch[:3]] == ["products", "orders", "order_items"]
