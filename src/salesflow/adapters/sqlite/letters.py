"""Dead letters in the SQLite file: the ``DeadLetters`` port on one machine.

Schema and upserts go through sqlite-utils on the shared connection (its ``atomic()`` nests
as a savepoint inside our ``BEGIN IMMEDIATE``). Two invariants live in the schema itself, so
no code path can break them:

- ``created_at`` never changes once a letter exists (a trigger restores it after an upsert);
- ``letters_by_rule`` holds one row per (rule, letter) with the letter's dataset, status and
  position, kept in step by triggers on every insert and update of ``letters``.

Every listing is ordered by the position ``(seq, record, id)`` and pages with a keyset
(``after``): each filter has an index that starts with its column and ends with the position,
so a page is one index range scan however deep into the queue it is. ``count`` and
``counts`` aggregate in SQL over those indexes.

Rows of the previous release's ``dead_letters`` table are migrated on open (ids kept).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from salesflow.adapters.sqlite._sqlite_utils import sqlite_utils
from salesflow.adapters.sqlite.db import Database
from salesflow.models import DeadLetter, LetterStatus, utcnow
from salesflow.ports import LetterCount

if TYPE_CHECKING:
    from sqlite_utils import Database as Database_

TABLE = "letters"
RULES = "letters_by_rule"
EXPECTED = {
    TABLE,
    RULES,
    *(f"letters_{n}" for n in ("position", "status", "dataset", "source")),
    *(f"letters_by_rule_{n}" for n in ("position", "counts", "id")),
    "letters_rules_on_insert",
    "letters_rules_on_update",
    "letters_keep_created_at",
}
"""Every table, index and trigger ``_create`` makes."""
COLUMNS = (
    "id seq record dataset source_file status raw reasons created_at updated_at attempts history"
).split()
_SELECT = f"SELECT {', '.join(f'l.{c}' for c in COLUMNS)} FROM {TABLE} l"
_dumps = json.JSONEncoder(default=str, ensure_ascii=False).encode

_RULE_ROWS = """
    INSERT OR IGNORE INTO letters_by_rule (rule, id, dataset, status, seq, record)
    SELECT {distinct}json_extract(value, '$.rule'), NEW.id, NEW.dataset, NEW.status, NEW.seq,
           NEW.record
    FROM json_each(NEW.reasons);
"""
# On insert, the primary key (rule, id) and OR IGNORE keep one row per rule, and a DISTINCT's
# temporary b-tree, opened once per letter, was ~15% of a fresh put's SQL time. On update it
# stays: an upsert's DO UPDATE makes the trigger's OR IGNORE an abort (SQLite lets the outer
# statement's conflict handling win), so a letter naming one rule twice would fail.
_DISTINCT_RULE_ROWS = _RULE_ROWS.format(distinct="DISTINCT ")
TRIGGERS = (
    f"""CREATE TRIGGER IF NOT EXISTS letters_rules_on_insert AFTER INSERT ON letters
    BEGIN {_RULE_ROWS.format(distinct="")} END""",
    f"""CREATE TRIGGER IF NOT EXISTS letters_rules_on_update
    AFTER UPDATE OF reasons, status, dataset, seq, record ON letters
    BEGIN DELETE FROM letters_by_rule WHERE id = OLD.id; {_DISTINCT_RULE_ROWS} END""",
    """CREATE TRIGGER IF NOT EXISTS letters_keep_created_at AFTER UPDATE OF created_at ON letters
    WHEN NEW.created_at IS NOT OLD.created_at
    BEGIN UPDATE letters SET created_at = OLD.created_at WHERE id = OLD.id; END""",
)
_STORED_TRIGGERS = {t.split()[5]: t.replace(" IF NOT EXISTS", "", 1) for t in TRIGGERS}
"""Each trigger's name and text as ``sqlite_master`` keeps it: a file whose trigger differs
(an older release's) gets the current one on open."""
_INSERT_ROWS = 999 // len(COLUMNS)
"""Letters per INSERT statement: 999 variables fit every SQLite build (sqlite-utils' cap too)."""


class _Rows:
    """Letters as rows. The letters of one file share their times, history and often their
    reasons (frozen, hashable values): each distinct one is encoded once per ``put``."""

    def __init__(self) -> None:
        self._cache: dict[Any, str] = {}

    def _once(self, value: Any, encode: Any) -> str:
        found = self._cache.get(value)
        if found is None:
            found = self._cache[value] = encode(value)
        return found

    def row(self, letter: DeadLetter) -> tuple[Any, ...]:
        """The letter's values in ``COLUMNS`` order."""
        once = self._once
        return (
            letter.id,
            letter.seq,
            letter.record,
            letter.dataset,
            letter.source_file,
            letter.status.value,
            _dumps(letter.raw),
            once(tuple(letter.reasons), _encode_reasons),
            once(letter.created_at, _iso),
            once(letter.updated_at, _iso) if letter.updated_at else None,
            letter.attempts,
            once(tuple(letter.history), _encode_history),
        )


def _iso(at: Any) -> str:
    return str(at.isoformat())


def _encode_reasons(reasons: tuple[Any, ...]) -> str:
    return _dumps([r.to_dict() for r in reasons])


def _encode_history(history: tuple[Any, ...]) -> str:
    return _dumps([e.to_dict() for e in history])


def _letter(row: Sequence[Any]) -> DeadLetter:
    d = dict(zip(COLUMNS, row, strict=True))
    for column in ("raw", "reasons", "history"):
        d[column] = json.loads(d[column])
    return DeadLetter.from_dict(d)


class SqliteDeadLetters:
    """The ``DeadLetters`` port over the SQLite file ``path`` (the tables' file is fine)."""

    def __init__(self, path: Path, *, busy_seconds: float = 30.0) -> None:
        self.db = Database(path, busy_seconds=busy_seconds)
        with self.db.read() as conn:
            schema = dict(conn.execute("SELECT name, sql FROM sqlite_master").fetchall())
        # Opening an existing store takes no write lock (another process may hold it).
        stale = any(schema.get(n, sql) != sql for n, sql in _STORED_TRIGGERS.items())
        if not EXPECTED <= schema.keys() or OLD_TABLE in schema or stale:
            with self.db.transaction():
                self._create()
                _migrate(self._lite)

    @functools.cached_property
    def _lite(self) -> Database_:
        """sqlite-utils over the connection, made on the first write (reads need none)."""
        with self.db.read() as conn:
            lite: Database_ = sqlite_utils().Database(
                conn, recursive_triggers=False, execute_plugins=False
            )
        return lite

    def close(self) -> None:
        self.db.close()

    def _create(self) -> None:
        lite = self._lite
        letters = lite.table(TABLE)
        letters.create(
            {
                "id": str,
                "seq": int,
                "record": int,
                "dataset": str,
                "source_file": str,
                "status": str,
                "raw": str,
                "reasons": str,
                "created_at": str,
                "updated_at": str,
                "attempts": int,
                "history": str,
            },
            pk="id",
            not_null=set(COLUMNS) - {"updated_at"},
            if_not_exists=True,
        )
        for name, columns in (
            ("position", ["seq", "record", "id"]),
            ("status", ["status", "seq", "record", "id"]),
            ("dataset", ["dataset", "seq", "record", "id"]),
            ("source", ["source_file", "seq", "record", "id"]),
        ):
            letters.create_index(columns, index_name=f"letters_{name}", if_not_exists=True)
        rules = lite.table(RULES)
        rules.create(
            {"rule": str, "id": str, "dataset": str, "status": str, "seq": int, "record": int},
            pk=("rule", "id"),
            not_null={"rule", "id", "dataset", "status", "seq", "record"},
            if_not_exists=True,
        )
        rules.create_index(
            ["rule", "seq", "record", "id"],
            index_name="letters_by_rule_position",
            if_not_exists=True,
        )
        rules.create_index(
            ["dataset", "status", "rule"], index_name="letters_by_rule_counts", if_not_exists=True
        )
        rules.create_index(["id"], index_name="letters_by_rule_id", if_not_exists=True)
        stored = dict(lite.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"))
        for (name, sql), trigger in zip(_STORED_TRIGGERS.items(), TRIGGERS, strict=True):
            if stored.get(name, sql) != sql:  # an older release's version
                lite.execute(f"DROP TRIGGER {name}")
            lite.execute(trigger)

    # writes
    def put(self, letters: Sequence[DeadLetter]) -> None:
        """Upsert in one transaction; triggers keep ``created_at`` and the rule index.

        Letters whose id is not stored yet (all of a fresh file's) are written with plain
        multi-row ``INSERT`` statements, the others (and a second letter of one id in the same
        call) with sqlite-utils' ``upsert_all``, in call order per id, so the last one wins and
        the first keeps ``created_at`` as before. A plain insert is not an upsert: the
        ``BEGIN IMMEDIATE`` lock means no other writer can add one of those ids between the
        look-up and the insert, and if one were there the insert would fail and roll back the
        whole put. Why not ``insert_all``: sqlite-utils turns every value of every row through
        ``jsonify_if_needed`` (12 calls a letter, for values that are already JSON text or
        scalars); for 50k fresh letters its ``insert_all`` took ~2.1 s of CPU and these
        statements ~1.3 s, the SQL work (indexes and the rule trigger) being the same.
        """
        if not letters:
            return
        rows = _Rows()
        values = [rows.row(x) for x in letters]  # encoded before the write lock is taken
        with self.db.transaction() as conn:
            seen = _stored(conn, [v[0] for v in values])
            new: list[tuple[Any, ...]] = []
            old: list[tuple[Any, ...]] = []
            for v in values:
                if v[0] in seen:
                    old.append(v)
                else:
                    seen.add(v[0])
                    new.append(v)
            for start in range(0, len(new), _INSERT_ROWS):
                part = new[start : start + _INSERT_ROWS]
                conn.execute(_insert_sql(len(part)), [x for v in part for x in v])
            if old:
                self._lite.table(TABLE).upsert_all(
                    [COLUMNS, *old], pk="id", batch_size=500, alter=False
                )

    # reads
    def get(self, ids: Sequence[str]) -> list[DeadLetter]:
        found: dict[str, DeadLetter] = {}
        unique = list(dict.fromkeys(ids))
        with self.db.read() as conn:
            for start in range(0, len(unique), 500):
                part = unique[start : start + 500]
                marks = ", ".join("?" for _ in part)
                for row in conn.execute(f"{_SELECT} WHERE l.id IN ({marks})", part):
                    letter = _letter(row)
                    found[letter.id] = letter
        return [found[i] for i in ids if i in found]

    def _position(self, after: str) -> tuple[int, int, str]:
        with self.db.read() as conn:
            row = conn.execute(f"SELECT seq, record, id FROM {TABLE} WHERE id = ?", (after,))
            found = row.fetchone()
        if found is None:
            raise ValueError(f"after={after!r} is not the id of a stored dead letter")
        return int(found[0]), int(found[1]), str(found[2])

    def find(
        self,
        *,
        status: LetterStatus | None = None,
        dataset: str | None = None,
        source_file: str | None = None,
        rule: str | None = None,
        seqs: Collection[int] | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[DeadLetter]:
        if seqs is not None and not seqs:
            return []
        where, params = _where(status, dataset, source_file, seqs)
        alias = "r" if rule is not None else "l"
        if after is not None:
            where.append(f"({alias}.seq, {alias}.record, {alias}.id) > (?, ?, ?)")
            params.extend(self._position(after))
        if rule is not None:
            query = f"{_SELECT} JOIN {RULES} r ON r.id = l.id"
            where.insert(0, "r.rule = ?")
            params.insert(0, rule)
        else:
            query = _SELECT
        if where:
            query += " WHERE " + " AND ".join(where)
        query += f" ORDER BY {alias}.seq, {alias}.record, {alias}.id"
        if limit is not None:
            query += " LIMIT ?"
            params.append(limit)
        with self.db.read() as conn:
            rows = conn.execute(query, params).fetchall()
        return [_letter(r) for r in rows]

    def count(
        self,
        *,
        status: LetterStatus | None = None,
        dataset: str | None = None,
        source_file: str | None = None,
        rule: str | None = None,
    ) -> int:
        where, params = _where(status, dataset, source_file, None)
        if rule is not None:
            query = f"SELECT count(*) FROM {RULES} r JOIN {TABLE} l ON l.id = r.id"
            where.insert(0, "r.rule = ?")
            params.insert(0, rule)
        else:
            query = f"SELECT count(*) FROM {TABLE} l"
        if where:
            query += " WHERE " + " AND ".join(where)
        with self.db.read() as conn:
            return int(conn.execute(query, params).fetchone()[0])

    def counts(self) -> list[LetterCount]:
        query = (
            f"SELECT dataset, status, rule, count(*) FROM {RULES} "
            "GROUP BY dataset, status, rule ORDER BY dataset, status, rule"
        )
        with self.db.read() as conn:
            rows = conn.execute(query).fetchall()
        return [LetterCount(d, LetterStatus(s), r, int(n)) for d, s, r, n in rows]


def _stored(conn: Any, ids: Sequence[str]) -> set[str]:
    """Which of ``ids`` are the ids of stored letters (500 a query)."""
    unique = list(dict.fromkeys(ids))
    found: set[str] = set()
    for start in range(0, len(unique), 500):
        part = unique[start : start + 500]
        marks = ", ".join("?" for _ in part)
        found.update(
            r[0] for r in conn.execute(f"SELECT id FROM {TABLE} WHERE id IN ({marks})", part)
        )
    return found


@functools.cache
def _insert_sql(rows: int) -> str:
    one = "(" + ", ".join("?" for _ in COLUMNS) + ")"
    return f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES " + ", ".join([one] * rows)


def _where(
    status: LetterStatus | None,
    dataset: str | None,
    source_file: str | None,
    seqs: Collection[int] | None,
) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("status", LetterStatus(status).value if status is not None else None),
        ("dataset", dataset),
        ("source_file", source_file),
    ):
        if value is not None:
            where.append(f"l.{column} = ?")
            params.append(value)
    if seqs is not None:
        unique = sorted({int(s) for s in seqs})
        where.append(f"l.seq IN ({', '.join('?' for _ in unique)})")
        params.extend(unique)
    return where, params


# ---------------------------------------------------------------- migration
OLD_TABLE = "dead_letters"
OLD_RULES = "letter_rules"
MIGRATED = "migrated from the dead_letters table of the previous release"


def _migrate(lite: Database_) -> None:
    """Move the previous release's letters into ``letters``, keeping their ids (exports and
    scripts may name them). Their origin ``seq`` is the lineage row whose sha256 starts with
    the id's prefix (ids were ``<sha256[:16]>:<record>``), else 0. Runs inside the opening
    transaction, so a crash leaves either both tables or the migrated one."""
    if OLD_TABLE not in lite.table_names():
        return
    seq_of = _seq_lookup(lite)
    rows = []
    for old in lite.query(f"SELECT * FROM {OLD_TABLE} ORDER BY rowid"):
        prefix = str(old["id"]).partition(":")[0]
        seq = seq_of(prefix)
        status = LetterStatus(old["status"])
        history = [{"at": old["created_at"], "event": "rejected", "run": seq, "note": MIGRATED}]
        if status != LetterStatus.NEW:
            history.append(
                {
                    "at": utcnow().isoformat(),
                    "event": status.value.lower(),
                    "run": None,
                    "note": "status carried over by the migration; its time was not recorded",
                }
            )
        rows.append(
            {
                "id": old["id"],
                "seq": seq or 0,
                "record": old["record"],
                "dataset": old["dataset"],
                "source_file": old["source_file"],
                "status": status.value,
                "raw": old["raw"],
                "reasons": old["reasons"],
                "created_at": old["created_at"],
                "updated_at": None,
                "attempts": 1,
                "history": _dumps(history),
            }
        )
    lite.table(TABLE).insert_all(rows, pk="id", ignore=True, batch_size=500, alter=False)
    for old_table in (OLD_RULES, OLD_TABLE):
        if old_table in lite.table_names():
            lite.table(old_table).drop()


def _seq_lookup(lite: Database_) -> Any:
    lineage = lite.table("processed_files")
    if not lineage.exists() or not {"sha256", "seq"} <= set(lineage.columns_dict):
        return lambda prefix: None

    def seq_of(prefix: str) -> int | None:
        row = lite.execute(
            "SELECT min(seq) FROM processed_files WHERE substr(sha256, 1, 16) = ?", [prefix]
        ).fetchone()
        return int(row[0]) if row and row[0] is not None else None

    return seq_of
