"""Benchmark inputs: thelook files made by salesflow's generator, cached under ``data/``.

One folder per size (``order_items-<rows>-s<seed>``) holds ``products.csv``, ``orders.csv``,
``order_items.csv`` and ``manifest.json``. About 1% of the order items carry a fault (each
of the generator's 9 fault kinds on ~0.11% of the records); products and orders get the same
per-kind rate. Generated dates sit 20 to 120 days before generation and the ``date.future``
faults 1 to 30 days after it, so a cache older than a day is regenerated: by then some
"future" dates would be in the past and the fault counts would drift.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
FAULT_SHARE = 0.01
ITEM_FAULT_KINDS = 9
MAX_AGE_SECONDS = 24 * 3600
SEED = 4


@dataclass(frozen=True)
class Inputs:
    """The three files of one benchmark size, in batch order."""

    rows: int
    folder: Path

    @property
    def products(self) -> Path:
        return self.folder / "products.csv"

    @property
    def orders(self) -> Path:
        return self.folder / "orders.csv"

    @property
    def order_items(self) -> Path:
        return self.folder / "order_items.csv"

    @property
    def paths(self) -> list[Path]:
        return [self.products, self.orders, self.order_items]

    @property
    def megabytes(self) -> float:
        return sum(p.stat().st_size for p in self.paths) / 1e6

    def manifest(self) -> dict[str, object]:
        data: dict[str, object] = json.loads((self.folder / "manifest.json").read_text())
        return data


def _fresh(folder: Path, rows: int) -> bool:
    stamp = folder / "manifest.json"
    if not stamp.exists():
        return False
    meta = json.loads(stamp.read_text())
    age = time.time() - float(meta.get("generated_at", 0))
    return meta.get("rows") == rows and age < MAX_AGE_SECONDS


def inputs(rows: int, *, root: Path = DATA_DIR, seed: int = SEED) -> Inputs:
    """The files for ``rows`` order items, generated now unless a fresh cache exists."""
    from salesflow.samples.generate import generate

    folder = root / f"order_items-{rows}-s{seed}"
    if _fresh(folder, rows):
        return Inputs(rows, folder)
    if folder.exists():
        shutil.rmtree(folder)
    tmp = root / f".tmp-{rows}-s{seed}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    started = time.perf_counter()
    manifest = generate(
        "order_items", rows, tmp, invalid_rate=FAULT_SHARE / ITEM_FAULT_KINDS, seed=seed
    )
    summary = manifest.to_dict()
    summary.pop("faults", None)
    summary["generated_at"] = time.time()
    summary["generate_seconds"] = round(time.perf_counter() - started, 2)
    (tmp / "manifest.json").write_text(json.dumps(summary, indent=1) + "\n")
    tmp.rename(folder)
    return Inputs(rows, folder)
