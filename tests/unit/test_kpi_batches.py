"""The KPI refresh reads the order items of the touched days a few days at a time, within one
month, about ``KPI_ROWS`` at a time: a bulk load of 5M items a month no longer holds a whole
month at once. Every touched day is read exactly once, so the KPIs are the same."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date, timedelta

import polars as pl
import pytest

from salesflow.engines import polars_engine
from salesflow.engines.polars_engine import PolarsEngine, items_by_days
from salesflow.kpis.aggregates import order_kpis


class Items:
    """A ``RecordStore`` of order items only, remembering every read's days."""

    def __init__(self, frame: pl.DataFrame) -> None:
        self.frame = frame
        self.reads: list[list[date]] = []

    def read(
        self,
        dataset: str,
        *,
        days: Collection[date] | None = None,
        columns: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        if dataset == "products":
            return pl.DataFrame({"_key": ["1"], "category": ["Jeans"]})
        assert days is not None
        self.reads.append(sorted(days))
        return self.frame.filter(pl.col("_day").is_in(list(days)))


def _items(per_day: dict[date, int]) -> pl.DataFrame:
    days = [d for d, n in per_day.items() for _ in range(n)]
    return pl.DataFrame(
        {
            "_day": days,
            "status": ["Complete"] * len(days),
            "sale_price": [1.5] * len(days),
            "order_id": list(range(len(days))),
            "product_id": [1] * len(days),
        }
    )


def test_reads_hold_about_kpi_rows_stay_in_one_month_and_cover_every_day_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(polars_engine, "KPI_ROWS", 100)
    start = date(2024, 1, 20)
    per_day = {start + timedelta(days=n): 10 + (n % 7) * 5 for n in range(70)}  # 3 months
    store = Items(_items(per_day))

    got = pl.concat(list(items_by_days(store, per_day)))

    assert got.sort("_day", "order_id").equals(
        store.frame.select(got.columns).sort("_day", "order_id")
    )
    read = [d for batch in store.reads for d in batch]
    assert sorted(read) == sorted(per_day) and len(read) == len(set(read))
    assert all(len({(d.year, d.month) for d in batch}) == 1 for batch in store.reads)
    assert len(store.reads[0]) == 1  # the rate is not known before the first read
    sizes = [sum(per_day[d] for d in batch) for batch in store.reads]
    assert max(sizes) <= 100 * 3 and len(store.reads) > 3  # months whole: ~700 rows a read


def test_the_kpis_are_those_of_all_the_items_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(polars_engine, "KPI_ROWS", 40)
    per_day = {date(2024, 2, 1) + timedelta(days=n): 7 + n for n in range(40)}
    store = Items(_items(per_day))
    orders, _ = PolarsEngine().kpis(store, per_day)
    assert orders.sort("day").equals(order_kpis(store.frame))


def test_a_sparse_first_day_does_not_make_the_next_read_a_month(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first day of a bulk load's window is often nearly empty; reads grow by doubling."""
    monkeypatch.setattr(polars_engine, "KPI_ROWS", 100)
    per_day = {date(2024, 3, 1): 1} | {date(2024, 3, n): 50 for n in range(2, 32)}
    store = Items(_items(per_day))
    list(items_by_days(store, per_day))
    sizes = [sum(per_day[d] for d in batch) for batch in store.reads]
    assert sizes[:3] == [1, 100, 100] and max(sizes) <= 100
