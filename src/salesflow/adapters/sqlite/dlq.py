"""The dead-letter queue as a SQLite table: the ``DeadLetterQueue`` port on one machine.

One row per ``DeadLetter`` keyed by its deterministic ``id``, so re-sending after a crash is a
no-op (``INSERT OR IGNORE``). ``raw`` and ``reasons`` are JSON. A side table ``letter_rules``
holds one row per (letter, rule) so ``list(rule=...)`` is an indexed lookup, not a JSON scan.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from salesflow.adapters.sqlite.db import Database
from salesflow.models import DeadLetter, LetterStatus

SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letters (
    id TEXT PRIMARY KEY, dataset TEXT NOT NULL, source_file TEXT NOT NULL,
    record INTEGER NOT NULL, raw TEXT NOT NULL, reasons TEXT NOT NULL, status TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_source ON dead_letters (source_file, record);
CREATE INDEX IF NOT EXISTS dead_letters_status ON dead_letters (status);
CREATE TABLE IF NOT EXISTS letter_rules (
    rule TEXT NOT NULL, id TEXT NOT NULL REFERENCES dead_letters (id) ON DELETE CASCADE,
    PRIMARY KEY (rule, id)
) WITHOUT ROWID
"""

COLUMNS = ("id", "dataset", "source_file", "record", "raw", "reasons", "status", "created_at")
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM dead_letters"
_dumps = json.JSONEncoder(default=str, ensure_ascii=False).encode


def _row(letter: DeadLetter) -> tuple[Any, ...]:
    """The letter as a row, built directly (this runs once per rejected record)."""
    return (
        letter.id,
        letter.dataset,
        letter.source_file,
        letter.record,
        _dumps(letter.raw),
        _dumps([{"rule": r.rule, "field": r.field, "message": r.message} for r in letter.reasons]),
        letter.status.value,
        letter.created_at.isoformat(),
    )


def _letter(row: tuple[Any, ...]) -> DeadLetter:
    d = dict(zip(COLUMNS, row, strict=True))
    d["raw"] = json.loads(d["raw"])
    d["reasons"] = json.loads(d["reasons"])
    head = str(d["id"]).partition(":")[0]
    d["seq"] = int(head) if head.isdigit() else 0  # ids are "<seq>:<record>"
    return DeadLetter.from_dict(d)


class SqliteDeadLetterQueue:
    """The ``DeadLetterQueue`` port over the SQLite file ``path`` (the tables' file is fine)."""

    def __init__(self, path: Path, *, busy_seconds: float = 30.0) -> None:
        self.db = Database(path, busy_seconds=busy_seconds)
        with self.db.read() as conn:
            names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        if not {"dead_letters", "letter_rules"} <= names:
            self.db.script(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def send(self, letters: Sequence[DeadLetter]) -> None:
        """Queue letters in one transaction with ``executemany``; known ids are skipped."""
        placeholders = ", ".join("?" for _ in COLUMNS)
        with self.db.transaction() as conn:
            conn.executemany(
                f"INSERT OR IGNORE INTO dead_letters ({', '.join(COLUMNS)}) "
                f"VALUES ({placeholders})",
                [_row(letter) for letter in letters],
            )
            conn.executemany(
                "INSERT OR IGNORE INTO letter_rules (rule, id) VALUES (?, ?)",
                [(rule, letter.id) for letter in letters for rule in letter.rules],
            )

    def list(
        self,
        *,
        status: LetterStatus | None = None,
        source_file: str | None = None,
        rule: str | None = None,
        limit: int | None = None,
    ) -> list[DeadLetter]:
        """Letters matching every filter given, oldest first (in the order they were sent)."""
        where: list[str] = []
        params: list[Any] = []
        if status is not None:
            where.append("status = ?")
            params.append(LetterStatus(status).value)
        if source_file is not None:
            where.append("source_file = ?")
            params.append(source_file)
        if rule is not None:
            where.append("id IN (SELECT id FROM letter_rules WHERE rule = ?)")
            params.append(rule)
        query = _SELECT + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY rowid"
        if limit is not None:
            query += " LIMIT ?"
            params.append(limit)
        with self.db.read() as conn:
            rows = conn.execute(query, params).fetchall()
        return [_letter(r) for r in rows]

    def get(self, letter_id: str) -> DeadLetter | None:
        with self.db.read() as conn:
            row = conn.execute(f"{_SELECT} WHERE id = ?", (letter_id,)).fetchone()
        return _letter(row) if row else None

    def mark(self, letters: Sequence[DeadLetter], status: LetterStatus) -> None:
        with self.db.transaction() as conn:
            conn.executemany(
                "UPDATE dead_letters SET status = ? WHERE id = ?",
                [(LetterStatus(status).value, letter.id) for letter in letters],
            )

    def count(self, status: LetterStatus | None = None) -> int:
        with self.db.read() as conn:
            if status is None:
                row = conn.execute("SELECT count(*) FROM dead_letters").fetchone()
            else:
                query = "SELECT count(*) FROM dead_letters WHERE status = ?"
                row = conn.execute(query, (LetterStatus(status).value,)).fetchone()
        return int(row[0])
