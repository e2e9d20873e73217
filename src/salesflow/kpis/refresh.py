"""Recompute the aggregates a file touched, from the records in the store."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date

import polars as pl

from salesflow.kpis.aggregates import (
    CATEGORY_KPIS,
    ORDER_KPIS,
    TOTALS,
    TOTALS_BY,
    category_kpis,
    order_kpis,
    totals,
    totals_columns,
)
from salesflow.ports import AggregateSpec, RecordStore, Tables

KPI_COLUMNS = ["status", "sale_price", "order_id", "product_id"]


def _replace(
    tables: Tables,
    spec: AggregateSpec,
    fresh: pl.DataFrame,
    *,
    column: str,
    values: list[object],
) -> None:
    """Replace the stored rows in scope (``column`` in ``values``) with ``fresh``."""
    old = tables.read_aggregates(spec, column=column, values=values)
    key = list(spec.key)
    gone = old.select(key).join(fresh.select(key), on=key, how="anti")
    tables.replace_aggregates(spec, delete=gone, upsert=fresh)


def refresh_kpis(records: RecordStore, tables: Tables, days: Collection[date]) -> None:
    """Order and category KPIs for ``days``, from the current order_items and products."""
    if not days:
        return
    wanted = sorted(set(days))
    items = records.read("order_items", days=wanted, columns=KPI_COLUMNS)
    products = records.read("products", columns=["category"])
    values: list[object] = list(wanted)
    _replace(tables, ORDER_KPIS, order_kpis(items), column="day", values=values)
    _replace(tables, CATEGORY_KPIS, category_kpis(items, products), column="day", values=values)


def refresh_totals(records: RecordStore, tables: Tables, dataset: str) -> None:
    """All totals of ``dataset``, recomputed from its records (cheap: a few columns)."""
    groupings = TOTALS_BY.get(dataset)
    if not groupings:
        return
    frame = records.read(dataset, columns=totals_columns(dataset))
    scopes: list[object] = [f"{dataset}.{by}" for by in groupings]
    _replace(tables, TOTALS, totals(dataset, frame), column="scope", values=scopes)


def refresh_aggregates(
    records: RecordStore, tables: Tables, dataset: str, days: Collection[date]
) -> None:
    """Everything a file of ``dataset`` touching ``days`` can change.

    A products file can move items between categories, so it refreshes every KPI day.
    """
    refresh_totals(records, tables, dataset)
    if dataset == "order_items":
        refresh_kpis(records, tables, days)
    elif dataset == "products":
        stored = tables.read_aggregates(ORDER_KPIS)
        refresh_kpis(records, tables, stored.get_column("day").to_list())
