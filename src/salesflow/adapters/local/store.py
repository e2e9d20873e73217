"""The bucket as a local folder: the ``ObjectStore`` port on one machine.

Keys are POSIX paths below ``root``. Every key is checked twice: syntactically with
``check_key`` (no ``..``, absolute paths or NUL) and physically, after resolving symlinks, so a
link inside the bucket cannot lead a read or a write outside it. Symbolic links are never
followed for content: a link dropped into the inbox is listed (so it ends in ``failed/`` with a
clear error) but cannot be read, and moving it moves the link, never its target. Writes go to
a hidden temporary file and are renamed into place, so a reader never sees half an object.
A move never replaces an existing object.

An object's version token is ``<mtime_ns>-<size>-<inode>`` (hex): an upload, a rewrite in
place, or a replacement under the same name each give a new version.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from salesflow.adapters.local.files import (
    copy_atomic,
    fsync_dir,
    fsync_file,
    write_bytes_atomic,
)
from salesflow.errors import FileLevelError, InvalidKeyError
from salesflow.layout import check_key
from salesflow.models import ObjectInfo


class LocalObjectStore:
    """An ``ObjectStore`` over the folder ``root`` (by default ``<data_dir>/bucket``).

    >>> store = LocalObjectStore(Path(tmp))  # doctest: +SKIP
    >>> store.put_bytes("inbox/orders_json/a.json", b"[]")  # doctest: +SKIP
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._real_root = self.root.resolve()

    def path(self, key: str) -> Path:
        """The file behind ``key``; raises ``InvalidKeyError`` if it would leave the bucket."""
        check_key(key)
        path = self.root / key
        real = path.resolve()
        if not real.is_relative_to(self._real_root):
            raise InvalidKeyError(key, "it resolves to a path outside the bucket")
        if real == self._real_root:
            raise InvalidKeyError(key, "it names the bucket itself")
        return path

    def put_bytes(self, key: str, data: bytes) -> None:
        write_bytes_atomic(self.path(key), data)

    def put_file(self, key: str, path: Path, *, move: bool = False) -> None:
        """Copy ``path`` in atomically; with ``move``, rename it in (no copy), falling back to
        copy-then-delete when it lives on another filesystem."""
        target = self.path(key)
        source = Path(path)
        if not move:
            copy_atomic(source, target)
            return
        fsync_file(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            source.replace(target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            copy_atomic(source, target)
            source.unlink(missing_ok=True)
        fsync_dir(target.parent)

    def _regular(self, key: str) -> Path:
        """The object's file; ``FileNotFoundError`` if absent, a clear error for a link."""
        if self.path_of_link(key).is_symlink():
            raise FileLevelError(
                key,
                "is a symbolic link; salesflow never follows links in the bucket",
                rule="structure.symlink",
                hint="copy the file itself into the inbox (write elsewhere, then rename in)",
            )
        path = self.path(key)
        if not path.is_file():
            raise FileNotFoundError(f"no object at key {key!r} in {self.root}")
        return path

    def get_bytes(self, key: str) -> bytes:
        return self._regular(key).read_bytes()

    @contextlib.contextmanager
    def fetch(self, key: str) -> Iterator[Path]:
        """Yield the object's own file: nothing is copied on one machine."""
        yield self._regular(key)

    def exists(self, key: str) -> bool:
        path = self.path_of_link(key)
        return path.is_symlink() or path.is_file()

    def stat(self, key: str) -> ObjectInfo | None:
        path = self.path_of_link(key)
        try:
            st = path.lstat()
        except FileNotFoundError:
            return None
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            return None
        return _info(key, st)

    def list(self, prefix: str) -> list[ObjectInfo]:
        """Objects whose key starts with ``prefix``, sorted; hidden and temporary files skipped."""
        folder = prefix.rpartition("/")[0]
        base = self.path(folder) if folder else self.root
        if not base.is_dir():
            return []
        found: list[ObjectInfo] = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if name.startswith("."):
                    continue
                path = Path(dirpath) / name
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    info = self._info(key, path)
                    if info is not None:
                        found.append(info)
        found.sort(key=lambda info: info.key)
        return found

    def _info(self, key: str, path: Path) -> ObjectInfo | None:
        """Stat one listed file without following links; ``None`` if it vanished or is not
        a regular file or a link."""
        try:
            st = path.lstat()
        except FileNotFoundError:
            return None
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            return None
        return _info(key, st)

    def move(self, src: str, dst: str) -> None:
        """Rename ``src`` to ``dst`` (atomic on one filesystem); a link moves as a link.
        Idempotent: when ``src`` is gone and ``dst`` exists, a previous move finished. Never
        replaces an existing ``dst``: that is a ``FileExistsError``."""
        src_path, dst_path = self.path_of_link(src), self.path_of_link(dst)
        if not src_path.is_symlink() and not src_path.is_file():
            if dst_path.is_symlink() or dst_path.is_file():
                return
            raise FileNotFoundError(f"cannot move {src!r}: no such object, and {dst!r} is absent")
        dst_path.parent.mkdir(parents=True, exist_ok=True)
        if dst_path.is_symlink() or dst_path.exists():
            raise FileExistsError(f"cannot move {src!r} to {dst!r}: the target exists")
        try:
            os.link(src_path, dst_path, follow_symlinks=False)
        except FileExistsError:
            raise FileExistsError(f"cannot move {src!r} to {dst!r}: the target exists") from None
        except OSError:  # a filesystem without hard links: rename (checked above)
            src_path.rename(dst_path)
        else:
            src_path.unlink()
        fsync_dir(dst_path.parent)
        if src_path.parent != dst_path.parent:
            fsync_dir(src_path.parent)

    def path_of_link(self, key: str) -> Path:
        """The path of ``key`` itself (a link is not resolved), confined like ``path``."""
        check_key(key)
        path = self.root / key
        parent = path.parent.resolve()
        if not parent.is_relative_to(self._real_root):
            raise InvalidKeyError(key, "it resolves to a path outside the bucket")
        return path

    def delete(self, key: str) -> None:
        self.path_of_link(key).unlink(missing_ok=True)


def version_of(st: os.stat_result) -> str:
    """The version of a file as ``list`` reports it: mtime, size and inode."""
    return f"{st.st_mtime_ns:x}-{st.st_size:x}-{st.st_ino:x}"


def _info(key: str, st: os.stat_result) -> ObjectInfo:
    return ObjectInfo(
        key=key,
        size=st.st_size,
        modified=datetime.fromtimestamp(st.st_mtime_ns / 1e9, UTC),
        version=version_of(st),
    )
