"""Peak memory of one big file: the issue's "under 1 GB at any file size", proven on a single
order_items file (20M rows, 2.2 GB of CSV by default).

The products and orders it refers to are ingested first, by one ``salesflow ingest``
process; the order_items file alone by a second, fresh one, whose peak RSS is the figure
(``wait4``'s ``ru_maxrss``, clean of this process's own: see ``benchmarks.measured``).
Both are the real command line, with its default settings (``chunk_rows`` 250k). The files
come from salesflow's own generator (``benchmarks.data``, cached), so the run needs nothing
outside the repository.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks import measured
from benchmarks.data import inputs

ROOT = Path(__file__).resolve().parent.parent
TARGET_MIB = 1024.0


def _ingest(files: list[Path], data_dir: Path, scratch: Path, name: str) -> dict[str, Any]:
    """One ``salesflow ingest --json`` process: wall, peak RSS (MiB), CPU and its outcome."""
    args = [sys.executable, "-m", "salesflow", "ingest", "--data-dir", str(data_dir), "--json"]
    out, log = scratch / f"{name}.json", scratch / f"{name}.log"
    with out.open("w") as stdout, log.open("w") as stderr:
        done = measured.run([*args, *map(str, files)], stdout=stdout, stderr=stderr)
    if done.code != 0:
        raise RuntimeError(f"salesflow ingest failed ({done.code}):\n{log.read_text()[-3000:]}")
    return {
        "wall_s": round(done.wall_s, 2),
        "peak_rss_mib": round(done.peak_rss_mb, 1),
        "cpu_s": round(done.cpu_s, 2),
        "files": {
            f["dataset"]: {k: f[k] for k in ("status", "rows_in", "valid", "rejected")}
            for f in json.loads(out.read_text())
        },
    }


def measure(rows: int, scratch: Path) -> dict[str, Any]:
    """Products and orders, then the ``rows``-row order_items file alone."""
    # Generated in a process of its own: the generator's memory (5.6 GB at 20M rows) is not
    # salesflow's, and this process stays small (see ``benchmarks.measured``).
    code = f"from benchmarks.data import inputs; inputs({rows})"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    data = inputs(rows)
    data_dir = scratch / "bigfile"
    head = _ingest([data.products, data.orders], data_dir, scratch, "bigfile-head")
    items = _ingest([data.order_items], data_dir, scratch, "bigfile-items")
    return {
        "rows": rows,
        "csv_mb": round(data.order_items.stat().st_size / 1e6, 1),
        "head": head,
        "items": items,
    }


def render(big: dict[str, Any]) -> list[str]:
    items, head = big["items"], big["head"]
    return [
        f"- one order_items file of {big['rows']:,} rows ({big['csv_mb']:,.0f} MB of CSV), "
        f"alone in a fresh `salesflow ingest` process after its products and orders: peak RSS "
        f"{items['peak_rss_mib']:,.0f} MiB in {items['wall_s']:.0f} s, "
        f"{'met' if items['peak_rss_mib'] < TARGET_MIB else '**missed**'} (the products and "
        f"orders before it: {head['peak_rss_mib']:,.0f} MiB in {head['wall_s']:.0f} s)",
    ]
