"""Dead letters in a dict: the ``DeadLetters`` port for fast unit tests.

It keeps the contract of the SQLite and DynamoDB adapters (tests/contract/test_dead_letters.py
runs the same tests against all three): stored letters are copies, so changing a letter after
``put`` or ``get`` changes nothing stored, and ``created_at`` survives an upsert.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Collection, Sequence

from salesflow.models import DeadLetter, LetterStatus
from salesflow.ports import LetterCount


def position(letter: DeadLetter) -> tuple[int, int, str]:
    """Where a letter sorts in every listing: its origin seq, record number, then id."""
    return (letter.seq, letter.record, letter.id)


class MemoryDeadLetters:
    """The ``DeadLetters`` port over a dict."""

    def __init__(self) -> None:
        self.letters: dict[str, DeadLetter] = {}

    def put(self, letters: Sequence[DeadLetter]) -> None:
        for letter in letters:
            stored = copy.deepcopy(letter)
            stored.receipt = None
            old = self.letters.get(letter.id)
            if old is not None:
                stored.created_at = old.created_at
            self.letters[letter.id] = stored

    def get(self, ids: Sequence[str]) -> list[DeadLetter]:
        return [copy.deepcopy(self.letters[i]) for i in ids if i in self.letters]

    def _matching(
        self,
        status: LetterStatus | None,
        dataset: str | None,
        source_file: str | None,
        rule: str | None,
        seqs: Collection[int] | None = None,
    ) -> list[DeadLetter]:
        wanted = {int(s) for s in seqs} if seqs is not None else None
        return [
            x
            for x in self.letters.values()
            if (status is None or x.status == LetterStatus(status))
            and dataset in (None, x.dataset)
            and source_file in (None, x.source_file)
            and (rule is None or rule in x.rules)
            and (wanted is None or x.seq in wanted)
        ]

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
        found = sorted(self._matching(status, dataset, source_file, rule, seqs), key=position)
        if after is not None:
            if after not in self.letters:
                raise ValueError(f"after={after!r} is not the id of a stored dead letter")
            start = position(self.letters[after])
            found = [x for x in found if position(x) > start]
        if limit is not None:
            found = found[:limit]
        return [copy.deepcopy(x) for x in found]

    def count(
        self,
        *,
        status: LetterStatus | None = None,
        dataset: str | None = None,
        source_file: str | None = None,
        rule: str | None = None,
    ) -> int:
        return len(self._matching(status, dataset, source_file, rule))

    def counts(self) -> list[LetterCount]:
        tally: Counter[tuple[str, LetterStatus, str]] = Counter()
        for letter in self.letters.values():
            tally.update((letter.dataset, letter.status, rule) for rule in letter.rules)
        return [LetterCount(d, s, r, n) for (d, s, r), n in sorted(tally.items())]
