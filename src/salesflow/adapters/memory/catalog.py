"""The lake's catalog in a dict: the ``Catalog`` port for fast tests.

``commits`` may be shared with the memory ``Tables`` so that a file's commit marker, written
with its lineage, is what makes its fragments visible (as in one SQLite transaction).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Collection, Sequence

from salesflow.models import Fragment


class MemoryCatalog:
    """A ``Catalog`` whose fragments live in ``self.entries`` and commits in ``self.commits``."""

    def __init__(self, commits: set[int] | None = None) -> None:
        self.entries: dict[str, Fragment] = {}
        self.commits: set[int] = commits if commits is not None else set()
        self._lock = threading.Lock()

    def add_fragments(self, fragments: Sequence[Fragment]) -> None:
        with self._lock:
            for fragment in fragments:
                self.entries[fragment.path] = fragment

    def fragments(
        self, dataset: str, *, months: Collection[tuple[int, int]] | None = None
    ) -> list[Fragment]:
        wanted = None if months is None else set(months)
        with self._lock:
            found = [
                f
                for f in self.entries.values()
                if f.dataset == dataset and (wanted is None or (f.year, f.month) in wanted)
            ]
        return sorted(found, key=lambda f: f.path)

    def retire_fragments(self, paths: Sequence[str], *, by: int) -> None:
        self._update(paths, lambda f: dataclasses.replace(f, retired_by=by))

    def unretire(self, dataset: str, *, by: int) -> None:
        with self._lock:
            for path, f in list(self.entries.items()):
                if f.dataset == dataset and f.retired_by == by:
                    self.entries[path] = dataclasses.replace(f, retired_by=None)

    def mark_published(self, paths: Sequence[str]) -> None:
        self._update(paths, lambda f: dataclasses.replace(f, published=True))

    def drop_fragments(self, paths: Sequence[str]) -> None:
        with self._lock:
            for path in paths:
                self.entries.pop(path, None)

    def committed(self, commits: Collection[int]) -> set[int]:
        with self._lock:
            return {c for c in commits if c in self.commits}

    def commit(self, commit: int) -> None:
        with self._lock:
            self.commits.add(commit)

    def _update(self, paths: Sequence[str], change: Callable[[Fragment], Fragment]) -> None:
        with self._lock:
            for path in paths:
                found = self.entries.get(path)
                if found is not None:  # never brings a dropped fragment back
                    self.entries[path] = change(found)
