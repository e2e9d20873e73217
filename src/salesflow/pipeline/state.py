"""The small, JSON-safe state one file carries between steps (and Step Functions states)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from salesflow.models import FileRecord, FileStatus


@dataclass
class StepState:
    """Where one file is in the pipeline.

    ``key`` is the object's inbox key; ``lineage_key`` is its row in processed_files (the
    same key, or ``<key>#<seq>`` when a different file was already processed under that key).
    """

    key: str
    dataset: str
    lineage_key: str
    seq: int
    sha256: str
    status: str
    rows_in: int = 0
    valid: int = 0
    rejected: int = 0
    alerts: int = 0
    days: list[str] = field(default_factory=list)
    archive_key: str | None = None
    report_key: str | None = None
    error: str | None = None

    @property
    def done(self) -> bool:
        """True once the file needs no more steps (DUPLICATE, SUCCESS or FAILED)."""
        return self.status != FileStatus.IN_PROGRESS

    @property
    def day_dates(self) -> list[date]:
        return [date.fromisoformat(d) for d in self.days]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StepState:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @classmethod
    def of(cls, record: FileRecord, key: str) -> StepState:
        return cls(
            key=key,
            dataset=record.dataset,
            lineage_key=record.key,
            seq=record.seq,
            sha256=record.sha256,
            status=record.status.value,
            rows_in=record.rows_in,
            valid=record.valid,
            rejected=record.rejected,
            archive_key=record.archive_key,
            report_key=record.report_key,
            error=record.error,
        )


def lineage_key(key: str, seq: int, *, taken: bool) -> str:
    """The lineage row for a new arrival at ``key``: ``key``, or ``key#seq`` if already taken."""
    return f"{key}#{seq}" if taken else key


def inbox_key_of(record: FileRecord) -> str:
    """The inbox key a lineage row was made for (undoes ``lineage_key``)."""
    head, sep, tail = record.key.rpartition("#")
    if sep and tail == str(record.seq):
        return head
    return record.key
