"""Plain data shared by the core and the adapters: lineage, dead letters, alerts, reports.

Nothing here does I/O. Every class is a small frozen-ish dataclass with ``to_dict`` /
``from_dict`` so adapters can store it as a row, an item or a message body.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class FileStatus(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    DUPLICATE = "DUPLICATE"


class LetterStatus(StrEnum):
    NEW = "NEW"
    REDRIVEN = "REDRIVEN"
    DISCARDED = "DISCARDED"


class AlertStatus(StrEnum):
    PENDING = "PENDING"
    SENT = "SENT"
    FAILED = "FAILED"


@dataclass(frozen=True)
class Reason:
    """One rule a record broke."""

    rule: str
    field: str | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "field": self.field, "message": self.message}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Reason:
        return cls(rule=str(d["rule"]), field=d.get("field"), message=str(d["message"]))


@dataclass
class FileRecord:
    """Lineage of one object in the inbox (seed 004's ProcessedFiles).

    ``seq`` orders files: a record from a later file replaces one with the same key from an
    earlier file, so replays and out-of-order arrivals resolve the same way everywhere.
    """

    key: str
    sha256: str
    size: int
    dataset: str
    status: FileStatus = FileStatus.IN_PROGRESS
    seq: int = 0
    rows_in: int = 0
    valid: int = 0
    rejected: int = 0
    started_at: datetime = field(default_factory=utcnow)
    finished_at: datetime | None = None
    archive_key: str | None = None
    report_key: str | None = None
    error: str | None = None
    attempts: int = 1

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["status"] = self.status.value
        d["started_at"] = self.started_at.isoformat()
        d["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FileRecord:
        return cls(
            key=str(d["key"]),
            sha256=str(d["sha256"]),
            size=int(d["size"]),
            dataset=str(d["dataset"]),
            status=FileStatus(d["status"]),
            seq=int(d.get("seq") or 0),
            rows_in=int(d.get("rows_in") or 0),
            valid=int(d.get("valid") or 0),
            rejected=int(d.get("rejected") or 0),
            started_at=datetime.fromisoformat(str(d["started_at"])),
            finished_at=datetime.fromisoformat(str(d["finished_at"]))
            if d.get("finished_at")
            else None,
            archive_key=d.get("archive_key"),
            report_key=d.get("report_key"),
            error=d.get("error"),
            attempts=int(d.get("attempts") or 1),
        )


@dataclass
class DeadLetter:
    """One rejected record with every reason it failed (seeds 001/002's DLQ message).

    ``id`` is deterministic (``<sha256 of file>:<record number>``) so that re-sending the same
    letter after a crash is a no-op. ``receipt`` is set only by queues that need it to delete
    (SQS) and is never stored.
    """

    id: str
    dataset: str
    source_file: str
    record: int
    raw: dict[str, Any]
    reasons: list[Reason]
    status: LetterStatus = LetterStatus.NEW
    created_at: datetime = field(default_factory=utcnow)
    receipt: str | None = None

    @property
    def rules(self) -> list[str]:
        return sorted({r.rule for r in self.reasons})

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "dataset": self.dataset,
            "source_file": self.source_file,
            "record": self.record,
            "raw": self.raw,
            "reasons": [r.to_dict() for r in self.reasons],
            "status": self.status.value,
            "created_at": self.created_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DeadLetter:
        return cls(
            id=str(d["id"]),
            dataset=str(d["dataset"]),
            source_file=str(d["source_file"]),
            record=int(d["record"]),
            raw=dict(d["raw"]),
            reasons=[Reason.from_dict(r) for r in d["reasons"]],
            status=LetterStatus(d.get("status", "NEW")),
            created_at=datetime.fromisoformat(str(d["created_at"]))
            if d.get("created_at")
            else utcnow(),
        )


@dataclass
class Alert:
    """A high-value sale. ``id`` is ``<dataset>:<record key>`` so a replay never alerts twice."""

    id: str
    dataset: str
    record_key: str
    amount: float
    threshold: float
    source_file: str
    message: str
    status: AlertStatus = AlertStatus.PENDING
    attempts: int = 0
    created_at: datetime = field(default_factory=utcnow)
    sent_at: datetime | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["status"] = self.status.value
        d["created_at"] = self.created_at.isoformat()
        d["sent_at"] = self.sent_at.isoformat() if self.sent_at else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Alert:
        return cls(
            id=str(d["id"]),
            dataset=str(d["dataset"]),
            record_key=str(d["record_key"]),
            amount=float(d["amount"]),
            threshold=float(d["threshold"]),
            source_file=str(d["source_file"]),
            message=str(d["message"]),
            status=AlertStatus(d.get("status", "PENDING")),
            attempts=int(d.get("attempts") or 0),
            created_at=datetime.fromisoformat(str(d["created_at"]))
            if d.get("created_at")
            else utcnow(),
            sent_at=datetime.fromisoformat(str(d["sent_at"])) if d.get("sent_at") else None,
            error=d.get("error"),
        )


@dataclass(frozen=True)
class ObjectInfo:
    """An object in the bucket."""

    key: str
    size: int
    modified: datetime


@dataclass(frozen=True)
class PendingFile:
    """A file waiting for its batch (seed 004's PendingBatches)."""

    key: str
    dataset: str
    arrived_at: datetime
