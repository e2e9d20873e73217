"""References checked against the store per chunk: only the keys a chunk mentions are asked
about (``Lake.contains``), never every key of the referenced dataset."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from salesflow.datasets import get_spec
from salesflow.samples.generate import generate
from salesflow.validation import validate_path
from salesflow.validation.filewide import Reference


def test_only_the_chunks_keys_are_looked_up_and_unknown_ones_rejected(tmp_path: Path) -> None:
    files = generate("order_items", 300, tmp_path, seed=3).files
    [items] = [f for f in files if "order_items" in f.name]
    asked: dict[str, list[str]] = {}

    def contains(dataset: str, values: pl.Series) -> pl.Series:
        asked.setdefault(dataset, []).extend(values.cast(pl.String).to_list())
        if dataset == "products":  # odd product ids are not stored
            return values.cast(pl.Int64) % 2 == 0
        return pl.Series([True] * values.len())

    chunks = list(
        validate_path(
            items,
            get_spec("order_items"),
            source=str(items),
            reference=Reference(keys={}, contains=contains),
            now=datetime(2030, 1, 1, tzinfo=UTC),
            chunk_rows=100,
        )
    )
    valid = pl.concat([c.valid for c in chunks])
    rejected = pl.concat([c.rejected for c in chunks])
    mentioned = pl.read_csv(items).get_column("product_id").cast(pl.String)
    assert len(chunks) >= 3
    assert set(asked["products"]) <= set(mentioned.to_list())
    assert len(asked["products"]) <= sum(c.valid.height + c.rejected.height for c in chunks)
    assert (valid.get_column("product_id") % 2 == 0).all()
    assert rejected.height > 0
    assert all(
        "ref.product_id" in str(reasons) for reasons in rejected.get_column("reasons").to_list()
    )
