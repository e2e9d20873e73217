"""``salesflow audit`` sees content, not only counts: each test injects one fault into a
healthy data dir, the way a bug or a careless hand would, and expects exit code 1 naming it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from salesflow.models import LetterStatus
from tests.fixtures.cli import Cli, backend_of

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
