"""Drop-to-KPI latency of a running ``salesflow run``.

A data dir is pre-loaded with one benchmark size (products, orders and order items). Then
``salesflow run --data-dir D --quiet-seconds 0 --json`` starts as a subprocess with
``SALESFLOW_BATCHING__DATASETS=[]`` (nothing batched): under seed 004's batching a lone
order_items file waits until a products and an orders file wait too (then 10 files or the
quiet timer), which is the batching policy working, not latency. Each drop is a small
order_items file of a day the store has never seen, whose
products and orders are already stored; it is written outside the inbox and renamed in
(atomic, like an S3 PUT). Two times are taken per drop:

- ``service``: until the service prints the file's result line (records, dead letters and
  KPIs are committed by then);
- ``visible``: until ``salesflow kpis --json``, polled back to back, returns the new day with
  the right item count. This is what a user sees, and includes the CLI's own start-up.

One warm-up drop is made first and not counted.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.data import Inputs

ITEMS_PER_DROP = 20
TIMEOUT = 60.0


def salesflow_cli() -> list[str]:
    """The ``salesflow`` console script next to this interpreter (or ``python -m``)."""
    script = Path(sys.executable).parent / "salesflow"
    return [str(script)] if script.exists() else [sys.executable, "-m", "salesflow"]


def _preload(data_dir: Path, inputs: Inputs) -> tuple[list[str], list[str]]:
    """Ingest ``inputs``; return a few stored product and order ids to reference."""
    subprocess.run(
        [
            *salesflow_cli(),
            "ingest",
            "--data-dir",
            str(data_dir),
            "--json",
            *map(str, inputs.paths),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    from salesflow.adapters import build_backend
    from salesflow.config import Settings

    backend = build_backend(Settings(data_dir=data_dir))
    try:
        products = backend.records.read("products", columns=[]).get_column("_key").head(5)
        orders = backend.records.read("orders", columns=[]).get_column("_key").head(5)
    finally:
        backend.close()
    return products.to_list(), orders.to_list()


UNBATCHED = {"SALESFLOW_BATCHING__DATASETS": "[]"}
"""Every dataset runs as it lands (seed 004's batching would hold a lone order_items file)."""


def _drop_file(path: Path, day: date, n: int, products: list[str], orders: list[str]) -> None:
    lines = ["id,order_id,user_id,product_id,status,created_at,sale_price"]
    for j in range(ITEMS_PER_DROP):
        lines.append(
            f"{9_000_000_000 + n * 1000 + j},{orders[j % len(orders)]},1,"
            f"{products[j % len(products)]},Complete,{day} 12:00:00 UTC,10.00"
        )
    path.write_text("\n".join(lines) + "\n")


class _Lines(threading.Thread):
    """Reads the service's JSON lines, remembering when each file's line arrived."""

    def __init__(self, stream: Any) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.seen: dict[str, float] = {}

    def run(self) -> None:
        for line in self.stream:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            self.seen[str(row.get("file", ""))] = time.monotonic()


def _visible(data_dir: Path, day: date) -> tuple[bool, float]:
    """Whether ``salesflow kpis --json`` shows ``day`` with all its items; and how long the
    command took."""
    started = time.monotonic()
    out = subprocess.run(
        [*salesflow_cli(), "kpis", "--data-dir", str(data_dir), "--json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    took = time.monotonic() - started
    rows = json.loads(out) if out.strip() else []
    found = any(
        str(r.get("day")) == day.isoformat() and r.get("items") == ITEMS_PER_DROP for r in rows
    )
    return found, took


def _one_drop(
    data_dir: Path, lines: _Lines, n: int, products: list[str], orders: list[str]
) -> dict[str, float]:
    day = datetime.now(UTC).date() - timedelta(days=400 + n)
    staging = data_dir / "staging"
    staging.mkdir(exist_ok=True)
    tmp = staging / f"latency-{n}.csv"
    _drop_file(tmp, day, n, products, orders)
    inbox = data_dir / "bucket" / "inbox" / "order_items"
    inbox.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    os.replace(tmp, inbox / tmp.name)
    cli_runs = []
    while True:
        found, took = _visible(data_dir, day)
        cli_runs.append(took)
        if found:
            visible = time.monotonic() - started
            break
        if time.monotonic() - started > TIMEOUT:
            raise TimeoutError(f"drop {n}: day {day} not visible after {TIMEOUT}s")
    service = next(
        (t - started for key, t in lines.seen.items() if key.endswith(tmp.name)), float("nan")
    )
    return {"visible": visible, "service": service, "kpis_cli": statistics.median(cli_runs)}


def measure(preload: Inputs, workdir: Path, drops: int = 5) -> dict[str, Any]:
    """Median drop-to-visible latency over ``drops`` small files (plus one warm-up)."""
    data_dir = workdir / "latency"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    products, orders = _preload(data_dir, preload)
    env = {**os.environ, **UNBATCHED}
    service = subprocess.Popen(
        [*salesflow_cli(), "run", "--data-dir", str(data_dir), "--quiet-seconds", "0", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines = _Lines(service.stdout)
    lines.start()
    try:
        _one_drop(data_dir, lines, 0, products, orders)  # warm-up
        runs = [_one_drop(data_dir, lines, n, products, orders) for n in range(1, drops + 1)]
    finally:
        service.send_signal(signal.SIGTERM)
        try:
            service.wait(timeout=30)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait()
    shutil.rmtree(data_dir, ignore_errors=True)
    return {
        "preloaded_rows": preload.rows,
        "drops": drops,
        "items_per_drop": ITEMS_PER_DROP,
        "env": UNBATCHED,
        "visible_median_s": statistics.median(r["visible"] for r in runs),
        "service_median_s": statistics.median(r["service"] for r in runs),
        "kpis_cli_median_s": statistics.median(r["kpis_cli"] for r in runs),
        "runs": runs,
    }
