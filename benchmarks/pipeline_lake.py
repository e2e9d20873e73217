"""The lake through the pipeline: small-file speed, and a small file's cost as the store grows.

1. ``stream``: 2,000 one-event sale_events files through ``pipeline.inbox.ingest`` (one call,
   as ``salesflow ingest DIR`` does) on the local backend. Per-file time is the time between
   two files' results (claim, load, resolve, commit, publish, totals, archive); the first and
   the last tenth of the files are compared: it must not grow with the number of commits (the
   lake compacts small fragments as it goes, and the catalog lookups stay per month). ``make
   bench`` runs it too (``--small-files``).
2. ``growth``: one 1,000-row sale_events file (900 new sales, 100 corrections of stored ones
   of one day; then 1,000 new sales) ingested into a store holding 10k, then 1M records (one
   fragment of ~200k rows per month); the median of 3 files each.

    .venv/bin/python -m benchmarks.pipeline_lake [--events 2000] [--big 1000000]

Results go to ``benchmarks/results/pipeline_lake.json`` (and docs/benchmarks.md by hand).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from salesflow.adapters import build_backend
from salesflow.config import Settings
from salesflow.pipeline.inbox import ingest
from salesflow.pipeline.state import StepState

RESULTS = Path(__file__).parent / "results" / "pipeline_lake.json"
START = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def _event(n: int, *, price: float = 12.5) -> dict[str, Any]:
    return {
        "sale_id": f"s{n:09d}",
        "product": f"product-{n % 97}",
        "category": "Office",
        "price": price,
        "quantity": 1 + n % 3,
        "timestamp": (START + timedelta(minutes=n)).isoformat().replace("+00:00", "Z"),
        "currency": "EUR",
    }


def _settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, alerts={"sinks": ["log"]}, log_level="ERROR")


def stream(events: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sf-bench-stream-") as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        paths = []
        for n in range(events):
            path = folder / f"event-{n:05d}.json"
            path.write_text(json.dumps([_event(n)]))
            paths.append(path)
        settings = _settings(Path(tmp) / "data")
        backend = build_backend(settings)
        stamps: list[float] = []
        try:
            started = time.perf_counter()
            states = ingest(
                backend,
                settings,
                paths,
                dataset="sale_events",
                progress=lambda _s: stamps.append(time.perf_counter()),
            )
            total = time.perf_counter() - started
            fragments = len(backend.lake.catalog.fragments("sale_events"))  # type: ignore[attr-defined]
            stored = backend.lake.read("sale_events", columns=[]).height
        finally:
            backend.close()
    assert all(s.status == "SUCCESS" for s in states), {s.status for s in states}
    per_file = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    window = max(1, len(per_file) // 10)  # the issue: the last 1,000 of 10,000 vs the first
    first, last = per_file[:window], per_file[-window:]
    return {
        "files": events,
        "total_s": round(total, 2),
        "files_per_second": round(events / total, 1),
        "window": window,
        "first_median_ms": round(statistics.median(first) * 1000, 1),
        "first_mean_ms": round(statistics.fmean(first) * 1000, 1),
        "last_median_ms": round(statistics.median(last) * 1000, 1),
        "last_mean_ms": round(statistics.fmean(last) * 1000, 1),
        "stored_records": stored,
        "fragments_at_end": fragments,
    }


def _big_file(path: Path, rows: int, offset: int = 0) -> None:
    frame = pl.DataFrame(
        {
            "sale_id": [f"s{n:09d}" for n in range(offset, offset + rows)],
            "product": [f"product-{n % 97}" for n in range(offset, offset + rows)],
            "price": [12.5] * rows,
            "quantity": [1 + n % 3 for n in range(offset, offset + rows)],
            "timestamp": [
                (START + timedelta(minutes=n % 200_000)).isoformat().replace("+00:00", "Z")
                for n in range(offset, offset + rows)
            ],
            "currency": ["EUR"] * rows,
        }
    )
    frame.write_csv(path)


def growth(stored: int, *, files: int = 3, corrections: int = 100) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sf-bench-growth-") as tmp:
        root = Path(tmp)
        settings = _settings(root / "data")
        preload = root / "preload.csv"
        _big_file(preload, stored)
        backend = build_backend(settings)
        try:
            started = time.perf_counter()
            [loaded] = ingest(backend, settings, [preload], dataset="sale_events")
            load_s = time.perf_counter() - started
            assert loaded.status == "SUCCESS", loaded
            times = []
            for f in range(files):
                small = root / f"small-{f}.csv"
                fresh = 1000 - corrections
                _big_file(small, fresh, offset=stored + f * fresh)
                if corrections:
                    fixes = root / f"fix-{f}.csv"
                    _big_file(fixes, corrections, offset=f * 1000)
                    both = pl.concat([pl.read_csv(small), pl.read_csv(fixes)])
                    both.write_csv(small)
                timed: list[StepState] = []
                started = time.perf_counter()
                timed = ingest(backend, settings, [small], dataset="sale_events")
                times.append(time.perf_counter() - started)
                assert timed[0].status == "SUCCESS" and timed[0].valid == 1000, timed
            total = backend.lake.read("sale_events", columns=[]).height
        finally:
            backend.close()
    assert total == stored + files * (1000 - corrections), total
    return {
        "stored_before": stored,
        "corrections_per_file": corrections,
        "preload_s": round(load_s, 1),
        "file_rows": 1000,
        "file_s_each": [round(t, 3) for t in times],
        "file_s_median": round(statistics.median(times), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--only", choices=["stream", "growth"])
    args = parser.parse_args()
    found: dict[str, Any] = {
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if args.only in (None, "stream"):
        found["stream"] = stream(args.events)
        print(json.dumps(found["stream"]), flush=True)
    if args.only in (None, "growth"):
        found["growth"] = [
            growth(args.small),
            growth(args.big),
            growth(args.small, corrections=0),
            growth(args.big, corrections=0),
        ]
        print(json.dumps(found["growth"]), flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    RESULTS.write_text(json.dumps({**old, **found}, indent=2) + "\n")


if __name__ == "__main__":
    main()
