"""``audit`` in bounded memory: the lake's keys are checked a hash-split part at a time and
the aggregates recomputed a few days at a time. Split into a dozen parts and more, it must
find exactly what one pass over everything finds, healthy or not."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from salesflow.adapters import build_backend
from salesflow.config import Settings
from salesflow.ops.audit import audit
from salesflow.pipeline.inbox import ingest
from salesflow.ports import Backend
from salesflow.samples.generate import generate

SMALL = 37
"""Records per pass: order_items alone takes a dozen passes and as many day batches."""


@pytest.fixture
def backend(settings: Settings, tmp_path: Path) -> Iterator[Backend]:
    be = build_backend(settings)
    files = generate("order_items", 400, tmp_path / "in", invalid_rate=0.01, seed=5).files
    online = generate("online_retail", 300, tmp_path / "retail", seed=5).files
    try:
        states = ingest(be, settings, [*files])
        states += ingest(be, settings, online, dataset="online_retail")
        assert {s.status for s in states} == {"SUCCESS"}
        yield be
    finally:
        be.close()


def _days(backend: Backend) -> int:
    return backend.records.read("order_items").get_column("_day").n_unique()


def test_a_healthy_store_passes_in_one_pass_and_in_many(
    backend: Backend,
) -> None:
    assert _days(backend) > 3  # so the day batches are many
    assert backend.lake.rows_by_seq("order_items").popitem()[1] > 10 * SMALL
    whole = audit(backend)
    split = audit(backend, rows_at_a_time=SMALL)
    assert whole.ok, whole.violations
    assert split.to_dict() == whole.to_dict()


def test_a_wrong_kpi_and_a_repeated_key_are_found_however_the_work_is_split(
    backend: Backend, settings: Settings
) -> None:
    with sqlite3.connect(settings.data_dir / "salesflow.db", isolation_level=None) as db:
        db.execute("UPDATE agg_order_kpis SET items = items + 1 WHERE rowid = 1")
    [fragment] = sorted((settings.bucket_dir / "lake" / "order_items").rglob("*.parquet"))[:1]
    rows = pl.read_parquet(fragment)
    pl.concat([rows, rows.head(1)]).write_parquet(fragment)  # one key held twice

    whole = audit(backend)
    split = audit(backend, rows_at_a_time=SMALL)
    assert not whole.ok
    assert any(v.startswith("kpis: order_kpis") for v in whole.violations), whole.violations
    assert any(v.startswith("one_version: order_items: 1 keys") for v in whole.violations)
    assert split.violations == whole.violations


@pytest.mark.parametrize("passes", [1, 2, 7, 64])
def test_every_key_falls_in_exactly_one_part(passes: int) -> None:
    from salesflow.ops.audit import _parts

    keys = pl.DataFrame({"_key": [f"k{n}" for n in range(5_000)] + ["1|2", "", "é"]})
    hits = [keys.with_columns(part.alias("hit"))["hit"].cast(pl.Int32) for part in _parts(passes)]
    assert len(hits) == passes
    assert (sum(hits[1:], hits[0]) == 1).all()
    if passes > 1:
        assert all(0 < h.sum() < keys.height for h in hits)
