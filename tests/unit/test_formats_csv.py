"""CSV in every shape real exports take: BOM, CRLF, quoted newlines, Latin-1, extra and
missing columns, empty and header-only files, ragged and blank lines."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from salesflow.datasets import get_spec
from salesflow.errors import FileLevelError
from salesflow.validation import validate_path
from tests.fixtures.samples import (
    NOW,
    ORDERS_CSV_HEADER,
    PRODUCTS_HEADER,
    RETAIL_HEADER,
    rules_of,
    validate,
    write,
)

LINE = "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850,United Kingdom"


def file_error(path: Path, dataset: str) -> FileLevelError:
    with pytest.raises(FileLevelError) as err:
        list(validate_path(path, get_spec(dataset), source=path.name, now=NOW))
    assert err.value.file == path.name
    assert err.value.hint
    return err.value


def test_bom_and_crlf(tmp_path: Path) -> None:
    body = "\r\n".join([RETAIL_HEADER, LINE, LINE.replace(",6,", ",2,")]) + "\r\n"
    result = validate(write(tmp_path, "r.csv", b"\xef\xbb\xbf" + body.encode()), "online_retail")
    assert result.report.valid == 2
    assert result.valid["Country"].to_list() == ["United Kingdom"] * 2
    assert result.valid["InvoiceNo"].to_list() == ["536365", "536365"]
    assert result.valid["_key"].to_list() == ["536365|1", "536365|2"]


def test_quoted_newline_inside_description(tmp_path: Path) -> None:
    quoted = LINE.replace("WHITE HANGING HEART T-LIGHT HOLDER", '"WHITE HEART,\r\nHOLDER ""XL"""')
    path = write(tmp_path, "r.csv", f"{RETAIL_HEADER}\r\n{quoted}\r\n{LINE}\r\n")
    result = validate(path, "online_retail")
    assert result.report.rows_in == 2
    assert result.valid["Description"][0] == 'WHITE HEART,\r\nHOLDER "XL"'
    assert result.valid["_record"].to_list() == [1, 2]


def test_latin1_bytes_fall_back_with_a_warning(tmp_path: Path) -> None:
    line = LINE.replace("WHITE HANGING HEART T-LIGHT HOLDER", "CAF\xc9 CR\xc8ME").encode("latin-1")
    path = write(tmp_path, "r.csv", RETAIL_HEADER.encode() + b"\n" + line + b"\n")
    result = validate(path, "online_retail")
    assert result.valid["Description"].to_list() == ["CAFÉ CRÈME"]
    assert any("Latin-1" in w for w in result.report.warnings)
    assert result.report.to_dict()["warnings"] == result.report.warnings


def test_latin1_rejected_record_keeps_decoded_raw(tmp_path: Path) -> None:
    line = LINE.replace(",2.55,", ",-1,").replace("WHITE", "CR\xc8ME").encode("latin-1")
    path = write(tmp_path, "r.csv", RETAIL_HEADER.encode() + b"\n" + line + b"\n")
    result = validate(path, "online_retail")
    raw = json.loads(result.rejected["raw"][0])
    assert raw["Description"].startswith("CRÈME")
    assert raw["UnitPrice"] == "-1"


def test_case_insensitive_headers_in_any_order(tmp_path: Path) -> None:
    header = "SKU,ID,Cost,Category,Name,Brand,Retail-Price,Department"
    path = write(tmp_path, "p.csv", f"{header}\nS1,7,5,Jeans,N,B,9.5,Men\n")
    result = validate(path, "products")
    row = result.valid.row(0, named=True)
    assert (row["id"], row["sku"], row["retail_price"]) == (7, "S1", 9.5)
    assert row["distribution_center_id"] is None  # optional column absent: null


def test_extra_columns_are_kept(tmp_path: Path) -> None:
    header = f"{PRODUCTS_HEADER},season,notes"
    lines = [f"{header}", "1,5,Jeans,N,B,9.5,Men,S1,2,summer,", "2,10,Jeans,N,B,9.5,Men,S2,2,x,y"]
    result = validate(write(tmp_path, "p.csv", "\n".join(lines) + "\n"), "products")
    assert json.loads(result.valid["_extra"][0]) == {"season": "summer", "notes": ""}
    raw = json.loads(result.rejected["raw"][0])
    assert raw["season"] == "x" and raw["cost"] == "10"
    assert rules_of(result) == {2: ["business.cost_le_retail"]}


def test_missing_required_header_is_a_file_error(tmp_path: Path) -> None:
    header = RETAIL_HEADER.replace("UnitPrice,", "")
    error = file_error(write(tmp_path, "r.csv", f"{header}\n1,2,3\n"), "online_retail")
    assert error.rule == "structure.missing_header"
    assert "UnitPrice" in error.cause


def test_data_without_header_is_a_file_error(tmp_path: Path) -> None:
    error = file_error(write(tmp_path, "r.csv", f"{LINE}\n{LINE}\n"), "online_retail")
    assert error.rule == "structure.missing_header"


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf", b"\r\n\r\n  \n"])
def test_empty_file_is_a_file_error(tmp_path: Path, content: bytes) -> None:
    error = file_error(write(tmp_path, "r.csv", content), "online_retail")
    assert error.rule == "structure.empty"


def test_header_only_is_zero_rows(tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", "\ufeff" + RETAIL_HEADER + "\r\n")
    chunks = list(validate_path(path, get_spec("online_retail"), source="r.csv", now=NOW))
    assert len(chunks) == 1 and chunks[0].rows_in == 0
    assert chunks[0].valid.columns == list(get_spec("online_retail").valid_schema())
    result = validate(path, "online_retail")
    assert (result.report.rows_in, result.report.valid, result.report.rejected) == (0, 0, 0)


def test_binary_file_is_not_text(tmp_path: Path) -> None:
    content = RETAIL_HEADER.encode("utf-16")
    error = file_error(write(tmp_path, "r.csv", content), "online_retail")
    assert error.rule == "structure.not_text"


def test_unterminated_quote_is_a_file_error(tmp_path: Path) -> None:
    path = write(
        tmp_path, "r.csv", f'{RETAIL_HEADER}\n{LINE}\n536366,1,"OPEN,1,12/1/2010 8:26,1,2\n'
    )
    assert file_error(path, "online_retail").rule == "structure.bad_csv"


def test_json_for_a_csv_dataset_is_a_format_error(tmp_path: Path) -> None:
    error = file_error(write(tmp_path, "p.json", '[{"id": 1}]'), "products")
    assert error.rule == "structure.format"


def test_more_fields_than_header_rejects_the_record(tmp_path: Path) -> None:
    lines = [PRODUCTS_HEADER, "1,5,Jeans,N,B,9.5,Men,S1,2", "2,5,Jeans,N,B,9.5,Men,S2,2,surplus"]
    result = validate(write(tmp_path, "p.csv", "\n".join(lines)), "products")
    assert rules_of(result) == {2: ["structure.field_count"]}
    assert "surplus" in result.rejected["reasons"][0][0]["message"]


def test_a_record_cut_short_before_a_required_field_is_a_field_count_rejection(
    tmp_path: Path,
) -> None:
    lines = [PRODUCTS_HEADER, "1,5,Jeans,N,B,9.5,Men"]
    result = validate(write(tmp_path, "p.csv", "\n".join(lines) + "\n"), "products")
    assert rules_of(result) == {1: ["structure.field_count"]}
    message = result.rejected["reasons"][0][0]["message"]
    assert "7 fields" in message and "9 columns" in message and "sku" in message
    # the raw form is what arrived: seven fields, not nine with two invented blanks
    assert len(json.loads(result.rejected["raw"][0])) == 7


def test_missing_trailing_optional_fields_read_as_missing(tmp_path: Path) -> None:
    # spreadsheets drop trailing empty cells: CustomerID and Country are optional
    short = LINE.removesuffix(",17850,United Kingdom")
    result = validate(write(tmp_path, "r.csv", f"{RETAIL_HEADER}\n{short}\n"), "online_retail")
    assert result.report.valid == 1
    assert result.valid.row(0, named=True)["CustomerID"] is None


def test_present_but_empty_required_field_stays_a_presence_rejection(tmp_path: Path) -> None:
    lines = [PRODUCTS_HEADER, "1,5,Jeans,N,B,9.5,Men,,"]
    result = validate(write(tmp_path, "p.csv", "\n".join(lines) + "\n"), "products")
    assert rules_of(result) == {1: ["presence.required"]}


def test_a_rejected_row_keeps_every_extra_field(tmp_path: Path) -> None:
    lines = [PRODUCTS_HEADER, '2,5,Jeans,N,B,9.5,Men,S2,2,first,second,"th,ird"']
    result = validate(write(tmp_path, "p.csv", "\n".join(lines) + "\n"), "products")
    assert rules_of(result) == {1: ["structure.field_count"]}
    raw = json.loads(result.rejected["raw"][0])
    assert [raw["column_10"], raw["column_11"], raw["column_12"]] == ["first", "second", "th,ird"]
    assert raw["sku"] == "S2"
    message = result.rejected["reasons"][0][0]["message"]
    assert "12 fields" in message and "'second'" in message


def test_extra_fields_are_found_again_in_later_chunks(tmp_path: Path) -> None:
    good = "1,5,Jeans,N,B,9.5,Men,S1,2"
    lines = [PRODUCTS_HEADER] + [good.replace("1,", f"{i},", 1) for i in range(1, 30)]
    lines[5] += ",a,b"
    lines[25] += ",c,d,e"
    path = write(tmp_path, "p.csv", "\n".join(lines) + "\n")
    chunks = list(validate_path(path, get_spec("products"), source="p.csv", chunk_rows=7))
    rejected = [row for c in chunks for row in c.rejected.iter_rows(named=True)]
    assert [r["_record"] for r in rejected] == [5, 25]
    assert [len(json.loads(r["raw"])) for r in rejected] == [11, 12]


def test_old_mac_line_endings_are_read(tmp_path: Path) -> None:
    body = "\r".join([RETAIL_HEADER, LINE, LINE.replace(",6,", ",2,")]) + "\r"
    result = validate(write(tmp_path, "r.csv", body), "online_retail")
    assert (result.report.rows_in, result.report.valid) == (2, 2)
    assert any("bare CR" in w for w in result.report.warnings)


def test_a_bare_cr_inside_a_file_separates_two_records(tmp_path: Path) -> None:
    other = LINE.replace("536365", "536366").replace(",6,", ",-6,")  # rejected
    body = f"{RETAIL_HEADER}\n{LINE}\r{other}\n{LINE}\r\n"
    result = validate(write(tmp_path, "r.csv", body), "online_retail")
    assert result.report.rows_in == 3
    assert (result.report.valid, result.report.rejected) == (2, 1)
    assert json.loads(result.rejected["raw"][0])["InvoiceNo"] == "536366"
    assert result.valid["Country"].to_list() == ["United Kingdom"] * 2


def test_a_cr_inside_quotes_stays_inside_the_field(tmp_path: Path) -> None:
    quoted = LINE.replace("WHITE HANGING HEART T-LIGHT HOLDER", '"TWO\rLINES"')
    result = validate(write(tmp_path, "r.csv", f"{RETAIL_HEADER}\n{quoted}\n"), "online_retail")
    assert result.report.rows_in == 1
    assert result.valid["Description"].to_list() == ["TWO\nLINES"]


def test_blank_lines_are_skipped_not_counted(tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", f"{RETAIL_HEADER}\n\n{LINE}\n\n,,,,,,,\n{LINE}\n\n\n")
    result = validate(path, "online_retail")
    assert result.report.rows_in == 2 and result.report.valid == 2


def test_orders_json_as_csv(tmp_path: Path) -> None:
    lines = [ORDERS_CSV_HEADER, "1,101,Item One,1,Foo Bar,foobar@test.com", "2,102,Item Two,2,,"]
    result = validate(write(tmp_path, "o.csv", "\n".join(lines) + "\n"), "orders_json")
    assert result.valid["order_id"].to_list() == ["1"]
    assert rules_of(result) == {2: ["presence.contact_info"]}


def test_big_file_streams_in_chunks(tmp_path: Path) -> None:
    lines = [RETAIL_HEADER] + [LINE.replace("536365", str(536365 + i // 3)) for i in range(25)]
    path = write(tmp_path, "r.csv", "\n".join(lines) + "\n")
    chunks = list(validate_path(path, get_spec("online_retail"), source="r", chunk_rows=10))
    assert sum(c.rows_in for c in chunks) == 25
    assert len(chunks) >= 3 and [c.index for c in chunks] == list(range(len(chunks)))
    keys = [k for c in chunks for k in c.valid["_key"].to_list()]
    assert keys[:4] == ["536365|1", "536365|2", "536365|3", "536366|1"]
    assert len(set(keys)) == 25


def test_truncated_utf8_at_the_end_falls_back_to_latin1(tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", f"{RETAIL_HEADER}\n{LINE}".encode() + b"\xc3")
    result = validate(path, "online_retail")
    assert result.valid["Country"].to_list() == ["United Kingdom\xc3"]
    assert "offset" in result.report.warnings[0]


def test_semicolon_separated_file_gets_a_hint(tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", RETAIL_HEADER.replace(",", ";") + "\n")
    error = file_error(path, "online_retail")
    assert error.rule == "structure.missing_header"
    assert "';'-separated" in error.hint


def test_duplicate_and_blank_header_names_stay_apart_in_raw(tmp_path: Path) -> None:
    header = f"{PRODUCTS_HEADER},note,note,"
    row = "1,30,Jeans,N,B,20,Men,S1,1,a,b,c"
    result = validate(write(tmp_path, "p.csv", f"{header}\n{row}\n"), "products")
    raw = json.loads(result.rejected["raw"][0])
    assert (raw["note"], raw["note_11"], raw["column_12"]) == ("a", "b", "c")


def test_chunks_made_only_of_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", f"{RETAIL_HEADER}\n{LINE}\n\n\n\n{LINE}\n")
    chunks = list(validate_path(path, get_spec("online_retail"), source="r", chunk_rows=1))
    assert [c.rows_in for c in chunks] == [1, 1]
    assert [c.valid["_record"].to_list() for c in chunks] == [[1], [2]]


def test_padded_values_are_read_and_blank_ones_are_missing(tmp_path: Path) -> None:
    row = " 536365 ,85123A, HEART , 6 , 12/1/2010 8:26 , 2.55 ,17850,United Kingdom"
    blank = row.replace(" 6 ", "   ")
    result = validate(
        write(tmp_path, "r.csv", f"{RETAIL_HEADER}\n{row}\n{blank}\n"), "online_retail"
    )
    assert result.valid.row(0, named=True)["Quantity"] == 6
    assert result.valid["InvoiceNo"].to_list() == ["536365"]
    assert rules_of(result) == {2: ["presence.required"]}


def test_online_retail_iso_timestamps_as_pandas_and_excel_write_them(tmp_path: Path) -> None:
    iso = LINE.replace("12/1/2010 8:26", "2010-12-01 08:26:00")
    no_seconds = LINE.replace("12/1/2010 8:26", "2010-12-02 09:30")
    body = f"{RETAIL_HEADER}\n{iso}\n{no_seconds}\n{LINE}\n"
    result = validate(write(tmp_path, "r.csv", body), "online_retail")
    assert result.report.rejected == 0, result.report.to_dict()["samples"]
    stamps = [d.strftime("%Y-%m-%d %H:%M") for d in result.valid["InvoiceDate"].to_list()]
    assert stamps == ["2010-12-01 08:26", "2010-12-02 09:30", "2010-12-01 08:26"]


@pytest.mark.parametrize("name", ["sales [2].csv", "q*?.csv", "[bold]a.csv"])
def test_a_name_that_looks_like_a_glob_pattern_is_read_as_a_name(tmp_path: Path, name: str) -> None:
    result = validate(write(tmp_path, name, f"{RETAIL_HEADER}\n{LINE}\n"), "online_retail")
    assert result.report.valid == 1


def test_a_quote_free_file_is_re_read_as_lines_with_the_csv_modules_records(
    tmp_path: Path,
) -> None:
    from salesflow.validation.csv_source import RawRecords, quote_free

    body = "a,b,c\n1,2,3\n,,\n\n4,5\n,6,7\n,,,x\n8,9,10,11,12\n \n13,,\n14,15,16"
    path = tmp_path / "plain.csv"
    path.write_bytes(body.encode())
    quoted = tmp_path / "quoted.csv"
    quoted.write_bytes(body.replace("8,9", '"8,x",9').encode())
    crlf = tmp_path / "crlf.csv"
    crlf.write_bytes(body.replace("\n", "\r\n").encode())
    assert quote_free(path) and not quote_free(quoted) and not quote_free(crlf)

    def walk(lines: bool, batches: list[list[int]]) -> list[dict[int, list[str]]]:
        again = RawRecords(path, 4, lines=lines)
        try:
            return [again.fetch(b) for b in batches]
        finally:
            again.close()

    batches = [[1], [3, 4], [5, 6], [7, 8, 9, 20]]
    by_lines, by_csv = walk(True, batches), walk(False, batches)
    assert by_lines == by_csv
    # blank records (",," and "") are not numbered; ",,,x" has a 4th field and is a record
    assert by_lines[1] == {3: ["", "6", "7"], 4: ["", "", "", "x"]}
    assert by_lines[3] == {7: ["13", "", ""], 8: ["14", "15", "16"]}  # " " is a record


def _mixed_products() -> bytes:
    """Products in every shape at once: quoted commas and line breaks, escaped quotes,
    blank lines, a record cut short, one with a field too many, a duplicate id, CRLF."""
    rows = [PRODUCTS_HEADER]
    for i in range(1, 41):
        name = {
            0: f'"Jeans, slim {i}"',
            1: f'"two\nlines {i}"',
            2: f'"say ""hi"" {i}"',
        }.get(i % 5, f"Plain {i}")
        rows.append(f"{i},5,Jeans,{name},B,9.5,Men,S{i},2")
        if i % 9 == 0:
            rows.append("")
    rows += ["7,5,Jeans,Again,B,9.5,Men,S7,2", "41,5,Jeans,N", "42,5,Jeans,N,B,9.5,Men,S,2,extra"]
    return ("\ufeff" + "\r\n".join(rows) + "\r\n").encode()


@pytest.mark.parametrize("block", [1, 7, 64, 300])
@pytest.mark.parametrize("chunk_rows", [1, 4, 1000])
def test_a_file_read_in_blocks_reads_as_one_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int, chunk_rows: int
) -> None:
    from salesflow.validation import csv_source

    path = write(tmp_path, "p.csv", _mixed_products())
    whole = validate(path, "products", chunk_rows=chunk_rows)
    assert csv_source.BLOCK_BYTES > path.stat().st_size  # one block: one scan, as before
    monkeypatch.setattr(csv_source, "BLOCK_BYTES", block)
    cut = validate(path, "products", chunk_rows=chunk_rows)
    assert b"".join(csv_source.record_blocks(path, block)) == path.read_bytes()
    assert cut.valid.equals(whole.valid)
    assert cut.rejected.equals(whole.rejected)
    assert rules_of(cut) == {
        41: ["unique.key"],
        42: ["structure.field_count"],
        43: ["structure.field_count"],
    }
    assert [c.rows_in for c in cut.report.chunks] == [c.rows_in for c in whole.report.chunks]
    assert whole.valid.filter(pl.col("id") == 6)["name"].to_list() == ["two\nlines 6"]


def test_blocks_end_at_line_feeds_outside_quotes(tmp_path: Path) -> None:
    from salesflow.validation.csv_source import record_blocks

    path = write(tmp_path, "q.csv", b'h\n"a\nb"\nc\n"d""\ne"\nf')
    blocks = list(record_blocks(path, 2))
    assert blocks == [b"h\n", b'"a\nb"\n', b"c\n", b'"d""\ne"\n', b"f"]
