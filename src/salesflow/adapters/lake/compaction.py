"""Which fragments to merge, so the count per month stays bounded without a manual compact.

Small fragments (fewer than ``target_rows`` rows) are sorted into tiers by size: tier 0 holds
fragments under ``base`` rows, tier ``t`` those of ``base * fanout**(t-1)`` up to
``base * fanout**t`` rows. When a tier of a month reaches ``fanout`` fragments, it is merged
with the smaller tiers into one fragment (and with the next tier too, if the merged fragment
would fill that one). A month therefore holds fewer than ``fanout`` fragments per tier: with
the defaults (8, 8,192 and 1M rows) at most 28 small ones, whatever the number of commits,
and a row is rewritten a few times in its life (within tier 0, which is cheap to rewrite,
more often). A manual ``compact`` merges all the small fragments of each month.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from salesflow.models import Fragment
from salesflow.ports import Compaction

__all__ = ["Compaction", "plan", "plan_all", "tier"]


def tier(rows: int, fanout: int, base: int) -> int:
    """The size tier of a fragment of ``rows`` rows.

    >>> [tier(n, 8, 100) for n in (1, 99, 100, 799, 800, 100_000)]
    [0, 0, 1, 1, 2, 4]
    """
    level, bound = 0, base
    while rows >= bound:
        level += 1
        bound *= fanout
    return level


def by_month(fragments: Sequence[Fragment]) -> dict[tuple[int, int], list[Fragment]]:
    months: dict[tuple[int, int], list[Fragment]] = defaultdict(list)
    for fragment in fragments:
        months[(fragment.year, fragment.month)].append(fragment)
    return months


def plan(
    fragments: Sequence[Fragment], *, target_rows: int, fanout: int, base: int
) -> list[list[Fragment]]:
    """Groups of visible fragments to merge, one group per month that needs it."""
    groups = []
    for _, month in sorted(by_month(fragments).items()):
        group = _tiered([f for f in month if f.rows < target_rows], fanout, base)
        if len(group) >= 2:
            groups.append(group)
    return groups


def plan_all(fragments: Sequence[Fragment], *, target_rows: int) -> list[list[Fragment]]:
    """Every month's small fragments, when a month has more than one (manual compaction)."""
    groups = []
    for _, month in sorted(by_month(fragments).items()):
        small = [f for f in month if f.rows < target_rows]
        if len(small) >= 2:
            groups.append(small)
    return groups


def _tiered(small: list[Fragment], fanout: int, base: int) -> list[Fragment]:
    counts: dict[int, int] = defaultdict(int)
    for fragment in small:
        counts[tier(fragment.rows, fanout, base)] += 1
    full = [t for t, n in counts.items() if n >= fanout]
    if not full:
        return []
    top = min(full)
    while True:
        group = [f for f in small if tier(f.rows, fanout, base) <= top]
        merged = tier(sum(f.rows for f in group), fanout, base)
        if merged > top and counts.get(merged, 0) + 1 >= fanout:
            top = merged
            continue
        return group
