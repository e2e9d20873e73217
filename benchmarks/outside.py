"""The outside yardstick: the reference jobs in ``../shared/bench``, when that folder exists.

The issue's targets are ratios against two jobs the project does not own: ``job_polars.py``
(a bare Polars job that validates, writes and computes the KPIs, and stores nothing else:
the floor) and ``job_pandas.py`` (seed 004's pandas approach, 10,000-row chunks). They are
run, never copied: this module starts them as they are, on files made by their own generator
(``gen_thelook.py``, whose rules they share), and runs ``salesflow ingest`` on the very same
files in the same run, interleaved, so a slow spell of the shared machine hits all alike.

Each job writes ``summary.json`` (valid and invalid per table) and two KPI CSVs; salesflow's
outcome comes from ``benchmarks.worker``. The three must agree on every per-file count and on
the category x day KPIs' items and orders (revenue is defined differently: see ``_same``), or
the run reports the disagreement.
"""

from __future__ import annotations

import csv
import json
import os
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import measured
from benchmarks.data import DATA_DIR, Inputs

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SALESFLOW_BENCH_REFERENCE") or ROOT.parent / "shared" / "bench")
"""Where the outside jobs are: ``../shared/bench`` beside the clone, or this variable."""
JOBS = {"job_polars": ["job_polars.py"], "job_pandas": ["job_pandas.py", "10000"]}
TABLES = ("products", "orders", "order_items")
NOW = datetime(2025, 6, 1, tzinfo=UTC)
"""The reference jobs' fixed "now" (their ``common.NOW``): future dates are judged by it."""


def available() -> bool:
    return (SHARED / "job_polars.py").is_file() and (SHARED / "gen_thelook.py").is_file()


def data(scale: float, seed: int = 7) -> Path:
    """The three files of ``gen_thelook.py`` at ``scale``, generated once and cached."""
    folder = DATA_DIR / f"outside-{scale:g}-s{seed}"
    stamp = folder / ".done"
    if not stamp.exists():
        folder.mkdir(parents=True, exist_ok=True)
        args = [str(SHARED / "gen_thelook.py"), str(folder), f"{scale:g}", str(seed)]
        plain = subprocess.run([sys.executable, *args], cwd=SHARED, capture_output=True, text=True)
        if plain.returncode != 0:
            if "cannot cast 'Object' type" not in plain.stderr:
                raise RuntimeError(f"gen_thelook.py failed:\n{plain.stderr[-3000:]}")
            print("   (gen_thelook.py: rerun via benchmarks.compat)")
            subprocess.run(
                [sys.executable, "-m", "benchmarks.compat", *args],
                cwd=SHARED,
                check=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            (folder / ".compat").touch()
        stamp.touch()
    return folder


def _rows(path: Path) -> int:
    with path.open("rb") as fh:
        return max(sum(1 for _ in fh) - 1, 0)


def _timed(args: list[str], cwd: Path, log: Path) -> tuple[float, float, float]:
    """Run ``args``; (wall seconds, peak RSS MB, CPU seconds), see ``benchmarks.measured``."""
    with log.open("w") as err:
        done = measured.run(args, cwd=cwd, stdout=err, stderr=subprocess.STDOUT)
    if done.code != 0:
        raise RuntimeError(f"{args[1]} failed ({done.code}):\n{log.read_text()[-3000:]}")
    return done.wall_s, done.peak_rss_mb, done.cpu_s


def run_job(name: str, folder: Path, scratch: Path) -> dict[str, Any]:
    """One run of an outside job: its process figures, per-table counts and KPI rows."""
    out = scratch / name
    script, *extra = JOBS[name]
    wall, rss, cpu = _timed(
        [sys.executable, str(SHARED / script), str(folder), str(out), *extra],
        SHARED,
        scratch / f"{name}.log",
    )
    summary = json.loads((out / "summary.json").read_text())
    return {
        "seconds": wall,
        "peak_rss_mb": rss,
        "cpu_seconds": cpu,
        "files": {
            t: {"valid": summary[t]["valid"], "rejected": summary[t]["invalid"]} for t in TABLES
        },
        "category_kpis": _kpis(out / "kpi_category_day.csv", ("category", "day")),
    }


def _kpis(path: Path, keys: tuple[str, ...]) -> dict[tuple[str, ...], tuple[int, int, float]]:
    with path.open(newline="") as fh:
        return {
            tuple(row[k][:10] if k == "day" else row[k] for k in keys): (
                int(float(row["items"])),
                int(float(row["orders"])),
                round(float(row["revenue"]), 2),
            )
            for row in csv.DictReader(fh)
        }


def run_salesflow(folder: Path, scratch: Path) -> dict[str, Any]:
    """``salesflow ingest`` of the same three files, through ``benchmarks.worker``."""
    out = scratch / "salesflow.json"
    rows = _rows(folder / "order_items.csv")
    args = [
        sys.executable, "-m", "benchmarks.worker", "salesflow", str(folder),
        "--rows", str(rows), "--now", NOW.isoformat(),
        "--workdir", str(scratch / "work-salesflow"), "--out", str(out),
    ]  # fmt: skip
    wall, rss, cpu = _timed(args, ROOT, scratch / "salesflow.log")
    outcome = json.loads(out.read_text())
    return {
        "seconds": wall,
        "timed_seconds": outcome["seconds"],
        "peak_rss_mb": rss,
        "cpu_seconds": cpu,
        "files": {
            t: {"valid": outcome["files"][t]["valid"], "rejected": outcome["files"][t]["rejected"]}
            for t in TABLES
        },
        "category_kpis": {
            (r["category"], r["day"]): (r["items"], r["orders"], round(r["revenue"], 2))
            for r in outcome["category_kpis"]
        },
    }


def _same(a: tuple[int, int, float] | None, b: tuple[int, int, float] | None) -> bool:
    """Items and orders per category and day, exactly. Revenue is not compared: salesflow's
    excludes Cancelled and Returned items (``salesflow.kpis.aggregates``), the reference
    jobs' sums every valid item; the project's own floor (``floor_polars.py``) checks
    revenue with salesflow's definition."""
    if a is None or b is None:
        return a is b
    return a[:2] == b[:2]


def _disagreements(runs: dict[str, dict[str, Any]]) -> list[str]:
    base_name = "salesflow"
    base = runs[base_name]
    problems = []
    for name, run in runs.items():
        if name == base_name:
            continue
        if run["files"] != base["files"]:
            problems.append(f"{name} counts {run['files']} != salesflow {base['files']}")
        theirs, ours = run["category_kpis"], base["category_kpis"]
        differ = [k for k in set(theirs) | set(ours) if not _same(theirs.get(k), ours.get(k))]
        if differ:
            k = sorted(differ)[0]
            problems.append(
                f"{name}: {len(differ)} category x day KPI rows differ, e.g. {k}: "
                f"{theirs.get(k)} vs salesflow {ours.get(k)}"
            )
    return problems


def measure(scale: float, repeat: int, scratch: Path) -> dict[str, Any]:
    """salesflow, job_polars and job_pandas on one set of files, ``repeat`` times each."""
    folder = data(scale)
    rows = {t: _rows(folder / f"{t}.csv") for t in TABLES}
    megabytes = Inputs(rows["order_items"], folder).megabytes
    print(
        f"== outside reference jobs at scale {scale:g}: {sum(rows.values()):,} rows "
        f"({megabytes:,.0f} MB of CSV)",
        flush=True,
    )
    names = ["salesflow", *JOBS]
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for r in range(repeat):
        for name in names:
            work = scratch / f"outside-{name}-{r}"
            work.mkdir(parents=True, exist_ok=True)
            one = (
                run_salesflow(folder, work) if name == "salesflow" else run_job(name, folder, work)
            )
            runs[name].append(one)
            print(
                f"   run {r + 1}/{repeat} {name:<11} {one['seconds']:8.2f} s "
                f"{one['peak_rss_mb']:8.0f} MB",
                flush=True,
            )
    problems = _disagreements({n: runs[n][0] for n in names})
    summary = {
        n: {
            "wall_s": statistics.median(x["seconds"] for x in runs[n]),
            "wall_all_s": [round(x["seconds"], 2) for x in runs[n]],
            "peak_rss_mb": statistics.median(x["peak_rss_mb"] for x in runs[n]),
            "cpu_s": statistics.median(x["cpu_seconds"] for x in runs[n]),
        }
        for n in names
    }
    ours = summary["salesflow"]["wall_s"]
    return {
        "scale": scale,
        "rows": rows,
        "csv_mb": round(megabytes, 1),
        "generator_compat": (folder / ".compat").exists(),
        "files": runs["salesflow"][0]["files"],
        "agree": not problems,
        "problems": problems,
        "approaches": summary,
        "ratios": {
            "salesflow / job_polars": ours / summary["job_polars"]["wall_s"],
            "job_pandas / salesflow": summary["job_pandas"]["wall_s"] / ours,
        },
    }


def render(outside: dict[str, Any]) -> list[str]:
    """The Markdown section for ``results.md``."""
    a = outside["approaches"]
    r = outside["ratios"]
    lines = [
        "",
        f"## Against the outside reference jobs (`../shared/bench`, scale {outside['scale']:g}, "
        f"{sum(outside['rows'].values()):,} rows, {outside['csv_mb']:,.0f} MB of CSV)",
        "",
        "| run | wall median (s) | all runs (s) | CPU (s) | peak RSS (MB) |",
        "|---|---:|---|---:|---:|",
    ]
    for name, s in a.items():
        lines.append(
            f"| {name} | {s['wall_s']:.2f} | {', '.join(f'{w:.1f}' for w in s['wall_all_s'])} | "
            f"{s['cpu_s']:.1f} | {s['peak_rss_mb']:,.0f} |"
        )
    floor, speedup = r["salesflow / job_polars"], r["job_pandas / salesflow"]
    rss = a["salesflow"]["peak_rss_mb"]
    lines += [
        "",
        f"- salesflow within 1.5x of `job_polars.py`: {floor:.2f}x, "
        f"{'met' if floor <= 1.5 else '**missed**'}",
        f"- salesflow at least 8x faster than `job_pandas.py`: {speedup:.1f}x, "
        f"{'met' if speedup >= 8 else '**missed**'}",
        f"- salesflow peak RSS under 1 GB: {rss:,.0f} MB, {'met' if rss < 1024 else '**missed**'}",
        f"- per-file valid/rejected counts and category x day items and orders agree: "
        f"{'yes' if outside['agree'] else 'NO: ' + '; '.join(outside['problems'])}",
    ]
    if outside.get("generator_compat"):
        lines.append(
            "- `gen_thelook.py` ran under `benchmarks.compat` (this Polars refuses its NumPy "
            "object arrays; the shim hands them over as lists)"
        )
    return lines
