"""The default engine: Polars in this process, in bounded memory."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import date, datetime
from pathlib import Path

import polars as pl

from salesflow.datasets.spec import DatasetSpec
from salesflow.kpis.aggregates import category_kpis, order_kpis, totals, totals_columns
from salesflow.ports import RecordStore
from salesflow.validation import validate_path
from salesflow.validation.filewide import Reference
from salesflow.validation.report import Chunk

KPI_COLUMNS = ["status", "sale_price", "order_id", "product_id"]
KPI_ROWS = 500_000
"""About this many order items are aggregated at a time by a KPI refresh (a batch costs
~300 bytes an item at its peak: the read, the join with products, the group-bys)."""


def by_month(days: Collection[date]) -> list[list[date]]:
    """``days`` sorted and grouped by calendar month (the lake's partitions)."""
    months: dict[tuple[int, int], list[date]] = {}
    for day in sorted(set(days)):
        months.setdefault((day.year, day.month), []).append(day)
    return list(months.values())


def items_by_days(records: RecordStore, days: Collection[date]) -> Iterator[pl.DataFrame]:
    """The stored order items of ``days`` (``_day`` and ``KPI_COLUMNS``), a few consecutive
    days of one month at a time: the first read is one day, each next one as many days as
    hold about ``KPI_ROWS`` at the densest rate read so far, and at most twice as many as
    the last (a sparse first day must not make the next read a whole month). A bulk load
    touches every day of a few months; read a month at a time, 5M items a month took the
    20M-row load to 1.4 GB."""
    for month in by_month(days):
        at, per_day, take = 0, 1.0, 1
        while at < len(month):
            batch = month[at : at + take]
            items = records.read("order_items", days=batch, columns=KPI_COLUMNS)
            per_day = max(per_day, items.height / len(batch))
            at += len(batch)
            take = max(1, min(2 * len(batch), int(KPI_ROWS / per_day)))
            yield items.select("_day", *KPI_COLUMNS)


class PolarsEngine:
    """``Engine`` on Polars: ``validation.validate_path`` and ``kpis.aggregates``."""

    name = "polars"

    def validate(
        self,
        path: Path,
        spec: DatasetSpec,
        *,
        source: str,
        reference: Reference | None = None,
        now: datetime | None = None,
        processing_day: date | None = None,
        chunk_rows: int = 1_000_000,
        scratch: Path | None = None,
    ) -> Iterator[Chunk]:
        return validate_path(
            path,
            spec,
            source=source,
            reference=reference,
            now=now,
            processing_day=processing_day,
            chunk_rows=chunk_rows,
            scratch=scratch,
        )

    def kpis(
        self, records: RecordStore, days: Collection[date]
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Every KPI is per day, so the items are read and aggregated a few days at a time
        (``items_by_days``): memory holds about ``KPI_ROWS`` records, not all of them (a bulk
        load touches every day)."""
        products = records.read("products", columns=["category"]).select("_key", "category")
        orders: list[pl.DataFrame] = [order_kpis(pl.DataFrame())]
        categories: list[pl.DataFrame] = [category_kpis(pl.DataFrame(), products)]
        for items in items_by_days(records, days):
            orders.append(order_kpis(items))
            categories.append(category_kpis(items, products))
            del items  # free these days before the next ones are read
        return pl.concat(orders), pl.concat(categories).sort("category", "day")

    def totals(
        self, records: RecordStore, dataset: str, days: Collection[date] | None = None
    ) -> pl.DataFrame:
        wanted = None if days is None else sorted(set(days))
        frame = records.read(dataset, days=wanted, columns=totals_columns(dataset))
        return totals(dataset, frame)
