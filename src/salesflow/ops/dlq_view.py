"""Reading the dead-letter queue: letters by status, dataset, source file and rule, and the
values those filters can take. ``salesflow dlq list`` and the dashboard's ``/dlq`` share it.

The store is asked to filter (``DeadLetters.find``) where it can; a queue that only lists by
status, file and rule is filtered by dataset here, before the limit is applied.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from salesflow.errors import SalesflowError
from salesflow.models import DeadLetter, LetterStatus
from salesflow.ports import Backend


def letter_status(value: str | LetterStatus | None) -> LetterStatus | None:
    """``value`` as a ``LetterStatus`` (any case); None or ``"all"`` mean every status."""
    if value is None or isinstance(value, LetterStatus):
        return value
    if not value or value.lower() == "all":
        return None
    try:
        return LetterStatus(value.upper())
    except ValueError:
        raise SalesflowError(
            f"unknown dead-letter status {value!r}",
            hint=f"use one of {', '.join(s.value for s in LetterStatus)} or all",
        ) from None


def find_letters(
    backend: Backend,
    *,
    status: str | LetterStatus | None = LetterStatus.NEW,
    dataset: str | None = None,
    source_file: str | None = None,
    rule: str | None = None,
    limit: int | None = None,
) -> list[DeadLetter]:
    """Letters matching every filter given, oldest first, at most ``limit``."""
    wanted = letter_status(status)
    store: Any = backend.dlq
    if callable(getattr(store, "find", None)):
        found: list[DeadLetter] = store.find(
            status=wanted, dataset=dataset, source_file=source_file, rule=rule, limit=limit
        )
        return found
    letters: list[DeadLetter] = store.list(
        status=wanted, source_file=source_file, rule=rule, limit=None if dataset else limit
    )
    if dataset:
        letters = [x for x in letters if x.dataset == dataset]
        if limit is not None:
            letters = letters[:limit]
    return letters


def count_letters(
    backend: Backend,
    *,
    status: str | LetterStatus | None = LetterStatus.NEW,
    dataset: str | None = None,
    source_file: str | None = None,
    rule: str | None = None,
) -> int:
    """How many letters match every filter given (counted in the store where it can)."""
    wanted = letter_status(status)
    store: Any = backend.dlq
    if _keyed(store):
        return int(store.count(status=wanted, dataset=dataset, source_file=source_file, rule=rule))
    if not (dataset or source_file or rule):
        return int(store.count(wanted))
    return len(
        find_letters(backend, status=wanted, dataset=dataset, source_file=source_file, rule=rule)
    )


def get_letter(backend: Backend, letter_id: str) -> DeadLetter | None:
    """One letter by id, or None."""
    store: Any = backend.dlq
    found = store.get([letter_id]) if _keyed(store) else store.get(letter_id)
    if isinstance(found, list):
        return found[0] if found else None
    return found if isinstance(found, DeadLetter) else None


def _keyed(store: Any) -> bool:
    """The durable ``DeadLetters`` store takes a list of ids; the older queue one id."""
    return callable(getattr(store, "find", None))


@dataclass
class Facets:
    """What the dead-letter filters can take, with how many letters have each value."""

    statuses: dict[str, int] = field(default_factory=dict)
    datasets: dict[str, int] = field(default_factory=dict)
    rules: dict[str, int] = field(default_factory=dict)
    files: dict[str, int] = field(default_factory=dict)


def facets(backend: Backend, *, status: str | LetterStatus | None = None) -> Facets:
    """The datasets, rules and source files of the letters with ``status`` (any if None),
    and letters per status; each with its count (files: how many of their records were
    rejected, from lineage, where the store counts only by dataset and rule)."""
    wanted = letter_status(status)
    store: Any = backend.dlq
    if _keyed(store) and callable(getattr(store, "counts", None)):
        return _counted(backend, store, wanted)
    every = find_letters(backend, status=None)
    out = Facets(statuses=dict(Counter(x.status.value for x in every)))
    chosen = [x for x in every if wanted is None or x.status == wanted]
    out.datasets = dict(sorted(Counter(x.dataset for x in chosen).items()))
    out.rules = dict(sorted(Counter(r for x in chosen for r in x.rules).items()))
    out.files = dict(sorted(Counter(x.source_file for x in chosen).items()))
    return out


def _counted(backend: Backend, store: Any, wanted: LetterStatus | None) -> Facets:
    """Facets from the store's own aggregates: nothing is listed letter by letter."""
    groups = [g for g in store.counts() if wanted is None or g.status == wanted]
    rules: Counter[str] = Counter()
    for group in groups:
        rules[group.rule] += group.letters
    datasets = sorted({g.dataset for g in groups})
    return Facets(
        statuses={s.value: int(store.count(status=s)) for s in LetterStatus},
        datasets={d: int(store.count(status=wanted, dataset=d)) for d in datasets},
        rules=dict(sorted(rules.items())),
        files={
            f.key: f.rejected
            for f in backend.tables.list_files()
            if f.rejected and f.dataset in datasets
        },
    )
