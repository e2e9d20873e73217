"""Realistic, seeded sample data for every dataset, with faults injected on purpose.

>>> from pathlib import Path
>>> m = generate("orders_json", 100, Path("/tmp/sample"), invalid_rate=0.02)  # doctest: +SKIP
>>> m.faults[0]  # doctest: +SKIP
InjectedFault(file='orders_json.json', record=17, rule='presence.contact_info')

``invalid_rate`` of the records get one fault each, the fault kinds a dataset can suffer
sharing them evenly, and the :class:`Manifest` lists exactly which record must be rejected
for which rule, so tests can check detection exactly. Generation is vectorized
(numpy/Polars): millions of rows take seconds. ``products`` and ``orders`` are written
alone; ``order_items`` refer to products and orders, so they come as the three consistent
files (``rows`` order items, ~rows/50 products, ~rows/2.5 orders): items alone would all
fail their references.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np

from salesflow.errors import TerminalError
from salesflow.samples.live import sale_event
from salesflow.samples.synth import InjectedFault, Manifest, utc
from salesflow.samples.synth_json import generate_orders_json, generate_sale_events
from salesflow.samples.synth_retail import generate_online_retail
from salesflow.samples.synth_thelook import generate_orders, generate_products, generate_thelook

FORMATS: dict[str, tuple[str, ...]] = {
    "orders_json": ("json", "jsonl", "list", "csv"),
    "sale_events": ("jsonl", "json", "list", "csv"),
    "online_retail": ("csv",),
    "products": ("csv",),
    "orders": ("csv",),
    "order_items": ("csv",),
}
"""Output formats per dataset; the first is the default. ``list``: a bare JSON list."""


def generate(
    dataset: str,
    rows: int,
    out_dir: Path,
    *,
    invalid_rate: float = 0.0,
    seed: int = 0,
    fmt: str | None = None,
    now: datetime | None = None,
) -> Manifest:
    """Write ``rows`` records of ``dataset`` under ``out_dir`` and return the manifest.

    ``invalid_rate`` (0..1) is the share of records given a fault; ``seed`` makes the output
    reproducible; ``now`` anchors the dates (all clean dates lie before it).
    """
    if dataset not in FORMATS:
        raise TerminalError(
            f"unknown dataset {dataset!r}", hint=f"use one of: {', '.join(FORMATS)}"
        )
    fmt = fmt or FORMATS[dataset][0]
    if fmt not in FORMATS[dataset]:
        raise TerminalError(
            f"{dataset} cannot be written as {fmt!r}",
            hint=f"use one of: {', '.join(FORMATS[dataset])}",
        )
    if rows < 1 or not 0.0 <= invalid_rate <= 1.0:
        raise TerminalError(
            f"rows={rows}, invalid_rate={invalid_rate}",
            hint="rows must be >= 1 and invalid_rate between 0 and 1",
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    when = utc(now)
    note = ""
    if dataset == "products":
        files, faults, records = generate_products(rng, rows, invalid_rate, out_dir)
    elif dataset == "orders":
        files, faults, records = generate_orders(rng, rows, invalid_rate, out_dir, when)
    elif dataset == "order_items":
        files, faults, records = generate_thelook(rng, rows, invalid_rate, out_dir, when)
        note = (
            "order_items refer to products and orders, so consistent products.csv and "
            "orders.csv are written with them (ingest all three, or every item fails ref.*)"
        )
    elif dataset == "online_retail":
        files, faults, records = generate_online_retail(rng, rows, invalid_rate, out_dir, when)
    elif dataset == "orders_json":
        files, faults, records = generate_orders_json(rng, rows, invalid_rate, out_dir, fmt)
    else:
        files, faults, records = generate_sale_events(rng, rows, invalid_rate, out_dir, fmt, when)
    return Manifest(dataset, rows, seed, invalid_rate, files, faults, records, note)


__all__ = ["FORMATS", "InjectedFault", "Manifest", "generate", "sale_event"]
