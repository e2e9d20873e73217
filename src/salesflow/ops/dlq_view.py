"""Reading the dead-letter queue: letters by status, dataset, source file and rule, and the
values those filters can take. ``salesflow dlq list`` and the dashboard's ``/dlq`` share it.

Filtering and counting happen in the store (``DeadLetters.find``, ``count``, ``counts``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

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
    return backend.letters.find(
        status=letter_status(status),
        dataset=dataset,
        source_file=source_file,
        rule=rule,
        limit=limit,
    )


def count_letters(
    backend: Backend,
    *,
    status: str | LetterStatus | None = LetterStatus.NEW,
    dataset: str | None = None,
    source_file: str | None = None,
    rule: str | None = None,
) -> int:
    """How many letters match every filter given (counted in the store)."""
    return backend.letters.count(
        status=letter_status(status), dataset=dataset, source_file=source_file, rule=rule
    )


def get_letter(backend: Backend, letter_id: str) -> DeadLetter | None:
    """One letter by id, or None."""
    found = backend.letters.get([letter_id])
    return found[0] if found else None


@dataclass
class Facets:
    """What the dead-letter filters can take, with how many letters have each value."""

    statuses: dict[str, int] = field(default_factory=dict)
    datasets: dict[str, int] = field(default_factory=dict)
    rules: dict[str, int] = field(default_factory=dict)
    files: dict[str, int] = field(default_factory=dict)


def facets(backend: Backend, *, status: str | LetterStatus | None = None) -> Facets:
    """The datasets, rules and source files of the letters with ``status`` (any if None),
    and letters per status; each with its count, from the store's own aggregates (nothing is
    listed letter by letter; files: how many of their records were rejected, from lineage)."""
    wanted = letter_status(status)
    store = backend.letters
    groups = [g for g in store.counts() if wanted is None or g.status == wanted]
    rules: Counter[str] = Counter()
    for group in groups:
        rules[group.rule] += group.letters
    datasets = sorted({g.dataset for g in groups})
    return Facets(
        statuses={s.value: store.count(status=s) for s in LetterStatus},
        datasets={d: store.count(status=wanted, dataset=d) for d in datasets},
        rules=dict(sorted(rules.items())),
        files={
            f.key: f.rejected
            for f in backend.tables.list_files()
            if f.rejected and f.dataset in datasets
        },
    )
