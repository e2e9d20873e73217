"""The ``salesflow`` command line as a contract: help, JSON shapes, the dead-letter workflow.

Commands run as real subprocesses on a data dir loaded once per module with generated files
of every dataset (faults injected), except where a test changes the state: those copy it.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer

from salesflow.samples.generate import Manifest, generate
from tests.fixtures.cli import Cli, backend_of, files_under

pytestmark = pytest.mark.subprocess

STATE_FIELDS = {"file", "dataset", "status", "rows_in", "valid", "rejected"}
REPORT_FIELDS = {"file", "dataset", "rows_in", "valid", "rejected", "rules"}


# -- help -----------------------------------------------------------------------------------


def _commands(group: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Every command below ``group`` (Typer vendors its own Click, so no isinstance)."""
    found: list[tuple[str, Any]] = []
    for name, command in sorted(group.commands.items()):
        found.append((f"{prefix}{name}", command))
        if hasattr(command, "commands"):
            found.extend(_commands(command, f"{prefix}{name} "))
    return found


def test_every_command_has_help_and_an_example() -> None:
    """sqlite-utils' rule: a command without help text or an example is a bug."""
    from salesflow.entrypoints.cli import app

    root = typer.main.get_command(app)
    commands = _commands(root)
    names = {name for name, _ in commands}
    assert {"demo", "ingest", "validate", "generate", "run", "status", "kpis", "totals"} <= names
    assert {"alerts", "audit", "dlq list", "dlq show", "dlq export", "dlq redrive"} <= names
    problems = []
    for name, command in commands:
        text = command.help or ""
        if not text.strip():
            problems.append(f"{name}: no help text")
        elif not hasattr(command, "commands") and "Example: salesflow" not in text:
            problems.append(f"{name}: no 'Example: salesflow ...' in its help")
        for param in command.params:
            is_option = type(param).__name__.endswith("Option")
            if is_option and not getattr(param, "help", None) and param.name != "help":
                problems.append(f"{name}: option {param.opts[0]} has no help")
    assert not problems, "\n".join(problems)


def test_help_runs_as_a_program(tmp_path: Path) -> None:
    result = Cli(tmp_path / "data").run("--help")
    for name in ("demo", "ingest", "validate", "run", "audit", "dlq"):
        assert name in result.stdout
    example = Cli(tmp_path / "data").run("dlq", "export", "--help")
    assert "Example: salesflow dlq export" in " ".join(example.stdout.split())


# -- a loaded data dir ----------------------------------------------------------------------


@dataclass
class Loaded:
    cli: Cli
    files: list[Path]
    manifests: dict[str, Manifest]
    ingested: list[dict[str, Any]]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    root = tmp_path_factory.mktemp("cli")
    out = root / "files"
    manifests = {
        "orders_json": generate("orders_json", 200, out, invalid_rate=0.03, seed=21),
        "online_retail": generate("online_retail", 300, out, invalid_rate=0.02, seed=22),
        "sale_events": generate("sale_events", 100, out, invalid_rate=0.03, seed=23),
        "thelook": generate("order_items", 300, out, invalid_rate=0.01, seed=24),
    }
    files = [p for m in manifests.values() for p in m.files]
    cli = Cli(root / "data")
    ingested = cli.json("ingest", *files)
    return Loaded(cli, files, manifests, ingested)


def _faulty_records(manifest: Manifest, name: str) -> int:
    return len({f.record for f in manifest.faults if f.file == name})


def test_validate_json_prints_one_report_per_file(loaded: Loaded) -> None:
    reports = loaded.cli.json("validate", *loaded.files)
    assert isinstance(reports, list) and len(reports) == len(loaded.files)
    by_name = {Path(r["file"]).name: r for r in reports}
    assert set(by_name) == {p.name for p in loaded.files}
    for report in reports:
        assert REPORT_FIELDS <= set(report), report.keys()
        assert report["rows_in"] == report["valid"] + report["rejected"]
    orders = by_name["orders_json.json"]
    manifest = loaded.manifests["orders_json"]
    assert orders["dataset"] == "orders_json" and orders["rows_in"] == 200
    assert orders["rejected"] == _faulty_records(manifest, "orders_json.json")
    assert orders["rules"] == dict(Counter(f.rule for f in manifest.faults))
    # nothing was stored by validate: the store holds only what the fixture ingested
    assert by_name["order_items.csv"]["dataset"] == "order_items"


def test_ingest_json_prints_one_object_per_file(loaded: Loaded) -> None:
    states = loaded.ingested
    assert len(states) == len(loaded.files)
    for state in states:
        assert STATE_FIELDS <= set(state), state.keys()
        assert state["status"] == "SUCCESS", state
        assert state["rows_in"] == state["valid"] + state["rejected"]
    datasets = [s["dataset"] for s in states]
    # batch datasets first, in dependency order, so references resolve within the call
    assert datasets[:3] == ["products", "orders", "order_items"]
    assert set(datasets) == {
        "products",
        "orders",
        "order_items",
        "orders_json",
        "online_retail",
        "sale_events",
    }
    orders = next(s for s in states if s["dataset"] == "orders_json")
    assert orders["rejected"] == _faulty_records(
        loaded.manifests["orders_json"], "orders_json.json"
    )


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("kpis",),
        ("kpis", "--by", "category"),
        ("totals", "--by", "invoice"),
        ("totals", "--by", "customer"),
        ("totals", "--by", "day"),
        ("alerts",),
        ("audit",),
    ],
    ids=lambda a: "-".join(a),
)
def test_query_commands_print_json(loaded: Loaded, args: tuple[str, ...]) -> None:
    data = loaded.cli.json(*args)
    if args[0] == "status":
        assert data["files"]["SUCCESS"] == len(loaded.files)
        assert data["rows_in"] == data["valid"] + data["rejected"] > 0
        assert {r["file"] for r in data["recent"]} == {s["file"] for s in loaded.ingested}
    elif args[0] == "kpis":
        assert data and {"day", "items", "revenue", "orders", "avg_basket", "return_rate"} <= set(
            data[0]
        )
        if "category" in args:
            assert "category" in data[0]
    elif args[0] == "totals":
        scopes = {row["scope"] for row in data}
        assert f"online_retail.{args[2]}" in scopes
        assert all({"id", "total_amount", "records"} <= set(row) for row in data)
    elif args[0] == "alerts":
        assert data and all(a["status"] == "SENT" and a["amount"] > 400 for a in data)
    else:
        assert data["ok"] is True and not data["violations"] and data["checks"]


@pytest.mark.parametrize(
    ("args", "spec_name"),
    [
        (("kpis",), "order_kpis"),
        (("kpis", "--by", "category", "--from", "2020-01-01"), "category_kpis"),
        (("totals", "--by", "invoice"), "totals"),
    ],
    ids=lambda a: "-".join(a) if isinstance(a, tuple) else a,
)
def test_kpis_and_totals_read_without_polars(
    loaded: Loaded, args: tuple[str, ...], spec_name: str
) -> None:
    """A new ``salesflow kpis`` process must start fast (a file is visible within a second
    of being stored): it imports no Polars, and prints what the stored frame holds."""
    import polars as pl

    from salesflow.kpis import AGGREGATES

    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "salesflow", *args, "--json"],
        cwd=loaded.cli.cwd,
        env=loaded.cli.environ(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()}
    assert "salesflow.adapters.sqlite.tables" in imported
    assert not {"polars", "pyarrow", "numpy"} & imported
    spec = AGGREGATES[spec_name]
    with backend_of(loaded.cli.data_dir) as backend:
        frame = backend.tables.read_aggregates(spec).sort(list(spec.key))
    if spec_name == "totals":
        frame = frame.filter(pl.col("scope").str.ends_with(".invoice"))
    expected = json.loads(json.dumps(frame.to_dicts(), default=str))
    printed = json.loads(proc.stdout)
    assert expected and len(printed) == len(expected)
    for got, want in zip(printed, expected, strict=True):
        assert got.keys() == want.keys()
        for column, value in want.items():
            places = 4 if column == "return_rate" else 2
            if isinstance(value, float):  # printed in cents (ratios to 4 places)
                assert abs(got[column] - value) <= 0.5 * 10**-places + 1e-9, (column, got)
            else:
                assert got[column] == value


def test_dlq_list_filters_by_rule_and_show_gives_every_reason(loaded: Loaded) -> None:
    everything = loaded.cli.json("dlq", "list", "--limit", "100000")
    assert len(everything) == sum(s["rejected"] for s in loaded.ingested)
    rule = "email.format"
    want = [x["id"] for x in everything if rule in {r["rule"] for r in x["reasons"]}]
    assert want
    listed = loaded.cli.json("dlq", "list", "--rule", rule, "--limit", "100000")
    assert [x["id"] for x in listed] == want
    letter = loaded.cli.json("dlq", "show", want[0])
    assert letter["id"] == want[0] and letter["status"] == "NEW"
    assert rule in {r["rule"] for r in letter["reasons"]}
    assert letter["raw"] and letter["source_file"] and letter["record"] >= 1
    text = loaded.cli.run("dlq", "show", want[0]).stdout
    assert want[0] in text and rule in text


def test_dlq_show_unknown_id_is_one_clear_error(loaded: Loaded) -> None:
    result = loaded.cli.run("dlq", "show", "no-such-letter", code=2)
    assert "no dead letter with id 'no-such-letter'" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


ORDERS_WITH_FORMULAS = (
    "order_id,item_id,item_desc,qty,contact_name,contact_email\n"
    "F-1,7,=1+1,2,Ann Lee,ann.lee.example.com\n"  # bad e-mail
    "F-2,8,Mug,1,Bo Chan,bo@example.com\n"
    "F-3,9,@SUM(A1),-3,Cy Dee,cy@example.com\n"  # quantity must be > 0
)


def test_dlq_export_neutralises_formulas_and_redrive_stores_the_correction(
    tmp_path: Path,
) -> None:
    cli = Cli(tmp_path / "data")
    source = tmp_path / "orders.csv"
    source.write_text(ORDERS_WITH_FORMULAS)
    [state] = cli.json("ingest", "--dataset", "orders_json", source)
    assert (state["valid"], state["rejected"]) == (1, 2)

    exported = cli.run("dlq", "export", "--format", "csv").stdout
    rows = {r["order_id"]: r for r in csv.DictReader(io.StringIO(exported))}
    assert set(rows) == {"F-1", "F-3"}
    assert rows["F-1"]["item_desc"] == "'=1+1"  # a spreadsheet shows it, never runs it
    assert rows["F-3"]["item_desc"] == "'@SUM(A1)" and rows["F-3"]["qty"] == "'-3"
    cells = [c for r in rows.values() for c in r.values() if c]
    assert not [c for c in cells if c.startswith(("=", "+", "-", "@"))]

    # a person fixes the sheet and hands it back
    rows["F-1"]["contact_email"] = "ann.lee@example.com"
    rows["F-3"]["qty"] = "3"
    corrected = tmp_path / "corrected.csv"
    with corrected.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows["F-1"]))
        writer.writeheader()
        writer.writerows(rows.values())
    result = cli.json("dlq", "redrive", "--from", corrected)
    assert (result["redriven"], result["still_failing"]) == (2, 0)
    redriven = cli.json("dlq", "list", "--status", "REDRIVEN")
    assert sorted(x["id"] for x in redriven) == sorted(r["_letter_id"] for r in rows.values())
    assert cli.json("dlq", "list") == []  # nothing NEW is left

    with backend_of(cli.data_dir) as backend:
        stored = {r["order_id"]: r for r in backend.records.read("orders_json").to_dicts()}
    assert set(stored) == {"F-1", "F-2", "F-3"}
    assert stored["F-1"]["contact_email"] == "ann.lee@example.com"
    assert stored["F-1"]["item_desc"] == "=1+1"  # the value itself, not the quoted cell
    assert (stored["F-3"]["item_desc"], stored["F-3"]["qty"]) == ("@SUM(A1)", 3)
    assert cli.run("audit", code=None).returncode == 0


def test_audit_fails_after_a_lake_fragment_is_deleted(loaded: Loaded, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(loaded.cli.data_dir, data)
    cli = Cli(data)
    assert cli.run("audit").returncode == 0
    fragments = [
        k for k in files_under(data / "bucket", "lake/order_items") if k.endswith(".parquet")
    ]
    assert fragments
    (data / "bucket" / fragments[0]).unlink()
    result = cli.run("audit", "--json", code=1)
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert any("order_items" in v for v in report["violations"]), report["violations"]
    text = cli.run("audit", code=1).stdout
    assert "violation" in text


def test_demo_runs_on_a_fresh_dir_and_prints_the_summary(tmp_path: Path) -> None:
    data = tmp_path / "fresh"
    result = Cli(data).run("demo", "--data-dir", data, timeout=300)
    out = " ".join(result.stdout.split())
    for expected in ("Files", "Top rejection reasons", "Order KPIs", "alerts:", "Look next"):
        assert expected in out, out
    for dataset in ("orders_json", "online_retail", "sale_events", "order_items"):
        assert dataset in out
    assert files_under(data / "bucket", "processed") and files_under(data / "bucket", "lake")
    assert Cli(data).run("audit", code=None).returncode == 0
