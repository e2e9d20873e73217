"""The bucket as a local folder: the ``ObjectStore`` port on one machine.

Keys are POSIX paths below ``root``. Every key is checked twice: syntactically with
``check_key`` (no ``..``, absolute paths or NUL) and physically, after resolving symlinks, so a
link inside the bucket cannot lead a read or a write outside it. Writes go to a hidden
temporary file and are renamed into place, so a reader never sees half an object.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from salesflow.adapters.local.files import copy_atomic, fsync_dir, write_bytes_atomic
from salesflow.errors import InvalidKeyError
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

    def put_file(self, key: str, path: Path) -> None:
        copy_atomic(Path(path), self.path(key))

    def get_bytes(self, key: str) -> bytes:
        path = self.path(key)
        if not path.is_file():
            raise FileNotFoundError(f"no object at key {key!r} in {self.root}")
        return path.read_bytes()

    @contextlib.contextmanager
    def fetch(self, key: str) -> Iterator[Path]:
        """Yield the object's own file: nothing is copied on one machine."""
        path = self.path(key)
        if not path.is_file():
            raise FileNotFoundError(f"no object at key {key!r} in {self.root}")
        yield path

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

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
        """Stat one listed file; ``None`` if it vanished or is a link leading outside."""
        real = path.resolve()
        if not real.is_relative_to(self._real_root):
            return None
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        return ObjectInfo(
            key=key, size=st.st_size, modified=datetime.fromtimestamp(st.st_mtime, UTC)
        )

    def move(self, src: str, dst: str) -> None:
        """Rename ``src`` to ``dst`` (atomic on one filesystem). Idempotent: when ``src`` is
        gone and ``dst`` exists, a previous move finished and there is nothing to do."""
        src_path, dst_path = self.path(src), self.path(dst)
        if not src_path.is_file():
            if dst_path.is_file():
                return
            raise FileNotFoundError(f"cannot move {src!r}: no such object, and {dst!r} is absent")
        dst_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            src_path.replace(dst_path)
        except OSError:  # pragma: no cover - a bucket spread over several filesystems
            copy_atomic(src_path, dst_path)
            src_path.unlink(missing_ok=True)
        fsync_dir(dst_path.parent)
        fsync_dir(src_path.parent)

    def delete(self, key: str) -> None:
        path = self.path(key)
        path.unlink(missing_ok=True)
