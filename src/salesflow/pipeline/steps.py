"""The steps one file version goes through: claim, load, commit, publish (or fail).

See docs/design.md §4. Everything before ``commit`` is invisible and discarded by a redo;
everything after it is idempotent, so a crash anywhere followed by ``recover`` ends in the
same state as a run with no crash:

- ``claim`` hashes the object and claims its version with a conditional lineage write
  (attempts counted before any work, so they survive ``kill -9``), or resumes a crashed
  claim, or records a DUPLICATE;
- ``load`` validates chunk by chunk: valid records staged in the lake, rejected records and
  alerts spooled under ``work/<seq>/`` for publish;
- ``commit`` checks the object is still the version that was read, then, holding the
  dataset's lock, resolves the staged rows against the visible ones (``Lake.resolve``) and
  marks lineage SUCCESS with the commit marker in one transaction: the rows become visible;
- ``publish`` publishes the lake fragments, sends the spooled letters and alerts, applies the
  totals delta once, refreshes KPIs, moves the object to its unique archive key, and marks
  the row settled.

``process_file`` runs them in a row and isolates failures: anything raised while one file is
processed fails that file, never the caller. Only the state store's own failures propagate.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import signal
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from salesflow import layout
from salesflow.config import Settings
from salesflow.errors import (
    FileLevelError,
    SalesflowError,
    StoreBroken,
    StoreUnavailable,
    TransientError,
)
from salesflow.models import FileRecord, FileStatus, utcnow
from salesflow.pipeline import redrive
from salesflow.pipeline.state import StepState
from salesflow.ports import Backend, Resolution

if TYPE_CHECKING:
    import polars as pl

    from salesflow.datasets.spec import DatasetSpec
    from salesflow.validation import Reference

# Polars, the datasets, the engines and the KPIs are imported by the steps that use them: the
# AWS mark-failed step (``fail_key``) runs in a light Lambda whose package holds no Polars.

log = logging.getLogger(__name__)

HEAD_BYTES = 64 * 1024
ADDED = "totals-added.parquet"
"""Spooled by load: the totals the file's valid rows add."""
DELTA = "totals-delta.parquet"
"""Spooled by commit: what the commit changes in the totals (applied once at publish)."""
LOST = "lost-keys.parquet"
"""Spooled by commit: the file's keys that lost to a newer or the same version (no alert)."""
REDRIVE_LOST = "redrive-lost.parquet"
"""Spooled by a redrive's commit: the records it did not store, by origin, and why."""
ERROR_CHARS = 600
"""An error kept in lineage is cut to this length (a poison file can raise huge messages)."""


class InjectedFailure(RuntimeError):
    """What ``raise:<step>`` failpoints raise: an error no code path expects."""


def failpoint(settings: Settings, name: str, dataset: str | None = None) -> None:
    """Die here, as a power cut would, when ``settings.failpoint`` names this step; or, with
    ``raise:<step>[:<dataset>]``, raise an error nothing expects (for that dataset only).

    The crash and isolation tests use it to break a real process at an exact point; it is
    off by default.
    """
    point = settings.failpoint
    if point == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if point and point.startswith("raise:"):
        step, _, only = point.removeprefix("raise:").partition(":")
        if step == name and only in ("", dataset):
            raise InjectedFailure(f"failpoint {point}: an unexpected error")


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
    """``explicit`` > the ``inbox/<dataset>/`` prefix > the header or JSON shape.

    Raises ``FileLevelError`` (empty file, unknown dataset); see ``detect`` for a version
    that never raises.
    """
    from salesflow.datasets import dataset_of_folder, detect_dataset, get_spec, undetected

    if explicit:
        return get_spec(explicit).name
    prefixed = dataset_of_folder(layout.inbox_dataset(key))
    if prefixed:
        return prefixed
    if not head.strip(b" \t\r\n\xef\xbb\xbf"):
        raise FileLevelError(
            key, "the file is empty", rule="structure.empty", hint="upload the file again"
        )
    detected = detect_dataset(key, head)
    if detected is None:
        raise undetected(key, head)
    return detected


def detect(key: str, head: bytes) -> str | None:
    """The dataset of a file, or None when it cannot be told; never raises, whatever the
    bytes (a binary or compressed file is simply unknown and fails once processed)."""
    try:
        return resolve_dataset(key, head, None)
    except Exception:  # noqa: BLE001 - detection of arbitrary bytes must not stop anything
        return None


def describe(key: str, exc: BaseException) -> str:
    """One line for lineage and the console: salesflow's own message, or the exception type
    and message for anything else, cut to ``ERROR_CHARS``."""
    if isinstance(exc, SalesflowError):
        text = str(exc)
    else:
        text = f"{key}: {type(exc).__name__}: {exc}"
    text = " ".join(text.split())
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…"


# ------------------------------------------------------------------------------------ claim


def _archive_key(record: FileRecord, *, ok: bool, when: datetime | None = None) -> str:
    return layout.archive_key_for(
        record.key, record.dataset, record.seq, ok=ok, when=when or record.started_at
    )


def claim(
    backend: Backend,
    settings: Settings,
    key: str,
    *,
    dataset: str | None = None,
    now: datetime | None = None,
    dedup: bool = True,
    origin: str | None = None,
    queued: bool = False,
) -> StepState:
    """Claim the version of the object now at ``key``, or resume or settle a known one.

    ``queued`` claims without starting (``attempts`` 0): ``ingest`` claims every file it
    places before processing any, so a crash never leaves an accepted file unaccounted for.

    A new version is hashed, gets a fresh ``seq`` and a lineage row IN_PROGRESS through the
    conditional ``Tables.claim`` (another process that claimed it first wins). A crashed
    claim is resumed with ``attempts + 1``; past ``settings.max_attempts`` it is failed. A
    final row whose object is still in the inbox (a crash before the move) only gets moved.
    Content seen before (same sha256, SUCCESS) is recorded DUPLICATE and archived.
    """
    layout.check_key(key)
    now = now or utcnow()
    tables = backend.tables
    info = backend.store.stat(key)
    if info is None:
        raise FileLevelError(
            key, "the object is not in the bucket", rule="structure.missing", hint="upload it again"
        )
    known = tables.find_version(key, info.version)
    if known is not None:
        if known.status != FileStatus.IN_PROGRESS:
            return _settle(backend, known)
        if queued:
            return StepState.of(known)
        return _resume(backend, settings, known, now, dedup=dedup)

    with backend.store.fetch(key) as path:
        sha, size, head = _hash(path)
    problem: FileLevelError | None = None
    try:
        name = resolve_dataset(key, head, dataset)
    except FileLevelError as exc:
        from salesflow.datasets import dataset_of_folder

        name = dataset or dataset_of_folder(layout.inbox_dataset(key)) or "unknown"
        problem = exc
    record = FileRecord(
        key=key,
        sha256=sha,
        size=size,
        dataset=name,
        seq=tables.next_seq(),
        started_at=now,
        version=info.version,
        arrived_at=info.modified,
        source=layout.source_name(key, name),
        origin=origin,
        attempts=0 if queued else 1,
    )
    record, inserted = tables.claim(record)
    if not inserted:  # another process claimed this version first
        return StepState.of(record)
    if problem is not None:
        return fail(backend, settings, StepState.of(record), str(problem), now=now)
    duplicate = _duplicate(backend, record, now) if dedup else None
    return duplicate or StepState.of(record)


def _duplicate(backend: Backend, record: FileRecord, now: datetime) -> StepState | None:
    """Record the version DUPLICATE and archive it if its content was stored before."""
    original = backend.tables.find_by_sha(record.sha256, FileStatus.SUCCESS)
    if original is None or original.seq == record.seq:
        return None
    record.status = FileStatus.DUPLICATE
    record.finished_at = now
    record.archive_key = _archive_key(record, ok=True, when=now)
    record.error = f"same content as {original.key} (seq {original.seq})"
    record.settled = True
    if backend.tables.update_file(record, expect=FileStatus.IN_PROGRESS):
        _move_if_unchanged(backend, record)
    return StepState.of(record)


def _resume(
    backend: Backend, settings: Settings, record: FileRecord, now: datetime, *, dedup: bool
) -> StepState:
    """A version a crash (or a transient failure) left IN_PROGRESS, or one queued by
    ``ingest``: one more attempt, or give up once ``max_attempts`` have been started. Its
    content may have been stored meanwhile by another version (a DUPLICATE now)."""
    duplicate = _duplicate(backend, record, now) if dedup and record.origin is None else None
    if duplicate is not None:
        return duplicate
    if record.attempts >= settings.max_attempts:
        last = f"; the last error: {record.error}" if record.error else ""
        return fail(
            backend,
            settings,
            StepState.of(record),
            f"{record.key}: gave up after {record.attempts} attempts, none of which finished "
            f"(the process died or the file could not be read){last}",
            now=now,
        )
    record.attempts += 1
    backend.tables.update_file(record, expect=FileStatus.IN_PROGRESS)
    return StepState.of(record)


def _settle(backend: Backend, record: FileRecord) -> StepState:
    """A final version whose object may still be in the inbox: finish its move."""
    if record.archive_key and record.status != FileStatus.SUCCESS:
        _move_if_unchanged(backend, record)
    return StepState.of(record)


def _move_if_unchanged(backend: Backend, record: FileRecord) -> bool:
    """Move the object to ``record.archive_key`` if it is still the version ``record`` was
    made for. A different version under the same key is a new arrival: it stays."""
    if not record.archive_key:
        return False
    info = backend.store.stat(record.key)
    if info is None or info.version != record.version:
        return False
    backend.store.move(record.key, record.archive_key)
    return True


# ------------------------------------------------------------------------------------- load


def _reference(backend: Backend, settings: Settings, spec: DatasetSpec) -> Reference | None:
    """How the referenced datasets' stored keys are looked up (the batch's earlier files are
    committed already): per chunk, only the keys the chunk mentions (``Lake.contains``). The
    Spark engine checks references in one pass and gets the stored keys whole."""
    from salesflow.validation import Reference

    if not spec.references:
        return None
    names = set(spec.references.values())
    if settings.engine == "spark":
        return Reference(
            keys={n: backend.lake.read(n, columns=[]).get_column("_key") for n in names}
        )
    return Reference(keys={}, contains=backend.lake.contains)


def _spool(backend: Backend, seq: int, name: str, frame: pl.DataFrame) -> None:
    """Keep ``frame`` under ``work/<seq>/<name>`` until publish reads it."""
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd", compression_level=1)
    backend.store.put_bytes(layout.work_key(seq, name), buffer.getvalue())


@contextlib.contextmanager
def _spooled(backend: Backend, seq: int, prefix: str) -> Iterator[list[pl.DataFrame]]:
    import polars as pl

    frames = []
    for info in backend.store.list(layout.work_key(seq, prefix)):
        frames.append(pl.read_parquet(io.BytesIO(backend.store.get_bytes(info.key))))
    yield frames


def _drop_spool(backend: Backend, seq: int) -> None:
    for info in backend.store.list(layout.work_key(seq, "")):
        backend.store.delete(info.key)


def load(
    backend: Backend, settings: Settings, state: StepState, *, now: datetime | None = None
) -> StepState:
    """Validate the file chunk by chunk: valid records staged in the lake (invisible until the
    commit), rejected records, high-value sales and the totals the records add spooled for
    publish. A redo first discards what an earlier attempt staged."""
    from salesflow.pipeline.lake import identify, sum_totals, totals_of

    if state.done:
        return state

    from salesflow.datasets import get_spec
    from salesflow.engines import engine_for
    from salesflow.validation import FileReport

    failpoint(settings, "after_start", state.dataset)
    now = now or utcnow()
    spec = get_spec(state.dataset)
    record = _row(backend, state)
    backend.lake.discard(spec.name, state.seq)  # a redo: forget what an earlier attempt staged
    _drop_spool(backend, state.seq)
    _drop_keys(backend, spec.name, state.seq)
    origins = _redriven(backend, record)
    reference = _reference(backend, settings, spec)
    threshold = settings.alerts.threshold_for(spec.name)
    days: set[date] = set()
    report = FileReport(file=state.key, dataset=spec.name)
    alerts = 0
    added: list[pl.DataFrame] = []
    parts = 0  # key manifests written: numbered from 0 without gaps (see ``_drop_keys``)
    with (
        backend.store.fetch(state.key) as path,
        backend.lake.stage(spec.name, state.seq) as staging,
    ):
        for chunk in engine_for(settings).validate(
            path,
            spec,
            source=state.key,
            reference=reference,
            now=now,
            processing_day=now.astimezone(UTC).date(),
            chunk_rows=settings.chunk_rows,
            scratch=settings.scratch_dir,
        ):
            valid = identify(spec, record, chunk.valid, origins)
            if not valid.is_empty():
                staging.write(valid)
                _keep_keys(backend, spec.name, state.seq, parts, valid)
                parts += 1
                added.append(totals_of(spec.name, valid))
                days.update(valid.get_column("_day").drop_nulls().unique().to_list())
                hits = _alert_rows(spec.name, valid, threshold)
                if not hits.is_empty():
                    _spool(backend, state.seq, f"alerts-{chunk.index:05d}.parquet", hits)
                    alerts += hits.height
            if not chunk.rejected.is_empty():
                _spool(backend, state.seq, f"rejected-{chunk.index:05d}.parquet", chunk.rejected)
            report.add(chunk)
            failpoint(settings, "after_chunk", spec.name)
    state.rows_in, state.valid, state.rejected = report.rows_in, report.valid, report.rejected
    state.alerts = alerts
    state.days = sorted(d.isoformat() for d in days)
    state.report_key = layout.report_key(state.key, spec.name, state.seq)
    backend.store.put_bytes(state.report_key, json.dumps(report.to_dict(), indent=2).encode())
    adds = sum_totals(added)
    if not adds.is_empty():
        _spool(backend, state.seq, ADDED, adds)
    failpoint(settings, "after_load", spec.name)
    return state


def _redriven(backend: Backend, record: FileRecord) -> dict[int, redrive.Identity] | None:
    """For a redrive file: the identity each record takes (that of the record it was
    rejected as); None for any other file."""
    if not record.origin:
        return None
    origins = redrive.read_origins(backend.store, record.key)
    if origins is None:
        return None
    return redrive.identities(backend.letters, backend.tables, origins)


def _keep_keys(backend: Backend, dataset: str, seq: int, part: int, valid: pl.DataFrame) -> None:
    """The key manifest of a chunk: the version of every valid record it staged (the audit
    checks that each stored key comes from the latest arrival that held it)."""
    buffer = io.BytesIO()
    valid.select("_key", "_source", "_arrived", "_seq").write_parquet(
        buffer, compression="zstd", compression_level=1
    )
    backend.store.put_bytes(layout.keys_key(dataset, seq, part), buffer.getvalue())


def _drop_keys(backend: Backend, dataset: str, seq: int) -> None:
    """Forget the key manifest of a version that is redone or did not commit.

    Its parts are written from 0 up without gaps and deleted from the last down, so part 0
    exists whenever any part does, whatever step a crash interrupted: one probe answers for
    a version that never wrote one (every first attempt), instead of a listing of the folder
    every version's manifests share (on a local store, a read of the whole folder: 10,000
    small files made the last ones ~20 ms slower each)."""
    if not backend.store.exists(layout.keys_key(dataset, seq, 0)):
        return
    for info in reversed(backend.store.list(layout.keys_prefix(dataset, seq))):
        backend.store.delete(info.key)


def _alert_rows(dataset: str, valid: pl.DataFrame, threshold: float) -> pl.DataFrame:
    """The high-value sales of a chunk: ``_key`` and ``amount`` above ``threshold``."""
    import polars as pl

    if "amount" not in valid.columns:
        return pl.DataFrame(schema={"_key": pl.String, "amount": pl.Float64})
    return valid.filter(pl.col("amount") > threshold).select("_key", "amount")


# ----------------------------------------------------------------------------------- commit


def commit(
    backend: Backend, settings: Settings, state: StepState, *, now: datetime | None = None
) -> StepState:
    """Make the version's effect final, in one state-store transaction: lineage SUCCESS with
    its counts, and its commit marker. Before that, the object must still be the version that
    was read: if it changed, nothing of this version is kept (CHANGED) and the new content
    is claimed as a new version on the next pass."""
    from salesflow.datasets import get_spec
    from salesflow.pipeline.lake import micros, replaces_source

    if state.done:
        return state
    now = now or utcnow()
    record = _row(backend, state)
    info = backend.store.stat(record.key)
    if info is None or info.version != record.version:
        return _changed(backend, record, now)
    record.status = FileStatus.SUCCESS
    record.rows_in, record.valid, record.rejected = state.rows_in, state.valid, state.rejected
    record.superseded = state.superseded
    record.report_key = state.report_key
    record.days = list(state.days)
    record.archive_key = _archive_key(record, ok=True)
    record.finished_at = now
    record.commit = record.seq
    record.error = None
    spec = get_spec(record.dataset)
    lake = backend.lake
    with backend.locks.hold(lake.lock_name(spec.name)):
        sources = None
        if replaces_source(spec):
            sources = {record.source: (micros(record.arrived_at or record.started_at), record.seq)}
            sources.update(_origin_sources(backend, record))
        resolution = lake.resolve(spec.name, record.seq, replace_sources=sources)
        _settle_resolution(backend, spec.name, record, resolution)
        failpoint(settings, "before_commit", record.dataset)
        committed = backend.tables.commit_files([record], commit=record.seq)
    if not committed:
        current = _row(backend, state)  # another process finished or failed it meanwhile
        if current.status != FileStatus.SUCCESS:
            with contextlib.suppress(SalesflowError):
                lake.discard(spec.name, record.seq)
        return StepState.of(current)
    failpoint(settings, "after_lineage", record.dataset)
    return StepState.of(record)


def _origin_sources(backend: Backend, record: FileRecord) -> dict[str, tuple[int, int]]:
    """For a redrive file of a line dataset: the newest committed version of each source its
    records came from. A redriven line of an older version of its source is superseded, as
    the rest of that version was (read under the dataset's lock: no commit moves it)."""
    from salesflow.pipeline.lake import micros

    found = _redriven(backend, record)
    if not found:
        return {}
    newest: dict[str, tuple[int, int]] = {}
    for source in {x.source for x in found.values()}:
        versions = [
            (micros(f.arrived_at or f.started_at), f.seq)
            for f in backend.tables.list_files(
                FileStatus.SUCCESS, dataset=record.dataset, source=source
            )
            if not f.origin
        ]
        if versions:
            newest[source] = max(versions)
    return newest


def _settle_resolution(
    backend: Backend, dataset: str, record: FileRecord, resolution: Resolution
) -> None:
    """What the resolution changes beyond the file's own rows, kept for publish (the rows it
    replaced are gone from the lake once published): the totals delta and the keys the file
    did not store (their alerts are dropped); the days of the replaced rows join its days."""
    import polars as pl

    from salesflow.pipeline.lake import sum_totals, totals_of

    lost = (
        pl.concat(
            [f.select("_key") for f in (resolution.superseded, resolution.duplicates) if f.height],
            how="vertical_relaxed",
        )
        if (resolution.superseded.height or resolution.duplicates.height)
        else pl.DataFrame(schema={"_key": pl.String})
    )
    record.superseded = lost.height
    with _spooled(backend, record.seq, ADDED) as frames:
        added = frames
    delta = sum_totals(
        [
            *added,
            totals_of(dataset, resolution.superseded, sign=-1),
            totals_of(dataset, resolution.duplicates, sign=-1),
            totals_of(dataset, resolution.replaced, sign=-1),
        ]
    )
    spooled = [(DELTA, delta), (LOST, lost)]
    if record.origin:  # a redrive: which letters' records were not stored, and why
        spooled.append((REDRIVE_LOST, _redrive_lost(resolution)))
    for name, frame in spooled:
        if not frame.is_empty():  # nothing spooled reads as nothing
            _spool(backend, record.seq, name, frame)
    record.days = sorted({*record.days, *(d.isoformat() for d in resolution.days)})


def _redrive_lost(resolution: Resolution) -> pl.DataFrame:
    """The origin ``(_seq, _record)`` of a redrive's records that were not stored, with why
    (``redrive.DUPLICATE`` or ``redrive.SUPERSEDED``)."""
    import polars as pl

    parts = [
        frame.select(
            pl.col("_seq").cast(pl.Int64),
            pl.col("_record").cast(pl.Int64),
            pl.lit(kind, dtype=pl.String).alias("kind"),
        )
        for frame, kind in (
            (resolution.duplicates, redrive.DUPLICATE),
            (resolution.superseded, redrive.SUPERSEDED),
        )
        if frame.height
    ]
    if not parts:
        return pl.DataFrame(schema={"_seq": pl.Int64, "_record": pl.Int64, "kind": pl.String})
    return pl.concat(parts)


def _row(backend: Backend, state: StepState) -> FileRecord:
    record = backend.tables.get_file(state.seq)
    if record is None:
        raise TransientError(
            f"{state.key}: lineage row seq {state.seq} vanished", hint="the file is retried"
        )
    return record


def _changed(backend: Backend, record: FileRecord, now: datetime) -> StepState:
    """The object under ``record.key`` is not the version that was read: drop this version."""
    from salesflow.datasets import get_spec

    with contextlib.suppress(SalesflowError):
        backend.lake.discard(get_spec(record.dataset).name, record.seq)
    _drop_spool(backend, record.seq)
    with contextlib.suppress(SalesflowError):  # a dataset name no key can hold: none written
        _drop_keys(backend, record.dataset, record.seq)
    record.status = FileStatus.CHANGED
    record.finished_at = now
    record.rows_in = record.valid = record.rejected = record.superseded = 0
    record.error = (
        f"{record.key} changed while it was processed; nothing of this version was stored, "
        "and its new content is processed as a new version"
    )
    record.settled = True
    backend.tables.update_file(record, expect=FileStatus.IN_PROGRESS)
    log.warning("%s", record.error)
    return StepState.of(record)


# ---------------------------------------------------------------------------------- publish


def publish(
    backend: Backend,
    settings: Settings,
    state: StepState,
    *,
    now: datetime | None = None,
    refresh: bool = True,
) -> StepState:
    """Everything that follows a commit, each part idempotent: letters and alerts from the
    spool, totals and KPIs of the touched days, the archive move, the spool removed, and the
    row marked settled. A crash anywhere in it is finished by ``recover``.

    ``refresh=False`` skips the KPIs (totals always move by the commit's deltas, exactly
    once): the caller refreshes them once for a group of files (the AWS KPI task, over the
    union of a stage's days) before publishing each."""
    record = _row(backend, state)
    if record.status != FileStatus.SUCCESS or record.settled:
        return StepState.of(record)
    import polars as pl

    from salesflow.datasets import get_spec
    from salesflow.engines import engine_for
    from salesflow.kpis.refresh import refresh_kpis_of
    from salesflow.pipeline.lake import sum_totals
    from salesflow.pipeline.routing import dead_letters, high_value_alerts

    spec = get_spec(record.dataset)
    backend.lake.publish(spec.name, record.seq)
    now = now or utcnow()
    origins = redrive.read_origins(backend.store, record.key) if record.origin else None
    failing: set[int] = set()
    with _spooled(backend, record.seq, "rejected-") as frames:
        for rejected in frames:
            fresh = dead_letters(spec.name, record.key, record.seq, rejected)
            if origins is not None:  # a redrive: records failing again keep their letter
                failing.update(x.record for x in fresh)
                fresh = redrive.fold(backend.letters, fresh, origins, record.seq, now)
            backend.letters.put(fresh)
    if origins is not None:
        with _spooled(backend, record.seq, REDRIVE_LOST) as frames:
            lost_records: redrive.Lost = {
                (int(r["_seq"]), int(r["_record"])): str(r["kind"])
                for frame in frames
                for r in frame.iter_rows(named=True)
            }
        redrive.settle(backend.letters, origins, failing, record.seq, now, lost_records)
    threshold = settings.alerts.threshold_for(spec.name)
    sinks = [n.name for n in backend.notifiers]
    with _spooled(backend, record.seq, LOST) as frames:
        lost = pl.concat(frames) if frames else pl.DataFrame(schema={"_key": pl.String})
    with _spooled(backend, record.seq, "alerts-") as frames:
        for found in frames:
            hits = found.join(lost, on="_key", how="anti")  # only the keys it stored
            backend.tables.add_alerts(
                high_value_alerts(spec.name, record.key, hits, threshold=threshold, sinks=sinks)
            )
    with _spooled(backend, record.seq, DELTA) as frames:
        backend.tables.apply_totals(record.seq, sum_totals(frames))
    if refresh:
        refresh_kpis_of(
            backend.lake,
            backend.tables,
            spec.name,
            StepState.of(record).day_dates,
            engine_for(settings),
        )
    failpoint(settings, "after_aggregate", spec.name)
    moved = _move_if_unchanged(backend, record)
    if not moved and backend.store.stat(record.key) is not None:
        log.warning(
            "%s changed after it was committed; the archive keeps no copy of seq %s, and the "
            "new content is processed as a new version",
            record.key,
            record.seq,
        )
    _drop_spool(backend, record.seq)
    record.settled = True
    backend.tables.update_file(record)
    if origins is not None:
        redrive.drop_origins(backend.store, record.key)
    published = StepState.of(record)
    published.alerts = state.alerts
    return published


# ------------------------------------------------------------------------------------- fail


def fail(
    backend: Backend,
    settings: Settings,
    state: StepState,
    error: str,
    *,
    now: datetime | None = None,
) -> StepState:
    """Mark the version FAILED with ``error``, drop whatever it staged or spooled, and move
    the object to its unique ``failed/`` key. A row that is already final is left as it is."""
    now = now or utcnow()
    record = backend.tables.get_file(state.seq)
    if record is None or record.status != FileStatus.IN_PROGRESS:
        return StepState.of(record) if record is not None else state
    # ImportError: the light AWS mark-failed Lambda holds no Polars (docs/aws.md); what a
    # crashed task staged for an uncommitted version stays invisible there, never committed.
    with contextlib.suppress(SalesflowError, ImportError):
        from salesflow.datasets import get_spec

        backend.lake.discard(get_spec(record.dataset).name, record.seq)
    _drop_spool(backend, record.seq)
    with contextlib.suppress(SalesflowError):  # a dataset name no key can hold: none written
        _drop_keys(backend, record.dataset, record.seq)
    record.status = FileStatus.FAILED
    record.error = error
    record.finished_at = now
    record.rows_in = record.valid = record.rejected = record.superseded = 0
    record.days = []
    record.archive_key = _archive_key(record, ok=False, when=now)
    record.settled = True
    if backend.tables.update_file(record, expect=FileStatus.IN_PROGRESS):
        log.info("file failed: %s", error)  # INFO: the caller reports it (CLI: stderr)
        _move_if_unchanged(backend, record)
        if record.origin:  # its letters stay open as they were
            redrive.drop_origins(backend.store, record.key)
    return StepState.of(record)


def fail_key(
    backend: Backend, settings: Settings, key: str, error: str, *, now: datetime | None = None
) -> StepState | None:
    """Fail the IN_PROGRESS version of the object at ``key`` (the newest, if several)."""
    for record in reversed(backend.tables.list_files(FileStatus.IN_PROGRESS, key=key)):
        return fail(backend, settings, StepState.of(record), error, now=now)
    return None


# ------------------------------------------------------------------------------ the sequence


def process_file(
    backend: Backend,
    settings: Settings,
    key: str,
    *,
    dataset: str | None = None,
    now: datetime | None = None,
    dedup: bool = True,
    origin: str | None = None,
) -> StepState:
    """Every step for the object at ``key``. Whatever one file raises ends that file FAILED
    (or, for a ``TransientError`` reading it, IN_PROGRESS for a later attempt); only the state
    store's own failures (``StoreUnavailable``, ``StoreBroken``) propagate."""
    state: StepState | None = None
    try:
        state = claim(backend, settings, key, dataset=dataset, now=now, dedup=dedup, origin=origin)
        if state.done:
            return state
        state = load(backend, settings, state, now=now)
        state = commit(backend, settings, state, now=now)
    except (StoreUnavailable, StoreBroken, KeyboardInterrupt):
        raise
    except TransientError as exc:
        if state is None:
            raise
        _note(backend, state, describe(key, exc))
        raise
    except Exception as exc:  # noqa: BLE001 - one file must never stop the others
        log.debug("failure processing %s", key, exc_info=True)
        if state is None:
            return _fail_unclaimed(backend, settings, key, describe(key, exc), now)
        return fail(backend, settings, state, describe(key, exc), now=now)
    return publish_safely(backend, settings, state, now=now)


def publish_safely(
    backend: Backend, settings: Settings, state: StepState, *, now: datetime | None = None
) -> StepState:
    """``publish``, with a failure kept in the lineage row (the file stays SUCCESS and
    unsettled; ``recover`` retries it) instead of raised: it is committed, not failed."""
    if state.status != FileStatus.SUCCESS:
        return state
    try:
        return publish(backend, settings, state, now=now)
    except (StoreUnavailable, StoreBroken, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001
        log.warning("publishing %s failed, retried later: %s", state.key, exc, exc_info=True)
        _note(backend, state, f"publish failed, retried later: {describe(state.key, exc)}")
        return state


def _note(backend: Backend, state: StepState, error: str) -> None:
    """Keep the last error of an unfinished version in its lineage row."""
    record = backend.tables.get_file(state.seq)
    if record is not None:
        record.error = error
        backend.tables.update_file(record)


def _fail_unclaimed(
    backend: Backend, settings: Settings, key: str, error: str, now: datetime | None
) -> StepState:
    """A failure before the version could be claimed (the object could not even be read):
    claim it as a failed version so it leaves the inbox and the reason is kept."""
    now = now or utcnow()
    info = backend.store.stat(key)
    if info is None:
        return StepState(
            key=key, dataset="unknown", seq=0, sha256="missing", status="FAILED", error=error
        )
    from salesflow.datasets import dataset_of_folder

    dataset = dataset_of_folder(layout.inbox_dataset(key)) or "unknown"
    record = FileRecord(
        key=key,
        sha256="unreadable",
        size=info.size,
        dataset=dataset,
        seq=backend.tables.next_seq(),
        started_at=now,
        version=info.version,
        arrived_at=info.modified,
        source=layout.source_name(key, dataset),
    )
    record, _ = backend.tables.claim(record)
    return fail(backend, settings, StepState.of(record), error, now=now)


# ---------------------------------------------------------------------------------- recover


def recover(backend: Backend, settings: Settings) -> list[StepState]:
    """Finish what a crash left behind. Run before any new work.

    An IN_PROGRESS version is redone (one more attempt) if its object is still there; if the
    object is found at its archive key (a power cut lost the commit after the move), it is
    moved back and redone; a version whose object changed is CHANGED; one whose object
    vanished is FAILED. A committed version that is not settled is published.
    """
    done: list[StepState] = []
    for record in backend.tables.list_files(FileStatus.IN_PROGRESS):
        try:
            done.append(_recover_one(backend, settings, record))
        except (StoreUnavailable, StoreBroken, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - one file must never stop recovery
            log.warning("recovering %s failed: %s", record.key, exc, exc_info=True)
    for record in backend.tables.list_files(FileStatus.SUCCESS, settled=False):
        done.append(publish_safely(backend, settings, StepState.of(record)))
    return done


def _recover_one(backend: Backend, settings: Settings, record: FileRecord) -> StepState:
    store = backend.store
    info = store.stat(record.key)
    if info is None:
        archived = _archive_key(record, ok=True)
        if store.exists(archived):
            store.move(archived, record.key)
            info = store.stat(record.key)
    if info is None:
        return fail(
            backend,
            settings,
            StepState.of(record),
            f"{record.key}: the object vanished from the inbox before it was processed",
        )
    if info.version != record.version:
        return _changed(backend, record, utcnow())
    return process_file(backend, settings, record.key, dataset=record.dataset)
