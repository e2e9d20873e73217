"""The per-file JSON report: stable schema, samples, chunks, warnings, file-level errors."""

from __future__ import annotations

import json
from pathlib import Path

from salesflow.datasets import get_spec
from salesflow.errors import FileLevelError
from salesflow.validation import FileReport, validate_path
from tests.fixtures.samples import NOW, PRODUCTS_HEADER, validate, write

KEYS = {"file", "dataset", "rows_in", "valid", "rejected", "rules", "samples", "chunks",
        "warnings", "error"}  # fmt: skip


def bad_products(tmp_path: Path, n: int) -> Path:
    rows = [f"{i},30,Jeans,N,B,20,Men,S{i},1" for i in range(1, n + 1)]
    rows.append(f"{n + 1},1,Jeans,N,B,20,Men,S,1")
    return write(tmp_path, "p.csv", "\n".join([PRODUCTS_HEADER, *rows]) + "\n")


def test_report_schema(tmp_path: Path) -> None:
    result = validate(bad_products(tmp_path, 8), "products", chunk_rows=4)
    d = result.report.to_dict()
    assert set(d) == KEYS
    assert (d["file"], d["dataset"]) == ("p.csv", "products")
    assert (d["rows_in"], d["valid"], d["rejected"]) == (9, 1, 8)
    assert d["rules"] == {"business.cost_le_retail": 8}
    assert d["error"] is None
    assert len(d["samples"]) == 5
    sample = d["samples"][0]
    assert sample["record"] == 1 and sample["key"] == "1"
    assert sample["raw"]["cost"] == "30"
    assert sample["reasons"][0]["rule"] == "business.cost_le_retail"
    assert [c["index"] for c in d["chunks"]] == list(range(len(d["chunks"])))
    assert sum(c["rows_in"] for c in d["chunks"]) == 9
    assert set(d["chunks"][0]) == {"index", "rows_in", "valid", "rejected", "rules"}
    assert json.loads(result.report.to_json()) == d
    assert result.report.ok and result.rows_in == 9


def test_streaming_report_built_by_the_caller(tmp_path: Path) -> None:
    path = bad_products(tmp_path, 3)
    report = FileReport(file="p.csv", dataset="products")
    chunks = list(validate_path(path, get_spec("products"), source="p.csv", now=NOW, chunk_rows=2))
    for chunk in chunks:
        report.add(chunk)
    assert report.to_dict() == FileReport.from_chunks("p.csv", "products", chunks).to_dict()
    assert report.rows_in == report.valid + report.rejected == 4


def test_failed_file_report() -> None:
    error = FileLevelError("inbox/x.json", "invalid JSON", rule="structure.bad_json", hint="fix")
    d = FileReport.failed("inbox/x.json", "orders_json", error).to_dict()
    assert d["error"] == {"rule": "structure.bad_json", "cause": "invalid JSON", "hint": "fix"}
    assert (d["rows_in"], d["valid"], d["rejected"]) == (0, 0, 0)
    report = FileReport(file="f", dataset="products", rows_in=5, valid=5)
    report.fail(error)
    assert not report.ok and report.to_dict()["rows_in"] == 5


def test_warnings_are_listed_once(tmp_path: Path) -> None:
    row = "1,1,7,1,100,Complete,2024-01-05 10:11:12 UTC,,,,1"
    header = "id,order_id,user_id,product_id,inventory_item_id,status,created_at,shipped_at,"
    header += "delivered_at,returned_at,sale_price"
    path = write(tmp_path, "i.csv", "\n".join([header, row, row.replace("1,1,7", "2,1,7")]))
    result = validate(path, "order_items", chunk_rows=1)
    assert len(result.report.warnings) == 2
    assert len(result.report.chunks) == 2
