"""``ops.query``: DuckDB over the lake's visible fragments (``Lake.local_paths``), which hold
exactly the current version of each record, and the store's ``read`` where a dataset has none."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from salesflow.ops.query import QueryError, query
from tests.fixtures.memory import commit_rows, memory_backend


def frame(seq: int, rows: dict[str, str]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "_key": list(rows),
            "_seq": [seq] * len(rows),
            "_arrived": [seq] * len(rows),
            "_source": ["orders.csv"] * len(rows),
            "_record": list(range(1, len(rows) + 1)),
            "_day": [date(2024, 6, 1)] * len(rows),
            "qty": list(rows.values()),
        }
    )


def test_a_dataset_view_holds_only_the_current_version_of_each_record() -> None:
    backend = memory_backend()
    commit_rows(backend, "orders", 1, frame(1, {"a": "1", "b": "2"}))
    commit_rows(backend, "orders", 2, frame(2, {"a": "5"}))
    out = query(backend, "SELECT _key, qty FROM orders ORDER BY _key")
    assert out.to_dicts() == [{"_key": "a", "qty": "5"}, {"_key": "b", "qty": "2"}]


def test_a_staged_commit_is_not_queried_until_its_marker_exists() -> None:
    backend = memory_backend()
    commit_rows(backend, "orders", 1, frame(1, {"a": "1"}))
    with backend.lake.stage("orders", 2) as staging:
        staging.write(frame(2, {"a": "9", "c": "3"}))
    out = query(backend, "SELECT _key, qty FROM orders ORDER BY _key")
    assert out.to_dicts() == [{"_key": "a", "qty": "1"}]


def test_empty_tables_and_errors() -> None:
    backend = memory_backend()
    assert query(backend, "SELECT count(*) AS n FROM lineage").to_dicts() == [{"n": 0}]
    assert query(backend, "SELECT count(*) AS n FROM orders").to_dicts() == [{"n": 0}]
    with pytest.raises(QueryError, match="query failed") as caught:
        query(backend, "SELEC 1")
    assert "dead_letters" in caught.value.hint
