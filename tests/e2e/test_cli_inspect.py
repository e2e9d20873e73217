"""``files``, ``query``, ``replay``, ``ingest DIR``, the KPI and dead-letter filters,
``--version`` and ``run``'s start-up lines, as real subprocesses."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import pytest

from salesflow.samples.generate import generate
from tests.fixtures.cli import Cli, backend_of, wait_for

pytestmark = pytest.mark.subprocess

V1 = (
    "order_id,item_id,item_desc,qty,contact_name,contact_email\n"
    "Q-1,7,Lamp,1,Ann Lee,ann@example.com\n"
    "Q-2,8,Mug,2,Bo Chan,bo@example.com\n"
)
V2 = (
    "order_id,item_id,item_desc,qty,contact_name,contact_email\n"
    "Q-1,7,Lamp,5,Ann Lee,ann@example.com\n"  # a correction of Q-1 in a later file
)


def test_version(tmp_path: Path) -> None:
    assert Cli(tmp_path / "d").run("--version").stdout == f"salesflow {version('salesflow')}\n"


def test_query_never_shows_a_superseded_version(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "data")
    (tmp_path / "v1.csv").write_text(V1)
    (tmp_path / "v2.csv").write_text(V2)
    cli.json("ingest", "--dataset", "orders_json", tmp_path / "v1.csv")
    cli.json("ingest", "--dataset", "orders_json", tmp_path / "v2.csv")
    with backend_of(cli.data_dir) as backend:
        written = sum(backend.lake.rows_by_seq("orders_json").values())
    assert written == 2  # the lake holds the current version of each order only

    rows = cli.json("query", "SELECT order_id, qty FROM orders_json ORDER BY order_id")
    assert rows == [{"order_id": "Q-1", "qty": 5}, {"order_id": "Q-2", "qty": 2}]
    counts = cli.json(
        "query", "SELECT status, count(*) AS files, sum(valid) AS valid FROM lineage GROUP BY ALL"
    )
    assert counts == [{"status": "SUCCESS", "files": 2, "valid": 3}]

    table = cli.run("query", "SELECT order_id, qty FROM orders_json ORDER BY order_id").stdout
    assert "2 rows" in table and "Q-1" in table


def test_query_reads_every_state_table(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "data")
    out = tmp_path / "files"
    files = generate("order_items", 200, out, invalid_rate=0.05, seed=9).files
    cli.json("ingest", *files)
    kpis = cli.json("kpis")
    [summed] = cli.json("query", "SELECT sum(items) AS items, count(*) AS days FROM kpis")
    assert summed == {"items": sum(r["items"] for r in kpis), "days": len(kpis)}
    letters = cli.json("dlq", "list", "--limit", "10000")
    [dl] = cli.json("query", "SELECT count(*) AS n FROM dead_letters WHERE status = 'NEW'")
    assert dl["n"] == len(letters)
    rules = cli.json(
        "query",
        "SELECT rule, count(*) AS n FROM (SELECT unnest(rules) AS rule FROM dead_letters) "
        "GROUP BY rule",
    )
    assert {r["rule"] for r in rules} == {
        r for x in letters for r in [y["rule"] for y in x["reasons"]]
    }
    [raw] = cli.json(
        "query", "SELECT raw->>'id' AS id FROM dead_letters ORDER BY seq, record LIMIT 1"
    )
    assert raw["id"] == letters[0]["raw"]["id"]
    [tot] = cli.json("query", "SELECT count(*) AS n FROM totals WHERE scope = 'order_items.day'")
    assert tot["n"] == len(kpis)


def test_a_bad_query_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "data" / "bucket").mkdir(parents=True)  # a data dir, with nothing in it yet
    result = Cli(tmp_path / "data").run("query", "SELECT * FROM nope", code=2)
    assert "query failed" in result.stderr and "nope" in result.stderr
    assert "order_items" in result.stderr  # the hint names what can be queried
    assert "Traceback" not in result.stderr


def test_files_shows_the_lineage_of_each_version(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "data")
    (tmp_path / "o.csv").write_text(V1)
    [state] = cli.json("ingest", "--dataset", "orders_json", tmp_path / "o.csv")
    garbage = tmp_path / "bad.json"
    garbage.write_text("{not json")
    cli.json("ingest", "--dataset", "orders_json", garbage, code=1)

    every = cli.json("files")
    assert [f["status"] for f in every["files"]] == ["SUCCESS", "FAILED"]
    ok, failed = every["files"]
    assert ok["file"] == state["file"] and (ok["rows_in"], ok["valid"], ok["rejected"]) == (2, 2, 0)
    assert ok["archive_key"].startswith("processed/") and ok["report_key"]
    assert len(ok["sha256"]) == 64 and ok["attempts"] == 1 and ok["duration_s"] >= 0
    assert failed["error"] and failed["archive_key"].startswith("failed/")
    assert every["pending"]["files"] == []

    assert [f["seq"] for f in cli.json("files", state["file"])["files"]] == [ok["seq"]]
    assert cli.json("files", "--status", "failed")["files"] == [failed]
    assert cli.json("files", failed["archive_key"])["files"] == [failed]
    assert cli.json("files", "--dataset", "products")["files"] == []
    assert "no file matches" in cli.run("files", "--dataset", "products").stdout
    bad = cli.run("files", "--status", "DONE", code=2)
    assert "unknown file status 'DONE'" in bad.stderr


def test_files_shows_batch_files_waiting_and_when_the_timer_fires(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "data")
    out = tmp_path / "gen"
    generated = generate("order_items", 20, out, seed=4).files
    inbox = cli.data_dir / "bucket" / "inbox"
    for path in generated:
        dataset = path.stem
        (inbox / dataset).mkdir(parents=True, exist_ok=True)
        (inbox / dataset / path.name).write_bytes(path.read_bytes())
    with cli.service("--poll", "0.2", env={"SALESFLOW_BATCHING__MIN_FILES": "50"}):
        pending = wait_for(
            lambda: (p := cli.json("files")["pending"])["files"] and len(p["files"]) == 3 and p,
            timeout=60,
            what="three batch files waiting",
        )
    assert {f["dataset"] for f in pending["files"]} == {"products", "orders", "order_items"}
    assert pending["due"] is None and pending["missing"] == [] and pending["fires_at"]
    assert "Waiting for their batch: timer fires at" in " ".join(cli.run("files").stdout.split())


def test_ingest_a_folder_recursively_with_progress_on_stderr(tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    generate("sale_events", 30, folder / "2024" / "06", seed=1)
    generate("orders_json", 30, folder / "2024" / "07", seed=2)
    (folder / ".hidden.json").write_text("{}")
    (folder / "2024" / "half.csv.part").write_text("partial")
    (folder / ".git").mkdir()
    (folder / ".git" / "config").write_text("[core]")
    expected = sorted(
        p.name
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix in (".json", ".jsonl", ".csv")
        and not p.name.startswith(".")
        and ".git" not in p.parts
    )
    cli = Cli(tmp_path / "data")
    result = cli.run("ingest", folder, "--json", env={"COLUMNS": "200", "TTY_COMPATIBLE": "1"})
    states = json.loads(result.stdout)  # stdout is only the JSON
    assert sorted(s["file"].rsplit("/", 1)[-1] for s in states) == expected
    assert all(s["status"] == "SUCCESS" for s in states)
    assert f"{len(expected)}/{len(expected)} files" in result.stderr
    assert f"{sum(s['rows_in'] for s in states):,} rows" in result.stderr

    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "x.tmp").write_text("x")
    assert "no files to ingest" in cli.run("ingest", empty, code=2).stderr


def test_kpis_from_to_and_category(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "data")
    cli.json("ingest", *generate("order_items", 300, tmp_path / "g", seed=6).files)
    days = [r["day"] for r in cli.json("kpis")]
    since, until = days[2], days[-3]
    ranged = cli.json("kpis", "--from", since, "--to", until)
    assert [r["day"] for r in ranged] == [d for d in days if since <= d <= until]
    category = cli.json("kpis", "--by", "category")[0]["category"]
    only = cli.json("kpis", "--category", category, "--from", since)
    assert only and {r["category"] for r in only} == {category}
    assert all(r["day"] >= since for r in only)
    bad = cli.run("kpis", "--from", "June", code=2)
    assert "--from" in bad.stderr


def test_dlq_list_by_dataset(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "data")
    files = generate("order_items", 100, tmp_path / "g", invalid_rate=0.05, seed=8).files
    files += generate("sale_events", 100, tmp_path / "s", invalid_rate=0.05, seed=8).files
    cli.json("ingest", *files)
    every = cli.json("dlq", "list", "--limit", "10000")
    assert {x["dataset"] for x in every} >= {"sale_events", "order_items"}
    for dataset in ("sale_events", "order_items"):
        only = cli.json("dlq", "list", "--dataset", dataset, "--limit", "10000")
        assert only == [x for x in every if x["dataset"] == dataset]
    two = cli.json("dlq", "list", "--dataset", "sale_events", "--limit", "2")
    assert two == [x for x in every if x["dataset"] == "sale_events"][:2]


def test_replay_sends_a_failed_file_through_again(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "data")
    bad = tmp_path / "broken.json"
    bad.write_text('{"orders": [')
    [failed] = cli.json("ingest", "--dataset", "orders_json", bad, code=1)
    assert failed["status"] == "FAILED"
    archive = failed["archive_key"]

    again = cli.json("replay", archive)
    assert again["file"] == failed["file"] and again["seq"] > failed["seq"]
    assert again["status"] == "FAILED"  # the same bytes fail the same way, as a new version
    versions = cli.json("files", failed["file"])["files"]
    assert [v["seq"] for v in versions] == [failed["seq"], again["seq"]]
    assert not (cli.data_dir / "bucket" / failed["file"]).exists()  # left the inbox again

    (tmp_path / "ok.csv").write_text(V1)
    [ok] = cli.json("ingest", "--dataset", "orders_json", tmp_path / "ok.csv")
    refused = cli.run("replay", ok["file"], code=2)
    assert "its latest version is SUCCESS, not FAILED" in refused.stderr
    unknown = cli.run("replay", "failed/nope.csv", code=2)
    assert "no failed file has this key" in unknown.stderr


def test_run_says_what_it_watches_and_where(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "data")
    env = {
        "SALESFLOW_ALERTS__SINKS": '["jsonl","webhook"]',
        "SALESFLOW_ALERTS__WEBHOOK_URL": "https://u:secret@hooks.example.com/T0/B0/key?x=1",
    }
    with cli.service("--poll", "0.2", env=env) as service:
        wait_for(lambda: "alerts" in service.stderr, timeout=60, what="the start-up lines")
        service.stop()
    text = service.stderr
    inbox = (cli.data_dir / "bucket" / "inbox").resolve()
    assert f"watching   {inbox} (local folder)" in text
    assert f"state      {cli.data_dir.resolve()}" in text
    assert "products, orders, order_items: once one of each waits, at once with 10 files" in text
    assert "else 20 min after" in text
    assert "webhook (https://hooks.example.com/…)" in text
    assert "secret" not in text and "B0" not in text
