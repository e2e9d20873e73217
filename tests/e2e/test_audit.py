"""``salesflow audit`` sees content, not only counts: each test injects one fault into a
healthy data dir, the way a bug or a careless hand would, and expects exit code 1 naming it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from salesflow.models import LetterStatus
from tests.fixtures.cli import Cli, backend_of
from tests.fixtures.samples import desk_sales

pytestmark = pytest.mark.subprocess

ORDERS = {
    "orders": [
        {
            "contact-info": {"name": "A", "email": "a@example.com"},
            "order-info": {"OrderId": "1", "item-id": "1", "item-desc": "x", "qty": "1"},
        },
        {"order-info": {"OrderId": "2", "item-id": "1", "item-desc": "x", "qty": "1"}},
    ]
}


@pytest.fixture
def healthy(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path / "data")
    source = tmp_path / "orders.json"
    source.write_text(json.dumps(ORDERS))
    cli.run("ingest", source)
    result = cli.run("audit", "--json")
    assert result.json()["ok"] is True
    return cli


def _violations(cli: Cli) -> list[str]:
    result = cli.run("audit", "--json", code=1)
    report = result.json()
    assert report["ok"] is False
    return list(report["violations"])


def _db(cli: Cli) -> sqlite3.Connection:
    return sqlite3.connect(cli.data_dir / "salesflow.db", isolation_level=None)


def test_an_archive_overwritten_with_other_bytes_is_found(healthy: Cli) -> None:
    with backend_of(healthy.data_dir) as backend:
        [record] = backend.tables.list_files()
    archived = healthy.data_dir / "bucket" / (record.archive_key or "")
    archived.write_text(json.dumps({"orders": []}))  # what an overwrite by a same-named file did
    assert any(v.startswith("archive_content:") for v in _violations(healthy))


def test_a_missing_archive_is_found(healthy: Cli) -> None:
    with backend_of(healthy.data_dir) as backend:
        [record] = backend.tables.list_files()
    (healthy.data_dir / "bucket" / (record.archive_key or "")).unlink()
    assert any(v.startswith("archived:") for v in _violations(healthy))


def test_a_lost_dead_letter_is_found(healthy: Cli) -> None:
    with _db(healthy) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        table = "letters" if "letters" in tables else "dead_letters"
        conn.execute(f"DELETE FROM {table}")  # noqa: S608 - a table name of our own
    assert any(v.startswith("dead_letters:") for v in _violations(healthy))


def test_a_commit_whose_publish_did_not_finish_is_found(healthy: Cli) -> None:
    with _db(healthy) as conn:
        conn.execute("UPDATE lineage SET settled = 0")
    assert any(v.startswith("settled:") for v in _violations(healthy))


def test_a_letter_closed_without_a_reason_is_found(healthy: Cli) -> None:
    with backend_of(healthy.data_dir) as backend:
        [letter] = backend.letters.find()
    healthy.run("dlq", "discard", letter.id, "--reason", "test data")
    assert healthy.run("audit", "--json").json()["ok"] is True  # closed, and says why
    with backend_of(healthy.data_dir) as backend:
        [letter] = backend.letters.get([letter.id])
        assert letter.status == LetterStatus.DISCARDED
        letter.history = []  # what the lost-redrive bug left: a closed letter, no event
        backend.letters.put([letter])
    assert any(v.startswith("letter_reason:") for v in _violations(healthy))


def _fragments(cli: Cli, dataset: str) -> list[Path]:
    return sorted((cli.data_dir / "bucket" / "lake" / dataset).rglob("part-*.parquet"))


@pytest.mark.parametrize("rows", ["2000000", "1"])  # one pass; one key a pass
def test_a_key_held_by_an_older_versions_row_is_found(tmp_path: Path, rows: str) -> None:
    """monday.json then tuesday.json both hold s2; the lake is rewritten so s2 holds monday's
    row again: still one row per key, every fragment committed, but not the latest arrival's."""
    import polars as pl

    cli = Cli(tmp_path / "data", env={"SALESFLOW_AUDIT_ROWS": rows})
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monday = tmp_path / "a" / "monday.json"
    monday.write_text(desk_sales(("s1", 10.0), ("s2", 20.0)))
    tuesday = tmp_path / "b" / "tuesday.json"
    tuesday.write_text(desk_sales(("s2", 25.0), ("s3", 30.0)))
    cli.run("ingest", "--dataset", "sale_events", monday)
    cli.run("ingest", "--dataset", "sale_events", tuesday)
    assert cli.run("audit", "--json").json()["ok"] is True

    [newer] = [
        p for p in _fragments(cli, "sale_events") if "s2" in pl.read_parquet(p)["_key"].to_list()
    ]
    frame = pl.read_parquet(newer)
    first_arrival = min(
        pl.read_parquet(p)["_arrived"].min() for p in _fragments(cli, "sale_events")
    )  # type: ignore[type-var]
    old_row = pl.col("_key") == "s2"
    frame.with_columns(
        pl.when(old_row).then(pl.lit(20.0)).otherwise(pl.col("price")).alias("price"),
        pl.when(old_row).then(pl.lit(1, pl.Int64)).otherwise(pl.col("_seq")).alias("_seq"),
        pl.when(old_row)
        .then(pl.lit(first_arrival, pl.Int64))
        .otherwise(pl.col("_arrived"))
        .alias("_arrived"),
    ).write_parquet(newer)

    found = [v for v in _violations(cli) if v.startswith("latest_arrival:")]
    assert len(found) == 1, found
    assert "'s2' holds seq 1's row" in found[0] and "tuesday.json (seq 2)" in found[0]


@pytest.mark.parametrize("rows", ["2000000", "1"])  # one pass; one key a pass
def test_a_line_of_a_replaced_version_left_in_the_lake_is_found(tmp_path: Path, rows: str) -> None:
    """daily.csv v2 drops line 3 of v1; the lake is rewritten so v1's line 3 is back."""
    import polars as pl

    header = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"

    def line(code: str) -> str:
        return f"537001,{code},ITEM,2,12/1/2010 8:26,10.0,17850,UK\n"

    cli = Cli(tmp_path / "data", env={"SALESFLOW_AUDIT_ROWS": rows})
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    (tmp_path / "v1" / "daily.csv").write_text(header + line("X1") + line("X2") + line("X3"))
    cli.run("ingest", "--dataset", "online_retail", tmp_path / "v1" / "daily.csv")
    [fragment] = _fragments(cli, "online_retail")
    v1 = pl.read_parquet(fragment)
    (tmp_path / "v2" / "daily.csv").write_text(header + line("X1") + line("X2"))
    cli.run("ingest", "--dataset", "online_retail", tmp_path / "v2" / "daily.csv")
    assert cli.run("audit", "--json").json()["ok"] is True

    [current] = _fragments(cli, "online_retail")
    stored = pl.read_parquet(current)
    back = v1.filter(pl.col("_key") == "daily.csv|3").select(stored.columns)
    pl.concat([stored, back]).write_parquet(current)

    found = [v for v in _violations(cli) if v.startswith("latest_arrival:")]
    assert len(found) == 1, found
    assert "'daily.csv|3' (seq 1)" in found[0]


def test_a_missing_key_manifest_is_found(healthy: Cli) -> None:
    """Without a committed version's key manifest, which arrival should hold each key cannot be
    checked: that is said, not passed over."""
    manifests = sorted((healthy.data_dir / "bucket" / "reports" / "keys").rglob("*.parquet"))
    assert manifests
    for path in manifests:
        path.unlink()
    found = [v for v in _violations(healthy) if v.startswith("key_manifest:")]
    assert len(found) == 1 and "orders_json" in found[0] and "seq [1]" in found[0], found
