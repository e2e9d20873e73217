"""Dead-letter operations on the in-memory port: export and its exact round trip, redrive
files, bulk discard, and streaming a page at a time."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from salesflow.adapters.memory.letters import MemoryDeadLetters
from salesflow.errors import SalesflowError, TerminalError
from salesflow.models import DeadLetter, LetterEvent, LetterStatus, Reason
from salesflow.ops.dlq import (
    Filters,
    build_redrive,
    discard,
    export,
    listing,
    neutralise,
    read_corrections,
    restore,
    stream,
)

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def _letter(
    n: int = 1, *, dataset: str = "order_items", rule: str = "range.positive", **raw: Any
) -> DeadLetter:
    return DeadLetter(
        id=f"7:{n}",
        seq=7,
        dataset=dataset,
        source_file="inbox/x.csv",
        record=n,
        raw=dict(raw),
        reasons=[Reason(rule, "sale_price", "sale_price must be > 0")],
        history=[LetterEvent(at=T0, event="rejected", run=7)],
    )


@pytest.mark.parametrize(
    "cell", ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tx", "\rx", "\r=1+1", "\n=1", "'=x", "''+y"]
)
def test_formula_cells_are_neutralised_and_restored(cell: str) -> None:
    assert neutralise(cell) == "'" + cell
    assert restore(neutralise(cell)) == cell


@pytest.mark.parametrize("cell", ["hello", "", "'quoted", "a=b", " =1", "1-2"])
def test_plain_cells_are_kept(cell: str) -> None:
    assert neutralise(cell) == cell and restore(cell) == cell


NASTY: dict[str, Any] = {
    '=HYPERLINK("http://evil","x")': "click",
    "sale_price": "-5",
    "note": "\r=1+1",
    "multi": "line one\nline two\r\n=still",
    "quote": "'=already quoted",
    "blank": "",
    "_letter_id": "a raw field named like a meta column",
    "_raw": "so is this",
    "qty": 3,
    "price": 2.5,
    "ok": True,
    "missing": None,
    "nested": {"a": [1, "=x"]},
    "名前": "Zoë 🚀",
    "separators": "a\u2028b\x1cc\x85d",
}


def _export(letters: list[DeadLetter], fmt: str) -> str:
    out = io.StringIO(newline="")
    assert export(letters, fmt, out) == len(letters)
    return out.getvalue()


def test_csv_export_neutralises_every_cell_header_included_and_keeps_rows_whole() -> None:
    text = _export([_letter(1, **NASTY), _letter(2, sale_price="7")], "csv")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert len(rows) == 3  # a header and two letters: no CR or LF split a row
    header = rows[0]
    assert '\'=HYPERLINK("http://evil","x")' in header
    assert header[0] == "_letter_id" and "__letter_id" in header and "__raw" in header
    cells = [c for row in rows for c in row]
    assert not [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r", "\n"))]
    row = dict(zip(header, rows[1], strict=True))
    assert row["note"] == "'\r=1+1" and row["sale_price"] == "'-5"
    assert row["_letter_id"] == "7:1" and row["_rules"] == "range.positive"
    assert all(r[0] for r in rows[1:]), "_letter_id in every row"


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_then_read_back_gives_the_records_exactly(tmp_path: Path, fmt: str) -> None:
    letters = [_letter(1, **NASTY), _letter(2, sale_price="7"), _letter(3)]
    path = tmp_path / f"fix.{fmt}"
    path.write_text(_export(letters, fmt), encoding="utf-8", newline="")
    got = read_corrections(path)
    assert got == [(x.id, x.raw) for x in letters]
    assert list(got[0][1]) == list(NASTY)  # key order too


def test_a_person_edits_a_cell_and_adds_a_record(tmp_path: Path) -> None:
    text = _export([_letter(1, sale_price="-5", qty=2)], "csv")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    rows[0]["sale_price"] = "5"
    rows[0]["qty"] = "3"
    rows.append({"sale_price": "9", "qty": "1"})  # a new record, no letter
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    path = tmp_path / "fix.csv"
    path.write_text(out.getvalue())
    assert read_corrections(path) == [
        ("7:1", {"sale_price": "5", "qty": 3}),
        (None, {"sale_price": "9", "qty": "1"}),
    ]


def test_bad_corrections_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(TerminalError, match="format"):
        export([], "xml", io.StringIO())
    with pytest.raises(TerminalError, match="no such file"):
        read_corrections(tmp_path / "nope.csv")
    path = tmp_path / "fix.jsonl"
    path.write_text('{"_letter_id": "7:1", "raw": {}}\n{not json\n')
    with pytest.raises(TerminalError, match="line 2"):
        read_corrections(path)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("_letter_id,name\n7:1,Zo\xeb\n".encode("latin-1"))
    with pytest.raises(TerminalError, match="UTF-8"):
        read_corrections(latin)


def test_redrive_file_of_a_csv_dataset_numbers_records_with_their_origin() -> None:
    file = build_redrive(
        "order_items",
        [
            ("7:1", {"ID": "1", "sale_price": "-5", "note": "a,b\r\nc"}),
            (None, {"id": "2", "sale_price": "9"}),
            ("7:3", {"id": "", "sale_price": " "}),  # emptied by a person: the parser skips it
            ("7:4", {"id": "4", "sale_price": None}),
        ],
    )
    assert file.ext == "csv" and file.origins == {1: "7:1", 2: None, 3: "7:4"}
    assert file.blank == ["7:3"]
    rows = list(csv.DictReader(io.StringIO(file.body.decode(), newline="")))
    assert [r["id"] for r in rows] == ["1", "2", "4"]  # header spellings merged
    assert rows[0]["note"] == "a,b\r\nc" and rows[2]["sale_price"] == ""


def test_redrive_file_of_a_json_dataset_is_json_lines() -> None:
    raws = [{"order-info": {"orderId": str(n)}, "qty": n} for n in range(3)]
    file = build_redrive("orders_json", [(f"1:{n}", r) for n, r in enumerate(raws)])
    assert file.ext == "jsonl"
    assert [json.loads(line) for line in file.body.decode().splitlines()] == raws
    single = build_redrive("orders_json", [("1:0", {"_raw": '{"orders": 1, "qty": 2}'})])
    assert single.ext == "json" and json.loads(single.body) == [{"orders": 1, "qty": 2}]


def test_stream_reads_pages_and_listing_counts_all() -> None:
    store = MemoryDeadLetters()
    store.put([_letter(n, sale_price="-1") for n in range(1, 1201)])
    calls: list[int | None] = []
    real = store.find

    def spy(**kw: Any) -> list[DeadLetter]:
        calls.append(kw.get("limit"))
        return real(**kw)

    store.find = spy  # type: ignore[method-assign]
    assert [x.record for x in stream(store, Filters())] == list(range(1, 1201))
    assert calls == [500, 500, 500]
    page = listing(store, Filters(), limit=50)
    assert (len(page.letters), page.total) == (50, 1200)


def test_discard_by_filter_or_ids_keeps_a_history_and_refuses_no_selection() -> None:
    store = MemoryDeadLetters()
    store.put([_letter(n, rule="email.format" if n % 2 else "range.positive") for n in range(1, 8)])
    with pytest.raises(SalesflowError, match="nothing to discard"):
        discard(store, filters=Filters())
    result = discard(store, filters=Filters(rule="email.format"), reason="test data", now=T0)
    assert result.discarded == 4
    assert store.count(status=LetterStatus.DISCARDED, rule="email.format") == 4
    [one] = store.get(["7:1"])
    assert one.history[-1] == LetterEvent(at=T0, event="discarded", note="test data")
    again = discard(store, ids=["7:1", "7:2", "9:9"], reason="dup")
    assert (again.discarded, again.skipped, again.unknown) == (1, {"7:1": "DISCARDED"}, ["9:9"])
    assert store.count(status=LetterStatus.NEW) == 2
