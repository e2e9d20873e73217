"""One service tick: immediate datasets, batching, an interrupted batch, stale pending rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from salesflow import layout
from salesflow.config import Settings
from salesflow.models import FileStatus, PendingFile
from salesflow.pipeline.inbox import tick
from tests.fixtures.memory import memory_backend
from tests.fixtures.thelook import ITEMS_CSV, ORDERS_CSV, PRODUCTS_CSV

SALE = '{"sale_id": "s1", "product": "Desk", "category": "Office", "price": 120.5, "quantity": 1, "timestamp": "2024-05-01T10:00:00Z"}'  # noqa: E501
LATER = datetime.now(UTC) + timedelta(hours=1)


def test_immediate_dataset_runs_and_batched_ones_wait(settings: Settings) -> None:
    backend = memory_backend()
    backend.store.put_bytes("inbox/sale_events/s1.json", SALE.encode())
    backend.store.put_bytes("inbox/products/p.csv", PRODUCTS_CSV.encode())
    result = tick(backend, settings, now=LATER)
    assert [s.key for s in result.processed] == ["inbox/sale_events/s1.json"]
    assert result.pending == 1 and result.batch_reason is None
    assert backend.store.exists("inbox/products/p.csv")


def test_trio_runs_after_the_quiet_time_in_order(settings: Settings) -> None:
    backend = memory_backend()
    for name, body in (("order_items/i.csv", ITEMS_CSV), ("orders/o.csv", ORDERS_CSV)):
        backend.store.put_bytes(f"inbox/{name}", body.encode())
    backend.store.put_bytes("inbox/products/p.csv", PRODUCTS_CSV.encode())
    now = datetime.now(UTC)
    assert tick(backend, settings, now=now).batch_reason is None
    result = tick(backend, settings, now=now + timedelta(minutes=21))
    assert result.batch_reason == "timer"
    assert [s.dataset for s in result.processed] == ["products", "orders", "order_items"]
    assert all(s.status == FileStatus.SUCCESS for s in result.processed)
    assert result.pending == 0 and not backend.store.exists(layout.BATCH_MARKER)


def test_interrupted_batch_is_finished_and_stale_rows_dropped(settings: Settings) -> None:
    backend = memory_backend()
    backend.store.put_bytes("inbox/orders/o.csv", ORDERS_CSV.encode())
    backend.store.put_bytes("inbox/order_items/i.csv", ITEMS_CSV.encode())
    # The crash came after products.csv was archived but before its pending row was removed.
    backend.tables.add_pending(PendingFile("inbox/products/gone.csv", "products", LATER))
    backend.store.put_bytes(layout.BATCH_MARKER, b"inbox/products/gone.csv")
    result = tick(backend, settings, now=LATER)
    assert result.batch_reason == "resumed"
    assert [s.dataset for s in result.processed] == ["orders", "order_items"]
    assert [f.status for f in backend.tables.list_files()] == [FileStatus.SUCCESS] * 2
    assert result.pending == 0 and not backend.store.exists(layout.BATCH_MARKER)
