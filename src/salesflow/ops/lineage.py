"""``salesflow files`` and the dashboard's ``/files``: every file version with its lineage, and
the batch files still waiting, with when their batch runs.

One ``FileLineage`` per lineage row (one per file version). The fields are the lineage row's,
plus what a reader wants computed: the inbox key the row was made for, and the duration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from salesflow.config import Settings
from salesflow.models import FileRecord, FileStatus, PendingFile, utcnow
from salesflow.pipeline.batching import batch_due, seconds_until_due
from salesflow.ports import Backend

FIELDS = (
    "seq",
    "file",
    "dataset",
    "status",
    "rows_in",
    "valid",
    "rejected",
    "superseded",
    "started_at",
    "finished_at",
    "duration_s",
    "sha256",
    "size",
    "attempts",
    "error",
    "archive_key",
    "report_key",
    "arrived_at",
    "version",
    "source",
    "origin",
    "settled",
)
"""Every field of a ``FileLineage``, in the order tables and ``--json`` show them."""


@dataclass(frozen=True)
class FileLineage:
    """Where one file version went: its lineage row, as a user reads it."""

    seq: int
    file: str
    """The inbox key the version arrived at."""
    dataset: str
    status: str
    rows_in: int
    valid: int
    rejected: int
    superseded: int
    started_at: datetime
    finished_at: datetime | None
    duration_s: float | None
    sha256: str
    size: int
    attempts: int
    error: str | None
    archive_key: str | None
    report_key: str | None
    arrived_at: datetime | None
    version: str
    source: str
    origin: str | None
    settled: bool

    @classmethod
    def of(cls, record: FileRecord) -> FileLineage:
        # Fields newer than the first release are read with getattr, so a lineage row from
        # an older state store still shows.
        finished = record.finished_at
        duration = (finished - record.started_at).total_seconds() if finished else None
        return cls(
            seq=record.seq,
            file=record.key,
            dataset=record.dataset,
            status=record.status.value,
            rows_in=record.rows_in,
            valid=record.valid,
            rejected=record.rejected,
            superseded=int(getattr(record, "superseded", 0) or 0),
            started_at=record.started_at,
            finished_at=finished,
            duration_s=round(duration, 3) if duration is not None else None,
            sha256=record.sha256,
            size=record.size,
            attempts=int(getattr(record, "attempts", 1) or 1),
            error=record.error,
            archive_key=record.archive_key,
            report_key=record.report_key,
            arrived_at=getattr(record, "arrived_at", None),
            version=str(getattr(record, "version", "") or ""),
            source=str(getattr(record, "source", "") or ""),
            origin=getattr(record, "origin", None),
            settled=bool(getattr(record, "settled", False)),
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for name in ("started_at", "finished_at", "arrived_at"):
            value = d[name]
            d[name] = value.isoformat() if value else None
        return d

    def matches(self, key: str) -> bool:
        """Whether ``key`` names this version: its inbox key, archive key or source name, or
        a folder (ending in ``/``) holding its inbox or archive key."""
        if key.endswith("/"):
            return self.file.startswith(key) or (self.archive_key or "").startswith(key)
        return key in (self.file, self.archive_key, self.source)


def _status(value: str | FileStatus | None) -> FileStatus | None:
    if value is None or isinstance(value, FileStatus):
        return value
    try:
        return FileStatus(value.upper())
    except ValueError:
        from salesflow.errors import SalesflowError

        raise SalesflowError(
            f"unknown file status {value!r}",
            hint=f"use one of {', '.join(s.value for s in FileStatus)}",
        ) from None


def list_files(
    backend: Backend,
    *,
    key: str | None = None,
    status: str | FileStatus | None = None,
    dataset: str | None = None,
    limit: int | None = None,
) -> list[FileLineage]:
    """Lineage of every file version matching the filters, oldest first (``limit``: the
    newest ``limit``). ``key`` may name an inbox key (every version of the file), an archive
    key, a source name, or a folder ending in ``/``."""
    found = backend.tables.list_files(_status(status), dataset=dataset or None)
    rows = [FileLineage.of(r) for r in found]
    if key:
        rows = [r for r in rows if r.matches(key)]
    rows.sort(key=lambda r: r.seq)
    if limit is not None:
        rows = rows[-limit:] if limit else []
    return rows


@dataclass(frozen=True)
class WaitingFile:
    key: str
    dataset: str
    arrived_at: datetime
    waiting_s: float


@dataclass(frozen=True)
class PendingBatch:
    """The batch files waiting, and when they run.

    ``due`` is why they would run on the next tick (``count``, ``timer``), or None; ``fires_at``
    is when the batch timer fires if no new file arrives, or None while it cannot fire
    (a dataset of the batch is missing); ``missing`` names those datasets.
    """

    files: list[WaitingFile]
    due: str | None
    fires_at: datetime | None
    missing: list[str]
    min_files: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": [{**asdict(f), "arrived_at": f.arrived_at.isoformat()} for f in self.files],
            "due": self.due,
            "fires_at": self.fires_at.isoformat() if self.fires_at else None,
            "missing": self.missing,
            "min_files": self.min_files,
        }


def pending_batch(
    backend: Backend, settings: Settings, *, now: datetime | None = None
) -> PendingBatch:
    """The files waiting for their batch (seed 004's batching) and when the batch runs."""
    now = now or utcnow()
    waiting: Sequence[PendingFile] = backend.tables.list_pending()
    rules = settings.batching
    due = batch_due(waiting, rules, now)
    until = seconds_until_due(waiting, rules, now) if waiting else None
    present = {p.dataset for p in waiting}
    return PendingBatch(
        files=[
            WaitingFile(
                key=p.key,
                dataset=p.dataset,
                arrived_at=p.arrived_at,
                waiting_s=round((now - p.arrived_at).total_seconds(), 1),
            )
            for p in waiting
        ],
        due=due,
        fires_at=now + timedelta(seconds=until) if until is not None else None,
        missing=[d for d in rules.datasets if d not in present] if waiting else [],
        min_files=rules.min_files,
    )
