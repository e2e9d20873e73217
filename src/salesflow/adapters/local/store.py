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
        self._root_s = os.fspath(self.root)

    def path(self, key: str) -> Path:
        """The file behind ``key``; raises ``InvalidKeyError`` if it would leave the bucket."""
        check_key(key)
        path = self.root / key
        if not self._through_link(key, last=True):
            return path  # real folders all the way down stay inside, and below the root
        real = path.resolve()
        if not real.is_relative_to(self._real_root):
            raise InvalidKeyError(key, "it resolves to a path outside the bucket")
        if real == self._real_root:
            raise InvalidKeyError(key, "it names the bucket itself")
        return path

    def _through_link(self, key: str, *, last: bool) -> bool:
        """Whether the path to ``key`` (its last part too, with ``last``) passes a symbolic
        link, or cannot be told (no part at all).

        ``check_key`` has refused ``..``, ``.`` and absolute keys, so only a link can lead a
        key out of the bucket: one ``lstat`` per part finds it at a fraction of the cost of
        ``Path.resolve`` (an ``lstat`` of every part from ``/``, plus pathlib's parsing), and
        only a key with a link is resolved. Where a part is missing (or cannot be read),
        nothing below it can be a link; ``resolve`` treats it the same way."""
        parts = [p for p in key.split("/") if p]
        if not last:
            parts = parts[:-1]
        elif not parts:
            return True
        current = self._root_s
        for part in parts:
            current = f"{current}/{part}"  # a string: pathlib per part is what this avoids
            try:
                mode = os.lstat(current).st_mode
            except OSError:
                return False
            if stat.S_ISLNK(mode):
                return True
        return False

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
        """Objects whose key starts with ``prefix``, sorted; hidden and temporary files skipped.

        Only the entries of the prefix's folder whose names start with the prefix's last part
        are visited (a version's key manifests share a folder with every other version's: a
        walk of the whole folder per file made each file cost more as the store grew). Keys
        are built as strings: pathlib per listed file was most of a listing's cost."""
        folder, _, start = prefix.rpartition("/")
        base = self.path(folder) if folder else self.root
        if not base.is_dir():
            return []
        top = os.fspath(base)
        # The key of ``base`` as the old relative_to gave it (pathlib normalises the folder):
        # only when it is the prefix's own folder may entries be skipped by name.
        base_key = base.relative_to(self.root).as_posix() if folder else ""
        by_name = base_key == folder
        found: list[ObjectInfo] = []
        for dirpath, dirnames, filenames in os.walk(top):
            below = dirpath[len(top) :].lstrip(os.sep).replace(os.sep, "/")
            if below or not by_name:
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            else:
                dirnames[:] = [d for d in dirnames if d.startswith(start) and d[:1] != "."]
                filenames = [n for n in filenames if n.startswith(start)]
            head = "/".join(p for p in (base_key, below) if p)
            head = f"{head}/" if head else ""
            for name in filenames:
                if name.startswith("."):
                    continue
                key = head + name
                if key.startswith(prefix):
                    info = self._info(key, f"{dirpath}/{name}")
                    if info is not None:
                        found.append(info)
        found.sort(key=lambda info: info.key)
        return found

    def _info(self, key: str, path: str) -> ObjectInfo | None:
        """Stat one listed file without following links; ``None`` if it vanished or is not
        a regular file or a link."""
        try:
            st = os.lstat(path)
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
        if not self._through_link(key, last=False):
            return path
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
