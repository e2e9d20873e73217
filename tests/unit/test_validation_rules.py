"""Every record-level rule: what trips it, what does not, and the reasons it reports."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from salesflow.datasets import SPECS
from salesflow.validation import RULES, Reference
from tests.fixtures.samples import (
    ITEMS_HEADER,
    ORDERS_HEADER,
    PRODUCTS_HEADER,
    RETAIL_HEADER,
    reasons_of,
    rules_of,
    validate,
    write,
)

RETAIL = "536365,85123A,HEART,{qty},{date},{price},17850,United Kingdom"


def retail(tmp_path: Path, *rows: str) -> Path:
    return write(tmp_path, "r.csv", "\n".join([RETAIL_HEADER, *rows]) + "\n")


def line(qty: str = "6", date_: str = "12/1/2010 8:26", price: str = "2.55", inv: str = "") -> str:
    row = RETAIL.format(qty=qty, date=date_, price=price)
    return row.replace("536365", inv) if inv else row


def test_online_retail_rules(tmp_path: Path) -> None:
    path = retail(
        tmp_path,
        line(),  # 1 valid
        line(qty="six"),  # 2
        line(price="2,55"),  # 3 (quoted by the writer below)
        line(date_="2010-13-01 08:26"),  # 4
        line(price="-11.08"),  # 5
        line(qty="0"),  # 6
        line(qty="-6", inv="C536379"),  # 7 valid cancellation
        line(qty="6", inv="C536380"),  # 8 cancellation with a positive quantity
        line(qty="-6"),  # 9 negative priced line outside a cancellation
        line(qty="-6", price="0"),  # 10 valid stock adjustment
        line(date_="6/2/2024 12:01"),  # 11 future (now is 2024-06-01 12:00)
        line(price="0"),  # 12 valid free line
        ",,,,,,,x",  # 13 everything required missing
        line(qty="inf", price="nan"),  # 14
    )
    text = path.read_text().replace("2,55", '"2,55"')
    result = validate(write(tmp_path, "r.csv", text), "online_retail")
    assert rules_of(result) == {
        2: ["type.integer"],
        3: ["type.number"],
        4: ["type.date"],
        5: ["range.non_negative"],
        6: ["range.nonzero"],
        8: ["business.quantity_sign"],
        9: ["business.quantity_sign"],
        11: ["date.future"],
        13: ["presence.required"] * 5,
        14: ["type.integer", "type.number"],
    }
    valid = result.valid
    assert valid["_record"].to_list() == [1, 7, 10, 12]
    assert valid["is_cancellation"].to_list() == [False, True, False, False]
    assert valid["amount"].to_list() == pytest.approx([15.3, -15.3, 0.0, 0.0])
    assert valid["_day"].to_list() == [date(2010, 12, 1)] * 4
    assert result.report.rules["presence.required"] == 1  # counted per record
    messages = {r["rule"]: r["message"] for r in reasons_of(result, 9)}
    assert "non-cancellation" in messages["business.quantity_sign"]
    assert "positive Quantity" in reasons_of(result, 8)[0]["message"]
    assert reasons_of(result, 2)[0] == {
        "rule": "type.integer",
        "field": "Quantity",
        "message": "Quantity 'six' is not an integer",
    }


PRODUCT = "{id},{cost},Jeans,Blue,Levi's,{retail},Men,SKU-{id},1"


def products(tmp_path: Path, *rows: str) -> Path:
    return write(tmp_path, "products.csv", "\n".join([PRODUCTS_HEADER, *rows]) + "\n")


def test_products_rules(tmp_path: Path) -> None:
    path = products(
        tmp_path,
        PRODUCT.format(id=1, cost=10, retail=25),
        PRODUCT.format(id=2, cost=30, retail=25),  # cost above retail
        PRODUCT.format(id=3, cost=-1, retail=25),  # negative cost
        PRODUCT.format(id=4, cost=5, retail=-2),  # negative price and cost > retail
        PRODUCT.format(id=5, cost="n/a", retail=25),
        PRODUCT.format(id=1, cost=10, retail=25),  # duplicate key
        PRODUCT.format(id="x", cost=10, retail=25),
        "6,10,,Blue,Levi's,25,Men,SKU-6,DC",  # missing category, bad center id
        PRODUCT.format(id=7, cost=25, retail=25),  # cost == retail is fine
    )
    result = validate(path, "products")
    assert rules_of(result) == {
        2: ["business.cost_le_retail"],
        3: ["range.positive"],
        4: ["business.cost_le_retail", "range.positive"],
        5: ["type.number"],
        6: ["unique.key"],
        7: ["type.integer"],
        8: ["presence.required", "type.integer"],
        # 9 valid
    }
    assert result.valid["_key"].to_list() == ["1", "7"]
    assert result.valid["_day"].to_list() == [date(2024, 6, 1)] * 2  # processing day
    assert "cost 30.0 is above retail_price 25.0" == reasons_of(result, 2)[0]["message"]
    assert "appeared earlier" in reasons_of(result, 6)[0]["message"]


def orders_file(tmp_path: Path, *rows: str) -> Path:
    return write(tmp_path, "orders.csv", "\n".join([ORDERS_HEADER, *rows]) + "\n")


def test_orders_rules_and_timestamps(tmp_path: Path) -> None:
    path = orders_file(
        tmp_path,
        "1,10,Complete,F,2024-01-05 10:11:12 UTC,,2024-01-06 10:11:12.5 UTC,2024-01-08 UTC,2",
        "2,10,Lost,F,2024-01-05 10:11:12 UTC,,,,1",
        "3,10,Shipped,M,2024-01-05T10:11:12Z,,,,0",
        "4,10,Shipped,M,2024-07-05 10:11:12+00:00,,,,1",
        "5,10,Shipped,M,2023-02-30 10:00:00 UTC,,,,1",
        "6,10,,M,2024-01-05 10:11:12.123456 UTC,,,,two",
        "7,10,Returned,M,2024-01-05 10:11:12,2024-09-01,,,1",
    )
    result = validate(path, "orders")
    assert rules_of(result) == {
        2: ["enum.status"],
        3: ["business.num_of_item"],
        4: ["date.future"],
        5: ["type.date"],
        6: ["presence.required", "type.integer"],
        7: ["date.future"],
    }
    row = result.valid.row(0, named=True)
    assert row["created_at"].isoformat() == "2024-01-05T10:11:12+00:00"
    assert row["shipped_at"].isoformat() == "2024-01-06T10:11:12.500000+00:00"
    assert row["delivered_at"].isoformat() == "2024-01-08T00:00:00+00:00"
    assert row["_day"] == date(2024, 1, 5)
    assert reasons_of(result, 7)[0]["field"] == "returned_at"
    assert "is not one of Processing" in reasons_of(result, 2)[0]["message"]


ITEM = "{id},{order},7,{product},100,Complete,2024-01-05 10:11:12 UTC,,,,{price}"


def items_file(tmp_path: Path, *rows: str) -> Path:
    return write(tmp_path, "order_items.csv", "\n".join([ITEMS_HEADER, *rows]) + "\n")


def test_order_items_referential_rules(tmp_path: Path) -> None:
    path = items_file(
        tmp_path,
        ITEM.format(id=1, order=1, product=1, price="9.5"),
        ITEM.format(id=2, order=1, product=99, price="9.5"),  # dangling product
        ITEM.format(id=3, order=42, product=1, price="9.5"),  # dangling order
        ITEM.format(id=4, order=42, product=99, price="0"),  # all three
        ITEM.format(id=5, order="", product=1, price="9.5"),  # missing: no ref reason
    )
    ref = Reference.of(products=["1", "2"], orders=pl.Series(["1"]))
    result = validate(path, "order_items", reference=ref)
    assert rules_of(result) == {
        2: ["ref.product_id"],
        3: ["ref.order_id"],
        4: ["business.sale_price", "ref.order_id", "ref.product_id"],
        5: ["presence.required"],
    }
    assert reasons_of(result, 2)[0]["message"] == "product_id 99 is not a known products key"
    assert result.valid["amount"].to_list() == [9.5]
    assert result.report.warnings == []


def test_reference_none_skips_referential_rules_with_a_warning(tmp_path: Path) -> None:
    path = items_file(tmp_path, ITEM.format(id=2, order=1, product=99, price="9.5"))
    result = validate(path, "order_items")
    assert result.report.valid == 1
    assert len(result.report.warnings) == 2
    assert all("not checked" in w for w in result.report.warnings)
    partial = validate(path, "order_items", reference=Reference.of(orders=["1"]))
    assert partial.report.valid == 1
    assert partial.report.warnings == [
        "ref.product_id not checked: no reference keys of products were given"
    ]


def test_duplicate_keys_across_chunks(tmp_path: Path) -> None:
    rows = [ITEM.format(id=i % 7 + 1, order=1, product=1, price="1") for i in range(20)]
    result = validate(items_file(tmp_path, *rows), "order_items", chunk_rows=5)
    assert len(result.report.chunks) >= 3
    assert result.valid["_key"].to_list() == [str(i) for i in range(1, 8)]
    assert rules_of(result) == {n: ["unique.key"] for n in range(8, 21)}
    assert result.report.rules == {"unique.key": 13}


def test_first_occurrence_owns_the_key_even_if_rejected(tmp_path: Path) -> None:
    rows = [
        ITEM.format(id=1, order=1, product=1, price="-1"),
        ITEM.format(id=1, order=1, product=1, price="2"),
    ]
    result = validate(items_file(tmp_path, *rows), "order_items")
    assert rules_of(result) == {1: ["business.sale_price"], 2: ["unique.key"]}


def test_sale_event_rules(tmp_path: Path) -> None:
    base = {"sale_id": "a", "product": "Laptop", "price": 100, "quantity": 1,
            "timestamp": "2024-05-01T00:00:00Z"}  # fmt: skip
    records = [
        base,
        {**base, "sale_id": "b", "price": 0},
        {**base, "sale_id": "c", "quantity": -1},
        {**base, "sale_id": "d", "currency": "usd", "customer_email": "x at y"},
        {**base, "sale_id": "e", "currency": "EUR", "customer_email": "x@y.io"},
        {**base, "sale_id": "f", "timestamp": "yesterday", "price": "abc"},
        {**base, "sale_id": "g", "product": " ", "quantity": 1.5},
        {**base, "sale_id": "h", "quantity": 2.0},
    ]
    path = write(tmp_path, "s.json", json.dumps(records))
    result = validate(path, "sale_events")
    assert rules_of(result) == {
        2: ["range.positive"],
        3: ["range.positive"],
        4: ["email.format", "format.currency"],
        6: ["type.date", "type.number"],
        7: ["presence.required", "type.integer"],
    }
    assert result.valid["sale_id"].to_list() == ["a", "e", "h"]
    assert result.valid["amount"].to_list() == [100.0, 100.0, 200.0]


def test_every_rule_reported_is_documented() -> None:
    ids = set(RULES)
    for spec in SPECS.values():
        ids_needed = {c.rule for c in spec.checks} | {g.rule for g in spec.groups}
        ids_needed |= {f"ref.{column}" for column in spec.references}
        ids_needed |= {f"enum.{f.name}" for f in spec.fields if f.allowed}
        assert ids_needed <= ids, spec.name
    assert all(rule.count(".") == 1 and text for rule, text in RULES.items())


def test_naive_now_is_taken_as_utc(tmp_path: Path) -> None:
    from datetime import datetime

    path = retail(tmp_path, line(date_="6/1/2024 12:30"))
    later = validate(path, "online_retail", now=datetime(2024, 6, 1, 13, 0))
    earlier = validate(path, "online_retail", now=datetime(2024, 6, 1, 12, 0))
    assert (later.report.valid, earlier.report.rules) == (1, {"date.future": 1})


def test_text_references_and_custom_specs(tmp_path: Path) -> None:
    import polars as pl

    from salesflow.datasets import DatasetSpec, FieldSpec
    from salesflow.validation import validate_file

    spec = DatasetSpec(
        name="children",
        fields=(FieldSpec("id", pl.Utf8(), required=True), FieldSpec("parent", pl.Utf8())),
        key=("id",),
        day_column=None,
        formats=("csv",),
        description="test",
        references={"parent": "parents"},
    )
    path = write(tmp_path, "c.csv", "id,parent\na,p1\nb,p9\nc,\n")
    result = validate_file(path, spec, source="c.csv", reference=Reference.of(parents=["p1"]))
    assert rules_of(result) == {2: ["ref.parent"]}
    assert result.valid["id"].to_list() == ["a", "c"]


def test_reference_keys_that_are_not_integers_are_ignored(tmp_path: Path) -> None:
    path = items_file(tmp_path, ITEM.format(id=1, order=1, product=1, price="9.5"))
    ref = Reference.of(products=["x", "1"], orders=[])
    result = validate(path, "order_items", reference=ref)
    assert rules_of(result) == {1: ["ref.order_id"]}


def test_a_file_of_fractional_utc_timestamps(tmp_path: Path) -> None:
    rows = [f"{i},10,Complete,F,2024-01-05 10:11:12.{i:06d} UTC,,,,1" for i in range(1, 80)]
    rows.append("80,10,Complete,F,2024-01-05T10:11:12Z,,,,1")  # another shape still parses
    result = validate(orders_file(tmp_path, *rows), "orders")
    assert result.report.valid == 80
    assert result.valid["created_at"][2].microsecond == 3
