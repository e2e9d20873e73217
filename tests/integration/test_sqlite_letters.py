"""SqliteDeadLetters beyond the contract: it shares the tables' file, and it migrates the
previous release's ``dead_letters`` table on open."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from salesflow.adapters.sqlite.letters import TRIGGERS, SqliteDeadLetters
from salesflow.adapters.sqlite.tables import SqliteTables
from salesflow.errors import TerminalError
from salesflow.models import DeadLetter, LetterStatus, Reason

T0 = datetime(2024, 3, 1, tzinfo=UTC)

# The schema of the previous release (salesflow.adapters.sqlite.dlq), verbatim.
OLD_SCHEMA = """
CREATE TABLE dead_letters (
    id TEXT PRIMARY KEY, dataset TEXT NOT NULL, source_file TEXT NOT NULL,
    record INTEGER NOT NULL, raw TEXT NOT NULL, reasons TEXT NOT NULL, status TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX dead_letters_source ON dead_letters (source_file, record);
CREATE INDEX dead_letters_status ON dead_letters (status);
CREATE TABLE letter_rules (
    rule TEXT NOT NULL, id TEXT NOT NULL REFERENCES dead_letters (id) ON DELETE CASCADE,
    PRIMARY KEY (rule, id)
) WITHOUT ROWID;
"""
# ... and of its lineage table, whose sha256 the old letter ids started with.
OLD_LINEAGE = """
CREATE TABLE processed_files (
    key TEXT PRIMARY KEY, sha256 TEXT NOT NULL, size INTEGER NOT NULL, dataset TEXT NOT NULL,
    status TEXT NOT NULL, seq INTEGER NOT NULL, rows_in INTEGER NOT NULL, valid INTEGER NOT NULL,
    rejected INTEGER NOT NULL, started_at TEXT NOT NULL, finished_at TEXT, archive_key TEXT,
    report_key TEXT, error TEXT, attempts INTEGER NOT NULL
);
"""
SHA = "ab" * 32


def _old_db(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(OLD_LINEAGE)
    conn.execute(
        "INSERT INTO processed_files VALUES (?, ?, 1, 'order_items', 'SUCCESS', 2, 1, 0, 1, ?,"
        " NULL, NULL, NULL, NULL, 1)",
        ("inbox/order_items/a.csv", SHA, T0.isoformat()),
    )
    conn.commit()
    conn.close()
    conn = sqlite3.connect(path)
    conn.executescript(OLD_SCHEMA)
    reasons = json.dumps([{"rule": "ref.product_id", "field": "product_id", "message": "no 9"}])
    rows = [
        (
            f"{SHA[:16]}:3",
            "order_items",
            "inbox/order_items/a.csv",
            3,
            json.dumps({"id": "3", "product_id": "9"}),
            reasons,
            "NEW",
            T0.isoformat(),
        ),
        (
            "0123456789abcdef:1",
            "orders",
            "inbox/orders/gone.csv",
            1,
            json.dumps({"order_id": "é"}),
            reasons,
            "DISCARDED",
            T0.isoformat(),
        ),
    ]
    conn.executemany("INSERT INTO dead_letters VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.executemany(
        "INSERT INTO letter_rules VALUES (?, ?)", [("ref.product_id", r[0]) for r in rows]
    )
    conn.commit()
    conn.close()


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_the_previous_release_letters_are_migrated_with_their_ids(tmp_path: Path) -> None:
    path = tmp_path / "salesflow.db"
    _old_db(path)
    letters = SqliteDeadLetters(path)
    new, discarded = letters.get([f"{SHA[:16]}:3", "0123456789abcdef:1"])
    assert new.seq == 2 and new.status == LetterStatus.NEW  # the lineage row of that sha
    assert new.raw == {"id": "3", "product_id": "9"} and new.rules == ["ref.product_id"]
    assert new.created_at == T0 and [e.event for e in new.history] == ["rejected"]
    assert "migrated" in new.history[0].note
    assert discarded.seq == 0 and discarded.status == LetterStatus.DISCARDED
    assert [e.event for e in discarded.history] == ["rejected", "discarded"]
    assert letters.count(rule="ref.product_id", status=LetterStatus.NEW) == 1
    assert ids(letters.find()) == ["0123456789abcdef:1", f"{SHA[:16]}:3"]
    letters.close()
    assert "dead_letters" not in _tables(path) and "letter_rules" not in _tables(path)
    again = SqliteDeadLetters(path)  # opening again changes nothing
    assert again.count() == 2
    again.close()


def ids(found: list[DeadLetter]) -> list[str]:
    return [x.id for x in found]


def test_shares_the_file_with_the_tables(tmp_path: Path) -> None:
    path = tmp_path / "salesflow.db"
    tables, letters = SqliteTables(path), SqliteDeadLetters(path)
    letters.put(
        [
            DeadLetter(
                id="1:1",
                seq=1,
                dataset="d",
                source_file="f",
                record=1,
                raw={},
                reasons=[Reason("r", None, "m")],
            )
        ]
    )
    assert tables.next_seq() == 1
    tables.close()
    letters.close()
    again = SqliteDeadLetters(path)
    assert again.count() == 1
    again.close()


def test_opening_an_existing_store_needs_no_write_lock(tmp_path: Path) -> None:
    path = tmp_path / "salesflow.db"
    SqliteDeadLetters(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing, for longer than we wait
    try:
        letters = SqliteDeadLetters(path, busy_seconds=0.2)
        assert letters.count() == 0 and letters.find() == []
        letters.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def _letter(record: int, *rules: str, at: datetime = T0, dataset: str = "d") -> DeadLetter:
    return DeadLetter(
        id=f"1:{record}",
        seq=1,
        dataset=dataset,
        source_file="inbox/d/a.csv",
        record=record,
        raw={"n": record},
        reasons=[Reason(r, None, f"broke {r}") for r in rules],
        created_at=at,
    )


def _rule_rows(path: Path) -> list[tuple[str, str, str, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT rule, id, dataset, status FROM letters_by_rule ORDER BY rule, id"
        ).fetchall()


def test_a_put_of_new_and_stored_ids_upserts_each_and_keeps_the_rule_rows_exact(
    tmp_path: Path,
) -> None:
    path = tmp_path / "salesflow.db"
    letters = SqliteDeadLetters(path)
    letters.put([_letter(1, "a", "b"), _letter(2, "a")])
    later = T0.replace(year=2025)
    letters.put(
        [
            _letter(3, "a", at=later),  # new
            _letter(1, "c", "c", at=later),  # stored: new reasons (one rule, twice)
            _letter(3, "b", at=later.replace(month=5)),  # new, twice in one call: last wins
            _letter(4, "b", at=later),
            _letter(600, "a", at=later),  # past the first INSERT statement's rows
            *(_letter(100 + i, "z", at=later) for i in range(200)),
        ]
    )
    one, three = letters.get(["1:1", "1:3"])
    assert (one.created_at, one.rules) == (T0, ["c"])  # created_at kept
    assert (three.created_at, three.rules) == (later, ["b"])  # the first put's created_at
    assert letters.count() == 205
    rows = [r for r in _rule_rows(path) if r[0] != "z"]
    assert rows == [
        ("a", "1:2", "d", "NEW"),
        ("a", "1:600", "d", "NEW"),
        ("b", "1:3", "d", "NEW"),
        ("b", "1:4", "d", "NEW"),
        ("c", "1:1", "d", "NEW"),
    ]
    before = _rule_rows(path)
    letters.put(letters.get(["1:1", "1:3", "1:4"]))  # idempotent
    assert _rule_rows(path) == before and letters.count() == 205
    letters.close()


def test_a_put_is_all_or_nothing(tmp_path: Path) -> None:
    path = tmp_path / "salesflow.db"
    letters = SqliteDeadLetters(path)
    letters.put([_letter(1, "a")])
    broken = _letter(1, "b", dataset=None)  # type: ignore[arg-type]  # NOT NULL fails
    with pytest.raises(TerminalError):  # the new ids are inserted before it fails
        letters.put([*(_letter(i, "a") for i in range(2, 300)), broken])
    assert letters.count() == 1 and letters.get(["1:1"])[0].rules == ["a"]
    assert _rule_rows(path) == [("a", "1:1", "d", "NEW")]
    letters.close()


def test_an_older_release_rule_trigger_is_replaced_on_open(tmp_path: Path) -> None:
    path = tmp_path / "salesflow.db"
    SqliteDeadLetters(path).close()
    old = TRIGGERS[0].replace("SELECT json_extract", "SELECT DISTINCT json_extract")
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TRIGGER letters_rules_on_insert")
        conn.execute(old)
    conn.close()
    letters = SqliteDeadLetters(path)
    letters.put([_letter(1, "a", "a", "b")])
    assert _rule_rows(path) == [("a", "1:1", "d", "NEW"), ("b", "1:1", "d", "NEW")]
    letters.close()
    with sqlite3.connect(path) as conn:
        [sql] = conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'letters_rules_on_insert'"
        ).fetchone()
    conn.close()
    assert "DISTINCT" not in sql
