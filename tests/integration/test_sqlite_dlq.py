"""SqliteDeadLetterQueue against a real SQLite file: idempotent sends, filters, bulk speed."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from salesflow.adapters.sqlite.dlq import SqliteDeadLetterQueue
from salesflow.adapters.sqlite.tables import SqliteTables
from salesflow.models import DeadLetter, LetterStatus, Reason
from salesflow.ports import DeadLetterQueue

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def letter(n: int, source: str = "inbox/orders/a.csv", rules: tuple[str, ...] = ("type.int",)):
    return DeadLetter(
        id=f"sha:{source}:{n}",
        dataset="orders",
        source_file=source,
        record=n,
        raw={"order_id": str(n), "email": "x@y.z", "nested": {"a": [1, 2]}},
        reasons=[Reason(rule, "order_id", f"{rule} failed") for rule in rules],
        created_at=T0,
    )


@pytest.fixture
def dlq(tmp_path: Path) -> SqliteDeadLetterQueue:
    q = SqliteDeadLetterQueue(tmp_path / "salesflow.db")
    yield q  # type: ignore[misc]
    q.close()


def test_is_a_dead_letter_queue(dlq: SqliteDeadLetterQueue) -> None:
    assert isinstance(dlq, DeadLetterQueue)


def test_round_trip_and_resend_is_a_no_op(dlq: SqliteDeadLetterQueue) -> None:
    first = letter(1, rules=("type.int", "range.positive"))
    dlq.send([first, letter(2)])
    dlq.send([first, letter(2)])
    assert dlq.count() == 2
    assert dlq.get(first.id) == first
    assert dlq.get("nope") is None


def test_raw_values_json_cannot_hold_are_stored_as_text(dlq: SqliteDeadLetterQueue) -> None:
    odd = letter(1)
    odd.raw = {"day": date(2024, 1, 2), "text": "café"}
    dlq.send([odd])
    got = dlq.get(odd.id)
    assert got is not None and got.raw == {"day": "2024-01-02", "text": "café"}


def test_filters_combine(dlq: SqliteDeadLetterQueue) -> None:
    dlq.send(
        [
            letter(1, "inbox/a.csv", ("type.int",)),
            letter(2, "inbox/a.csv", ("required", "type.int")),
            letter(3, "inbox/b.csv", ("required",)),
        ]
    )
    ids = lambda letters: [x.record for x in letters]  # noqa: E731
    assert ids(dlq.list()) == [1, 2, 3]
    assert ids(dlq.list(source_file="inbox/a.csv")) == [1, 2]
    assert ids(dlq.list(rule="required")) == [2, 3]
    assert ids(dlq.list(rule="required", source_file="inbox/a.csv")) == [2]
    assert ids(dlq.list(rule="unknown")) == []
    assert ids(dlq.list(limit=2)) == [1, 2]
    dlq.mark([letter(2, "inbox/a.csv")], LetterStatus.REDRIVEN)
    assert ids(dlq.list(status=LetterStatus.NEW)) == [1, 3]
    assert ids(dlq.list(status=LetterStatus.REDRIVEN, rule="type.int")) == [2]
    assert dlq.count(LetterStatus.NEW) == 2 and dlq.count(LetterStatus.REDRIVEN) == 1
    assert dlq.count(LetterStatus.DISCARDED) == 0


def test_fifty_thousand_letters_in_one_fast_send(dlq: SqliteDeadLetterQueue) -> None:
    letters = [letter(n, rules=("type.int", "range.positive")) for n in range(50_000)]
    start = time.perf_counter()
    dlq.send(letters)
    elapsed = time.perf_counter() - start
    assert dlq.count() == 50_000
    assert len(dlq.list(rule="range.positive", limit=10)) == 10
    # One transaction with executemany: about a second on this machine.
    assert elapsed < 30, f"sending 50k letters took {elapsed:.1f}s"


def test_shares_the_file_with_the_tables(tmp_path: Path) -> None:
    path = tmp_path / "salesflow.db"
    tables, dlq = SqliteTables(path), SqliteDeadLetterQueue(path)
    dlq.send([letter(1)])
    assert tables.next_seq() == 1
    tables.close()
    dlq.close()
    again = SqliteDeadLetterQueue(path)
    assert again.count() == 1
    again.close()
