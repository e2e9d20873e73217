"""``salesflow compact`` merges the lake's small fragments and keeps every answer the same."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.cli import Cli, backend_of

pytestmark = pytest.mark.subprocess

HEADER = "order_id,item_id,item_desc,qty,contact_name,contact_email\n"


def test_compact_merges_fragments_and_audit_still_holds(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "data")
    first, fixed = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text(HEADER + "1,101,Lamp,1,Foo,foo@x.com\n2,102,Mug,2,Ada,ada@x.com\n")
    fixed.write_text(HEADER + "1,101,Lamp,3,Foo,foo@x.com\n")
    cli.run("ingest", first, fixed)
    lake = tmp_path / "data" / "bucket" / "lake" / "orders_json"
    before = sum(1 for _ in lake.rglob("*.parquet"))
    assert cli.json("compact")["orders_json"] == 2  # the copy of a.csv's rows and b.csv's
    with backend_of(cli.data_dir) as backend:
        stored = backend.records.read("orders_json").sort("_key")
    assert stored.get_column("qty").to_list() == [3, 2]
    assert sum(1 for _ in lake.rglob("*.parquet")) < before
    assert cli.json("audit")["ok"] is True
