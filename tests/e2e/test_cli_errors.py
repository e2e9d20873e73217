"""Errors a script can trust, through the real ``salesflow`` program: one clear line on
stderr naming the cause and the fix, never a traceback; exit codes 0 (done), 1 (done, but a
file failed or could not be read), 2 (the command line or configuration is wrong, nothing
written). Poison files never block the next one, and nothing a file is called can forge a
line of output."""

from __future__ import annotations

import gzip
import json
import socket
from pathlib import Path

import pytest

from tests.fixtures.cli import Cli, Result, backend_of, drop_file, wait_for

pytestmark = pytest.mark.subprocess

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
LINE = "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850,United Kingdom"
SALE = {
    "sale_id": "s-1",
    "product": "Desk",
    "category": "Office",
    "price": 80.0,
    "quantity": 1,
    "timestamp": "2024-05-04T10:30:00Z",
}


def error_lines(result: Result) -> list[str]:
    """stderr's lines, after checking there is no traceback and no internal error."""
    text = result.stdout + result.stderr
    assert "Traceback" not in text and "internal error" not in text, str(result)
    return [line for line in result.stderr.splitlines() if line.strip()]


def the_line(result: Result, *words: str) -> str:
    """The one stderr line holding every word (case-insensitive)."""
    lines = [line for line in error_lines(result) if all(w.lower() in line.lower() for w in words)]
    assert len(lines) == 1, f"want one line with {words}:\n{result}"
    return lines[0]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "data")


def write(tmp_path: Path, name: str, body: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(body.encode() if isinstance(body, str) else body)
    return path


# --- poison files ----------------------------------------------------------------------------


def test_a_json_nested_100000_deep_fails_alone_and_the_next_ingest_succeeds(
    cli: Cli, tmp_path: Path
) -> None:
    deep = write(tmp_path, "deep.json", b'{"orders": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    result = cli.run("ingest", deep, code=1)
    the_line(result, "deep.json", "nested deeper than")
    good = write(tmp_path, "ok.jsonl", json.dumps(SALE) + "\n")
    [state] = cli.json("ingest", good, "--dataset", "sale_events")
    assert state["status"] == "SUCCESS" and state["valid"] == 1
    with backend_of(cli.data_dir) as backend:
        statuses = {f.key: f.status.value for f in backend.tables.list_files()}
    assert statuses == {
        "inbox/orders_json/deep.json": "FAILED",
        "inbox/sale_events/ok.jsonl": "SUCCESS",
    }


def test_the_service_reads_a_gzip_and_fails_a_binary_at_the_inbox_root(cli: Cli) -> None:
    inbox = cli.data_dir / "bucket" / "inbox"
    drop_file(inbox, "sales.csv.gz", gzip.compress(f"{HEADER}\n{LINE}\n{LINE}\n".encode()))
    drop_file(inbox, "photo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    drop_file(inbox, "book.xlsx", b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 64)

    def settled() -> dict[str, str] | None:
        with backend_of(cli.data_dir) as backend:
            rows = {f.key: f for f in backend.tables.list_files()}
        if len(rows) < 3 or any(r.status.value == "IN_PROGRESS" for r in rows.values()):
            return None
        return {k: f"{r.status.value} {r.valid} {r.error or ''}" for k, r in rows.items()}

    with cli.service() as svc:
        rows = wait_for(settled, timeout=60, what="three files processed")
        drop_file(inbox / "sale_events", "after.json", json.dumps(SALE))
        wait_for(
            lambda: "after.json" in svc.stdout, timeout=60, what="the file after the poison ones"
        )
        svc.assert_alive()
        assert svc.stop() == 0, svc.stderr
    assert rows["inbox/sales.csv.gz"].startswith("SUCCESS 2")
    assert rows["inbox/photo.png"].startswith("FAILED") and "not text" in rows["inbox/photo.png"]
    assert "ZIP" in rows["inbox/book.xlsx"]


def test_a_broken_json_file_is_reported_as_broken_json(cli: Cli, tmp_path: Path) -> None:
    broken = write(tmp_path, "orders.json", '"orders": [{"order-info": {"OrderId": "1"}}]}')
    for args in (
        ("validate", broken),
        ("ingest", broken),
        ("ingest", broken, "--dataset", "orders_json"),
    ):
        line = the_line(cli.run(*args, code=1), "orders.json", "invalid JSON")
        assert "header" not in line.lower()


# --- exit codes ------------------------------------------------------------------------------


def test_ingest_exits_0_when_every_file_succeeds_or_is_a_duplicate(
    cli: Cli, tmp_path: Path
) -> None:
    good = write(tmp_path, "r.csv", f"{HEADER}\n{LINE}\n")
    copy = write(tmp_path, "copy.csv", f"{HEADER}\n{LINE}\n")
    assert [s["status"] for s in cli.json("ingest", good)] == ["SUCCESS"]
    result = cli.run("ingest", copy, code=0)
    assert "DUPLICATE" in result.stdout and error_lines(result) == []


def test_ingest_exits_1_and_names_each_failed_file_and_why(cli: Cli, tmp_path: Path) -> None:
    good = write(tmp_path, "r.csv", f"{HEADER}\n{LINE}\n")
    bad = write(tmp_path, "cut.csv", f'{HEADER}\n536366,1,"OPEN,1\n')
    result = cli.run("ingest", good, bad, "--json", code=1)
    assert {s["status"] for s in json.loads(result.stdout)} == {"SUCCESS", "FAILED"}
    the_line(result, "FAILED", "cut.csv", "cannot be parsed")
    assert "r.csv" not in result.stderr


def test_validate_exits_1_for_a_missing_file_a_folder_and_with_strict_a_rejection(
    cli: Cli, tmp_path: Path
) -> None:
    good = write(tmp_path, "good.csv", f"{HEADER}\n{LINE}\n")
    rejected = write(tmp_path, "bad.csv", f"{HEADER}\n{LINE.replace(',6,', ',0,')}\n")
    assert cli.run("validate", good, rejected).returncode == 0
    strict = cli.run("validate", good, rejected, "--strict", code=1)
    the_line(strict, "1 of 2 records rejected")
    assert cli.run("validate", good, "--strict").returncode == 0
    missing = cli.run("validate", good, "nope.csv", code=1)
    the_line(missing, "nope.csv", "no such file")
    folder = cli.run("validate", tmp_path, code=1)
    line = the_line(folder, str(tmp_path), "folder")
    assert "/*.csv" in line  # the fix: pass the files in it


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("dlq", "redrive", "--from", "nope.csv"), ("nope.csv", "does not exist", "dlq export")),
        (("status", "--backend", "gcp"), ("backend", "'gcp'", "local", "aws")),
        (("ingest", "--dataset", "nosuch", "{tmp}/x.csv"), ("unknown dataset", "online_retail")),
    ],
)
def test_usage_errors_exit_2_with_one_line_and_write_nothing(
    cli: Cli, tmp_path: Path, args: tuple[str, ...], words: tuple[str, ...]
) -> None:
    write(tmp_path, "x.csv", f"{HEADER}\n{LINE}\n")
    argv = [a.format(tmp=tmp_path) for a in args]
    result = cli.run(*argv, code=2)
    assert len(error_lines(result)) == 1, str(result)
    the_line(result, *words)
    assert not cli.data_dir.exists()


def test_aws_backend_without_a_region_says_so(cli: Cli, tmp_path: Path) -> None:
    env = {"AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_REGION": "", "AWS_DEFAULT_REGION": ""}
    result = cli.run("status", "--backend", "aws", env=env, code=2)
    assert len(error_lines(result)) == 1, str(result)
    the_line(result, "region", "SALESFLOW_AWS__REGION")


def test_a_malformed_salesflow_toml_is_one_line_naming_the_file(cli: Cli) -> None:
    (cli.cwd / "salesflow.toml").write_text('[alerts]\nthreshold = 400\nsinks = ["log",\n')
    result = cli.run("status", code=2)
    assert len(error_lines(result)) == 1, str(result)
    the_line(result, "salesflow.toml", "not valid TOML", "SALESFLOW_CONFIG")
    (cli.cwd / "salesflow.toml").write_text("[alerts]\nthreshold = -1\n")
    result = cli.run("status", code=2)
    the_line(result, "alerts.threshold", "-1", "SALESFLOW_ALERTS__THRESHOLD")


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("kpis",),
        ("totals",),
        ("alerts",),
        ("audit",),
        ("dlq", "list"),
        ("dlq", "show", "x:1"),
        ("dlq", "export"),
        ("compact",),
    ],
)
def test_read_commands_on_a_data_dir_that_does_not_exist_say_so_and_create_nothing(
    cli: Cli, args: tuple[str, ...]
) -> None:
    result = cli.run(*args, code=2)
    the_line(result, "no salesflow data", str(cli.data_dir), "--data-dir")
    assert not cli.data_dir.exists()


def test_a_folder_without_salesflow_data_is_not_turned_into_one(cli: Cli) -> None:
    cli.data_dir.mkdir()
    (cli.data_dir / "notes.txt").write_text("mine")
    result = cli.run("kpis", code=2)
    the_line(result, "no salesflow data", str(cli.data_dir))
    assert [p.name for p in cli.data_dir.iterdir()] == ["notes.txt"]


def test_help_documents_the_exit_codes(cli: Cli) -> None:
    text = " ".join(cli.run("--help").stdout.split())
    for words in ("0 done", "1 done, but something failed", "2 the command line", "3 internal"):
        assert words in text, text


# --- what gets printed -----------------------------------------------------------------------


def test_a_newline_in_a_file_name_cannot_forge_a_line_of_run_output(cli: Cli) -> None:
    forged = "SUCCESS    forged.json rows_in=1 valid=1 rejected=0"
    name = f"x.json\n{forged}"
    inbox = cli.data_dir / "bucket" / "inbox" / "sale_events"
    with cli.service() as svc:
        drop_file(inbox, name, json.dumps(SALE))
        wait_for(lambda: "x.json" in svc.stdout, timeout=60, what="the oddly named file")
        assert svc.stop() == 0, svc.stderr
    lines = svc.stdout.splitlines()
    assert not [line for line in lines if line.startswith("SUCCESS    forged.json")]
    [line] = [line for line in lines if "x.json" in line]
    assert line.startswith("SUCCESS") and "x.json\\nSUCCESS" in line


def test_names_with_markup_or_escapes_print_as_they_are(cli: Cli, tmp_path: Path) -> None:
    odd = write(tmp_path, "[bold]a\x1b[2J.csv", f"{HEADER}\n{LINE}\n")
    result = cli.run("ingest", odd, code=0)
    assert "[bold]a\\x1b[2J.csv" in result.stdout, str(result)
    assert "\x1b[2J" not in result.stdout


def test_error_lines_mask_emails_even_non_ascii_ones(cli: Cli, tmp_path: Path) -> None:
    broken = write(tmp_path, "jörg.müller@exämple.de.json", b'{"orders": [')
    result = cli.run("ingest", broken, code=1)
    line = the_line(result, "FAILED", "invalid JSON")
    assert "jörg.müller@" not in result.stderr and "/j**********@exämple.de.json" in line


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_webhook_credentials_and_tokens_never_reach_the_screen_or_the_logs(
    cli: Cli, tmp_path: Path
) -> None:
    secret, token = "hunter2pass", "XyZtok3nPart9000"
    url = f"http://bot:{secret}@127.0.0.1:{_free_port()}/services/T01/{token}?sig={token}"
    env = {
        "SALESFLOW_ALERTS__SINKS": '["webhook"]',
        "SALESFLOW_ALERTS__WEBHOOK_URL": url,
        "SALESFLOW_ALERTS__MAX_ATTEMPTS": "1",
        "SALESFLOW_LOG_LEVEL": "DEBUG",
    }
    big = write(tmp_path, "big.json", json.dumps(SALE | {"price": 5000.0}))
    runs = [cli.run("ingest", big, "--dataset", "sale_events", env=env)]
    runs.append(cli.run("alerts", env=env))
    runs.append(cli.run("alerts", "--json", env=env))
    alerts = json.loads(runs[-1].stdout)
    assert [a["status"] for a in alerts] == ["FAILED"]
    assert "127.0.0.1" in alerts[0]["error"]  # the sink is still named
    shown = "".join(r.stdout + r.stderr for r in runs)
    assert secret not in shown and token not in shown, shown
    with backend_of(cli.data_dir) as backend:
        stored = [a.error or "" for a in backend.tables.list_alerts()]
    assert stored and not [e for e in stored if secret in e or token in e]


def test_a_latin1_copy_stays_in_the_data_dir_and_a_kill_leaves_nothing_behind(
    cli: Cli, tmp_path: Path
) -> None:
    temp = tmp_path / "system-temp"
    temp.mkdir()
    latin1 = write(
        tmp_path, "r.csv", f"{HEADER}\n{LINE}\n".replace("WHITE", "CAF\xc9").encode("latin-1")
    )
    env = {"TMPDIR": str(temp)}
    crashed = cli.run("ingest", latin1, env=env | {"SALESFLOW_FAILPOINT": "after_chunk"}, code=None)
    assert crashed.returncode == -9, str(crashed)
    left = list((cli.data_dir / "scratch").iterdir())
    assert len(left) == 1 and "CAFÉ" in left[0].read_text(encoding="utf-8")
    assert not [p for p in temp.iterdir() if p.name.startswith("salesflow")]
    good = write(tmp_path, "s.jsonl", json.dumps(SALE) + "\n")
    cli.run("ingest", good, "--dataset", "sale_events", env=env)  # also finishes r.csv
    assert list((cli.data_dir / "scratch").iterdir()) == []
    assert not [p for p in temp.iterdir() if p.name.startswith("salesflow")]
