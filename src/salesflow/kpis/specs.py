"""The aggregate tables' shapes, as plain data: importing them costs no Polars."""

from __future__ import annotations

from salesflow.ports import AggregateSpec, Kind

_METRICS: dict[str, Kind] = {
    "items": "int",
    "revenue": "float",
    "orders": "int",
    "avg_basket": "float",
    "returned": "int",
    "return_rate": "float",
}

ORDER_KPIS = AggregateSpec("order_kpis", ("day",), {"day": "date", **_METRICS})
CATEGORY_KPIS = AggregateSpec(
    "category_kpis", ("category", "day"), {"category": "str", "day": "date", **_METRICS}
)
TOTALS = AggregateSpec(
    "totals",
    ("scope", "id"),
    {"scope": "str", "id": "str", "total_amount": "float", "records": "int"},
)
AGGREGATES = {spec.name: spec for spec in (ORDER_KPIS, CATEGORY_KPIS, TOTALS)}
