"""A smoke test of a deployed pipeline, end to end through its real event wiring.

Three files go to the inbox, and each must end as the pipeline promises:

- a valid one-sale file (``sale_id`` ``smoke-<run>``, 0.01 in category ``salesflow-smoke``,
  so it is easy to tell apart in the KPIs) -> ``SUCCESS`` with one valid record;
- a broken file (not JSON) -> ``FAILED``, archived to ``failed/``;
- the valid file's bytes again under another name, once the first succeeded -> ``DUPLICATE``.

Nothing here calls the pipeline: the uploads must be picked up by S3 -> EventBridge -> the
detector -> Step Functions, as any user's file would. Lineage is polled until every file is
final or ``timeout`` passes (Fargate tasks take about a minute to start).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from salesflow import layout
from salesflow.models import FileRecord, FileStatus, utcnow
from salesflow.ports import Backend
from salesflow.samples.live import sale_event

FOLDER = f"{layout.INBOX}sale_events/"


@dataclass(frozen=True)
class Check:
    """One smoke file: what it should end as, and what it did."""

    key: str
    expected: str
    got: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.expected == self.got


@dataclass
class SmokeReport:
    run: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "ok": self.ok,
            "checks": [asdict(c) | {"ok": c.ok} for c in self.checks],
        }


def smoke_sale(run: str) -> bytes:
    """The valid file: one small, recognisable sale."""
    sale = sale_event(random.Random(run), utcnow())
    sale.update(sale_id=f"smoke-{run}", price=0.01, quantity=1, category="salesflow-smoke")
    return (json.dumps(sale) + "\n").encode()


def _final(backend: Backend, key: str) -> FileRecord | None:
    """The newest version of ``key`` once it is final and, if committed, published."""
    versions = backend.tables.list_files(key=key)
    record = versions[-1] if versions else None
    if record is None or record.status == FileStatus.IN_PROGRESS:
        return None
    if record.status == FileStatus.SUCCESS and not record.settled:
        return None
    return record


def _wait(
    backend: Backend,
    keys: list[str],
    deadline: float,
    *,
    poll: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> dict[str, FileRecord | None]:
    found: dict[str, FileRecord | None] = dict.fromkeys(keys)
    while True:
        for key in keys:
            if found[key] is None:
                found[key] = _final(backend, key)
        if all(found.values()) or clock() > deadline:
            return found
        sleep(poll)


def _check(key: str, expected: FileStatus, record: FileRecord | None, **counts: int) -> Check:
    if record is None:
        return Check(key, expected.value, "TIMEOUT", "no final lineage in time")
    got = record.status.value
    wrong = {k: getattr(record, k) for k, v in counts.items() if getattr(record, k) != v}
    if got == expected.value and wrong:
        return Check(key, expected.value, f"{got} {wrong}", f"expected {counts}")
    return Check(key, expected.value, got, record.error or "")


def run_smoke(
    backend: Backend,
    *,
    timeout: float = 900.0,
    poll: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> SmokeReport:
    """Upload the three files and report how each ended."""
    run = f"{utcnow():%Y%m%dT%H%M%S}-{random.getrandbits(32):08x}"
    valid, broken, again = (f"{FOLDER}smoke-{run}{s}.json" for s in ("", "-broken", "-again"))
    body = smoke_sale(run)
    deadline = clock() + timeout
    backend.store.put_bytes(valid, body)
    backend.store.put_bytes(broken, b"this is not JSON \x00\xff smoke " + run.encode())
    first = _wait(backend, [valid, broken], deadline, poll=poll, sleep=sleep, clock=clock)
    report = SmokeReport(run)
    report.checks.append(_check(valid, FileStatus.SUCCESS, first[valid], valid=1, rejected=0))
    report.checks.append(_check(broken, FileStatus.FAILED, first[broken]))
    if report.checks[0].ok:
        backend.store.put_bytes(again, body)
        last = _wait(backend, [again], deadline, poll=poll, sleep=sleep, clock=clock)
        report.checks.append(_check(again, FileStatus.DUPLICATE, last[again]))
    else:
        report.checks.append(Check(again, FileStatus.DUPLICATE.value, "SKIPPED", "no original"))
    return report
