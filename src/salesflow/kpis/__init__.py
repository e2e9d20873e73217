"""Totals and KPIs, always recomputed from the stored records, never by adding deltas.

A replay or a corrected upload therefore can never double count: the same records give the
same numbers, whatever happened before.
"""

from salesflow.kpis.aggregates import (
    AGGREGATES,
    CATEGORY_KPIS,
    ORDER_KPIS,
    TOTALS,
    category_kpis,
    order_kpis,
    totals,
)
from salesflow.kpis.refresh import refresh_aggregates

__all__ = [
    "AGGREGATES",
    "CATEGORY_KPIS",
    "ORDER_KPIS",
    "TOTALS",
    "category_kpis",
    "order_kpis",
    "refresh_aggregates",
    "totals",
]
