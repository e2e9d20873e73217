"""Peak memory of one big file: the issue's "under 1 GB at any file size", proven on a single
order_items file (20M rows, 2.8 GB of CSV by default).

The products and orders it refers to are ingested first, by one ``salesflow ingest``
process; the order_items file alone by a second, fresh one, whose peak RSS (``wait4``'s
``ru_maxrss``) is the figure. Both are the real command line, with its default settings
(``chunk_rows`` 250k). The files come from salesflow's own generator (``benchmarks.data``,
cached), so the run needs nothing outside the repository.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.data import inputs

TARGET_MIB = 1024.0


def _ingest(files: list[Path], data_dir: Path, log: Path) -> dict[str, Any]:
    """One ``salesflow ingest --json`` process: wall, peak RSS (MiB), CPU and its output."""
    args = [sys.executable, "-m", "salesflow", "ingest", "--data-dir", str(data_dir), "--json"]
    started = time.perf_counter()
    with log.open("w") as err:
        proc = subprocess.Popen(
            [*args, *map(str, files)], stdout=subprocess.PIPE, stderr=err, text=True
        )
        assert proc.stdout is not None
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"salesflow ingest failed ({code}):\n{log.read_text()[-3000:]}")
    return {
        "wall_s": round(time.perf_counter() - started, 2),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "files": {
            f["dataset"]: {k: f[k] for k in ("status", "rows_in", "valid", "rejected")}
            for f in json.loads(out)
        },
    }


def measure(rows: int, scratch: Path) -> dict[str, Any]:
    """Products and orders, then the ``rows``-row order_items file alone."""
    data = inputs(rows)
    data_dir = scratch / "bigfile"
    head = _ingest([data.products, data.orders], data_dir, scratch / "bigfile-head.log")
    items = _ingest([data.order_items], data_dir, scratch / "bigfile-items.log")
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
