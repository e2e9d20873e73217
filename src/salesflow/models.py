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
    """Where a file version stands. Only IN_PROGRESS is not final."""

    IN_PROGRESS = "IN_PROGRESS"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    DUPLICATE = "DUPLICATE"
    CHANGED = "CHANGED"
    """The object changed while this version was processed: nothing of it was stored, and
    its new content is processed as a new version."""


class LetterStatus(StrEnum):
    """Where a dead letter stands. NEW is the only open state; the others are terminal and
    keep their reason in the letter's history."""

    NEW = "NEW"
    REDRIVEN = "REDRIVEN"
    DISCARDED = "DISCARDED"
    SUPERSEDED = "SUPERSEDED"
    """A later version of the letter's source file replaced that file's records, or a newer
    arrival holds the record's key: found when it was redriven, and not stored."""


class AlertStatus(StrEnum):
    """Where one alert (one sale, one sink) stands. PENDING and SENDING are open."""

    PENDING = "PENDING"
    """Waiting for its next attempt, due at ``next_attempt_at`` (None: at once)."""
    SENDING = "SENDING"
    """Claimed by one process for one attempt until ``next_attempt_at`` (a lease: if that
    process dies, the alert is due again then)."""
    SENT = "SENT"
    FAILED = "FAILED"
    """Given up after ``alerts.retry_for_seconds`` or ``alerts.max_attempts``;
    ``salesflow alerts retry --failed`` sends it again."""


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
    version: str = ""
    """The object's version token: what makes this arrival at ``key`` unique."""
    arrived_at: datetime | None = None
    """When the object arrived (its modified time); orders record versions."""
    source: str = ""
    """The file's name below ``inbox/<dataset>/``: versions of one source replace each other."""
    origin: str | None = None
    """``None`` for an upload; ``"redrive"`` or ``"replay:<seq>"`` otherwise."""
    commit: int | None = None
    """The lake commit this file became visible in (its own ``seq`` unless grouped)."""
    days: list[str] = field(default_factory=list)
    """ISO business days the file touched (new and replaced records), for the KPI refresh."""
    superseded: int = 0
    """Valid records not stored because a newer arrival already holds their key."""
    settled: bool = False
    """All post-commit work is done: lake published, letters, alerts, KPIs, archive."""

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["status"] = self.status.value
        d["started_at"] = self.started_at.isoformat()
        d["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        d["arrived_at"] = self.arrived_at.isoformat() if self.arrived_at else None
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
            attempts=int(d["attempts"]) if d.get("attempts") is not None else 1,
            version=str(d.get("version") or ""),
            arrived_at=_time(d.get("arrived_at")),
            source=str(d.get("source") or ""),
            origin=d.get("origin"),
            commit=int(d["commit"]) if d.get("commit") is not None else None,
            days=[str(x) for x in d.get("days") or []],
            superseded=int(d.get("superseded") or 0),
            settled=bool(d.get("settled")),
        )

    @property
    def arrival(self) -> tuple[datetime, int]:
        """The order of versions: arrival time, then ``seq``."""
        return (self.arrived_at or self.started_at, self.seq)


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(str(value)) if value else None


@dataclass(frozen=True)
class LetterEvent:
    """One thing that happened to a dead letter, kept in its history.

    ``event`` is one of ``rejected``, ``still_failing``, ``redriven``, ``discarded``,
    ``superseded``; ``run`` is the ``seq`` of the file version (upload or redrive) that did it.
    """

    at: datetime
    event: str
    run: int | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "event": self.event, "run": self.run, "note": self.note}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LetterEvent:
        run = d.get("run")
        return cls(
            at=datetime.fromisoformat(str(d["at"])),
            event=str(d["event"]),
            run=int(run) if run is not None else None,
            note=str(d.get("note") or ""),
        )


@dataclass
class DeadLetter:
    """One rejected record with every reason it failed (seeds 001/002's DLQ message).

    ``id`` is ``<origin seq>:<record number>``: the file version the record was first rejected
    in, and its position there. A redrive keeps the id, so a record has exactly one letter
    however often it is redriven; ``history`` says what happened to it and ``attempts`` how
    often it was validated. ``receipt`` is set only by queues that need it to delete (SQS)
    and is never stored.
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
    seq: int = 0
    """The origin file version's ``seq``."""
    updated_at: datetime | None = None
    attempts: int = 1
    history: list[LetterEvent] = field(default_factory=list)

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
            "seq": self.seq,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "attempts": self.attempts,
            "history": [e.to_dict() for e in self.history],
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
            seq=int(d.get("seq") or 0),
            updated_at=_time(d.get("updated_at")),
            attempts=int(d.get("attempts") or 1),
            history=[LetterEvent.from_dict(e) for e in d.get("history") or []],
        )


@dataclass
class Alert:
    """A high-value sale for one sink. ``id`` is ``<dataset>:<record key>@<sink>``, so a replay
    never alerts twice and each sink is retried on its own.

    ``attempts`` counts delivery attempts (each is counted before it starts, so a kill -9
    mid-send still counts), ``error`` is the last attempt's error, and ``next_attempt_at``
    is when the alert is due again (None until its first failed attempt).
    """

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
    next_attempt_at: datetime | None = None

    @property
    def sink(self) -> str:
        """The sink this alert is for: the part of its id after the last ``@``."""
        return self.id.rpartition("@")[2]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["amount"] = round(self.amount, 2)  # cents: a float product is not (22.200000000000003)
        d["status"] = self.status.value
        d["created_at"] = self.created_at.isoformat()
        d["sent_at"] = self.sent_at.isoformat() if self.sent_at else None
        d["next_attempt_at"] = self.next_attempt_at.isoformat() if self.next_attempt_at else None
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
            next_attempt_at=_time(d.get("next_attempt_at")),
        )


@dataclass(frozen=True)
class ObjectInfo:
    """An object in the bucket. ``version`` tells two uploads to the same key apart (S3
    ``VersionId`` or ``ETag``+time; locally ``mtime_ns-size-inode``)."""

    key: str
    size: int
    modified: datetime
    version: str = ""


@dataclass(frozen=True)
class Fragment:
    """One Parquet file of the lake, as the catalog knows it.

    It is visible iff commit ``created_by`` is committed and ``retired_by`` (if set) is not.
    Until ``published`` it lives at ``layout.staging_key(path)``. The zone maps
    (``min_key``/``max_key`` on ``_key``, ``min_seq``/``max_seq`` on the rows' ``_seq``,
    ``min_source``/``max_source`` on ``_source``) let a lookup skip fragments that cannot hold
    what it looks for. Keys are ordered shorter first, then by their UTF-8 bytes, so integer
    ids order numerically and a file of new ids misses every older fragment.
    """

    dataset: str
    path: str
    year: int
    month: int
    rows: int
    min_key: str | None
    max_key: str | None
    min_seq: int
    max_seq: int
    created_by: int
    retired_by: int | None = None
    published: bool = False
    bytes: int = 0
    min_source: str | None = None
    max_source: str | None = None


@dataclass(frozen=True)
class PendingFile:
    """A file waiting for its batch (seed 004's PendingBatches)."""

    key: str
    dataset: str
    arrived_at: datetime
