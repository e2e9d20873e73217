"""The bucket in a dict: the ``ObjectStore`` port for fast tests.

Every upload gets a fresh ``version`` (a counter), like an S3 ``VersionId``, so code that tells
two uploads to the same key apart can be tested here too.
"""

from __future__ import annotations

import contextlib
import itertools
import posixpath
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from salesflow.layout import check_key
from salesflow.models import ObjectInfo, utcnow


@dataclass(frozen=True)
class StoredObject:
    data: bytes
    modified: datetime
    version: str


class MemoryStore:
    """An ``ObjectStore`` whose objects live in ``self.objects``."""

    def __init__(self) -> None:
        self.objects: dict[str, StoredObject] = {}
        self._versions = itertools.count(1)

    def put_bytes(self, key: str, data: bytes) -> None:
        self.objects[check_key(key)] = StoredObject(data, utcnow(), str(next(self._versions)))

    def put_file(self, key: str, path: Path, *, move: bool = False) -> None:
        self.put_bytes(key, Path(path).read_bytes())
        if move:
            Path(path).unlink(missing_ok=True)

    def get_bytes(self, key: str) -> bytes:
        found = self.objects.get(check_key(key))
        if found is None:
            raise FileNotFoundError(f"no object at key {key!r} in the memory store")
        return found.data

    @contextlib.contextmanager
    def fetch(self, key: str) -> Iterator[Path]:
        data = self.get_bytes(key)
        with tempfile.TemporaryDirectory(prefix="salesflow-mem-") as folder:
            path = Path(folder) / f"object{posixpath.splitext(key)[1]}"
            path.write_bytes(data)
            yield path

    def exists(self, key: str) -> bool:
        return check_key(key) in self.objects

    def stat(self, key: str) -> ObjectInfo | None:
        found = self.objects.get(check_key(key))
        if found is None:
            return None
        return ObjectInfo(key, len(found.data), found.modified, found.version)

    def list(self, prefix: str) -> list[ObjectInfo]:
        return [
            ObjectInfo(key, len(obj.data), obj.modified, obj.version)
            for key, obj in sorted(self.objects.items())
            if key.startswith(prefix)
        ]

    def move(self, src: str, dst: str) -> None:
        """Idempotent like the others: when ``src`` is gone and ``dst`` exists, nothing to do."""
        check_key(src)
        check_key(dst)
        if src not in self.objects:
            if dst in self.objects:
                return
            raise FileNotFoundError(f"cannot move {src!r}: no such object, and {dst!r} is absent")
        self.objects[dst] = self.objects.pop(src)

    def delete(self, key: str) -> None:
        self.objects.pop(check_key(key), None)
