"""Bad input gives one clear line naming the file and the cause, never a traceback.

A file that cannot be read is not a crash: it is recorded FAILED with its error and kept in
``failed/``. Bad arguments stop the command before anything is written.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.fixtures.cli import Cli, Result, backend_of, files_under

pytestmark = pytest.mark.subprocess

BAD_FILES = {
    "blob.bin": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00" + bytes(range(256)),
    "nothing.csv": b"",
    "cut.json": b'{"orders": [{"contact-info": {"name": "A", "email": "a@x.io"}, "order-',
}
CAUSES = {
    "blob.bin": ("not text", "binary", "dataset"),
    "nothing.csv": ("empty", "dataset"),
    "cut.json": ("JSON",),
}
"""Words of which one must name the cause, on the same line as the file name (the empty
file has its own, stricter test below)."""


def no_traceback(result: Result) -> None:
    assert "Traceback" not in result.stdout + result.stderr, str(result)


def one_line_with(text: str, *words: str | tuple[str, ...]) -> str:
    """The first output line holding every word (a tuple: any of its words), so a message
    naming the file and the cause is not split up."""
    alternatives = [w if isinstance(w, tuple) else (w,) for w in words]
    lines = [
        line
        for line in text.splitlines()
        if all(any(a.lower() in line.lower() for a in alt) for alt in alternatives)
    ]
    assert lines, f"no line holds {words!r} in:\n{text}"
    return lines[0]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "data")


@pytest.fixture
def bad_files(tmp_path: Path) -> list[Path]:
    """The bad files, as relative paths (the commands run in ``tmp_path``), as a user types."""
    for name, body in BAD_FILES.items():
        (tmp_path / name).write_bytes(body)
    return [Path(name) for name in BAD_FILES]


def test_a_missing_file_is_refused_before_anything_is_written(cli: Cli, tmp_path: Path) -> None:
    result = cli.run("ingest", "nope.csv", code=2)
    no_traceback(result)
    one_line_with(result.stderr, "nope.csv", "does not exist")
    assert not (tmp_path / "data").exists()


def test_an_unknown_dataset_names_the_valid_ones(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("[]")
    result = cli.run("ingest", "--dataset", "nosuch", tmp_path / "a.json", code=2)
    no_traceback(result)
    one_line_with(result.stderr, "unknown dataset", "nosuch")
    one_line_with(result.stderr, "orders_json")  # the hint lists what is accepted
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("dataset", ["../x", "/abs"])
def test_a_dataset_that_would_leave_the_bucket_writes_nothing(
    cli: Cli, tmp_path: Path, dataset: str
) -> None:
    source = tmp_path / "sales.json"
    source.write_text('{"sale_id": "s1", "product": "p", "price": 1, "quantity": 1}')
    before = {p for p in tmp_path.rglob("*")}
    result = cli.run("ingest", "--dataset", dataset, source, code=None)
    assert result.returncode != 0
    no_traceback(result)
    created = {p for p in tmp_path.rglob("*")} - before
    assert not [p for p in created if "logs" not in p.parts], created


def test_unreadable_files_fail_one_by_one_into_failed(
    cli: Cli, bad_files: list[Path], tmp_path: Path
) -> None:
    good = tmp_path / "good.json"
    good.write_text(
        '{"sale_id": "ok-1", "product": "Pen", "price": 2.5, "quantity": 4, '
        '"timestamp": "2024-01-02T03:04:05Z"}'
    )
    result = cli.run("ingest", *bad_files, good, code=1)
    no_traceback(result)
    for path in bad_files:
        one_line_with(result.stdout + result.stderr, path.name, CAUSES[path.name])
    states = cli.json("status")
    assert states["files"]["FAILED"] == 3 and states["files"]["SUCCESS"] == 1
    failed = files_under(cli.data_dir / "bucket", "failed")
    assert sorted(Path(k).name.split("-", 1)[1] for k in failed) == sorted(BAD_FILES)
    assert not files_under(cli.data_dir / "bucket", "inbox")
    with backend_of(cli.data_dir) as backend:
        errors = {f.key: f.error or "" for f in backend.tables.list_files() if f.error}
    for name, causes in CAUSES.items():
        [error] = [e for k, e in errors.items() if k.endswith(name)]
        assert name in error and any(c.lower() in error.lower() for c in causes), error
    assert cli.run("audit", code=None).returncode == 0


def test_validate_reports_unreadable_files_as_data(cli: Cli, bad_files: list[Path]) -> None:
    reports = cli.json("validate", *bad_files, code=1)
    assert [Path(r["file"]).name for r in reports] == list(BAD_FILES)
    for report in reports:
        assert report["error"]["rule"].startswith("structure.")
        assert report["error"]["cause"]
        assert report["rows_in"] == report["valid"] + report["rejected"]
    text = cli.run("validate", *bad_files, code=None)
    no_traceback(text)
    for name, cause in CAUSES.items():
        one_line_with(text.stdout + text.stderr, name, cause)


def test_an_empty_file_is_reported_as_empty(cli: Cli, tmp_path: Path) -> None:
    """The cause of an empty file is that it is empty; "pass --dataset" would not help."""
    (tmp_path / "nothing.csv").write_bytes(b"")
    [report] = cli.json("validate", "nothing.csv", code=1)
    assert report["error"]["rule"] == "structure.empty", report["error"]
    [state] = cli.json("ingest", "nothing.csv", code=1)
    assert state["status"] == "FAILED"
    assert "empty" in (state["error"] or "").lower(), state["error"]


EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")


def test_emails_never_appear_unmasked_in_logs(cli: Cli, tmp_path: Path) -> None:
    """Even at DEBUG, with an e-mail in the data, in an error and in a file name."""
    from salesflow.samples.generate import generate

    # 35 of 50 records faulty, 5 of each of the 7 kinds: email.format among them
    [orders] = generate("orders_json", 50, tmp_path / "o", invalid_rate=0.7, seed=3).files
    named = tmp_path / "export-from-jane.doe@example.com.json"
    named.write_bytes(b'{"orders": [')  # truncated: its error names the file
    env = {"SALESFLOW_LOG_LEVEL": "DEBUG"}
    runs = [cli.run("ingest", orders, named, env=env, code=None)]
    letters = cli.json("dlq", "list", "--rule", "email.format", env=env)
    assert letters
    runs.append(cli.run("dlq", "show", letters[0]["id"], env=env))
    runs.append(cli.run("status", env=env))
    known = {m.group(0) for m in EMAIL.finditer(orders.read_text())} | {"jane.doe@example.com"}
    assert len(known) > 10
    logs = "".join(r.stderr for r in runs)
    # the failed file was logged, its name masked
    one_line_with(logs, "file failed", "@example.com.json", "JSON")
    leaked = sorted(e for e in known if e in logs)
    assert not leaked, f"unmasked e-mails in stderr: {leaked[:5]}"
