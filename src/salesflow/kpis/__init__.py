"""Totals and KPIs, always recomputed from the stored records, never by adding deltas.

A replay or a corrected upload therefore can never double count: the same records give the
same numbers, whatever happened before.

The package exports the tables' shapes only, which import no Polars (``salesflow kpis``
reads them without it); the computations are in ``aggregates`` and ``refresh``.
"""

from salesflow.kpis.specs import AGGREGATES, CATEGORY_KPIS, ORDER_KPIS, TOTALS

__all__ = ["AGGREGATES", "CATEGORY_KPIS", "ORDER_KPIS", "TOTALS"]
