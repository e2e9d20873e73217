"""The small, JSON-safe state one file version carries between steps (and Step Functions
states). The lineage row (``Tables.get_file(seq)``) is the truth; this is a summary of it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from salesflow.models import FileRecord, FileStatus


@dataclass
class StepState:
    """Where one file version is in the pipeline: its inbox ``key`` and lineage ``seq``."""

    key: str
    dataset: str
    seq: int
    sha256: str
    status: str
    rows_in: int = 0
    valid: int = 0
    rejected: int = 0
    superseded: int = 0
    alerts: int = 0
    days: list[str] = field(default_factory=list)
    archive_key: str | None = None
    report_key: str | None = None
    error: str | None = None
    attempts: int = 1

    @property
    def done(self) -> bool:
        """True once the version needs no more processing (it is no longer IN_PROGRESS)."""
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
    def of(cls, record: FileRecord) -> StepState:
        return cls(
            key=record.key,
            dataset=record.dataset,
            seq=record.seq,
            sha256=record.sha256,
            status=record.status.value,
            rows_in=record.rows_in,
            valid=record.valid,
            rejected=record.rejected,
            superseded=record.superseded,
            days=list(record.days),
            archive_key=record.archive_key,
            report_key=record.report_key,
            error=record.error,
            attempts=record.attempts,
        )
