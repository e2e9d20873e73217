"""``make bench``: time salesflow, seed 004's pandas approach and a Polars floor.

    python -m benchmarks.run                      # 0.5M, 2M, 5M rows, median of 3, latency
    python -m benchmarks.run --sizes 0.5M,2M --repeat 1
    python -m benchmarks.run --quick              # 100k rows, 1 run each: a smoke test
    python -m benchmarks.run --sizes 5M --spark-sizes none --small-files 2000
    python -m benchmarks.run --sizes 1M --approaches salesflow --spark-sizes 1M --no-latency

The Spark engine (``spark_local1``, ``spark_local2``: ``--engine spark`` on ``local[1]`` and
``local[2]``) runs only at ``--spark-sizes`` (default: the largest size), beside the Polars
engine (``salesflow``), so one run gives both and the 1 -> 2 core scaling; ``--spark-repeat``
runs of each (default 1, so ``make bench`` stays within an hour on 2 cores).

Every measurement runs in a fresh subprocess (``benchmarks.worker``); its peak RSS comes
from ``wait4``, through a small launcher so the runner's own peak is not counted in it
(``benchmarks.measured``). Approaches are interleaved within each repeat so a slow spell of
the machine hits all of them alike. The run fails (exit 1) if the approaches disagree on
counts or KPIs; otherwise it writes ``benchmarks/results/results.{md,json}`` and prints the
table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import agree, bigfile, latency, measured, outside
from benchmarks import pipeline_lake as small
from benchmarks.approaches import APPROACHES, SPARK
from benchmarks.data import DATA_DIR, Inputs, inputs
from benchmarks.report import render

RESULTS_DIR = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent


def parse_size(text: str) -> int:
    """``0.5M`` -> 500000, ``100k`` -> 100000, ``2000`` -> 2000."""
    text = text.strip().lower().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    number = text[:-1] if scale > 1 else text
    return int(float(number) * scale)


def measure(approach: str, data: Inputs, now: datetime, scratch: Path) -> dict[str, Any]:
    """One run of ``approach`` in a fresh interpreter: its outcome plus process figures."""
    out = scratch / f"{approach}-{data.rows}.json"
    log = scratch / f"{approach}-{data.rows}.log"
    args = [
        sys.executable, "-m", "benchmarks.worker", approach, str(data.folder),
        "--rows", str(data.rows), "--now", now.isoformat(),
        "--workdir", str(scratch / f"work-{approach}"), "--out", str(out),
    ]  # fmt: skip
    load = os.getloadavg()[0]
    with log.open("w") as err:
        done = measured.run(args, cwd=ROOT, stdout=err, stderr=subprocess.STDOUT)
    if done.code != 0:
        tail = log.read_text()[-3000:]
        raise RuntimeError(f"{approach} at {data.rows} rows failed ({done.code}):\n{tail}")
    outcome: dict[str, Any] = json.loads(out.read_text())
    outcome["process_seconds"] = done.wall_s
    outcome["peak_rss_mb"] = done.peak_rss_mb
    outcome["process_cpu_seconds"] = done.cpu_s
    outcome["load_before"] = load
    return outcome


def _summary(rows: int, runs: list[dict[str, Any]]) -> dict[str, Any]:
    seconds = [r["seconds"] for r in runs]
    rss = [r["peak_rss_mb"] for r in runs]
    wall = statistics.median(seconds)
    out = {
        "rows": rows,
        "runs": len(runs),
        "wall_s": wall,
        "wall_min_s": min(seconds),
        "wall_max_s": max(seconds),
        "rows_per_s": rows / wall if wall else 0.0,
        "peak_rss_mb": statistics.median(rss),
        "peak_rss_max_mb": max(rss),
        "cpu_s": statistics.median(r["cpu_seconds"] for r in runs),
        "process_s": statistics.median(r["process_seconds"] for r in runs),
        "load_before": [round(r["load_before"], 2) for r in runs],
    }
    if "session_s" in runs[0]:
        out["session_s"] = statistics.median(r["session_s"] for r in runs)
    for extra in ("phases", "lake_mb"):
        if extra in runs[0]:
            out[extra] = runs[len(runs) // 2][extra] if extra == "phases" else runs[0][extra]
    return out


def bench_size(
    rows: int,
    approaches: list[str],
    repeat: int,
    scratch: Path,
    repeats: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Every approach ``repeat`` times (``repeats`` overrides it per approach), interleaved."""
    data = inputs(rows)
    now = datetime.now(UTC)
    print(f"== {rows:,} order items ({data.megabytes:,.0f} MB of CSV in 3 files)", flush=True)
    runs: dict[str, list[dict[str, Any]]] = {a: [] for a in approaches}
    for r in range(repeat):
        for approach in approaches:
            if r >= (repeats or {}).get(approach, repeat):
                continue
            outcome = measure(approach, data, now, scratch)
            runs[approach].append(outcome)
            print(
                f"   run {r + 1}/{repeat} {approach:<13} {outcome['seconds']:8.2f} s "
                f"{outcome['peak_rss_mb']:8.0f} MB",
                flush=True,
            )
    first = {a: runs[a][0] for a in approaches}
    problems: list[str] = []
    for a in approaches:
        for again in runs[a][1:]:
            problems += agree.disagreements(f"{a} run 1", runs[a][0], f"{a} again", again)
    try:
        agree.check(first)
    except agree.Disagreement as exc:
        problems.append(str(exc))
    base = first[approaches[0]]
    files = {
        name: {k: f[k] for k in ("rows_in", "valid", "rejected")}
        for name, f in base["files"].items()
    }
    return {
        "rows": rows,
        "csv_mb": round(data.megabytes, 1),
        "files": files,
        "kpi_days": len(base["order_kpis"]),
        "category_rows": len(base["category_kpis"]),
        "agree": not problems,
        "problems": problems,
        "rule_differences": {a: agree.rule_differences(base, first[a]) for a in approaches[1:]},
        "approaches": {a: _summary(rows, runs[a]) for a in approaches},
    }


def _revision() -> str:
    """The commit measured, ``+dirty`` if ``src/`` has uncommitted changes."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+dirty" if git("status", "--porcelain", "--", "src") else "")


def _machine() -> dict[str, Any]:
    import pandas
    import polars

    return {
        "revision": _revision(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "polars": polars.__version__,
        "pandas": pandas.__version__,
        "platform": platform.platform(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="0.5M,2M,5M", help="order_items rows, e.g. 0.5M,2M")
    parser.add_argument("--repeat", type=int, default=3, help="runs per approach (median)")
    parser.add_argument("--quick", action="store_true", help="100k rows, 1 run: a smoke test")
    parser.add_argument(
        "--approaches",
        default=",".join(a for a in APPROACHES if a not in SPARK),
        help="comma-separated subset",
    )
    parser.add_argument(
        "--spark-sizes",
        default=None,
        help="sizes at which the Spark engine runs too (default: the largest; 'none' skips it)",
    )
    parser.add_argument(
        "--spark-repeat",
        type=int,
        default=1,
        help="runs of each Spark approach (default 1: one 5M run on local[1] takes ~20 min "
        "on 2 cores)",
    )
    parser.add_argument("--no-latency", action="store_true", help="skip the latency test")
    parser.add_argument(
        "--small-files",
        type=int,
        default=10_000,
        help="one-event files ingested in one call, per-file time compared between the first "
        "and the last tenth (0 skips it)",
    )
    parser.add_argument(
        "--big-file",
        default="20M",
        help="one order_items file of this many rows ingested alone, for its peak RSS "
        "(0 skips it; ~4 min and 2.8 GB of CSV at 20M)",
    )
    parser.add_argument("--drops", type=int, default=5, help="latency: files dropped")
    parser.add_argument(
        "--latency-preload", default=None, help="latency: rows pre-loaded (default: smallest size)"
    )
    parser.add_argument(
        "--outside-scale",
        type=float,
        default=1.0,
        help="../shared/bench jobs: gen_thelook.py scale (1.0 = 5M order items)",
    )
    parser.add_argument("--no-outside", action="store_true", help="skip ../shared/bench")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    sizes = [100_000] if args.quick else [parse_size(s) for s in args.sizes.split(",")]
    repeat = 1 if args.quick else args.repeat
    approaches = [a.strip() for a in args.approaches.split(",")]
    unknown = set(approaches) - set(APPROACHES)
    if unknown:
        parser.error(f"unknown approaches {sorted(unknown)}; use {', '.join(APPROACHES)}")
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    if args.spark_sizes == "none" or args.quick:
        spark_sizes: set[int] = set()
    elif args.spark_sizes:
        spark_sizes = {parse_size(s) for s in args.spark_sizes.split(",")}
    else:
        spark_sizes = {max(sizes)}
    results: dict[str, Any] = {"machine": _machine(), "repeat": repeat, "sizes": []}
    with tempfile.TemporaryDirectory(prefix="bench-", dir=DATA_DIR) as tmp:
        scratch = Path(tmp)
        for rows in sorted(set(sizes) | spark_sizes):
            here = [a for a in approaches if a not in SPARK]
            if rows not in sizes:
                here = ["salesflow"]  # the Polars engine beside Spark, nothing else
            if rows in spark_sizes:
                here += [a for a in SPARK if a not in here]
            spark_repeat = {a: min(repeat, args.spark_repeat) for a in SPARK}
            results["sizes"].append(bench_size(rows, here, repeat, scratch, spark_repeat))
        if not args.no_latency:
            preload = parse_size(args.latency_preload) if args.latency_preload else min(sizes)
            print(
                f"== latency: {args.drops} drops into a running service ({preload:,} rows "
                "pre-loaded)",
                flush=True,
            )
            results["latency"] = latency.measure(inputs(preload), scratch, args.drops)
        small_files = 200 if args.quick else args.small_files
        if small_files:
            print(f"== small files: {small_files:,} one-event files in one ingest", flush=True)
            results["small_files"] = small.stream(small_files)
        big_rows = 100_000 if args.quick else parse_size(args.big_file)
        if big_rows:
            print(f"== one big file: {big_rows:,} order items ingested alone", flush=True)
            results["big_file"] = bigfile.measure(big_rows, scratch)
        if outside.available() and not args.no_outside:
            scale = 0.02 if args.quick else args.outside_scale
            try:
                results["outside"] = outside.measure(scale, repeat, scratch)
            except (RuntimeError, subprocess.CalledProcessError, OSError) as exc:
                # The yardstick is not ours: its failure is reported, the rest is kept.
                results["outside_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
                print(f"outside reference jobs failed: {results['outside_error']}", flush=True)
        elif not args.no_outside:
            print(f"(no {outside.SHARED}: the outside reference jobs are skipped)", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    table = render(results)
    (args.out / "results.md").write_text(table)
    print()
    print(table)
    failed = [s for s in results["sizes"] if not s["agree"]]
    if "outside" in results and not results["outside"]["agree"]:
        failed.append({**results["outside"], "rows": sum(results["outside"]["rows"].values())})
    if "outside_error" in results:
        print(f"OUTSIDE JOBS FAILED: {results['outside_error']}", file=sys.stderr)
    for size in failed:
        print(f"DISAGREEMENT at {size['rows']:,} rows:", file=sys.stderr)
        for problem in size["problems"]:
            print(f"  {problem}", file=sys.stderr)
    return 1 if failed or "outside_error" in results else 0


if __name__ == "__main__":
    sys.exit(main())
