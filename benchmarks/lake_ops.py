"""The lake's own costs, on a real folder and SQLite file: a small file against a big lake, and
a stream of one-row files.

    python -m benchmarks.lake_ops                       # 10k and 5M stored, 5 repeats
    python -m benchmarks.lake_ops --stored 10k,1M --repeat 3 --small-files 2000

For each key kind (``monotonic``: increasing integer ids; ``random``: 20-character strings in
random order) and each lake size, a lake is filled in one commit over 60 months, then a daily
file of 1,000 *new* keys is committed ``repeat`` times (stage, resolve + marker under the
lock, publish), each phase timed; so is a file of 1,000 new keys spread over the 60 months
(60 fragments), a 1,000-row correction of stored keys spread over
every month, and a ``lookup`` of 1,000 stored keys (what a referential check costs). Then
one-row files are committed back to back into a fresh lake (auto-compaction on): files per
second, and the per-file time of the first and last 1,000. Medians are printed and written
to ``benchmarks/results/lake_ops.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl

from salesflow.adapters.lake import ParquetLake
from salesflow.adapters.local.locks import LocalLocks
from salesflow.adapters.local.store import LocalObjectStore
from salesflow.adapters.sqlite.catalog import SqliteCatalog

RESULTS = Path(__file__).resolve().parent / "results" / "lake_ops.json"
DATASET = "sales"
FIRST_DAY = date(2020, 1, 1)
NEW_DAY = date(2025, 6, 1)
CHUNK = 250_000
FILE_ROWS = 1_000


def parse_size(text: str) -> int:
    text = text.strip().lower().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def key_expr(kind: str) -> pl.Expr:
    """Record keys from the integer column ``k``."""
    if kind == "monotonic":
        return pl.col("k").cast(pl.String)
    return pl.col("k").hash(seed=42).cast(pl.String).str.zfill(20)


def records(
    kind: str, start: int, stop: int, *, seq: int, price: float = 1.0, new_day: bool = False
) -> pl.DataFrame:
    """Rows ``start..stop`` of the ``sales`` dataset, spread over 60 months (``new_day``: all
    on one day after them, as a daily file)."""
    keys = pl.int_range(start, stop, eager=True, dtype=pl.Int64).alias("k")
    day = (
        pl.lit(NEW_DAY)
        if new_day
        else pl.lit(FIRST_DAY) + pl.duration(days=(pl.col("k") * 7919) % 1800)
    )
    return keys.to_frame().select(
        key_expr(kind).alias("sale_id"),
        pl.lit(price, pl.Float64).alias("price"),
        (pl.col("k") % 13).cast(pl.Int32).alias("qty"),
        key_expr(kind).alias("_key"),
        day.alias("_day"),
        pl.lit(seq * 1_000, pl.Int64).alias("_arrived"),
        pl.lit(seq, pl.Int64).alias("_seq"),
        pl.lit(f"file-{seq}.csv").alias("_source"),
        (pl.col("k") + 1).alias("_record"),
    )


class Bench:
    """A lake over ``folder``: a local bucket, a SQLite catalog, lock files."""

    def __init__(self, folder: Path) -> None:
        self.ids = iter(range(1_000_000_000, 2_000_000_000))
        self.catalog = SqliteCatalog(folder / "salesflow.db")
        self.locks = LocalLocks(folder / "locks")
        self.lake = ParquetLake(
            LocalObjectStore(folder / "bucket"),
            self.catalog,
            self.locks,
            work_dir=folder / "work",
            new_commit=lambda: next(self.ids),
        )

    def commit(self, commit: int, frames: list[pl.DataFrame]) -> dict[str, float]:
        """The protocol, phase by phase (seconds)."""
        t0 = time.perf_counter()
        with self.lake.stage(DATASET, commit) as staging:
            for frame in frames:
                staging.write(frame)
        t1 = time.perf_counter()
        with self.locks.hold(self.lake.lock_name(DATASET)):
            self.lake.resolve(DATASET, commit)
            self.catalog.commit(commit)
        t2 = time.perf_counter()
        self.lake.publish(DATASET, commit)
        t3 = time.perf_counter()
        return {"stage": t1 - t0, "resolve": t2 - t1, "publish": t3 - t2, "total": t3 - t0}


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.median(r[k] for r in runs) * 1000, 1) for k in runs[0]}


def small_file_against(kind: str, stored: int, repeat: int, scratch: Path) -> dict[str, Any]:
    bench = Bench(scratch / f"{kind}-{stored}")
    started = time.perf_counter()
    frames = (records(kind, s, min(s + CHUNK, stored), seq=1) for s in range(0, stored, CHUNK))
    with bench.lake.stage(DATASET, 1) as staging:
        for frame in frames:
            staging.write(frame)
    with bench.locks.hold(bench.lake.lock_name(DATASET)):
        bench.lake.resolve(DATASET, 1)
        bench.catalog.commit(1)
    bench.lake.publish(DATASET, 1)
    load = time.perf_counter() - started
    daily, spread, corrections, lookups = [], [], [], []
    for i in range(repeat):
        start = stored + 2 * i * FILE_ROWS
        new = records(kind, start, start + FILE_ROWS, seq=10 + i, new_day=True)
        daily.append(bench.commit(10 + i, [new]))
        start += FILE_ROWS
        spread.append(bench.commit(50 + i, [records(kind, start, start + FILE_ROWS, seq=50 + i)]))
    step = max(stored // FILE_ROWS, 1)
    for i in range(repeat):
        seq = 100 + i
        fixed = records(kind, 0, stored, seq=seq, price=2.0).gather_every(step, offset=i)
        corrections.append(bench.commit(seq, [fixed.head(FILE_ROWS)]))
    for i in range(repeat):
        keys = records(kind, 0, stored, seq=1).gather_every(step, offset=i + 1).get_column("_key")
        t0 = time.perf_counter()
        found = bench.lake.lookup(DATASET, keys.head(FILE_ROWS))
        lookups.append({"lookup": time.perf_counter() - t0})
        assert found.height == min(FILE_ROWS, keys.len()), found.height
    return {
        "keys": kind,
        "stored": stored,
        "load_s": round(load, 1),
        "fragments": len(bench.lake.visible(DATASET)),
        "new_daily_file_ms": _median(daily),
        "new_file_over_60_months_ms": _median(spread),
        "correction_ms": _median(corrections),
        "lookup_ms": _median(lookups),
    }


def small_files(count: int, scratch: Path) -> dict[str, Any]:
    """One-row commits back to back (auto-compaction on)."""
    bench = Bench(scratch / "small")
    times: list[float] = []
    cpu: list[float] = []
    started = time.perf_counter()
    for i in range(count):
        row = records("monotonic", i, i + 1, seq=i + 1, new_day=True)
        t0, c0 = time.perf_counter(), time.process_time()
        bench.commit(i + 1, [row])
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    wall = time.perf_counter() - started
    window = min(1_000, max(count // 4, 1))

    def ms(values: list[float]) -> float:
        return round(statistics.median(values) * 1000, 2)

    return {
        "files": count,
        "files_per_s": round(count / wall, 1),
        "first_ms": ms(times[:window]),
        "last_ms": ms(times[-window:]),
        "first_cpu_ms": ms(cpu[:window]),
        "last_cpu_ms": ms(cpu[-window:]),
        "fragments": len(bench.lake.visible(DATASET)),
        "catalog_entries": len(bench.catalog.fragments(DATASET)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stored", default="10k,5M", help="lake sizes, e.g. 10k,5M")
    parser.add_argument("--keys", default="monotonic,random")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--small-files", type=int, default=10_000)
    parser.add_argument("--scratch", type=Path, default=None, help="where lakes are built")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.python_version()}",
        "small_file": [],
    }
    with tempfile.TemporaryDirectory(prefix="lake-bench-", dir=args.scratch) as folder:
        scratch = Path(folder)
        for kind in args.keys.split(","):
            for stored in map(parse_size, args.stored.split(",")):
                row = small_file_against(kind, stored, args.repeat, scratch)
                report["small_file"].append(row)
                print(json.dumps(row), flush=True)
        if args.small_files:
            report["small_files"] = small_files(args.small_files, scratch)
            print(json.dumps(report["small_files"]), flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
