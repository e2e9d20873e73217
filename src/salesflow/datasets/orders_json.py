"""``orders_json``: orders with contact and order info (seeds 001 and 002).

JSON as in the seeds::

    {"orders": [{"contact-info": {"name": "Foo Bar", "email": "foobar@test.com"},
                 "order-info": {"OrderId": "1", "item-id": "101", "item-desc": "Item One",
                                "qty": "1"}}]}

also as a top-level list of such objects or JSON Lines, and as CSV with the header
``order_id,item_id,item_desc,qty,contact_name,contact_email``. Key spellings vary in real
files (``OrderId``, ``orderId``, ``order_id``): they all name ``order_id``. Unknown keys are
kept (in ``raw`` for rejected records, in ``_extra`` for valid ones).
"""

from __future__ import annotations

import polars as pl

from salesflow.datasets.spec import DatasetSpec, FieldSpec, Group, positive

_ORDER = "order_info"
_CONTACT = "contact_info"

ORDERS_JSON = DatasetSpec(
    name="orders_json",
    description="Orders with contact-info and order-info blocks, JSON or CSV",
    formats=("json", "csv"),
    key=("order_id",),
    day_column=None,
    json_containers=("orders",),
    json_markers=("orderinfo", "contactinfo"),
    groups=(
        Group(_CONTACT, "presence.contact_info", "contact-info"),
        Group(_ORDER, "presence.order_info", "order-info"),
    ),
    fields=(
        FieldSpec(
            "order_id",
            pl.Utf8(),
            required=True,
            group=_ORDER,
            aliases=("order-info.OrderId",),
            description="OrderId, the record key",
        ),
        FieldSpec(
            "item_id", pl.Utf8(), required=True, group=_ORDER, aliases=("order-info.item-id",)
        ),
        FieldSpec(
            "item_desc",
            pl.Utf8(),
            group=_ORDER,
            aliases=("order-info.item-desc", "order-info.item-description"),
        ),
        FieldSpec(
            "qty",
            pl.Int64(),
            required=True,
            group=_ORDER,
            aliases=("order-info.qty", "order-info.quantity", "quantity"),
            description="quantity ordered, an integer > 0",
        ),
        FieldSpec("contact_name", pl.Utf8(), group=_CONTACT, aliases=("contact-info.name",)),
        FieldSpec(
            "contact_email",
            pl.Utf8(),
            group=_CONTACT,
            email=True,
            aliases=("contact-info.email",),
        ),
    ),
    checks=(positive("qty"),),
)
