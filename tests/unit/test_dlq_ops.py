"""Dead-letter export (formula neutralisation) and reading corrections back."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from salesflow.errors import TerminalError
from salesflow.models import DeadLetter, Reason
from salesflow.ops.dlq import export, neutralise, read_corrections


def _letter(**raw: str) -> DeadLetter:
    return DeadLetter(
        id="abc:1",
        dataset="order_items",
        source_file="inbox/x.csv",
        record=1,
        raw=dict(raw),
        reasons=[Reason("range.positive", "sale_price", "sale_price must be > 0")],
    )


@pytest.mark.parametrize("cell", ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tx", "\rx"])
def test_formula_cells_are_neutralised(cell: str) -> None:
    assert neutralise(cell) == "'" + cell


def test_plain_cells_are_kept() -> None:
    assert neutralise("hello") == "hello"
    assert neutralise(None) == ""
    assert neutralise(3) == "3"


def test_csv_export_neutralises_raw_fields_and_round_trips(tmp_path: Path) -> None:
    text = export([_letter(sale_price="-5", name='=HYPERLINK("http://evil")')], "csv")
    [row] = list(csv.DictReader(io.StringIO(text)))
    assert row["sale_price"] == "'-5"
    assert row["name"].startswith("'=")
    assert row["_rules"] == "range.positive"
    path = tmp_path / "fix.csv"
    path.write_text(text)
    [(letter_id, raw)] = read_corrections(path)
    assert letter_id == "abc:1" and raw == {"sale_price": "-5", "name": '=HYPERLINK("http://evil")'}


def test_jsonl_export_round_trips(tmp_path: Path) -> None:
    text = export([_letter(sale_price="-5")], "jsonl")
    assert json.loads(text)["reasons"][0]["rule"] == "range.positive"
    path = tmp_path / "fix.jsonl"
    path.write_text(text.replace('"-5"', '"5"'))
    assert read_corrections(path) == [("abc:1", {"sale_price": "5"})]


def test_bad_inputs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(TerminalError, match="format"):
        export([], "xml")
    path = tmp_path / "fix.jsonl"
    path.write_text("{not json\n")
    with pytest.raises(TerminalError, match="line 1"):
        read_corrections(path)
