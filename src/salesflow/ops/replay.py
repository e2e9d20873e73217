"""``salesflow replay``: send a file from ``failed/`` through the pipeline again.

Once the cause of a failure is fixed (a setting, a missing reference, a bug), the archived
bytes go back to the inbox key they first arrived at, as a new version of the same file, and
are processed at once. The failed version keeps its lineage row and its archive.
"""

from __future__ import annotations

from salesflow import layout
from salesflow.config import Settings
from salesflow.errors import TerminalError
from salesflow.models import FileRecord, FileStatus
from salesflow.pipeline.state import StepState
from salesflow.pipeline.steps import process_file
from salesflow.ports import Backend


def failed_version(backend: Backend, key: str) -> FileRecord:
    """The failed file version ``key`` names: its ``failed/`` archive key, or the inbox key
    of a file whose latest version failed."""
    failed = backend.tables.list_files(FileStatus.FAILED)
    by_archive = [r for r in failed if r.archive_key == key]
    if by_archive:
        return by_archive[-1]
    named = backend.tables.list_files(key=key)
    if named:
        latest = max(named, key=lambda r: r.seq)
        if latest.status == FileStatus.FAILED:
            return latest
        raise TerminalError(
            f"{key}: its latest version is {latest.status.value}, not FAILED",
            hint="only failed files are replayed; to process it again, send it again",
        )
    raise TerminalError(
        f"{key}: no failed file has this key",
        hint="list them with: salesflow files --status FAILED",
    )


def replay(backend: Backend, settings: Settings, key: str) -> StepState:
    """Copy the failed version's archive back to its inbox key and process it now."""
    record = failed_version(backend, key)
    archive = record.archive_key
    if not archive or not archive.startswith(layout.FAILED) or not backend.store.exists(archive):
        raise TerminalError(
            f"{record.key}: its archive {archive!r} is not in failed/",
            hint="the bytes are gone; send the file again",
        )
    target = layout.check_key(record.key)
    if backend.store.exists(target):
        raise TerminalError(
            f"{target} is in the inbox already (a newer version waits there)",
            hint="let salesflow run or ingest process it first, then replay",
        )
    with backend.store.fetch(archive) as path:
        backend.store.put_file(target, path)
    return process_file(
        backend, settings, target, dataset=record.dataset, origin=f"replay:{record.seq}"
    )
