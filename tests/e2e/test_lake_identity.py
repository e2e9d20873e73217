"""Record identity and commit visibility through ``salesflow ingest``, on the local lake.

- Online Retail lines are ``<source>|<record>``: a file split inside an invoice gives the
  whole file's totals; two files holding one invoice number keep both sets of lines (and both
  high-value alerts); a file re-sent under its name replaces its earlier version's lines.
- A version's records are visible only once it commits: a process killed between load and
  commit (or between resolve and the marker) leaves none, and its redo stores them once; a
  FAILED version leaves none, and the records it would have replaced stay.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from salesflow.models import FileStatus
from tests.fixtures.cli import Cli, backend_of, files_under, jsonl, totals_of_sales
from tests.fixtures.common import ONLINE_RETAIL_SAMPLE
from tests.fixtures.samples import desk_sales, split_inside_an_invoice

pytestmark = pytest.mark.subprocess

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
KILLED = -signal.SIGKILL


def line(invoice: str, code: str, quantity: int, price: float, customer: str = "17850") -> str:
    return f"{invoice},{code},ITEM {code},{quantity},12/1/2010 8:26,{price},{customer},UK\n"


def totals(cli: Cli, by: str) -> dict[str, tuple[float, int]]:
    rows = cli.json("totals", "--by", by, "--dataset", "online_retail")
    return {r["id"]: (round(float(r["total_amount"]), 2), int(r["records"])) for r in rows}


def all_totals(cli: Cli) -> dict[str, dict[str, tuple[float, int]]]:
    return {by: totals(cli, by) for by in ("invoice", "customer", "day")}


def test_a_file_split_inside_an_invoice_gives_the_whole_files_totals(tmp_path: Path) -> None:
    header, first, second = split_inside_an_invoice(ONLINE_RETAIL_SAMPLE)
    invoice = first.splitlines()[-1].split(",")[0]
    assert second.splitlines()[0].split(",")[0] == invoice  # the cut is inside that invoice

    whole = Cli(tmp_path / "whole")
    whole.run("ingest", ONLINE_RETAIL_SAMPLE)
    parts = Cli(tmp_path / "parts")
    (tmp_path / "in").mkdir()
    a, b = tmp_path / "in" / "retail-1.csv", tmp_path / "in" / "retail-2.csv"
    a.write_text(header + first)
    b.write_text(header + second)
    parts.run("ingest", a, b)

    want = all_totals(whole)
    got = all_totals(parts)
    assert got["invoice"][invoice] == want["invoice"][invoice]
    assert got == want
    assert parts.json("audit")["ok"] is True


def test_two_files_with_one_invoice_number_keep_both_sets_of_lines_and_alerts(
    tmp_path: Path,
) -> None:
    cli = Cli(tmp_path / "data")
    (tmp_path / "in").mkdir()
    shop = tmp_path / "in" / "shop-a.csv"
    other = tmp_path / "in" / "shop-b.csv"
    shop.write_text(HEADER + line("536999", "A1", 100, 5.0) + line("536999", "A2", 2, 1.5))
    other.write_text(HEADER + line("536999", "B1", 200, 3.0) + line("536999", "B2", 1, 2.0))
    cli.run("ingest", shop, other)

    assert totals(cli, "invoice")["536999"] == (500.0 + 3.0 + 600.0 + 2.0, 4)
    sent = jsonl(cli.data_dir / "alerts.jsonl")
    assert sorted(round(float(a["amount"]), 2) for a in sent) == [500.0, 600.0]
    assert len({a["id"] for a in sent}) == 2
    assert cli.json("audit")["ok"] is True


def test_a_re_sent_file_replaces_its_earlier_versions_lines(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "data")
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    first = tmp_path / "v1" / "daily.csv"
    first.write_text(
        HEADER
        + line("537001", "X1", 2, 10.0)
        + line("537001", "X2", 3, 10.0)
        + line("537001", "X3", 4, 10.0)
        + line("537002", "Y1", 1, 7.0, customer="12345")
    )
    keep = tmp_path / "v1" / "other.csv"
    keep.write_text(HEADER + line("537003", "Z1", 1, 9.0, customer="12345"))
    cli.run("ingest", first, keep)
    assert set(totals(cli, "invoice")) == {"537001", "537002", "537003"}

    fixed = tmp_path / "v2" / "daily.csv"  # the same name: a corrected version
    fixed.write_text(HEADER + line("537001", "X1", 2, 10.0) + line("537001", "X2", 1, 10.0))
    cli.run("ingest", fixed)

    assert totals(cli, "invoice") == {"537001": (30.0, 2), "537003": (9.0, 1)}
    assert totals(cli, "customer") == {"17850": (30.0, 2), "12345": (9.0, 1)}
    with backend_of(cli.data_dir) as backend:
        stored = backend.lake.read("online_retail")
        files = backend.tables.list_files(dataset="online_retail")
    assert sorted(stored.get_column("_key").to_list()) == [
        "daily.csv|1",
        "daily.csv|2",
        "other.csv|1",
    ]
    assert [f.status for f in files] == [FileStatus.SUCCESS] * 3
    assert cli.json("audit")["ok"] is True


# -- commit visibility -----------------------------------------------------------------------


def _visible(cli: Cli) -> dict[str, float]:
    with backend_of(cli.data_dir) as backend:
        rows = backend.lake.read("sale_events", columns=["price"])
    return dict(
        zip(rows.get_column("_key").to_list(), rows.get_column("price").to_list(), strict=True)
    )


def _lineage(cli: Cli) -> list[Any]:
    with backend_of(cli.data_dir) as backend:
        return backend.tables.list_files(dataset="sale_events")


def _leftovers(cli: Cli) -> list[str]:
    """Staged lake objects and spool files nobody will publish."""
    bucket = cli.data_dir / "bucket"
    return [p for p in files_under(bucket, "lake") if p.endswith(".staged")] + files_under(
        bucket, "work"
    )


@pytest.mark.parametrize("point", ["after_load", "before_commit"])
def test_a_file_killed_before_its_commit_leaves_no_record_and_is_redone_once(
    tmp_path: Path, point: str
) -> None:
    cli = Cli(tmp_path / "data")
    (tmp_path / "in").mkdir()
    old = tmp_path / "in" / "monday.json"
    old.write_text(desk_sales(("s1", 10.0), ("s2", 20.0)))
    cli.run("ingest", old)
    new = tmp_path / "in" / "tuesday.json"
    new.write_text(desk_sales(("s2", 25.0), ("s3", 30.0)))

    killed = cli.run("ingest", new, code=None, env={"SALESFLOW_FAILPOINT": point})
    assert killed.returncode == KILLED, str(killed)
    assert _visible(cli) == {"s1": 10.0, "s2": 20.0}  # nothing of tuesday.json
    [_, crashed] = _lineage(cli)
    assert crashed.status == FileStatus.IN_PROGRESS

    (tmp_path / "later").mkdir()
    later = tmp_path / "later" / "wednesday.json"
    later.write_text(desk_sales(("s4", 40.0)))
    cli.run("ingest", later)  # recovers the crashed version first

    assert _visible(cli) == {"s1": 10.0, "s2": 25.0, "s3": 30.0, "s4": 40.0}
    files = {f.source: f for f in _lineage(cli)}
    assert files["tuesday.json"].status == FileStatus.SUCCESS
    assert files["tuesday.json"].attempts == 2
    with backend_of(cli.data_dir) as backend:
        held = backend.lake.rows_by_seq("sale_events")
    assert held[files["tuesday.json"].seq] == 2  # once, not twice
    assert totals_of_sales(cli) == (105.0, 4)
    assert _leftovers(cli) == []
    assert cli.json("audit")["ok"] is True


@pytest.mark.parametrize("point", ["after_load", "before_commit"])
def test_a_failed_file_leaves_no_record(tmp_path: Path, point: str) -> None:
    cli = Cli(tmp_path / "data")
    (tmp_path / "in").mkdir()
    old = tmp_path / "in" / "monday.json"
    old.write_text(desk_sales(("s1", 10.0), ("s2", 20.0)))
    cli.run("ingest", old)
    new = tmp_path / "in" / "tuesday.json"
    new.write_text(desk_sales(("s2", 900.0), ("s3", 30.0)))

    failed = cli.run(
        "ingest", new, code=1, env={"SALESFLOW_FAILPOINT": f"raise:{point}:sale_events"}
    )
    assert "tuesday.json" in failed.stderr
    [_, gone] = _lineage(cli)
    assert gone.status == FileStatus.FAILED
    assert _visible(cli) == {"s1": 10.0, "s2": 20.0}
    assert totals_of_sales(cli) == (30.0, 2)
    assert jsonl(cli.data_dir / "alerts.jsonl") == []  # its high-value sale was never stored
    assert _leftovers(cli) == []
    assert cli.json("audit")["ok"] is True
