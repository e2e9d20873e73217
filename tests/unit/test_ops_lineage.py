"""``ops.lineage``: file versions as a user reads them, filters, and the waiting batch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from salesflow.config import Settings
from salesflow.errors import SalesflowError
from salesflow.models import FileRecord, FileStatus, PendingFile
from salesflow.ops.lineage import list_files, pending_batch
from tests.fixtures.memory import memory_backend

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def record(
    key: str, seq: int, status: FileStatus, dataset: str = "orders", **more: object
) -> FileRecord:
    return FileRecord(
        key=key,
        sha256=f"{seq:064d}",
        size=10,
        dataset=dataset,
        status=status,
        seq=seq,
        started_at=T0,
        version=f"v{seq}",
        **more,  # type: ignore[arg-type]
    )


def test_each_version_with_its_inbox_key_duration_and_archive() -> None:
    backend = memory_backend()
    backend.tables.claim(
        record(
            "inbox/orders/a.csv",
            1,
            FileStatus.SUCCESS,
            rows_in=3,
            valid=2,
            rejected=1,
            finished_at=T0 + timedelta(seconds=2.5),
            archive_key="processed/x/a.csv",
        )
    )
    backend.tables.claim(
        record(
            "inbox/orders/a.csv",
            2,
            FileStatus.FAILED,
            error="bad",
            attempts=3,
            archive_key="failed/y/a.csv",
        )
    )
    backend.tables.claim(record("inbox/sale_events/s.json", 3, FileStatus.SUCCESS, "sale_events"))
    rows = list_files(backend)
    assert [r.seq for r in rows] == [1, 2, 3]
    first, second, _ = rows
    assert (first.file, first.duration_s, first.rows_in, first.valid) == (
        "inbox/orders/a.csv",
        2.5,
        3,
        2,
    )
    assert (second.file, second.attempts, second.error) == ("inbox/orders/a.csv", 3, "bad")
    assert second.duration_s is None and second.to_dict()["finished_at"] is None

    assert [r.seq for r in list_files(backend, key="inbox/orders/a.csv")] == [1, 2]
    assert [r.seq for r in list_files(backend, key="failed/y/a.csv")] == [2]
    assert [r.seq for r in list_files(backend, key="inbox/orders/")] == [1, 2]
    assert [r.seq for r in list_files(backend, status="failed")] == [2]
    assert [r.seq for r in list_files(backend, dataset="sale_events")] == [3]
    assert [r.seq for r in list_files(backend, limit=2)] == [2, 3]
    with pytest.raises(SalesflowError, match="unknown file status 'DONE'"):
        list_files(backend, status="DONE")


def test_the_waiting_batch_and_when_its_timer_fires() -> None:
    backend = memory_backend()
    settings = Settings(batching={"min_files": 5, "quiet_seconds": 600})
    now = T0 + timedelta(minutes=3)
    backend.tables.add_pending(PendingFile("inbox/products/p.csv", "products", T0))
    waiting = pending_batch(backend, settings, now=now)
    assert waiting.missing == ["orders", "order_items"] and waiting.fires_at is None
    assert waiting.due is None and waiting.files[0].waiting_s == 180.0

    backend.tables.add_pending(PendingFile("inbox/orders/o.csv", "orders", T0))
    backend.tables.add_pending(PendingFile("inbox/order_items/i.csv", "order_items", T0))
    waiting = pending_batch(backend, settings, now=now)
    assert waiting.missing == [] and waiting.fires_at == T0 + timedelta(minutes=10)
    assert waiting.to_dict()["fires_at"] == (T0 + timedelta(minutes=10)).isoformat()
    assert pending_batch(backend, settings, now=T0 + timedelta(minutes=11)).due == "timer"
    assert pending_batch(memory_backend(), settings, now=now).to_dict()["files"] == []
