"""The ``DeadLetters`` contract: the same tests against memory, a SQLite file and DynamoDB.

The DynamoDB table is created exactly as infra/template.yaml declares it, on moto's server over
HTTP, so the indexes the adapter queries are the ones a deployment gets.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from salesflow.models import DeadLetter, LetterEvent, LetterStatus, Reason
from salesflow.ports import DeadLetters, LetterCount
from tests.fixtures.moto_server import aws_env, moto_server

__all__ = ["aws_env", "moto_server"]

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def letter(
    seq: int,
    record: int,
    *,
    dataset: str = "orders_json",
    source: str | None = None,
    rules: tuple[str, ...] = ("presence.contact_info",),
    status: LetterStatus = LetterStatus.NEW,
    raw: dict[str, object] | None = None,
) -> DeadLetter:
    return DeadLetter(
        id=f"{seq}:{record}",
        seq=seq,
        dataset=dataset,
        source_file=source or f"inbox/{dataset}/file-{seq}.json",
        record=record,
        raw=raw if raw is not None else {"OrderId": f"O{seq}-{record}", "qty": "-1"},
        reasons=[Reason(rule=r, field="qty", message=f"broke {r}") for r in rules],
        status=status,
        created_at=T0 + timedelta(seconds=seq),
        history=[LetterEvent(at=T0, event="rejected", run=seq)],
    )


@pytest.fixture(params=["memory", "sqlite", "dynamodb"])
def letters(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DeadLetters]:
    if request.param == "memory":
        from salesflow.adapters.memory.letters import MemoryDeadLetters

        yield MemoryDeadLetters()
    elif request.param == "sqlite":
        from salesflow.adapters.sqlite.letters import SqliteDeadLetters

        store = SqliteDeadLetters(tmp_path / "salesflow.db")
        yield store
        store.close()
    else:
        request.getfixturevalue("aws_env")
        yield _dynamo()


def _dynamo() -> DeadLetters:
    import boto3

    from salesflow.adapters.aws.letters import DynamoDeadLetters
    from tests.integration.aws.tables import template_tables

    client = boto3.client("dynamodb")
    client.create_table(TableName="sf-letters", **template_tables()["letters"])
    return DynamoDeadLetters(client, "sf-letters")


def ids(found: list[DeadLetter]) -> list[str]:
    return [x.id for x in found]


def test_is_the_port(letters: DeadLetters) -> None:
    assert isinstance(letters, DeadLetters)


def test_round_trip_keeps_every_field_and_get_follows_the_order_asked(
    letters: DeadLetters,
) -> None:
    first = letter(7, 3, rules=("range.qty", "presence.contact_info"))
    first.attempts = 2
    first.updated_at = T0 + timedelta(hours=1)
    first.history.append(LetterEvent(at=T0 + timedelta(hours=1), event="still_failing", run=9))
    second = letter(2, 1)
    letters.put([first, second])
    assert letters.get([second.id, "nope", first.id]) == [second, first]
    assert letters.get([]) == []
    [got] = letters.get([first.id])
    assert got.history[1] == LetterEvent(
        at=T0 + timedelta(hours=1), event="still_failing", run=9, note=""
    )
    got.raw["changed"] = True  # a copy: the store is not changed through it
    assert "changed" not in letters.get([first.id])[0].raw


def test_upsert_keeps_created_at_and_replaces_the_rest(letters: DeadLetters) -> None:
    original = letter(5, 1, rules=("range.qty", "email.format"))
    letters.put([original])
    again = letter(5, 1, rules=("type.qty",), raw={"OrderId": "fixed", "qty": "x"})
    again.created_at = T0 + timedelta(days=30)
    again.status = LetterStatus.DISCARDED
    again.attempts = 3
    again.updated_at = T0 + timedelta(days=30)
    again.history = [*original.history, LetterEvent(at=T0, event="discarded", note="dup")]
    letters.put([again])
    [stored] = letters.get([original.id])
    assert stored.created_at == original.created_at
    assert stored.raw == {"OrderId": "fixed", "qty": "x"}
    assert stored.rules == ["type.qty"] and stored.status == LetterStatus.DISCARDED
    assert (stored.attempts, stored.updated_at) == (3, T0 + timedelta(days=30))
    assert [e.event for e in stored.history] == ["rejected", "discarded"]
    # the rule index follows the new reasons and status
    assert letters.find(rule="range.qty") == [] and letters.count(rule="email.format") == 0
    assert ids(letters.find(rule="type.qty", status=LetterStatus.DISCARDED)) == ["5:1"]
    assert letters.count(status=LetterStatus.NEW) == 0
    assert letters.counts() == [LetterCount("orders_json", LetterStatus.DISCARDED, "type.qty", 1)]


def test_the_last_of_two_puts_of_one_id_in_one_call_wins(letters: DeadLetters) -> None:
    late = letter(1, 1, rules=("type.qty",))
    letters.put([letter(1, 1), late])
    assert letters.get(["1:1"])[0].rules == ["type.qty"]


def _fill(letters: DeadLetters) -> None:
    letters.put(
        [
            letter(3, 2, rules=("email.format",)),
            letter(1, 10, source="inbox/orders_json/a.json", rules=("range.qty", "email.format")),
            letter(1, 2, source="inbox/orders_json/a.json"),
            letter(2, 1, dataset="order_items", rules=("ref.order_id",)),
            letter(2, 5, dataset="order_items", rules=("ref.order_id", "range.qty")),
            letter(4, 1, status=LetterStatus.REDRIVEN, rules=("range.qty",)),
            letter(4, 2, status=LetterStatus.SUPERSEDED, source="inbox/orders_json/a.json"),
        ]
    )


def test_find_orders_by_seq_then_record_and_every_filter_combines(letters: DeadLetters) -> None:
    _fill(letters)
    new = LetterStatus.NEW
    assert ids(letters.find()) == ["1:2", "1:10", "2:1", "2:5", "3:2", "4:1", "4:2"]
    assert ids(letters.find(status=new)) == ["1:2", "1:10", "2:1", "2:5", "3:2"]
    assert ids(letters.find(status=LetterStatus.SUPERSEDED)) == ["4:2"]
    assert ids(letters.find(dataset="order_items")) == ["2:1", "2:5"]
    assert ids(letters.find(source_file="inbox/orders_json/a.json")) == ["1:2", "1:10", "4:2"]
    assert ids(letters.find(rule="range.qty")) == ["1:10", "2:5", "4:1"]
    assert ids(letters.find(seqs=[4, 1])) == ["1:2", "1:10", "4:1", "4:2"]
    assert letters.find(seqs=[]) == [] and letters.find(rule="nothing") == []
    assert ids(letters.find(rule="range.qty", status=new)) == ["1:10", "2:5"]
    assert ids(letters.find(rule="range.qty", dataset="order_items")) == ["2:5"]
    assert ids(letters.find(rule="email.format", source_file="inbox/orders_json/a.json")) == [
        "1:10"
    ]
    assert ids(letters.find(rule="range.qty", seqs=[1, 4])) == ["1:10", "4:1"]
    assert ids(letters.find(source_file="inbox/orders_json/a.json", status=new)) == [
        "1:2",
        "1:10",
    ]
    assert ids(letters.find(seqs=[2, 4], status=new)) == ["2:1", "2:5"]
    assert ids(letters.find(seqs=[1, 2], dataset="order_items")) == ["2:1", "2:5"]
    assert ids(letters.find(dataset="orders_json", status=LetterStatus.REDRIVEN)) == ["4:1"]
    assert ids(letters.find(dataset="orders_json", status=new, rule="email.format")) == [
        "1:10",
        "3:2",
    ]
    assert letters.find(dataset="order_items", source_file="inbox/orders_json/a.json") == []
    assert ids(letters.find(status=new, limit=2)) == ["1:2", "1:10"]
    assert ids(letters.find(status=new, limit=2, after="1:10")) == ["2:1", "2:5"]
    assert ids(letters.find(rule="range.qty", after="1:10", limit=1)) == ["2:5"]
    assert letters.find(limit=0) == []


def test_count_and_counts_aggregate_by_dataset_status_and_rule(letters: DeadLetters) -> None:
    assert letters.count() == 0 and letters.counts() == []
    _fill(letters)
    new = LetterStatus.NEW
    assert letters.count() == 7
    assert letters.count(status=new) == 5
    assert letters.count(dataset="order_items") == 2
    assert letters.count(source_file="inbox/orders_json/a.json", status=new) == 2
    assert letters.count(rule="range.qty") == 3
    assert letters.count(rule="range.qty", status=new, dataset="orders_json") == 1
    assert letters.count(rule="ghost") == 0
    assert sorted(letters.counts(), key=str) == sorted(
        [
            LetterCount("order_items", new, "range.qty", 1),
            LetterCount("order_items", new, "ref.order_id", 2),
            LetterCount("orders_json", new, "email.format", 2),
            LetterCount("orders_json", new, "presence.contact_info", 1),
            LetterCount("orders_json", new, "range.qty", 1),
            LetterCount("orders_json", LetterStatus.REDRIVEN, "range.qty", 1),
            LetterCount("orders_json", LetterStatus.SUPERSEDED, "presence.contact_info", 1),
        ],
        key=str,
    )


def test_after_must_name_a_stored_letter(letters: DeadLetters) -> None:
    _fill(letters)
    with pytest.raises(ValueError, match="not the id of a stored dead letter"):
        letters.find(after="99:99")


def test_pages_through_2500_letters_with_after(letters: DeadLetters) -> None:
    rng = random.Random(7)
    batch = [
        letter(
            1 + n // 1000,
            n % 1000 + 1,
            rules=("range.qty",) if n % 3 == 0 else ("email.format",),
            status=LetterStatus.NEW if n % 5 else LetterStatus.DISCARDED,
        )
        for n in range(2500)
    ]
    rng.shuffle(batch)
    letters.put(batch)
    everything = sorted(batch, key=lambda x: (x.seq, x.record))

    def pages(**filters: object) -> list[str]:
        seen: list[str] = []
        after = None
        while True:
            page = letters.find(limit=500, after=after, **filters)  # type: ignore[arg-type]
            assert len(page) <= 500
            seen.extend(ids(page))
            if len(page) < 500:
                return seen
            after = page[-1].id

    assert pages() == [x.id for x in everything]
    assert pages(rule="range.qty") == [x.id for x in everything if x.rules == ["range.qty"]]
    assert letters.count(status=LetterStatus.DISCARDED) == 500
    assert {(c.status, c.rule): c.letters for c in letters.counts()} == {
        (LetterStatus.NEW, "range.qty"): 667,
        (LetterStatus.NEW, "email.format"): 1333,
        (LetterStatus.DISCARDED, "range.qty"): 167,
        (LetterStatus.DISCARDED, "email.format"): 333,
    }


def test_unicode_and_json_values_round_trip_exactly(letters: DeadLetters) -> None:
    odd = letter(
        9,
        1,
        source="inbox/orders_json/ünïcödé 東京 🚀.json",
        rules=("email.format",),
        raw={
            "名前": "Zoë \u202eevil\u202c 🚀",
            '=HYPERLINK("x")': "\r=1+1",
            "nested": {"a": [1, 2.5, None, True], "b": {"c": "d"}},
            "big": 12345678901234567890,
            "float": 0.1,
            "empty": "",
            "nul": "a\x00b",
        },
    )
    odd.reasons = [Reason("email.format", "名前", "«ça» n'est pas un e-mail: zoë@例え.jp")]
    letters.put([odd])
    assert letters.get([odd.id]) == [odd]
    assert ids(letters.find(source_file="inbox/orders_json/ünïcödé 東京 🚀.json")) == ["9:1"]


def test_big_raw_records_are_kept_whole(letters: DeadLetters) -> None:
    rng = random.Random(3)
    noisy = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(200_000))
    big = letter(1, 1, raw={"note": "é" * 300_000, "blob": noisy})
    letters.put([big, letter(1, 2)])
    assert letters.get([big.id])[0].raw == big.raw
    assert ids(letters.find(seqs=[1])) == ["1:1", "1:2"]
