"""JSON inputs: the seeds' own examples, key spelling variants, lists, JSON Lines, single
sale events, and files that are not JSON or have the wrong shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from salesflow.datasets import get_spec
from salesflow.errors import FileLevelError
from salesflow.validation import validate_path
from tests.fixtures.samples import NOW, SEED_001, SEED_002, reasons_of, rules_of, validate, write

SALE = {
    "sale_id": "s-1",
    "product": "Laptop",
    "category": "Electronics",
    "price": 456.65,
    "quantity": 1,
    "timestamp": "2024-05-31T10:00:00Z",
}


def file_error(path: Path, dataset: str) -> FileLevelError:
    with pytest.raises(FileLevelError) as err:
        list(validate_path(path, get_spec(dataset), source=path.name, now=NOW))
    assert err.value.file == path.name
    return err.value


def test_seed_001_example_is_valid(tmp_path: Path) -> None:
    result = validate(write(tmp_path, "o.json", SEED_001), "orders_json")
    row = result.valid.row(0, named=True)
    assert (row["order_id"], row["item_id"], row["item_desc"], row["qty"]) == (
        "1",
        "101",
        "Item One",
        1,
    )
    assert (row["contact_name"], row["contact_email"]) == ("Foo Bar", "foobar@test.com")
    assert row["_key"] == "1" and row["_extra"] is None


def test_seed_002_example_verbatim(tmp_path: Path) -> None:
    result = validate(write(tmp_path, "o.json", SEED_002), "orders_json")
    assert result.valid["order_id"].to_list() == ["1"]
    assert rules_of(result) == {2: ["presence.contact_info"]}
    assert result.rejected["_key"].to_list() == ["2"]  # orderId spelling read as order_id
    raw = json.loads(result.rejected["raw"][0])
    assert raw == json.loads(SEED_002)["orders"][1]


@pytest.mark.parametrize("spelling", ["OrderId", "orderId", "order_id", "order-id", "ORDER_ID"])
def test_key_spelling_variants(tmp_path: Path, spelling: str) -> None:
    record = {
        "contactInfo": {"Name": "A", "EMAIL": "a@b.io"},
        "order_info": {spelling: 7, "Item_Id": 3, "qty": 2},
    }
    result = validate(write(tmp_path, "o.json", json.dumps([record])), "orders_json")
    assert result.valid["order_id"].to_list() == ["7"]
    assert result.valid["contact_email"].to_list() == ["a@b.io"]


def test_unknown_keys_are_kept(tmp_path: Path) -> None:
    records = [
        {
            "contact-info": {"name": "A", "email": "a@b.io", "phone": "123"},
            "order-info": {"OrderId": "1", "item-id": "9", "qty": "1", "gift": True},
            "channel": "web",
        },
        {"order-info": {"OrderId": "2", "item-id": "9", "qty": "1"}, "channel": "app"},
    ]
    result = validate(write(tmp_path, "o.json", json.dumps({"orders": records})), "orders_json")
    assert json.loads(result.valid["_extra"][0]) == {
        "contact-info.phone": "123",
        "order-info.gift": True,
        "channel": "web",
    }
    assert json.loads(result.rejected["raw"][0])["channel"] == "app"


def test_presence_order_info_and_both_missing(tmp_path: Path) -> None:
    records = [
        {"contact-info": {"name": "A", "email": "a@b.io"}},
        {"contact-info": {}, "order-info": {}},
        {"contact-info": {"name": "A"}, "order-info": {"OrderId": "3", "item-id": "1"}},
    ]
    result = validate(write(tmp_path, "o.json", json.dumps(records)), "orders_json")
    assert rules_of(result) == {
        1: ["presence.order_info"],
        2: ["presence.contact_info", "presence.order_info"],
        3: ["presence.required"],
    }
    assert reasons_of(result, 3)[0] == {
        "rule": "presence.required",
        "field": "qty",
        "message": "qty is missing",
    }


def test_json_lines_with_a_broken_line(tmp_path: Path) -> None:
    good = json.dumps({"order-info": {"OrderId": "1", "item-id": "1", "qty": 1},
                       "contact-info": {"email": "a@b.io"}})  # fmt: skip
    path = write(tmp_path, "o.jsonl", f'{good}\n\n{{"order-info": {{"OrderId": \n{good}\n')
    result = validate(path, "orders_json")
    assert rules_of(result) == {2: ["structure.bad_json"], 3: ["unique.key"]}
    assert json.loads(result.rejected["raw"][0]) == {"_raw": '{"order-info": {"OrderId": '}


def test_records_that_are_not_objects(tmp_path: Path) -> None:
    result = validate(write(tmp_path, "o.json", '{"orders": [1, "x", null]}'), "orders_json")
    assert rules_of(result) == {n: ["structure.not_object"] for n in (1, 2, 3)}
    assert json.loads(result.rejected["raw"][1]) == {"_value": "x"}


def test_empty_orders_list_is_zero_rows(tmp_path: Path) -> None:
    result = validate(write(tmp_path, "o.json", '{"orders": []}'), "orders_json")
    assert result.report.rows_in == 0


def test_truncated_json_is_a_file_error(tmp_path: Path) -> None:
    error = file_error(write(tmp_path, "o.json", SEED_002[:150]), "orders_json")
    assert error.rule == "structure.bad_json"
    assert "line" in error.cause


@pytest.mark.parametrize(
    "content",
    ["42", '"orders"', "null", '{"foo": [1]}', '{"orders": {"OrderId": "1"}}'],
)
def test_wrong_top_level_shape_is_a_file_error(tmp_path: Path, content: str) -> None:
    assert file_error(write(tmp_path, "o.json", content), "orders_json").rule == (
        "structure.json_shape"
    )


def test_not_json_at_all(tmp_path: Path) -> None:
    error = file_error(write(tmp_path, "o.json", "{this is not json}"), "orders_json")
    assert error.rule == "structure.bad_json"


def test_single_sale_event_object(tmp_path: Path) -> None:
    result = validate(write(tmp_path, "s.json", json.dumps(SALE)), "sale_events")
    row = result.valid.row(0, named=True)
    assert row["amount"] == pytest.approx(456.65)
    assert row["_day"].isoformat() == "2024-05-31"
    assert row["timestamp"].tzinfo is not None


@pytest.mark.parametrize("wrap", ["list", "sales", "jsonl"])
def test_sale_event_containers(tmp_path: Path, wrap: str) -> None:
    sales = [SALE, {**SALE, "sale_id": "s-2", "quantity": 3, "price": 10}]
    if wrap == "list":
        text = json.dumps(sales)
    elif wrap == "sales":
        text = json.dumps({"Sales": sales})
    else:
        text = "\n".join(json.dumps(s) for s in sales)
    result = validate(write(tmp_path, "s.json", text), "sale_events")
    assert result.valid["amount"].to_list() == pytest.approx([456.65, 30.0])


def test_sale_event_with_offset_and_extras(tmp_path: Path) -> None:
    sale = {**SALE, "timestamp": "2024-05-31T23:30:00-02:00", "store_id": 7, "coupon": "X"}
    result = validate(write(tmp_path, "s.json", json.dumps(sale)), "sale_events")
    row = result.valid.row(0, named=True)
    assert row["_day"].isoformat() == "2024-06-01"  # 01:30 UTC next day
    assert row["store_id"] == "7"
    assert json.loads(row["_extra"]) == {"coupon": "X"}


def test_sale_events_as_csv(tmp_path: Path) -> None:
    text = "sale_id,product,price,quantity,timestamp\ns-1,Laptop,456.65,1,2024-05-31 10:00:00\n"
    result = validate(write(tmp_path, "s.csv", text), "sale_events")
    assert result.valid["amount"].to_list() == [456.65]


def test_json_with_bom_and_latin1(tmp_path: Path) -> None:
    sale = json.dumps({**SALE, "product": "Caf\xe9"}, ensure_ascii=False)
    result = validate(write(tmp_path, "s.json", sale.encode("latin-1")), "sale_events")
    assert result.valid["product"].to_list() == ["Café"]
    assert result.report.warnings
    result = validate(write(tmp_path, "t.json", "\ufeff" + json.dumps(SALE)), "sale_events")
    assert result.report.valid == 1 and not result.report.warnings


def test_json_values_of_every_type(tmp_path: Path) -> None:
    record = {
        "order-info": {"OrderId": 5, "item-id": [1, 2], "qty": 2.0, "meta": {"a": {"b": 1}}},
        "contact-info": {"name": True, "email": "a@b.io"},
    }
    result = validate(write(tmp_path, "o.json", json.dumps([record])), "orders_json")
    row = result.valid.row(0, named=True)
    assert (row["order_id"], row["item_id"], row["qty"], row["contact_name"]) == (
        "5",
        "[1, 2]",
        2,
        "true",
    )
    assert json.loads(row["_extra"]) == {"order-info.meta.a.b": 1}
