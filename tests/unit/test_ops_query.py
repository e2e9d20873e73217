"""``ops.query`` over any record store: DuckDB on Parquet where the lake is local (with the
latest-``_seq`` dedup while the lake keeps old versions, none once it holds only current
ones), else the store's own ``read``."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from salesflow.ops.query import QueryError, dataset_source, query
from tests.fixtures.memory import memory_backend


def frame(seq: int, rows: dict[str, str]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "_key": list(rows),
            "_seq": [seq] * len(rows),
            "_day": [date(2024, 6, 1)] * len(rows),
            "qty": list(rows.values()),
        }
    )


def test_without_local_files_the_store_read_is_queried() -> None:
    backend = memory_backend()
    backend.records.write("orders", 1, frame(1, {"a": "1", "b": "2"}))
    backend.records.write("orders", 2, frame(2, {"a": "5"}))
    assert dataset_source(backend, "orders") is None
    out = query(backend, "SELECT _key, qty FROM orders ORDER BY _key")
    assert out.to_dicts() == [{"_key": "a", "qty": "5"}, {"_key": "b", "qty": "2"}]


class OldLake:
    """Today's local lake: every version on disk, listed by ``fragments``."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths

    def fragments(self, dataset: str) -> list[Path]:
        return self.paths


class NewLake(OldLake):
    """The rebuilt lake: ``local_paths`` lists only the visible fragments."""

    def local_paths(self, dataset: str) -> list[Path]:
        return self.paths


def test_parquet_files_are_deduplicated_until_the_lake_holds_only_current_versions(
    tmp_path: Path,
) -> None:
    old = tmp_path / "part-000000000001-00000.parquet"
    new = tmp_path / "part-000000000002-00000.parquet"
    frame(1, {"a": "1", "b": "2"}).write_parquet(old)
    frame(2, {"a": "5"}).write_parquet(new)
    backend = memory_backend()
    backend.records = OldLake([old, new])  # type: ignore[assignment]
    sql = "SELECT _key, qty FROM orders ORDER BY _key"
    assert query(backend, sql).to_dicts() == [{"_key": "a", "qty": "5"}, {"_key": "b", "qty": "2"}]

    backend.records = NewLake([new])  # type: ignore[assignment]
    assert query(backend, sql).to_dicts() == [{"_key": "a", "qty": "5"}]


def test_empty_tables_and_errors() -> None:
    backend = memory_backend()
    assert query(backend, "SELECT count(*) AS n FROM lineage").to_dicts() == [{"n": 0}]
    with pytest.raises(QueryError, match="query failed") as caught:
        query(backend, "SELEC 1")
    assert "dead_letters" in caught.value.hint
