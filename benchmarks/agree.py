"""Do the approaches agree? Counts exactly, KPIs to the stated tolerance.

Three implementations of the same rules and KPIs that agree on millions of generated rows
(with ~1% faults of every kind) are good evidence that each is right; the benchmark refuses
to publish timings of approaches that do not.
"""

from __future__ import annotations

from typing import Any

REVENUE_RTOL = 1e-6
RATE_ATOL = 1e-12
EXACT = ("items", "orders", "returned")
COUNTS = ("rows_in", "valid", "rejected")


class Disagreement(AssertionError):
    """Two approaches gave different counts or KPIs (listed one per line)."""


def _close(a: float, b: float, rtol: float) -> bool:
    return abs(a - b) <= rtol * max(abs(a), abs(b)) or a == b


def _kpis(
    name: str, base: list[dict[str, Any]], other: list[dict[str, Any]], keys: list[str], label: str
) -> list[str]:
    def key(row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(row[k] for k in keys)

    left, right = {key(r): r for r in base}, {key(r): r for r in other}
    problems = []
    if left.keys() != right.keys():
        only_l, only_r = sorted(left.keys() - right.keys()), sorted(right.keys() - left.keys())
        problems.append(
            f"{name}: {label} rows differ: only in base {only_l[:3]}, only in {label} {only_r[:3]}"
        )
    for k in sorted(left.keys() & right.keys()):
        a, b = left[k], right[k]
        bad = [c for c in EXACT if a[c] != b[c]]
        if not _close(a["revenue"], b["revenue"], REVENUE_RTOL):
            bad.append("revenue")
        if abs(a["return_rate"] - b["return_rate"]) > RATE_ATOL:
            bad.append("return_rate")
        if bad:
            shown = {c: (a[c], b[c]) for c in bad}
            problems.append(f"{name}: {label} {k}: {shown}")
    return problems


def disagreements(
    base_name: str, base: dict[str, Any], name: str, other: dict[str, Any]
) -> list[str]:
    """Every difference between two outcomes that the benchmark does not tolerate."""
    problems = []
    for dataset, counts in base["files"].items():
        theirs = other["files"].get(dataset)
        if theirs is None:
            problems.append(f"{name}: no result for {dataset}")
            continue
        for c in COUNTS:
            if counts[c] != theirs[c]:
                problems.append(f"{name}: {dataset} {c} {theirs[c]} != {base_name} {counts[c]}")
    label = f"{name} vs {base_name}"
    problems += _kpis(name, base["order_kpis"], other["order_kpis"], ["day"], f"order_kpis {label}")
    problems += _kpis(
        name,
        base["category_kpis"],
        other["category_kpis"],
        ["category", "day"],
        f"category_kpis {label}",
    )
    return problems


def rule_differences(base: dict[str, Any], other: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per dataset, rules whose counts differ (informational: the same record may be
    rejected for a differently named reason without changing valid/rejected)."""
    out: dict[str, dict[str, Any]] = {}
    for dataset, counts in base["files"].items():
        a, b = counts.get("rules", {}), other["files"].get(dataset, {}).get("rules", {})
        diff = {
            r: (a.get(r, 0), b.get(r, 0)) for r in set(a) | set(b) if a.get(r, 0) != b.get(r, 0)
        }
        if diff:
            out[dataset] = diff
    return out


def check(outcomes: dict[str, dict[str, Any]]) -> None:
    """Raise :class:`Disagreement` unless every outcome agrees with the first one."""
    names = list(outcomes)
    if len(names) < 2:
        return
    base_name = names[0]
    problems = []
    for name in names[1:]:
        problems += disagreements(base_name, outcomes[base_name], name, outcomes[name])
    if problems:
        raise Disagreement("approaches disagree:\n  " + "\n  ".join(problems[:40]))
