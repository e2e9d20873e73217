"""The steps one file goes through: start, load, aggregate, finish (or fail).

Every step is idempotent, so a crash at any point followed by a redo ends in the same state
as a run with no crash:

- ``start_file`` hashes the object, records lineage IN_PROGRESS (or DUPLICATE), and resumes
  a row a crash left IN_PROGRESS instead of starting another;
- ``load_file`` first drops whatever an earlier attempt of the same file wrote, then writes
  records (keyed by file ``seq`` and chunk), dead letters (ids from the file hash and record
  number) and alerts (ids from the record key);
- ``aggregate`` recomputes totals and KPIs from the stored records;
- ``finish_file`` writes the report, marks lineage final, then moves the object to its
  archive key; a final row whose object is still in the inbox only needs that move.

Locally ``process_file`` runs them in a row; on AWS each is a Step Functions task.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from salesflow import layout
from salesflow.config import Settings
from salesflow.errors import FileLevelError, SalesflowError, TransientError, UnknownDatasetError
from salesflow.models import FileRecord, FileStatus, utcnow
from salesflow.pipeline.state import StepState, inbox_key_of, lineage_key
from salesflow.ports import Backend

if TYPE_CHECKING:
    import polars as pl

    from salesflow.validation import Reference

# Polars, the datasets and validation are imported by the steps that use them: the archive and
# mark-failed steps run in light AWS Lambda functions whose package holds no Polars or numpy.

log = logging.getLogger(__name__)


def failpoint(settings: Settings, name: str) -> None:
    """Die here, as a power cut would, when ``settings.failpoint`` names this step.

    The crash tests use it to kill a real process at an exact point; it is off by default.
    """
    if settings.failpoint == name:
        os.kill(os.getpid(), signal.SIGKILL)


HEAD_BYTES = 64 * 1024


def _hash(path: Path) -> tuple[str, int, bytes]:
    """sha256, size and the first bytes of a file, read once in 1 MiB blocks."""
    digest = hashlib.sha256()
    size = 0
    head = b""
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            if not head:
                head = block[:HEAD_BYTES]
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size, head


def resolve_dataset(key: str, head: bytes, explicit: str | None) -> str:
    """``explicit`` > the ``inbox/<dataset>/`` prefix > the header or JSON shape."""
    from salesflow.datasets import detect_dataset, get_spec

    if explicit:
        return get_spec(explicit).name
    prefixed = layout.inbox_dataset(key)
    if prefixed:
        try:
            return get_spec(prefixed).name
        except SalesflowError:
            pass
    if not head.strip(b" \t\r\n\xef\xbb\xbf"):
        raise FileLevelError(
            key, "the file is empty", rule="structure.empty", hint="upload the file again"
        )
    detected = detect_dataset(key, head)
    if detected is None:
        raise UnknownDatasetError(key)
    return detected


def settle_archived(backend: Backend, key: str) -> StepState | None:
    """If the object at ``key`` is a file whose lineage is already final (a crash came
    between the lineage commit and the move), finish the move and return its state."""
    record = backend.tables.get_file(key)
    if record is None or record.status == FileStatus.IN_PROGRESS:
        return None
    if _sha_or_missing(backend, key) != record.sha256 or _resent(backend, record, key):
        return None
    return _complete_archive(backend, record, key)


def _resent(backend: Backend, record: FileRecord, key: str) -> bool:
    """Whether the object at ``key`` was uploaded again after ``record`` finished (a re-send,
    recorded DUPLICATE) rather than left behind by a crash before the move."""
    if record.finished_at is None:
        return False
    uploaded = [o.modified for o in backend.store.list(key) if o.key == key]
    return bool(uploaded) and uploaded[0] > record.finished_at


def start_file(
    backend: Backend,
    settings: Settings,
    key: str,
    *,
    dataset: str | None = None,
    now: datetime | None = None,
    dedup: bool = True,
) -> StepState:
    """Hash the object, dedup it, and open (or resume) its lineage row.

    ``dedup=False`` processes content seen before (a redrive of unchanged records, whose
    references may exist now)."""
    layout.check_key(key)
    now = now or utcnow()
    tables = backend.tables
    try:
        with backend.store.fetch(key) as path:
            sha, size, head = _hash(path)
    except FileNotFoundError as exc:
        done = tables.get_file(key)
        if done is not None and done.status != FileStatus.IN_PROGRESS:
            return StepState.of(done, key)  # already processed and archived: nothing to do
        raise FileLevelError(
            key, "the object is not in the bucket", rule="structure.missing", hint="upload it again"
        ) from exc

    resumed = tables.find_by_sha(sha, FileStatus.IN_PROGRESS)
    if resumed is not None and inbox_key_of(resumed) == key:
        resumed.attempts += 1
        tables.put_file(resumed)
        return StepState.of(resumed, key)

    existing = tables.get_file(key)
    if existing is not None and existing.sha256 == sha and not _resent(backend, existing, key):
        # Lineage is final but a crash came before the move: only the move is left.
        return _complete_archive(backend, existing, key)

    try:
        name = resolve_dataset(key, head, dataset)
    except FileLevelError as exc:
        return fail_file(backend, settings, key, str(exc), sha256=sha, size=size, now=now)

    seq = tables.next_seq()
    record = FileRecord(
        key=lineage_key(key, seq, taken=existing is not None),
        sha256=sha,
        size=size,
        dataset=name,
        seq=seq,
        started_at=now,
    )
    original = tables.find_by_sha(sha, FileStatus.SUCCESS) if dedup else None
    if original is not None:
        record.status = FileStatus.DUPLICATE
        record.finished_at = now
        record.archive_key = layout.archive_key(key, name, ok=True, when=now)
        record.error = f"same content as {original.key} (seq {original.seq})"
        tables.put_file(record)
        return _complete_archive(backend, record, key)
    tables.put_file(record)
    failpoint(settings, "after_start")
    return StepState.of(record, key)


def _complete_archive(backend: Backend, record: FileRecord, key: str) -> StepState:
    if record.archive_key and backend.store.exists(key):
        backend.store.move(key, record.archive_key)
    return StepState.of(record, key)


def _reference(backend: Backend, names: set[str]) -> Reference:
    """Keys of the referenced datasets already in the store (the batch's earlier files included)."""
    from salesflow.validation import Reference

    return Reference(
        keys={n: backend.records.read(n, columns=[]).get_column("_key") for n in names}
    )


def _store_chunk(
    backend: Backend,
    state: StepState,
    dataset: str,
    index: int,
    valid: pl.DataFrame,
    rejected: pl.DataFrame,
) -> None:
    """Write one chunk's valid records and dead letters (both idempotent)."""
    from salesflow.pipeline.routing import dead_letters

    if not valid.is_empty():
        backend.records.write(dataset, state.seq, valid, part=index)
    if not rejected.is_empty():
        backend.dlq.send(dead_letters(dataset, state.key, state.sha256, rejected))


def load_file(
    backend: Backend, settings: Settings, state: StepState, *, now: datetime | None = None
) -> StepState:
    """Validate the file chunk by chunk; store valid records, dead-letter the rest, queue alerts.

    A chunk is stored on one background thread while the next one is validated (Polars and
    SQLite release the GIL), with at most one chunk in flight: memory stays bounded, and a
    failed store surfaces before the next chunk is handed over. Stores are idempotent and a
    redo first drops ``seq``, so a crash with a store half done is redone like any other.
    """
    import polars as pl

    from salesflow.datasets import get_spec
    from salesflow.pipeline.routing import high_value_alerts
    from salesflow.validation import FileReport, validate_path

    if state.done:
        return state
    now = now or utcnow()
    spec = get_spec(state.dataset)
    backend.records.drop(spec.name, state.seq)
    reference = _reference(backend, set(spec.references.values())) if spec.references else None
    threshold = settings.alerts.threshold_for(spec.name)
    days: set[date] = set()
    report = FileReport(file=state.key, dataset=spec.name)
    alerts = 0
    with (
        backend.store.fetch(state.key) as path,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="salesflow-store") as pool,
    ):
        stored: Future[None] | None = None
        for chunk in validate_path(
            path,
            spec,
            source=state.key,
            reference=reference,
            now=now,
            processing_day=now.astimezone(UTC).date(),
            chunk_rows=settings.chunk_rows,
        ):
            valid = chunk.valid.with_columns(pl.lit(state.seq, dtype=pl.Int64).alias("_seq"))
            if stored is not None:
                stored.result()
            stored = pool.submit(
                _store_chunk, backend, state, spec.name, chunk.index, valid, chunk.rejected
            )
            if not valid.is_empty():
                touched = backend.records.previous_days(
                    spec.name, valid.get_column("_key"), before_seq=state.seq
                )
                days.update(valid.get_column("_day").drop_nulls().unique().to_list())
                days.update(touched.get_column("_day").drop_nulls().unique().to_list())
            new = backend.tables.add_alerts(
                high_value_alerts(
                    spec.name, state.key, valid, threshold=threshold, sinks=_sink_names(backend)
                )
            )
            alerts += len(new)
            report.add(chunk)
            if settings.failpoint == "after_chunk":
                stored.result()  # the failpoint means "a chunk is stored"
            failpoint(settings, "after_chunk")
        if stored is not None:
            stored.result()
    state.rows_in, state.valid, state.rejected = report.rows_in, report.valid, report.rejected
    state.alerts = alerts
    state.days = sorted(d.isoformat() for d in days)
    state.report_key = layout.report_key(state.key, spec.name, state.seq)
    backend.store.put_bytes(state.report_key, json.dumps(report.to_dict(), indent=2).encode())
    failpoint(settings, "after_load")
    return state


def _sink_names(backend: Backend) -> list[str]:
    return [n.name for n in backend.notifiers]


def aggregate(backend: Backend, settings: Settings, state: StepState) -> StepState:
    """Recompute the totals and KPIs the file touched, from the stored records."""
    if state.status == FileStatus.IN_PROGRESS:
        from salesflow.kpis import refresh_aggregates

        refresh_aggregates(backend.records, backend.tables, state.dataset, state.day_dates)
        failpoint(settings, "after_aggregate")
    return state


def finish_file(
    backend: Backend, settings: Settings, state: StepState, *, now: datetime | None = None
) -> StepState:
    """Mark lineage SUCCESS with the counts, then move the object to ``processed/``."""
    if state.done:
        return state
    now = now or utcnow()
    record = backend.tables.get_file(state.lineage_key)
    if record is None:
        raise TransientError(
            f"{state.key}: lineage row {state.lineage_key!r} vanished", hint="retry the file"
        )
    record.status = FileStatus.SUCCESS
    record.rows_in, record.valid, record.rejected = state.rows_in, state.valid, state.rejected
    record.report_key = state.report_key
    record.archive_key = layout.archive_key(
        state.key, state.dataset, ok=True, when=record.started_at
    )
    record.finished_at = now
    record.error = None
    backend.tables.put_file(record)
    failpoint(settings, "after_lineage")
    _complete_archive(backend, record, state.key)
    state.status = record.status.value
    state.archive_key = record.archive_key
    return state


def fail_file(
    backend: Backend,
    settings: Settings,
    key: str,
    error: str,
    *,
    sha256: str | None = None,
    size: int = 0,
    now: datetime | None = None,
    undo: bool = True,
) -> StepState:
    """Mark the file FAILED (keeping the error), drop what it stored, move it to ``failed/``.

    ``undo=False`` leaves its stored records alone (the light AWS mark-failed function, which
    holds no Polars, until the commit protocol makes a failed file's records invisible)."""
    now = now or utcnow()
    tables = backend.tables
    record = _open_record(backend, key, sha256)
    if record is None:
        seq = tables.next_seq()
        existing = tables.get_file(key)
        record = FileRecord(
            key=lineage_key(key, seq, taken=existing is not None),
            sha256=sha256 or _sha_or_missing(backend, key),
            size=size,
            dataset=layout.inbox_dataset(key) or "unknown",
            seq=seq,
            started_at=now,
        )
    if record.dataset != "unknown" and undo:
        from salesflow.datasets import get_spec

        try:
            backend.records.drop(get_spec(record.dataset).name, record.seq)
        except SalesflowError:
            pass
    record.status = FileStatus.FAILED
    record.error = error
    record.finished_at = now
    record.rows_in = record.valid = record.rejected = 0
    record.archive_key = layout.archive_key(key, record.dataset, ok=False, when=now)
    tables.put_file(record)
    log.warning("file failed: %s", error)
    return _complete_archive(backend, record, key)


def _sha_or_missing(backend: Backend, key: str) -> str:
    """The object's sha256, or ``"missing"`` when it is gone (never empty: DynamoDB indexes it)."""
    try:
        with backend.store.fetch(key) as path:
            return _hash(path)[0]
    except FileNotFoundError:
        return "missing"


def _open_record(backend: Backend, key: str, sha256: str | None) -> FileRecord | None:
    """The IN_PROGRESS lineage row of the object at ``key``, if there is one."""
    if sha256:
        found = backend.tables.find_by_sha(sha256, FileStatus.IN_PROGRESS)
        if found is not None and inbox_key_of(found) == key:
            return found
    for record in backend.tables.list_files(FileStatus.IN_PROGRESS):
        if inbox_key_of(record) == key:
            return record
    return None


def process_file(
    backend: Backend,
    settings: Settings,
    key: str,
    *,
    dataset: str | None = None,
    now: datetime | None = None,
    dedup: bool = True,
) -> StepState:
    """All steps for one object in the bucket. Bad input ends FAILED, never raises;
    a ``TransientError`` (a store down) propagates so the caller retries later."""
    import polars as pl

    state: StepState | None = None
    try:
        state = start_file(backend, settings, key, dataset=dataset, now=now, dedup=dedup)
        state = load_file(backend, settings, state, now=now)
        state = aggregate(backend, settings, state)
        return finish_file(backend, settings, state, now=now)
    except TransientError:
        raise
    except FileLevelError as exc:
        return fail_file(backend, settings, key, str(exc), sha256=_sha(state), now=now)
    except (SalesflowError, pl.exceptions.PolarsError, ValueError, UnicodeError) as exc:
        log.debug("unexpected failure processing %s", key, exc_info=True)
        return fail_file(
            backend,
            settings,
            key,
            f"{key}: {type(exc).__name__}: {exc}",
            sha256=_sha(state),
            now=now,
        )


def _sha(state: StepState | None) -> str | None:
    return state.sha256 if state else None


def recover(backend: Backend, settings: Settings) -> list[StepState]:
    """Finish every file a crash left IN_PROGRESS. Run at start-up.

    The object is redone from the inbox; if it already reached its archive key (the lineage
    commit was lost, e.g. to a power cut after the move), it is moved back and redone.
    """
    done = []
    for record in backend.tables.list_files(FileStatus.IN_PROGRESS):
        key = inbox_key_of(record)
        archived = layout.archive_key(key, record.dataset, ok=True, when=record.started_at)
        if not backend.store.exists(key) and backend.store.exists(archived):
            backend.store.move(archived, key)
        if backend.store.exists(key):
            done.append(process_file(backend, settings, key, dataset=record.dataset))
        else:
            record.status = FileStatus.FAILED
            record.error = "the object vanished from the inbox before it was processed"
            record.finished_at = utcnow()
            backend.tables.put_file(record)
            done.append(StepState.of(record, key))
    return done
