"""The narrow interfaces between the core and the outside world.

The core (datasets, validation, kpis, pipeline) talks only to these Protocols. Each backend
implements them in ``salesflow.adapters``: a local folder, SQLite and Parquet on one machine;
S3, DynamoDB, SQS and SNS on AWS. If the core needs something a port cannot give, the port is
missing a method: add it here and to every adapter, never reach past it.

Conventions every adapter keeps:
- Keys are validated with ``salesflow.layout.check_key`` before any I/O.
- Every write is idempotent: repeating it after a crash leaves the same state.
- SDK errors are mapped to ``TransientError`` (retry) or ``TerminalError`` with ``raise ... from``.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from salesflow.models import (
    Alert,
    AlertStatus,
    DeadLetter,
    FileRecord,
    FileStatus,
    Fragment,
    LetterStatus,
    ObjectInfo,
    PendingFile,
)

if TYPE_CHECKING:  # the light Lambda handlers import the ports without Polars
    import polars as pl


@runtime_checkable
class ObjectStore(Protocol):
    """The bucket: ``inbox/``, ``processed/``, ``failed/``, ``lake/``, ``reports/``."""

    def put_bytes(self, key: str, data: bytes) -> None:
        """Write ``data`` at ``key``; readers see the old object or the new one, never a part."""

    def put_file(self, key: str, path: Path, *, move: bool = False) -> None:
        """Upload a local file to ``key`` (atomically visible, like ``put_bytes``).

        With ``move``, ``path`` is a temporary file the caller gives away: the local store
        renames it into place (no copy of a 200 MB fragment), the others upload it and remove
        it. Either way it is gone once this returns.
        """

    def get_bytes(self, key: str) -> bytes:
        """The whole object. Raises ``FileNotFoundError`` if it does not exist."""

    def fetch(self, key: str) -> AbstractContextManager[Path]:
        """A local path to read the object from, valid inside the ``with`` block.

        The local store yields the file itself; S3 downloads to a temporary file. Big files
        are read from this path by Polars in bounded memory.
        """

    def exists(self, key: str) -> bool:
        """Whether an object is stored at ``key``."""

    def stat(self, key: str) -> ObjectInfo | None:
        """Size, modified time and version token of the object at ``key``, or None."""

    def list(self, prefix: str) -> list[ObjectInfo]:
        """Every object whose key starts with ``prefix``, sorted by key."""

    def move(self, src: str, dst: str) -> None:
        """Copy then delete. Idempotent: if ``src`` is gone and ``dst`` exists, do nothing."""

    def delete(self, key: str) -> None:
        """Remove ``key``; deleting a missing key is not an error."""


Kind = Literal["str", "int", "float", "date"]
"""What an aggregate column holds: text, a 64-bit integer, a float, or a calendar date."""
KINDS: tuple[Kind, ...] = ("str", "int", "float", "date")


@dataclass(frozen=True)
class AggregateSpec:
    """Shape of one aggregate table (totals, KPIs): its name, key columns and column kinds.

    Plain data, so a reader that needs no frame (``salesflow kpis``) gets the shape without
    importing Polars; ``schema`` gives the Polars types for those that do.
    """

    name: str
    key: tuple[str, ...]
    kinds: Mapping[str, Kind] = field(hash=False)

    def __post_init__(self) -> None:
        unknown = {c: k for c, k in self.kinds.items() if k not in KINDS}
        if unknown:
            raise ValueError(f"aggregate {self.name!r}: unknown column kinds {unknown}")

    @property
    def columns(self) -> list[str]:
        return list(self.kinds)

    @functools.cached_property
    def schema(self) -> dict[str, pl.DataType]:
        import polars as pl

        types = {"str": pl.String, "int": pl.Int64, "float": pl.Float64, "date": pl.Date}
        return {column: types[kind]() for column, kind in self.kinds.items()}


@runtime_checkable
class RecordStore(Protocol):
    """The read side of the record store (the ``Lake``): what engines and reports need.

    Frames carry the dataset's typed columns plus ``_key`` (Utf8, the record key), ``_seq``
    (Int64, the lineage ``seq`` of the file version that wrote it), ``_day`` (Date, the
    business day; partitions the lake) and ``_arrived``. Exactly one row per key is visible.
    """

    def read(
        self,
        dataset: str,
        *,
        days: Collection[date] | None = None,
        columns: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        """The current version of every record, optionally only those whose ``_day`` is in
        ``days``. Always includes ``_key``, ``_seq``, ``_day``, ``_arrived``."""


@runtime_checkable
class Tables(Protocol):
    """Small state tables: lineage, pending batches, aggregates, alerts."""

    # lineage (seed 004's ProcessedFiles): one row per file version, keyed by ``seq``
    def next_seq(self) -> int:
        """A new, strictly increasing number (file versions and lake commits share it)."""

    def claim(self, record: FileRecord) -> tuple[FileRecord, bool]:
        """Insert ``record`` unless a row for the same ``(key, version)`` exists. Returns the
        stored row and whether this call inserted it: the conditional write that keeps two
        processes from processing one file version twice."""

    def get_file(self, seq: int) -> FileRecord | None:
        """The lineage row of file version ``seq``."""

    def find_version(self, key: str, version: str) -> FileRecord | None:
        """The lineage row claimed for the object version ``version`` at ``key``, if any
        (a strongly consistent read: ``claim`` relies on it)."""

    def find_by_sha(
        self, sha256: str, status: FileStatus = FileStatus.SUCCESS
    ) -> FileRecord | None:
        """The oldest file version with this content hash and status, if any (dedup)."""

    def update_file(self, record: FileRecord, *, expect: FileStatus | None = None) -> bool:
        """Store row ``record.seq`` (it exists). With ``expect``, only if its stored status is
        ``expect``; returns whether it was written (a conditional write on AWS)."""

    def commit_files(self, records: Sequence[FileRecord], *, commit: int) -> bool:
        """The commit point of the pipeline, in one transaction: every row of ``records``
        (each still IN_PROGRESS) stored as given, and the commit marker ``commit`` (see
        ``Catalog``). Writes nothing and returns False if any row is no longer IN_PROGRESS."""

    def apply_totals(self, commit: int, deltas: pl.DataFrame) -> None:
        """Add ``deltas`` (the ``TOTALS`` columns: what commit ``commit`` adds to each group,
        negative for what it replaced) to the stored totals, exactly once however often it is
        called for the same commit (publish retries it after a crash). A group whose
        ``records`` fall to zero is removed."""

    def list_files(
        self,
        status: FileStatus | None = None,
        *,
        dataset: str | None = None,
        key: str | None = None,
        source: str | None = None,
        settled: bool | None = None,
        limit: int | None = None,
    ) -> list[FileRecord]:
        """Lineage rows matching every filter given, oldest (lowest ``seq``) first; with
        ``limit``, the newest ``limit`` of them."""

    # batching (seed 004's PendingBatches)
    def add_pending(self, pending: PendingFile) -> None:
        """Remember a file waiting for its batch (idempotent on key)."""

    def list_pending(self) -> list[PendingFile]:
        """Files waiting, oldest first."""

    def remove_pending(self, keys: Sequence[str]) -> None:
        """Forget files that were handed to a batch."""

    # aggregates (totals, category_kpis, order_kpis)
    def read_aggregates(
        self, spec: AggregateSpec, *, column: str | None = None, values: Sequence[Any] | None = None
    ) -> pl.DataFrame:
        """Rows of the aggregate, optionally only those whose ``column`` is in ``values``.
        Returns a frame with exactly ``spec.schema`` (empty if nothing stored)."""

    def aggregate_rows(
        self, spec: AggregateSpec, *, column: str | None = None, values: Sequence[Any] | None = None
    ) -> list[dict[str, Any]]:
        """``read_aggregates`` as plain rows (``date`` for a date column), in no set order:
        for readers that print or filter a few thousand rows and need no frame."""

    def replace_aggregates(
        self, spec: AggregateSpec, *, delete: pl.DataFrame, upsert: pl.DataFrame
    ) -> None:
        """In one step where the backend allows: delete the rows whose key is in ``delete``
        (columns ``spec.key``), then upsert ``upsert`` (columns ``spec.schema``)."""

    # alerts: one row per sale and sink (see ``pipeline.delivery``)
    def add_alerts(self, alerts: Sequence[Alert]) -> list[Alert]:
        """Insert alerts not seen before (by ``id``); return only the new ones."""

    def list_alerts(
        self,
        status: AlertStatus | str | None = None,
        *,
        dataset: str | None = None,
        source_file: str | None = None,
        limit: int | None = None,
    ) -> list[Alert]:
        """Alerts matching every filter given, oldest first; with ``limit``, the newest
        ``limit`` of them. By status and by source file without reading every alert where
        the store can (SQLite indexes; DynamoDB needs a GSI on status, see dynamodb.py)."""

    def count_alerts(
        self,
        status: AlertStatus | str | None = None,
        *,
        dataset: str | None = None,
        source_file: str | None = None,
    ) -> int:
        """How many alerts match, counted in the store."""

    def get_alerts(self, ids: Sequence[str]) -> list[Alert]:
        """The stored alerts among ``ids``, in the order given (unknown ids are skipped)."""

    def due_alerts(self, now: datetime, *, limit: int) -> list[Alert]:
        """Alerts to attempt now, oldest first, at most ``limit``: PENDING ones whose
        ``next_attempt_at`` is unset or not after ``now``, and SENDING ones whose lease
        (``next_attempt_at``) ended by ``now`` (their sender died)."""

    def update_alert(self, alert: Alert, *, expect: Alert | None = None) -> bool:
        """Store an alert's status, attempts, error, sent time and next attempt. With
        ``expect``, only if the stored row still has ``expect``'s status and attempts (a
        conditional write: of two processes claiming one alert, one wins); returns whether
        it was written."""


@runtime_checkable
class Catalog(Protocol):
    """The lake's registry of Parquet fragments, kept in the state store (SQLite, DynamoDB).

    Visibility is decided here, not by the files: a fragment is visible iff its ``created_by``
    commit is committed and its ``retired_by`` commit (if any) is not. A commit is committed
    once its marker exists; ``Tables.commit_files`` writes the marker in the same transaction
    as the lineage rows, ``commit`` writes a bare one (compaction). Every method is idempotent.
    """

    def add_fragments(self, fragments: Sequence[Fragment]) -> None:
        """Register fragments (upsert by ``path``)."""

    def fragments(
        self, dataset: str, *, months: Collection[tuple[int, int]] | None = None
    ) -> list[Fragment]:
        """Every registered fragment of ``dataset`` (visible or not), optionally only in
        ``months`` (``(year, month)``; ``(0, 0)`` holds records with no day), by path."""

    def retire_fragments(self, paths: Sequence[str], *, by: int) -> None:
        """Mark fragments replaced by commit ``by`` (they vanish once ``by`` commits)."""

    def unretire(self, dataset: str, *, by: int) -> None:
        """Undo every retirement made by commit ``by`` (it is being redone or failed)."""

    def mark_published(self, paths: Sequence[str]) -> None:
        """Fragments now live at their final path (moved out of staging)."""

    def drop_fragments(self, paths: Sequence[str]) -> None:
        """Forget fragments (garbage collected or discarded)."""

    def committed(self, commits: Collection[int]) -> set[int]:
        """Which of ``commits`` are committed."""

    def commit(self, commit: int) -> None:
        """Write a bare commit marker (a compaction's)."""


def _no_rows() -> pl.DataFrame:
    import polars as pl  # only when a commit resolves: the light Lambdas never do

    return pl.DataFrame()


@dataclass(frozen=True)
class Resolution:
    """What a commit changes beyond its own rows, for the caller's totals and counts.

    ``replaced``: the visible rows the commit removes (every column: their amounts and groups
    leave the totals). ``superseded``: the commit's rows that lost to a newer version.
    ``duplicates``: its rows already stored from the same file version. Both with every
    column. ``days``: the business days of the replaced rows (their KPIs change).
    """

    replaced: pl.DataFrame = field(default_factory=_no_rows)
    superseded: pl.DataFrame = field(default_factory=_no_rows)
    duplicates: pl.DataFrame = field(default_factory=_no_rows)
    days: frozenset[date] = frozenset()


@dataclass(frozen=True)
class Compaction:
    """What a compaction did: ``merged`` fragments into ``written`` ones, holding ``rows``."""

    merged: int = 0
    written: int = 0
    rows: int = 0


@runtime_checkable
class LakeStaging(Protocol):
    """One commit's rows on their way into the lake (invisible until the commit marker)."""

    def write(self, frame: pl.DataFrame) -> None:
        """Stage a chunk: the dataset's typed columns plus ``_key`` (Utf8), ``_day`` (Date),
        ``_arrived`` (Int64, µs since the epoch: the file's arrival), ``_seq`` (Int64, the
        file version), ``_source`` (Utf8) and ``_record`` (Int64)."""

    def close(self) -> list[Fragment]:
        """Put the staged fragments in the store and the catalog; return them."""

    def __enter__(self) -> LakeStaging: ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None: ...


@runtime_checkable
class Lake(RecordStore, Protocol):
    """The record store: Parquet fragments over an ``ObjectStore`` that hold exactly the
    current version of each key after every commit (``docs/design.md`` §4). A commit is
    ``stage``d without a lock, ``resolve``d and marked committed under
    ``locks.hold(lock_name(dataset))``, then ``publish``ed; ``discard`` undoes one that did not
    commit."""

    def lock_name(self, dataset: str) -> str:
        """The lock held from ``resolve`` to the commit marker."""

    def stage(self, dataset: str, commit: int) -> LakeStaging:
        """Open the staging of ``commit``'s rows."""

    def resolve(
        self,
        dataset: str,
        commit: int,
        *,
        replace_sources: Mapping[str, tuple[int, int]] | None = None,
    ) -> Resolution:
        """Settle the commit's conflicts with the visible rows (copy-on-write), under the
        lock; ``replace_sources`` maps a source to the version ``(arrived, seq)`` that
        replaces all of that source's older rows."""

    def discard(self, dataset: str, commit: int) -> None:
        """Forget what an uncommitted ``commit`` staged or retired (idempotent)."""

    def publish(self, dataset: str, commit: int) -> None:
        """After the marker: fragments to their final paths, replaced ones deleted, then
        compaction if due (idempotent)."""

    def compact(self, dataset: str) -> Compaction:
        """Merge every month's small fragments (``salesflow compact``)."""

    def read(
        self,
        dataset: str,
        *,
        days: Collection[date] | None = None,
        columns: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        """The current records (always with ``_key``, ``_seq``, ``_day``, ``_arrived``)."""

    def lookup(self, dataset: str, keys: pl.Series, *, columns: Sequence[str] = ()) -> pl.DataFrame:
        """The current rows of ``keys``, reading only fragments that may hold them."""

    def contains(self, dataset: str, values: pl.Series) -> pl.Series:
        """Per value: is a record with that key stored? (Values of any type, compared with
        the stored keys as text; nulls: False.)"""

    def local_paths(self, dataset: str) -> AbstractContextManager[list[Path]]:
        """Local files of the visible fragments, for DuckDB or Spark."""

    def rows_by_seq(self, dataset: str) -> dict[int, int]:
        """Visible rows per file version (the audit)."""


@runtime_checkable
class Locks(Protocol):
    """Named mutual exclusion across processes: one writer per dataset resolves and commits,
    one KPI refresh at a time. A lock dies with its holder (flock locally, a lease with a
    TTL on DynamoDB), so a ``kill -9`` never leaves one behind."""

    def hold(self, name: str, *, timeout: float = 600.0) -> AbstractContextManager[None]:
        """Hold lock ``name`` inside the ``with`` block; raise ``TransientError`` if it cannot
        be had within ``timeout`` seconds."""


@dataclass(frozen=True)
class LetterCount:
    """One group of ``DeadLetters.counts``."""

    dataset: str
    status: LetterStatus
    rule: str
    letters: int


@runtime_checkable
class DeadLetters(Protocol):
    """Rejected records with every reason, durable and keyed by letter id (SQLite locally, a
    DynamoDB table on AWS; SQS may carry notifications of them but never holds the truth).

    Letters are written only after their file commits, so a failed file leaves none.
    """

    def put(self, letters: Sequence[DeadLetter]) -> None:
        """Insert letters, or replace the stored letter with the same ``id`` (status, raw,
        reasons, attempts, history, updated_at); ``created_at`` of a stored letter is kept."""

    def get(self, ids: Sequence[str]) -> list[DeadLetter]:
        """The stored letters among ``ids``, in the order given (missing ids are skipped)."""

    def find(
        self,
        *,
        status: LetterStatus | None = None,
        dataset: str | None = None,
        source_file: str | None = None,
        rule: str | None = None,
        seqs: Collection[int] | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[DeadLetter]:
        """Letters matching every filter given, ordered by ``(seq, record)``; ``after`` is the
        id of the last letter of the previous page (stream big queues page by page)."""

    def count(
        self,
        *,
        status: LetterStatus | None = None,
        dataset: str | None = None,
        source_file: str | None = None,
        rule: str | None = None,
    ) -> int:
        """How many letters match, counted in the store."""

    def counts(self) -> list[LetterCount]:
        """Letters per dataset, status and rule, aggregated in the store (a letter counts once
        per rule it broke)."""


@runtime_checkable
class Notifier(Protocol):
    """One alert sink: log, JSONL file, SMTP, webhook, SNS."""

    name: str

    def send(self, alert: Alert) -> None:
        """Deliver one alert. Raise ``TransientError`` to be retried later."""


@dataclass
class Backend:
    """Everything the pipeline talks to, built once by ``salesflow.adapters.build_backend``."""

    store: ObjectStore
    lake: Lake
    locks: Locks
    tables: Tables
    letters: DeadLetters
    notifiers: list[Notifier]

    @property
    def records(self) -> RecordStore:
        """The lake's read side (what engines and reports read)."""
        return self.lake

    def close(self) -> None:
        for part in (self.store, self.lake, self.tables, self.letters, *self.notifiers):
            closer = getattr(part, "close", None)
            if callable(closer):
                closer()


def iter_batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Slices of ``items`` of at most ``size`` (DynamoDB writes 25, SQS sends 10)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
