"""The pipeline in process on the real local backend (a folder bucket, Parquet lake, SQLite).

What the in-memory unit tests cannot show: the lake is a real Hive-partitioned Parquet
dataset another engine can query, the archive and reports are real files, a second backend
opened on the same data dir (another process) sees the same state, and a file whose run was
cut short is finished by ``recover`` on a fresh backend.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from salesflow.adapters import build_backend
from salesflow.config import Settings
from salesflow.models import FileStatus
from salesflow.ops import summaries as summary
from salesflow.ops.audit import audit
from salesflow.pipeline.inbox import ingest
from salesflow.pipeline.steps import claim, load, recover
from salesflow.ports import Backend
from tests.fixtures.thelook import ITEMS_CSV, ORDERS_CSV, PRODUCTS_CSV


@pytest.fixture
def backend(settings: Settings) -> Iterator[Backend]:
    be = build_backend(settings)
    try:
        yield be
    finally:
        be.close()


def _thelook(tmp_path: Path) -> list[Path]:
    paths = []
    for name, body in (
        ("order_items.csv", ITEMS_CSV),
        ("products.csv", PRODUCTS_CSV),
        ("orders.csv", ORDERS_CSV),
    ):
        (tmp_path / name).write_text(body)
        paths.append(tmp_path / name)
    return paths


def test_lake_is_a_hive_partitioned_dataset_other_engines_can_read(
    backend: Backend, settings: Settings, tmp_path: Path
) -> None:
    states = ingest(backend, settings, _thelook(tmp_path))
    assert [s.status for s in states] == ["SUCCESS"] * 3
    lake = settings.bucket_dir / "lake" / "order_items"
    scanned = pl.scan_parquet(lake / "**" / "*.parquet", hive_partitioning=True).collect()
    assert set(scanned.get_column("year").to_list()) == {2024}
    assert set(scanned.get_column("month").to_list()) == {3}
    assert sorted(scanned.get_column("id").cast(pl.Utf8).to_list()) == [
        "1000",
        "1001",
        "1002",
        "1003",
        "1004",
    ]
    stored = backend.records.read("order_items")
    assert sorted(stored.get_column("_key").to_list()) == ["1000", "1001", "1002", "1003", "1004"]
    # raw files archived by dataset and month, reports beside them
    processed = sorted(p.name for p in (settings.bucket_dir / "processed").rglob("*.csv"))
    assert processed == sorted(
        f"{s.seq:012d}-{name}.csv"
        for s, name in zip(states, ("products", "orders", "order_items"), strict=True)
    )
    for state in states:
        report = json.loads((settings.bucket_dir / (state.report_key or "")).read_text())
        assert report["rows_in"] == state.rows_in == report["valid"] + report["rejected"]
    assert audit(backend).ok


def test_a_second_backend_on_the_same_dir_sees_the_same_state(
    backend: Backend, settings: Settings, tmp_path: Path
) -> None:
    ingest(backend, settings, _thelook(tmp_path))
    other = build_backend(settings)
    try:
        assert summary.status(other) == summary.status(backend)
        assert summary.kpis(other).equals(summary.kpis(backend))
        day = summary.kpis(other).filter(pl.col("day") == date(2024, 3, 1)).to_dicts()[0]
        assert (day["items"], day["revenue"], day["orders"]) == (3, 35.0, 2)
        assert [a.record_key for a in other.tables.list_alerts()] == ["1004"]
    finally:
        other.close()


def test_a_run_cut_short_is_finished_by_recover_on_a_fresh_backend(
    backend: Backend, settings: Settings, tmp_path: Path
) -> None:
    ingest(backend, settings, _thelook(tmp_path)[1:])  # products and orders
    key = "inbox/order_items/items.csv"
    backend.store.put_bytes(key, ITEMS_CSV.encode())
    state = claim(backend, settings, key)
    load(backend, settings, state)
    backend.close()  # ... the process dies before the commit and the archive

    fresh = build_backend(settings)
    try:
        assert fresh.tables.get_file(state.seq).status == FileStatus.IN_PROGRESS  # type: ignore[union-attr]
        [done] = recover(fresh, settings)
        assert (done.status, done.seq, done.valid) == ("SUCCESS", state.seq, 5)
        assert fresh.lake.rows_by_seq("order_items") == {state.seq: 5}
        assert not fresh.store.exists(key)
        assert len(fresh.tables.list_alerts()) == 1
        assert audit(fresh).ok
    finally:
        fresh.close()
