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
from salesflow.models import DeadLetter, FileStatus, LetterEvent, LetterStatus, utcnow
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


def _change(
    letter: DeadLetter,
    status: LetterStatus,
    event: str,
    now: datetime,
    *,
    run: int | None = None,
    note: str = "",
) -> DeadLetter:
    letter.status = status
    letter.updated_at = now
    letter.history.append(LetterEvent(at=now, event=event, run=run, note=note))
    return letter


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
                        _change(letter, LetterStatus.DISCARDED, "discarded", now, note=reason)
                    )
                else:
                    result.skipped[letter.id] = letter.status.value
            letters.put(open_)
            result.discarded += len(open_)
        return result
    assert filters is not None
    selected = dataclasses.replace(filters, status=LetterStatus.NEW)
    for page in _batched(stream(letters, selected), PAGE):
        changed = [_change(x, LetterStatus.DISCARDED, "discarded", now, note=reason) for x in page]
        letters.put(changed)
        result.discarded += len(changed)
    return result


# ---------------------------------------------------------------- redrive
@dataclass
class RedriveResult:
    files: list[StepState] = field(default_factory=list)
    redriven: int = 0
    still_failing: int = 0
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
            "added": self.added,
            "unknown": self.unknown,
            "skipped": self.skipped,
            "blank": self.blank,
        }


class _Folding:
    """The letters port as a redrive file's processing sees it: a record that fails again
    updates the letter it came from (same id: new raw and reasons, attempts + 1, a
    ``still_failing`` event) instead of opening a letter of the redrive file.

    TODO(lead): this is what ``pipeline.process_file(..., origins=...)`` does once the
    pipeline publishes letters after its commit; then drop this class and pass ``origins``.
    """

    def __init__(self, inner: DeadLetters, origins: dict[int, str | None]) -> None:
        self.inner = inner
        self.origins = origins
        self.failing: set[int] = set()

    def put(self, letters: Sequence[DeadLetter]) -> None:
        wanted = [i for i in (self.origins.get(x.record) for x in letters) if i]
        olds = {x.id: x for x in self.inner.get(wanted)}
        out = []
        for letter in letters:
            self.failing.add(letter.record)
            origin = olds.get(self.origins.get(letter.record) or "")
            if origin is None:
                out.append(letter)  # a record a person added: a letter of its own
                continue
            origin.raw, origin.reasons = letter.raw, letter.reasons
            origin.attempts += 1
            out.append(
                _change(
                    origin, LetterStatus.NEW, "still_failing", letter.created_at, run=letter.seq
                )
            )
        self.inner.put(out)

    def get(self, ids: Sequence[str]) -> list[DeadLetter]:
        return self.inner.get(ids)

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
        return self.inner.find(
            status=status,
            dataset=dataset,
            source_file=source_file,
            rule=rule,
            seqs=seqs,
            limit=limit,
            after=after,
        )

    def count(
        self,
        *,
        status: LetterStatus | None = None,
        dataset: str | None = None,
        source_file: str | None = None,
        rule: str | None = None,
    ) -> int:
        return self.inner.count(status=status, dataset=dataset, source_file=source_file, rule=rule)

    def counts(self) -> list[LetterCount]:
        return self.inner.counts()


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
    from salesflow.pipeline.steps import process_file

    result = RedriveResult()
    stamp = (now or utcnow()).strftime("%Y%m%dT%H%M%S%f")
    counter = itertools.count(1)
    for chunk in _batched(items, REDRIVE_BATCH):
        for name, group in _by_dataset(backend.letters, chunk, dataset, result).items():
            file = build_redrive(name, group)
            result.blank.extend(file.blank)
            if not file.origins:
                continue
            key = layout.check_key(f"{layout.REDRIVE}{name}/{stamp}-{next(counter)}.{file.ext}")
            backend.store.put_bytes(key, file.body)
            folding = _Folding(backend.letters, file.origins)
            state = process_file(
                dataclasses.replace(backend, letters=folding),
                settings,
                key,
                dataset=name,
                dedup=False,
                origin="redrive",
            )
            result.files.append(state)
            if state.status == FileStatus.SUCCESS:
                _settle(backend.letters, file, folding.failing, state.seq, result)
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


def _settle(
    letters: DeadLetters, file: RedriveFile, failing: set[int], run: int, result: RedriveResult
) -> None:
    """After a redrive file succeeded: letters of records that passed are REDRIVEN."""
    now = utcnow()
    passed = [i for n, i in file.origins.items() if n not in failing and i is not None]
    result.added += sum(1 for n, i in file.origins.items() if i is None and n not in failing)
    result.still_failing += sum(1 for n in failing if file.origins.get(n) is not None)
    for part in _batched(passed, PAGE):
        done = [
            _change(x, LetterStatus.REDRIVEN, "redriven", now, run=run) for x in letters.get(part)
        ]
        for letter in done:
            letter.attempts += 1
        letters.put(done)
        result.redriven += len(done)
