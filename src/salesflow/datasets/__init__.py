"""The datasets salesflow knows: one declarative spec each, and detection of which is which.

>>> get_spec("orders_json").key
('order_id',)
>>> detect_dataset("inbox/products/p1.csv", b"")
'products'
>>> detect_dataset("drop/x.csv", b"InvoiceNo,StockCode,Description,Quantity,InvoiceDate,"
...                b"UnitPrice,CustomerID,Country\\n")
'online_retail'
"""

from __future__ import annotations

from salesflow.datasets.detect import detect, folder_dataset, undetected
from salesflow.datasets.online_retail import ONLINE_RETAIL
from salesflow.datasets.orders_json import ORDERS_JSON
from salesflow.datasets.sale_events import SALE_EVENTS
from salesflow.datasets.spec import Check, DatasetSpec, FieldSpec, Group, normalize
from salesflow.datasets.thelook import ORDER_ITEMS, ORDERS, PRODUCTS, STATUSES
from salesflow.errors import TerminalError

SPECS: dict[str, DatasetSpec] = {
    s.name: s for s in (ORDERS_JSON, ONLINE_RETAIL, PRODUCTS, ORDERS, ORDER_ITEMS, SALE_EVENTS)
}


def get_spec(name: str) -> DatasetSpec:
    """The spec of dataset ``name``; a ``TerminalError`` naming the valid names otherwise."""
    try:
        return SPECS[name]
    except KeyError:
        raise TerminalError(
            f"unknown dataset {name!r}",
            hint=f"use one of: {', '.join(SPECS)}",
        ) from None


def dataset_of_folder(folder: str | None) -> str | None:
    """The dataset an ``inbox/<folder>/`` names, in any common spelling, or None.

    >>> dataset_of_folder("order-items"), dataset_of_folder("Products"), dataset_of_folder("x")
    ('order_items', 'products', None)
    """
    return folder_dataset(SPECS, folder)


def detect_dataset(key: str, head: bytes) -> str | None:
    """The dataset of the object at ``key`` whose first bytes are ``head``.

    From an ``inbox/<dataset>/...`` key prefix when it names a known dataset, else from
    the content: a CSV header (BOM-tolerant, case-insensitive) or the JSON shape
    (``{"orders": [...]}``, a list, JSON Lines, a single sale-event object). None if unknown.
    A few KB of ``head`` are enough.
    """
    return detect(SPECS, key, head)


__all__ = [
    "SPECS",
    "dataset_of_folder",
    "STATUSES",
    "Check",
    "DatasetSpec",
    "FieldSpec",
    "Group",
    "detect_dataset",
    "get_spec",
    "normalize",
    "undetected",
]
