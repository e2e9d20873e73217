"""Working with dead letters: list, export, discard and redrive them, a page at a time.

Nothing here holds the whole queue: listings ask the store for one page and a count,
exports and bulk operations walk the store with keyset pages (``DeadLetters.find(after=)``),
redrives go in files of at most ``REDRIVE_BATCH`` records. Every change to a letter is kept
in its history. The file formats (export, corrections, redrive file) are in
``salesflow.ops.letter_files``.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from salesflow import layout
from salesflow.config import Settings
from salesflow.errors import SalesflowError
from salesflow.models import DeadLetter, FileStatus, LetterStatus, utcnow
from salesflow.ops.letter_files import (
    FORMATS,
    Correction,
    RedriveFile,
    build_redrive,
    export,
    neutralise,
    read_corrections,
    restore,
)
from salesflow.pipeline.redrive import change
from salesflow.pipeline.state import StepState
from salesflow.ports import Backend, DeadLetters, LetterCount

__all__ = [
    "FORMATS",
    "Filters",
    "RedriveFile",
    "build_redrive",
    "discard",
    "export",
    "export_letters",
    "listing",
    "neutralise",
    "read_corrections",
    "redrive",
    "restore",
    "stream",
]

PAGE = 500
REDRIVE_BATCH = 10_000


def _batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lists of at most ``size`` items, drawn lazily (``itertools.batched`` is 3.12+)."""
    it = iter(items)
    while batch := list(itertools.islice(it, size)):
        yield batch


@dataclass(frozen=True)
class Filters:
    """Which letters: every field given must match (``status=None`` is every status)."""

    status: LetterStatus | None = LetterStatus.NEW
    dataset: str | None = None
    source_file: str | None = None
    rule: str | None = None

    def kwargs(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def selects(self) -> bool:
        """Whether a subset is named (a bulk change needs one)."""
        return any(v is not None for v in (self.dataset, self.source_file, self.rule))


def stream(letters: DeadLetters, filters: Filters, *, page: int = PAGE) -> Iterator[DeadLetter]:
    """Every matching letter in position order, read ``page`` at a time. Safe while the
    caller changes the letters it was given: pages continue from a letter's position."""
    after: str | None = None
    while True:
        batch = letters.find(**filters.kwargs(), limit=page, after=after)
        yield from batch
        if len(batch) < page:
            return
        after = batch[-1].id


@dataclass
class Listing:
    """One page of letters and how many match in all."""

    letters: list[DeadLetter]
    total: int


def listing(letters: DeadLetters, filters: Filters, *, limit: int) -> Listing:
    """The first ``limit`` matching letters and the number of all that match."""
    return Listing(letters.find(**filters.kwargs(), limit=limit), letters.count(**filters.kwargs()))


def export_letters(
    letters: DeadLetters, filters: Filters, fmt: str, out: IO[str], *, spool: Path | None = None
) -> int:
    """Stream the matching letters to ``out`` as ``csv`` or ``jsonl`` (see ``letter_files``)."""
    return export(stream(letters, filters), fmt, out, spool=spool)


def counts_by_rule(counts: Sequence[LetterCount], status: LetterStatus) -> dict[str, int]:
    """Letters per rule in ``status``, from ``DeadLetters.counts``."""
    out: dict[str, int] = defaultdict(int)
    for group in counts:
        if group.status == status:
            out[group.rule] += group.letters
    return dict(out)


# ---------------------------------------------------------------- discard
@dataclass
class DiscardResult:
    discarded: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    """Letters named by id that are not open, with their status."""
    unknown: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def discard(
    letters: DeadLetters,
    *,
    ids: Sequence[str] = (),
    filters: Filters | None = None,
    reason: str = "",
    now: datetime | None = None,
) -> DiscardResult:
    """Mark open letters DISCARDED, with a history event carrying ``reason``: those named in
    ``ids``, or every NEW letter matching ``filters``. Refuses to run with no selection."""
    if not ids and (filters is None or not filters.selects):
        raise SalesflowError(
            "nothing to discard: no letter ids and no --rule, --file or --dataset given",
            hint="name the letters, e.g. salesflow dlq discard --rule email.format",
        )
    now = now or utcnow()
    result = DiscardResult()
    if ids:
        for part in _batched(dict.fromkeys(ids), PAGE):
            found = {x.id: x for x in letters.get(part)}
            result.unknown.extend(i for i in part if i not in found)
            open_ = []
            for letter in found.values():
                if letter.status == LetterStatus.NEW:
                    open_.append(
                        change(letter, LetterStatus.DISCARDED, "discarded", now, note=reason)
                    )
                else:
                    result.skipped[letter.id] = letter.status.value
            letters.put(open_)
            result.discarded += len(open_)
        return result
    assert filters is not None
    selected = dataclasses.replace(filters, status=LetterStatus.NEW)
    for page in _batched(stream(letters, selected), PAGE):
        changed = [change(x, LetterStatus.DISCARDED, "discarded", now, note=reason) for x in page]
        letters.put(changed)
        result.discarded += len(changed)
    return result


# ---------------------------------------------------------------- redrive
@dataclass
class RedriveResult:
    files: list[StepState] = field(default_factory=list)
    redriven: int = 0
    still_failing: int = 0
    superseded: int = 0
    """Records that passed but were not stored: a newer arrival holds their key."""
    added: int = 0
    """Records without a letter (added by a person) that were stored."""
    unknown: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    """Letters that are not open (already REDRIVEN, DISCARDED, SUPERSEDED), with their status."""
    blank: list[str] = field(default_factory=list)

    @property
    def failed_files(self) -> list[StepState]:
        return [s for s in self.files if s.status != FileStatus.SUCCESS]

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": [s.to_dict() for s in self.files],
            "redriven": self.redriven,
            "still_failing": self.still_failing,
            "superseded": self.superseded,
            "added": self.added,
            "unknown": self.unknown,
            "skipped": self.skipped,
            "blank": self.blank,
        }


def redrive(
    backend: Backend,
    settings: Settings,
    items: Iterable[Correction],
    *,
    dataset: str | None = None,
    now: datetime | None = None,
) -> RedriveResult:
    """Run records through the pipeline again: ``items`` are ``(letter id or None, raw)``,
    the raw as stored or corrected by a person. One file per dataset and ``REDRIVE_BATCH``
    records. What passes is stored and its letter marked REDRIVEN by that file's run; what
    fails again keeps its letter (and id); records with no letter go to ``dataset``."""
    from salesflow.pipeline import redrive as redrive_files
    from salesflow.pipeline.steps import process_file, recover

    result = RedriveResult()
    recover(backend, settings)  # a redrive killed earlier is finished first, letters and all
    stamp = (now or utcnow()).strftime("%Y%m%dT%H%M%S%f")
    counter = itertools.count(1)
    for chunk in _batched(items, REDRIVE_BATCH):
        for name, group in _by_dataset(backend.letters, chunk, dataset, result).items():
            file = build_redrive(name, group)
            result.blank.extend(file.blank)
            if not file.origins:
                continue
            key = layout.check_key(f"{layout.REDRIVE}{name}/{stamp}-{next(counter)}.{file.ext}")
            redrive_files.write_origins(backend.store, key, file.origins)
            backend.store.put_bytes(key, file.body)
            state = process_file(
                backend, settings, key, dataset=name, dedup=False, origin="redrive"
            )
            result.files.append(state)
            if state.status == FileStatus.SUCCESS:
                _count(backend.letters, file, state, result)
            else:
                redrive_files.drop_origins(backend.store, key)
    return result


def _by_dataset(
    letters: DeadLetters,
    chunk: Collection[Correction],
    dataset: str | None,
    result: RedriveResult,
) -> dict[str, list[Correction]]:
    found = {x.id: x for x in letters.get([i for i, _raw in chunk if i is not None])}
    groups: dict[str, list[Correction]] = defaultdict(list)
    for letter_id, raw in chunk:
        if letter_id is None:
            if dataset is None:
                raise SalesflowError(
                    "a record has no _letter_id, so its dataset is unknown",
                    hint="say which dataset new records belong to with --dataset",
                )
            groups[dataset].append((None, raw))
            continue
        letter = found.get(letter_id)
        if letter is None:
            result.unknown.append(letter_id)
        elif letter.status != LetterStatus.NEW:
            result.skipped[letter_id] = letter.status.value
        else:
            groups[letter.dataset].append((letter_id, raw))
    return dict(sorted(groups.items()))


def _count(
    letters: DeadLetters, file: RedriveFile, state: StepState, result: RedriveResult
) -> None:
    """How the letters of a settled redrive file ended: REDRIVEN (stored), SUPERSEDED (a newer
    arrival holds the key) or NEW (still failing, or a duplicate of the record stored from
    its own file version); and how many records without a letter were stored."""
    ids = [i for i in file.origins.values() if i is not None]
    redriven = 0
    for part in _batched(ids, PAGE):
        for letter in letters.get(part):
            if letter.status == LetterStatus.REDRIVEN:
                redriven += 1
            elif letter.status == LetterStatus.SUPERSEDED:
                result.superseded += 1
            else:
                result.still_failing += 1
    result.redriven += redriven
    result.added += max(0, state.valid - state.superseded - redriven)
