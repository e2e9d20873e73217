"""Dataset specs, lookup and detection of which dataset a file holds."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from salesflow.datasets import SPECS, detect_dataset, get_spec, normalize
from salesflow.errors import TerminalError
from salesflow.layout import DATASETS
from tests.fixtures.samples import (
    ITEMS_HEADER,
    ORDERS_CSV_HEADER,
    ORDERS_HEADER,
    PRODUCTS_HEADER,
    RETAIL_HEADER,
    SEED_002,
    validate,
    write,
)


def test_every_dataset_has_a_spec() -> None:
    assert set(SPECS) == {
        "orders_json",
        "online_retail",
        "products",
        "orders",
        "order_items",
        "sale_events",
    }
    assert set(SPECS) == set(DATASETS)  # the names a command's help lists without the specs
    for name, spec in SPECS.items():
        assert spec.name == name
        assert spec.description
        assert spec.key and all(k in spec.field_names for k in spec.key)
        assert set(spec.formats) <= {"csv", "json"}


def test_spec_attributes_the_pipeline_relies_on() -> None:
    assert get_spec("order_items").references == {"product_id": "products", "order_id": "orders"}
    assert get_spec("products").day_column is None
    assert [s for s in SPECS if SPECS[s].has_amount] == [
        "online_retail",
        "order_items",
        "sale_events",
    ]
    assert get_spec("orders_json").formats == ("json", "csv")
    assert get_spec("order_items").get_field("sale_price").dtype == pl.Float64
    with pytest.raises(KeyError):
        get_spec("products").get_field("nope")


def test_unknown_dataset_names_the_valid_ones() -> None:
    with pytest.raises(TerminalError) as err:
        get_spec("invoices")
    assert "invoices" in str(err.value)
    for name in SPECS:
        assert name in err.value.hint


def test_describe_is_json_ready() -> None:
    d = get_spec("online_retail").describe()
    assert d["key"] == ["InvoiceNo", "<line in group>"]
    assert {f["name"] for f in d["fields"]} >= {"InvoiceNo", "UnitPrice"}
    assert get_spec("products").describe()["key"] == ["id"]


def test_normalize_ignores_case_and_separators() -> None:
    assert normalize("OrderId") == normalize("order_id") == normalize("ORDER-ID") == "orderid"
    assert normalize("\ufeffInvoiceNo") == "invoiceno"
    assert normalize("Order-Info.OrderId") == "orderinfo.orderid"


@pytest.mark.parametrize(
    ("head", "dataset"),
    [
        (b"\xef\xbb\xbf" + RETAIL_HEADER.encode() + b"\r\n536365,85123A", "online_retail"),
        (RETAIL_HEADER.lower().encode() + b"\n", "online_retail"),
        (PRODUCTS_HEADER.encode() + b"\n", "products"),
        (ORDERS_HEADER.encode() + b"\n", "orders"),
        (ITEMS_HEADER.encode() + b"\n", "order_items"),
        (ORDERS_CSV_HEADER.upper().encode() + b"\n", "orders_json"),
        (b"sale_id,product,price,quantity,timestamp\n", "sale_events"),
        (SEED_002.encode()[:60], "orders_json"),
        (b'[{"contactInfo": {"name": "a"}, "orderInfo": {"orderId": 1}}]', "orders_json"),
        (b'{"order_id": "1", "item_id": "2", "qty": 1}\n{"order_id": "2"', "orders_json"),
        (b'{"sale_id": "a1", "product": "Laptop", "price": 451.5}', "sale_events"),
        (b'{"sales": [{"sale_id": "a1"}]}', "sale_events"),
        (b'{"product": "Laptop", "price": 1, "quantity": 1, "timestamp": "x"}', "sale_events"),
    ],
)
def test_detects_dataset_from_content(head: bytes, dataset: str) -> None:
    assert detect_dataset("uploads/file", head) == dataset


@pytest.mark.parametrize(
    "head",
    [b"", b"   \n", b"a,b,c\n1,2,3\n", b'{"foo": 1}', b"[1, 2, 3]", b"\xef\xbb\xbf"],
)
def test_unknown_content_is_none(head: bytes) -> None:
    assert detect_dataset("uploads/file", head) is None


def test_inbox_prefix_wins_over_content() -> None:
    assert detect_dataset("inbox/products/a.csv", ITEMS_HEADER.encode()) == "products"
    assert detect_dataset("inbox/sale_events/x.json", b"") == "sale_events"


def test_unknown_inbox_folder_falls_back_to_content() -> None:
    assert detect_dataset("inbox/misc/a.csv", ORDERS_HEADER.encode()) == "orders"
    assert detect_dataset("inbox/misc/a.csv", b"x,y\n") is None


def test_valid_schema_is_what_validation_returns(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.csv",
        f"{PRODUCTS_HEADER}\n1,10.5,Jeans,Blue Jeans,Levi's,25.0,Men,SKU-1,3\n",
    )
    result = validate(path, "products")
    assert result.valid.schema == pl.Schema(get_spec("products").valid_schema())
    assert result.valid.height == 1
