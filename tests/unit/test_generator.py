"""The sample-data generator: realistic, seeded, and every injected fault is detected with
exactly the rule the manifest names, and nothing else is flagged."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from salesflow.datasets import detect_dataset
from salesflow.errors import TerminalError
from salesflow.samples.generate import FORMATS, generate, sale_event
from salesflow.samples.synth import FaultPlan
from salesflow.validation import Reference
from tests.fixtures.samples import rules_of, validate

GEN_NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
VALIDATE_NOW = datetime(2024, 6, 1, 12, 5, tzinfo=UTC)
CASES = [(d, f) for d, fmts in FORMATS.items() if d not in ("products", "orders") for f in fmts]


@pytest.mark.parametrize(("dataset", "fmt"), CASES)
def test_round_trip_detects_every_fault_exactly(tmp_path: Path, dataset: str, fmt: str) -> None:
    manifest = generate(dataset, 1200, tmp_path, invalid_rate=0.01, seed=5, fmt=fmt, now=GEN_NOW)
    keys: dict[str, object] = {}
    for path in manifest.files:
        name = detect_dataset("upload/" + path.name, path.read_bytes()[:4096])
        assert name == (path.stem if dataset in ("order_items",) else dataset)
        ref = Reference(dict(keys)) if name == "order_items" else None  # type: ignore[arg-type]
        result = validate(path, name, reference=ref, chunk_rows=500, now=VALIDATE_NOW)
        keys[name] = result.valid["_key"]
        expected = {record: [rule] for record, rule in manifest.expected(path.name).items()}
        assert expected, path.name
        assert rules_of(result) == expected
        assert result.report.rows_in == manifest.records[path.name]
        assert result.report.warnings == []


def test_every_fault_kind_is_injected(tmp_path: Path) -> None:
    manifest = generate("order_items", 2000, tmp_path, invalid_rate=0.02, seed=1, now=GEN_NOW)
    counts = manifest.to_dict()["fault_counts"]
    assert set(counts["order_items.csv"]) == {
        "presence.required", "type.number", "type.date", "business.sale_price", "date.future",
        "enum.status", "ref.product_id", "ref.order_id", "unique.key",
    }  # fmt: skip
    # 2% of the records are faulty, the nine kinds sharing them: 4 or 5 each
    assert sum(counts["order_items.csv"].values()) == 40
    assert set(counts["order_items.csv"].values()) <= {4, 5}
    assert manifest.records == {"products.csv": 100, "orders.csv": 800, "order_items.csv": 2000}


def test_clean_data_has_no_rejects_and_is_realistic(tmp_path: Path) -> None:
    manifest = generate("online_retail", 3000, tmp_path, seed=2, now=GEN_NOW)
    assert manifest.faults == []
    path = manifest.files[0]
    assert path.read_bytes().startswith(b"\xef\xbb\xbfInvoiceNo,")
    result = validate(path, "online_retail", now=VALIDATE_NOW)
    valid = result.valid
    assert result.report.rejected == 0
    assert valid["is_cancellation"].sum() > 0
    assert (valid["Quantity"] < 0).sum() > valid["is_cancellation"].sum()  # + adjustments
    assert valid["CustomerID"].is_null().sum() > 0
    assert valid["StockCode"].is_in(["POST", "M", "DOT", "BANK CHARGES", "C2"]).sum() > 0
    assert valid["InvoiceDate"].max() < GEN_NOW  # type: ignore[operator]


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a = generate("sale_events", 300, tmp_path / "a", invalid_rate=0.05, seed=9, now=GEN_NOW)
    b = generate("sale_events", 300, tmp_path / "b", invalid_rate=0.05, seed=9, now=GEN_NOW)
    c = generate("sale_events", 300, tmp_path / "c", invalid_rate=0.05, seed=10, now=GEN_NOW)
    assert a.files[0].read_bytes() == b.files[0].read_bytes() != c.files[0].read_bytes()
    assert a.faults == b.faults


def test_manifest_written_as_json(tmp_path: Path) -> None:
    manifest = generate("orders_json", 200, tmp_path, invalid_rate=0.02, seed=3, now=GEN_NOW)
    manifest.write(tmp_path / "manifest.json")
    data = json.loads((tmp_path / "manifest.json").read_text())
    assert data["files"] == ["orders_json.json"]
    assert len(data["faults"]) == len(manifest.faults) == 4  # 2% of 200
    assert data["faults"][0].keys() == {"file", "record", "rule"}
    assert sum(data["fault_counts"]["orders_json.json"].values()) == 4


def test_high_rate_keeps_a_clean_record() -> None:
    plan = FaultPlan.draw(np.random.default_rng(0), 10, ("a", "b", "c"), 1.0)
    assert (plan.codes == -1).sum() == 1
    assert sorted(plan.codes.tolist()) == [-1, 0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_duplicate_without_an_earlier_clean_record_is_dropped() -> None:
    plan = FaultPlan(("unique.key",), np.array([0, -1, 0], dtype=np.int16))
    sources = plan.earlier_clean(np.random.default_rng(0), "unique.key")
    assert plan.codes.tolist() == [-1, -1, 0]
    assert sources.tolist() == [0, 1, 1]


@pytest.mark.parametrize(
    ("dataset", "kwargs"),
    [
        ("invoices", {}),
        ("products", {"fmt": "json"}),
        ("orders_json", {"invalid_rate": 1.5}),
        ("orders_json", {"rows": 0}),
    ],
)
def test_bad_arguments(tmp_path: Path, dataset: str, kwargs: dict[str, object]) -> None:
    rows = kwargs.pop("rows", 10)
    with pytest.raises(TerminalError):
        generate(dataset, rows, tmp_path, **kwargs)  # type: ignore[arg-type]


def test_sale_event_is_a_valid_live_sale(tmp_path: Path) -> None:
    rng = random.Random(4)
    events = [sale_event(rng, GEN_NOW) for _ in range(200)]
    assert all(50 <= e["price"] <= 500 for e in events)
    assert len({e["sale_id"] for e in events}) == 200
    assert sale_event(random.Random(4), GEN_NOW) == events[0]
    path = tmp_path / "one.json"
    path.write_text(json.dumps(events[0]))
    assert detect_dataset("x/one.json", path.read_bytes()) == "sale_events"
    result = validate(path, "sale_events", now=VALIDATE_NOW)
    assert result.report.valid == 1
    assert result.valid["amount"][0] == events[0]["price"]


@pytest.mark.parametrize(("dataset", "rate"), [("sale_events", 0.05), ("online_retail", 0.1)])
def test_invalid_rate_is_the_share_of_records_with_a_fault(
    tmp_path: Path, dataset: str, rate: float
) -> None:
    manifest = generate(dataset, 1000, tmp_path, invalid_rate=rate, seed=4, now=GEN_NOW)
    assert len(manifest.faults) == len({f.record for f in manifest.faults}) == round(1000 * rate)
    result = validate(manifest.files[0], dataset, now=VALIDATE_NOW)
    assert result.report.rejected == round(1000 * rate)


@pytest.mark.parametrize("dataset", ["products", "orders"])
def test_products_and_orders_are_written_alone(tmp_path: Path, dataset: str) -> None:
    manifest = generate(dataset, 300, tmp_path, invalid_rate=0.02, seed=6, now=GEN_NOW)
    assert [p.name for p in manifest.files] == [f"{dataset}.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{dataset}.csv"]
    assert manifest.records == {f"{dataset}.csv": 300} and not manifest.note
    result = validate(manifest.files[0], dataset, now=VALIDATE_NOW)
    assert result.report.rows_in == 300
    expected = {record: [rule] for record, rule in manifest.expected(f"{dataset}.csv").items()}
    assert rules_of(result) == expected and len(expected) == 6  # 2% of 300


def test_order_items_say_why_they_come_with_products_and_orders(tmp_path: Path) -> None:
    manifest = generate("order_items", 100, tmp_path, seed=6, now=GEN_NOW)
    assert [p.name for p in manifest.files] == ["products.csv", "orders.csv", "order_items.csv"]
    assert "refer to products and orders" in manifest.note
    summary = manifest.summary()
    assert "faults" not in summary and summary["note"] == manifest.note
