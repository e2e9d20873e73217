"""What a redrive file's publish does to the letters its records came from.

A redrive file (``redrive/<dataset>/...``) holds records taken from dead letters, corrected or
not. Beside it, ``<key>.origins.json`` maps each record number of the file to the id of the
letter it came from (or null for a record a person added). The map is written before the file
is processed and removed only after its publish has settled, so a ``kill -9`` anywhere is
finished by ``recover`` with the same outcome:

- a record that fails again updates the letter it came from (same id: new raw and reasons,
  ``attempts + 1``, a ``still_failing`` event of this run) instead of opening a second one;
- a record that passes closes its letter as REDRIVEN, with a ``redriven`` event of this run;
- a letter already settled by this run (a publish redone after a crash) is left as it is.

So, however often a redrive runs or crashes, each record that still fails has exactly one
open letter, and its history says what each run did.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from itertools import islice

from salesflow.models import DeadLetter, LetterEvent, LetterStatus
from salesflow.ports import DeadLetters, ObjectStore

Origins = dict[int, str | None]
PAGE = 1_000


def origins_key(key: str) -> str:
    """Where the record -> letter map of the redrive file ``key`` is kept."""
    return f"{key}.origins.json"


def write_origins(store: ObjectStore, key: str, origins: Origins) -> None:
    body = json.dumps({str(n): letter for n, letter in origins.items()})
    store.put_bytes(origins_key(key), body.encode())


def read_origins(store: ObjectStore, key: str) -> Origins | None:
    """The map of ``key``, or None when ``key`` is not a redrive file (or is settled)."""
    try:
        body = store.get_bytes(origins_key(key))
    except FileNotFoundError:
        return None
    return {int(n): letter for n, letter in json.loads(body).items()}


def drop_origins(store: ObjectStore, key: str) -> None:
    store.delete(origins_key(key))


def _ran(letter: DeadLetter, run: int) -> bool:
    return any(e.run == run for e in letter.history)


def change(
    letter: DeadLetter,
    status: LetterStatus,
    event: str,
    now: datetime,
    *,
    run: int | None = None,
    note: str = "",
) -> DeadLetter:
    """``letter`` with ``status`` and an event saying why (kept in its history)."""
    letter.status = status
    letter.updated_at = now
    letter.history.append(LetterEvent(at=now, event=event, run=run, note=note))
    return letter


def fold(
    letters: DeadLetters, fresh: Sequence[DeadLetter], origins: Origins, run: int, now: datetime
) -> list[DeadLetter]:
    """The letters to store for the rejected records ``fresh`` of redrive run ``run``: a
    record that came from a letter updates that letter; one a person added gets its own."""
    wanted = [origins.get(x.record) for x in fresh]
    olds = {x.id: x for x in letters.get([i for i in wanted if i])}
    out = []
    for letter in fresh:
        origin = olds.get(origins.get(letter.record) or "")
        if origin is None:
            out.append(letter)
        elif not _ran(origin, run):
            origin.raw, origin.reasons = letter.raw, letter.reasons
            origin.attempts += 1
            out.append(change(origin, LetterStatus.NEW, "still_failing", now, run=run))
    return out


def settle(
    letters: DeadLetters, origins: Origins, failing: set[int], run: int, now: datetime
) -> None:
    """Close as REDRIVEN the letters whose records passed in run ``run``."""
    passed = [i for n, i in origins.items() if i is not None and n not in failing]
    for part in _batched(passed):
        done = []
        for letter in letters.get(part):
            if letter.status == LetterStatus.NEW and not _ran(letter, run):
                letter.attempts += 1
                done.append(change(letter, LetterStatus.REDRIVEN, "redriven", now, run=run))
        letters.put(done)


def _batched(items: Sequence[str]) -> Iterator[list[str]]:
    it = iter(items)
    while part := list(islice(it, PAGE)):
        yield part
