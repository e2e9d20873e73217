"""Atomic file writes: a hidden temporary file in the target folder, fsync, then rename.

Readers in any process see the old file or the new one, never a part: ``os.replace`` within one
folder is atomic on POSIX. Temporary names start with ``.`` so listings and lake scans skip them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

TMP_PREFIX = ".tmp-"


def temp_path_for(path: Path) -> Path:
    """A hidden, unique sibling of ``path`` to write into before the rename."""
    return path.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex}-{path.name}")


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Flush a file's content to disk before it is renamed into place."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_target(path: Path) -> Iterator[Path]:
    """Yield a temporary path; on success it replaces ``path`` atomically and durably.

    On any error the temporary file is removed and ``path`` is left as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    try:
        yield tmp
        fsync_file(tmp)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_atomic(path: Path, writer: Callable[[Path], object]) -> None:
    """Call ``writer(tmp)`` to produce the file, then rename it over ``path``."""
    with atomic_target(path) as tmp:
        writer(tmp)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """``path.write_bytes(data)``, atomically."""
    write_atomic(path, lambda tmp: tmp.write_bytes(data))


def copy_atomic(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst``, atomically."""
    write_atomic(dst, lambda tmp: shutil.copyfile(src, tmp))
