"""Bytes as they really arrive: nested too deep, gzip-compressed (sound, cut short, a bomb),
binary, named .json but broken. Each is read or named for what it is; nothing raises but a
``FileLevelError``, and detection never raises at all."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from salesflow.datasets import detect_dataset, get_spec, undetected
from salesflow.datasets.content import binary_kind
from salesflow.errors import FileLevelError, UnknownDatasetError
from salesflow.validation import text as text_module
from salesflow.validation import validate_path
from salesflow.validation.json_source import MAX_DEPTH, nesting
from salesflow.validation.text import clean_scratch, open_text
from tests.fixtures.samples import NOW, RETAIL_HEADER, SEED_002, rules_of, validate, write

LINE = "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850,United Kingdom"
RETAIL = f"{RETAIL_HEADER}\n{LINE}\n{LINE}\n".encode()
SALE = {"sale_id": "s-1", "product": "p", "price": 10, "quantity": 1, "timestamp": "2024-05-31"}


def file_error(path: Path, dataset: str, *, scratch: Path | None = None) -> FileLevelError:
    with pytest.raises(FileLevelError) as err:
        list(validate_path(path, get_spec(dataset), source=path.name, now=NOW, scratch=scratch))
    assert err.value.file == path.name and err.value.hint
    return err.value


# --- JSON nested too deep -------------------------------------------------------------------


def test_a_document_nested_100000_deep_is_a_file_error_not_a_recursion_error(
    tmp_path: Path,
) -> None:
    body = b'{"orders": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    error = file_error(write(tmp_path, "deep.json", body), "orders_json")
    assert error.rule == "structure.json_depth"
    assert f"deeper than {MAX_DEPTH}" in error.cause and "100,001" in error.cause


def test_a_small_deep_document_is_refused_before_the_format_is_even_sniffed(
    tmp_path: Path,
) -> None:
    # small enough that the format sniffer parses the whole file
    body = b"[" * 5_000 + b"]" * 5_000
    error = file_error(write(tmp_path, "deep.json", body), "orders_json")
    assert error.rule == "structure.json_depth"


def test_a_deep_json_lines_line_is_rejected_alone(tmp_path: Path) -> None:
    deep = '{"sale_id": "s-2", "x": ' + "[" * 10_000 + "]" * 10_000 + "}"
    lines = [json.dumps(SALE), deep, json.dumps(SALE | {"sale_id": "s-3"})]
    result = validate(write(tmp_path, "s.jsonl", "\n".join(lines) + "\n"), "sale_events")
    assert (result.report.rows_in, result.report.valid) == (3, 2)
    assert rules_of(result) == {2: ["structure.json_depth"]}
    assert json.loads(result.rejected["raw"][0])["_raw"] == deep  # kept as it arrived


def test_nesting_at_the_limit_is_read_and_one_more_level_is_not(tmp_path: Path) -> None:
    def document(levels: int) -> str:
        doc = json.loads(SEED_002)  # {"orders": [{"order-info": {...}}]}: 4 levels
        doc["orders"][0]["order-info"]["deep"] = json.loads("[" * levels + "]" * levels)
        return json.dumps(doc)

    at_limit = write(tmp_path, "o.json", document(MAX_DEPTH - 4))
    assert nesting(at_limit.read_text())[0] == MAX_DEPTH
    assert validate(at_limit, "orders_json").report.valid == 1
    over = write(tmp_path, "p.json", document(MAX_DEPTH - 3))
    assert file_error(over, "orders_json").rule == "structure.json_depth"


def test_nesting_ignores_brackets_in_strings() -> None:
    assert nesting('{"a": "[[[[{{{{", "b": [1, "\\"]]]"]}') == (2, [2])


def test_a_json_lines_string_may_hold_a_line_separator(tmp_path: Path) -> None:
    odd = SALE | {"product": "two\u2028lines"}
    lines = [json.dumps(odd, ensure_ascii=False), json.dumps(SALE | {"sale_id": "s-2"})]
    result = validate(write(tmp_path, "s.jsonl", "\n".join(lines) + "\n"), "sale_events")
    assert (result.report.rows_in, result.report.valid) == (2, 2)
    assert result.valid["product"][0] == "two\u2028lines"


# --- gzip -----------------------------------------------------------------------------------


def test_gzip_is_inflated_and_read(tmp_path: Path) -> None:
    result = validate(write(tmp_path, "r.csv.gz", gzip.compress(RETAIL)), "online_retail")
    assert (result.report.rows_in, result.report.valid) == (2, 2)
    assert any("gzip" in w for w in result.report.warnings)


def test_concatenated_gzip_members_are_read_in_full(tmp_path: Path) -> None:
    body = gzip.compress(RETAIL) + gzip.compress(f"{LINE}\n".encode())
    result = validate(write(tmp_path, "r.csv.gz", body), "online_retail")
    assert result.report.rows_in == 3


def test_a_gzip_cut_short_is_a_file_error(tmp_path: Path) -> None:
    body = gzip.compress(RETAIL * 50)
    error = file_error(write(tmp_path, "r.csv.gz", body[: len(body) // 2]), "online_retail")
    assert error.rule == "structure.bad_gzip"


def test_a_gzip_bomb_is_refused_within_its_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(text_module, "_INFLATE_FLOOR", 1 << 20)
    body = RETAIL + b"\n" * (20 << 20)  # 20 MiB of blank lines: compresses ~1000x
    path = write(tmp_path, "bomb.csv.gz", gzip.compress(body, compresslevel=9))
    scratch = tmp_path / "scratch"
    error = file_error(path, "online_retail", scratch=scratch)
    assert error.rule == "structure.bad_gzip" and "zip bomb" in error.cause
    assert list(scratch.iterdir()) == []  # the partial copy is gone


# --- binary, broken, and detection ----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b"PK\x03\x04\x14\x00\x06\x00", "ZIP"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00", "Excel"),
        (RETAIL_HEADER.encode("utf-16"), "UTF-16"),
        (b"%PDF-1.7\n", "PDF"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "NUL"),
    ],
)
def test_binary_files_are_named_for_what_they_are(tmp_path: Path, body: bytes, kind: str) -> None:
    assert kind in (binary_kind(body) or "")
    error = file_error(write(tmp_path, "r.csv", body), "online_retail")
    assert error.rule == "structure.not_text" and kind in error.cause
    assert detect_dataset("inbox/r.csv", body) is None
    assert undetected("inbox/r.csv", body).rule == "structure.not_text"


def test_detection_of_a_gzip_at_the_inbox_root_looks_inside() -> None:
    assert detect_dataset("inbox/r.csv.gz", gzip.compress(RETAIL)) == "online_retail"
    sales = "\n".join(json.dumps(SALE | {"sale_id": f"s{i}"}) for i in range(3))
    assert detect_dataset("inbox/s.jsonl.gz", gzip.compress(sales.encode())) == "sale_events"


@pytest.mark.parametrize(
    "head",
    [
        b"\x1f\x8b\x08\x00garbage that is not deflate\r\nmore\rbytes",  # the .csv.gz crash
        b'a,"b\rc\nd',  # a CR the csv module refused in unquoted fields
        bytes(range(1, 256)) * 4,
        b"\xff" * 100,
        b"[" * 50_000,
    ],
)
def test_detection_never_raises(head: bytes) -> None:
    for key in ("inbox/x.csv", "inbox/x.json", "inbox/x.csv.gz", "inbox/x"):
        assert detect_dataset(key, head) is None
        assert isinstance(undetected(key, head), FileLevelError)


def test_old_mac_header_is_detected() -> None:
    head = f"{RETAIL_HEADER}\r{LINE}\r".encode()
    assert detect_dataset("inbox/mac.csv", head) == "online_retail"


def test_a_broken_json_file_is_reported_as_broken_json(tmp_path: Path) -> None:
    body = b'"orders": [{"order-info": {"OrderId": 1}}]}'  # lost its first brace
    assert undetected("inbox/o.json", body).rule == "structure.bad_json"
    # and, when the dataset is known, the decoder says the same, not "missing CSV header"
    error = file_error(write(tmp_path, "o.json", body), "orders_json")
    assert error.rule == "structure.bad_json" and "line 1" in error.cause


def test_json_that_parses_but_matches_nothing_is_an_unknown_dataset() -> None:
    assert isinstance(undetected("inbox/x.json", b'{"colour": "blue"}'), UnknownDatasetError)


# --- scratch copies -------------------------------------------------------------------------


def test_decoded_copies_live_in_the_scratch_folder_and_go_when_done(tmp_path: Path) -> None:
    scratch = tmp_path / "data" / "scratch"
    latin1 = f"{RETAIL_HEADER}\n{LINE}\n".replace("WHITE", "CAF\xc9").encode("latin-1")
    path = write(tmp_path, "r.csv", latin1)
    with open_text(path, "r.csv", scratch=scratch) as text:
        assert text.path.parent == scratch and text.path != path
        assert "CAFÉ" in text.path.read_text(encoding="utf-8")
    assert list(scratch.iterdir()) == []


def test_copies_of_a_killed_process_are_cleaned_and_live_ones_kept(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    gone = tmp_path / f"salesflow-{dead.stdout.strip()}-0a1b2c.utf8"
    mine = tmp_path / f"salesflow-{os.getpid()}-0a1b2c.utf8"
    other = tmp_path / "unrelated.txt"
    for p in (gone, mine, other):
        p.write_text("x")
    assert clean_scratch(tmp_path) == [gone]
    assert not gone.exists() and mine.exists() and other.exists()


def test_a_clean_utf8_file_is_read_in_place(tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", RETAIL)
    with open_text(path, "r.csv", scratch=tmp_path / "scratch") as text:
        assert text.path == path and text.warnings == []
    assert not (tmp_path / "scratch").exists()
