"""``ops.dlq_view`` over the queue of today (list by status, file, rule) and over the durable
``DeadLetters`` store (find, count and counts in the store): the same answers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from typing import Any

import pytest

from salesflow.errors import SalesflowError
from salesflow.models import DeadLetter, FileRecord, FileStatus, LetterStatus, Reason
from salesflow.ops.dlq_view import count_letters, facets, find_letters, get_letter
from salesflow.ports import LetterCount
from tests.fixtures.memory import memory_backend


def letters() -> list[DeadLetter]:
    out = []
    for n in range(1, 7):
        dataset = "orders" if n % 2 else "sale_events"
        rules = [Reason("email.format", "email", "bad")] + (
            [Reason("type.integer", "qty", "bad")] if n % 3 == 0 else []
        )
        out.append(DeadLetter(f"{n}:1", dataset, f"inbox/{dataset}/f.csv", n, {"n": n}, rules))
    out[0].status = LetterStatus.DISCARDED
    return out


class KeyedLetters:
    """The smallest ``DeadLetters``: filters, counts and aggregates in the store."""

    def __init__(self, items: list[DeadLetter]) -> None:
        self.items = items

    def _match(self, x: DeadLetter, status: Any, dataset: Any, source_file: Any, rule: Any) -> bool:
        return (
            status in (None, x.status)
            and dataset in (None, x.dataset)
            and source_file in (None, x.source_file)
            and (rule is None or rule in x.rules)
        )

    def find(
        self,
        *,
        status: Any = None,
        dataset: Any = None,
        source_file: Any = None,
        rule: Any = None,
        seqs: Collection[int] | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[DeadLetter]:
        out = [x for x in self.items if self._match(x, status, dataset, source_file, rule)]
        return out[:limit] if limit is not None else out

    def count(
        self, *, status: Any = None, dataset: Any = None, source_file: Any = None, rule: Any = None
    ) -> int:
        return len(self.find(status=status, dataset=dataset, source_file=source_file, rule=rule))

    def counts(self) -> list[LetterCount]:
        groups = Counter((x.dataset, x.status, r) for x in self.items for r in x.rules)
        return [LetterCount(d, s, r, n) for (d, s, r), n in groups.items()]

    def get(self, ids: list[str]) -> list[DeadLetter]:
        return [x for x in self.items if x.id in ids]


@pytest.fixture
def backend() -> Any:
    be = memory_backend()
    be.letters = KeyedLetters(letters())  # type: ignore[assignment]
    for dataset, rejected in (("orders", 3), ("sale_events", 3)):
        be.tables.claim(
            FileRecord(
                key=f"inbox/{dataset}/f.csv",
                sha256="0" * 64,
                size=1,
                dataset=dataset,
                status=FileStatus.SUCCESS,
                seq=len(dataset),
                rejected=rejected,
                version="v1",
            )
        )
    return be


def test_find_filters_by_dataset_before_the_limit(backend: Any) -> None:
    assert [x.id for x in find_letters(backend, dataset="sale_events", limit=2)] == ["2:1", "4:1"]
    assert [x.id for x in find_letters(backend, status="all", dataset="orders")] == [
        "1:1",
        "3:1",
        "5:1",
    ]
    assert [x.id for x in find_letters(backend, rule="type.integer")] == ["3:1", "6:1"]
    assert count_letters(backend) == 5
    assert count_letters(backend, dataset="orders") == 2
    assert count_letters(backend, status=None, dataset="orders") == 3
    found = get_letter(backend, "3:1")
    assert found is not None and found.record == 3
    assert get_letter(backend, "9:9") is None
    with pytest.raises(SalesflowError, match="unknown dead-letter status"):
        find_letters(backend, status="OPEN")


def test_facets_count_what_each_filter_would_show(backend: Any) -> None:
    every = facets(backend)
    assert every.statuses["NEW"] == 5 and every.statuses["DISCARDED"] == 1
    assert every.datasets == {"orders": 3, "sale_events": 3}
    assert every.rules == {"email.format": 6, "type.integer": 2}
    new = facets(backend, status="NEW")
    assert new.datasets == {"orders": 2, "sale_events": 3}
    assert new.rules == {"email.format": 5, "type.integer": 2}
    assert set(new.files) == {"inbox/orders/f.csv", "inbox/sale_events/f.csv"}
