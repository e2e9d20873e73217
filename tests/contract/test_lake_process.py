"""The lake against real processes: a writer killed with SIGKILL mid-stage, mid-resolve and
mid-publish leaves nothing that ``discard`` or ``publish`` cannot finish, and staging a
5M-row file keeps a bounded memory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from salesflow.adapters.lake import ParquetLake
from tests.fixtures.lake_worker import BASE_ROWS, CHUNK, DATASET, chunk, open_lake, truth

pytestmark = pytest.mark.subprocess
ROOT = Path(__file__).resolve().parents[2]


def _worker(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.fixtures.lake_worker", *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    lake = open_lake(tmp_path)
    with lake.stage(DATASET, 1) as staging:
        for start in range(0, BASE_ROWS, CHUNK):
            staging.write(chunk(start, start + CHUNK, seq=1, price=1.0))
    with lake.locks.hold(lake.lock_name(DATASET)):
        lake.resolve(DATASET, 1)
        lake.catalog.commit(1)
    lake.publish(DATASET, 1)
    yield tmp_path


def _state(lake: ParquetLake, data_dir: Path) -> tuple[object, ...]:
    bucket = data_dir / "bucket"
    files = sorted(str(p.relative_to(bucket)) for p in bucket.rglob("*") if p.is_file())
    entries = sorted((f.path, f.created_by, f.retired_by) for f in lake.catalog.fragments(DATASET))
    return files, entries


def _directory_prices(data_dir: Path) -> dict[str, float]:
    frame = pl.scan_parquet(
        f"{data_dir}/bucket/lake/{DATASET}/**/*.parquet", hive_partitioning=True
    ).collect()
    return dict(frame.select("_key", "price").rows())


def _kill_at(data_dir: Path, point: str) -> None:
    worker = _worker("commit", str(data_dir), point)
    assert worker.stdout is not None
    line = worker.stdout.readline()
    assert line.strip() == f"PAUSED {point}", line
    os.kill(worker.pid, signal.SIGKILL)
    assert worker.wait(timeout=60) == -signal.SIGKILL
    worker.stdin.close()  # type: ignore[union-attr]
    worker.stdout.close()


@pytest.mark.parametrize("point", ["stage", "close", "resolve"])
def test_a_writer_killed_before_its_commit_is_discarded_cleanly(data_dir: Path, point: str) -> None:
    before = _state(open_lake(data_dir), data_dir)
    _kill_at(data_dir, point)
    lake = open_lake(data_dir)
    with lake.locks.hold(lake.lock_name(DATASET), timeout=5):
        pass  # the dead writer's lock died with it
    lake.discard(DATASET, 2)
    assert _state(lake, data_dir) == before
    assert list((data_dir / "work").glob("lake-*")) == []
    assert _directory_prices(data_dir) == {str(k): 1.0 for k in range(BASE_ROWS)}

    redo = _worker("commit", str(data_dir), "none")
    out, _ = redo.communicate(timeout=300)
    assert out.strip() == "DONE"
    assert _directory_prices(data_dir) == truth()


def test_a_writer_killed_mid_publish_is_finished_by_publishing_again(data_dir: Path) -> None:
    _kill_at(data_dir, "publish")
    lake = open_lake(data_dir)
    prices = dict(lake.read(DATASET).select("_key", "price").rows())
    assert prices == truth()  # committed: the lake's own readers see it at once
    lake.publish(DATASET, 2)
    assert _directory_prices(data_dir) == truth()
    staged = [p for p in (data_dir / "bucket").rglob("*.staged")]
    assert staged == []
    assert all(f.published and f.retired_by is None for f in lake.catalog.fragments(DATASET))


def _peak_rss(folder: Path, rows: int) -> dict[str, int]:
    worker = _worker("memory", str(folder), str(rows), "250000")
    out, _ = worker.communicate(timeout=900)
    assert worker.returncode == 0
    report: dict[str, int] = json.loads(out)
    assert report["rows"] == rows and report["fragments"] == 60
    return report


def test_staging_5m_rows_over_60_months_keeps_memory_bounded(
    tmp_path: Path, record_property: pytest.RecordProperty
) -> None:
    one_chunk = _peak_rss(tmp_path / "one", 250_000)["peak"]
    five_million = _peak_rss(tmp_path / "many", 5_000_000)["peak"]
    growth = five_million - one_chunk
    record_property("stage_5m_peak_rss_mb", round(five_million / 2**20))
    record_property("stage_250k_peak_rss_mb", round(one_chunk / 2**20))
    print(
        f"staging 5,000,000 rows over 60 months: peak RSS {five_million / 2**20:.0f} MB; "
        f"one 250k-row chunk: {one_chunk / 2**20:.0f} MB"
    )
    # 20 times the rows; 5M rows held in memory would take ~350 MB more.
    assert growth < 100 * 2**20
