"""What a redrive file's publish does to the letters its records came from.

A redrive file (``redrive/<dataset>/...``) holds records taken from dead letters, corrected or
not. Beside it, ``<key>.origins.json`` maps each record number of the file to the id of the
letter it came from (or null for a record a person added). The map is written before the file
is processed and removed only after its publish has settled, so a ``kill -9`` anywhere is
finished by ``recover`` with the same outcome:

- a record that fails again updates the letter it came from (same id: new raw and reasons,
  ``attempts + 1``, a ``still_failing`` event of this run) instead of opening a second one;
- a record that passes closes its letter as REDRIVEN, with a ``redriven`` event of this run;
- a record that passes but is not stored keeps its letter open when it is a duplicate of the
  record already stored from its file version (a ``unique.key`` duplicate redriven unchanged:
  ``still_failing``), and closes it as SUPERSEDED when a newer arrival holds its key;
- a letter already settled by this run (a publish redone after a crash) is left as it is.

So, however often a redrive runs or crashes, each record that still fails has exactly one
open letter, and its history says what each run did.

A redriven record takes the identity of the record it was rejected as (``docs/design.md`` §1):
the version (``_seq``, ``_arrived``), ``_source`` and ``_record`` of the file version its letter
came from (``identities``). It cannot beat a newer arrival of its key, a re-sent source
replaces it with the source's other lines, and redriven unchanged, a duplicate is still a
duplicate.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice

from salesflow.models import DeadLetter, FileRecord, LetterEvent, LetterStatus
from salesflow.ports import DeadLetters, ObjectStore, Tables

Origins = dict[int, str | None]
PAGE = 1_000
DUPLICATE = "duplicate"
SUPERSEDED = "superseded"
Lost = dict[tuple[int, int], str]
"""``(origin seq, origin record)`` of a redriven record the commit did not store -> why:
``DUPLICATE`` (the same record of the same version is stored) or ``SUPERSEDED``."""


@dataclass(frozen=True)
class Identity:
    """What a redriven record is stored as: the record it was rejected as."""

    seq: int
    arrived: datetime
    source: str
    record: int


def identities(letters: DeadLetters, tables: Tables, origins: Origins) -> dict[int, Identity]:
    """Per record number of a redrive file, the identity of the record its letter came from
    (records a person added, or whose origin version is unknown, keep the redrive's own)."""
    numbers: dict[str, list[int]] = {}
    for n, letter_id in origins.items():
        if letter_id is not None:
            numbers.setdefault(letter_id, []).append(n)
    versions: dict[int, FileRecord | None] = {}
    out: dict[int, Identity] = {}
    for part in _batched(list(numbers)):
        for letter in letters.get(part):
            if letter.seq not in versions:
                versions[letter.seq] = tables.get_file(letter.seq)
            found = versions[letter.seq]
            if found is None or not found.source:
                continue
            identity = Identity(
                seq=found.seq,
                arrived=found.arrived_at or found.started_at,
                source=found.source,
                record=letter.record,
            )
            for n in numbers.get(letter.id, []):
                out[n] = identity
    return out


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
    letters: DeadLetters,
    origins: Origins,
    failing: set[int],
    run: int,
    now: datetime,
    lost: Lost | None = None,
) -> None:
    """Settle the letters whose records passed validation in run ``run``: REDRIVEN when the
    record was stored; still open (``still_failing``) when it duplicates the record stored from
    its own file version; SUPERSEDED when a newer arrival holds its key (``lost``)."""
    lost = lost or {}
    passed = [i for n, i in origins.items() if i is not None and n not in failing]
    for part in _batched(passed):
        done = []
        for letter in letters.get(part):
            if letter.status != LetterStatus.NEW or _ran(letter, run):
                continue
            letter.attempts += 1
            why = lost.get((letter.seq, letter.record))
            if why == DUPLICATE:
                note = (
                    f"the record of {letter.source_file} (seq {letter.seq}) with this key is "
                    "already stored and was kept; correct the key or discard the letter"
                )
                done.append(
                    change(letter, LetterStatus.NEW, "still_failing", now, run=run, note=note)
                )
            elif why == SUPERSEDED:
                note = "a newer arrival holds its key (or replaced its source); it was not stored"
                done.append(
                    change(letter, LetterStatus.SUPERSEDED, "superseded", now, run=run, note=note)
                )
            else:
                done.append(change(letter, LetterStatus.REDRIVEN, "redriven", now, run=run))
        letters.put(done)


def _batched(items: Sequence[str]) -> Iterator[list[str]]:
    it = iter(items)
    while part := list(islice(it, PAGE)):
        yield part
