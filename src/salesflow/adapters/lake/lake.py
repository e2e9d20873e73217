"""The lake: Parquet fragments over any ``ObjectStore``, holding exactly the current version of
each record after every commit (``docs/design.md`` §4).

A commit's life, as the pipeline drives it::

    with lake.stage(dataset, commit) as staging:     # no lock: invisible, discardable
        for chunk in chunks:
            staging.write(chunk)
    with locks.hold(lake.lock_name(dataset)):
        resolution = lake.resolve(dataset, commit)   # copy-on-write of what the commit replaces
        tables.commit_files(...)                     # the commit marker, with lineage + totals
    lake.publish(dataset, commit)                    # no lock: files to their final paths

Anything that fails before the marker is undone by ``discard``; ``publish`` is finished by
calling it again. A directory reader (Polars, DuckDB, Spark, Athena) sees exactly the current
rows once ``publish`` has run; ``read`` and ``lookup`` see them as soon as the marker exists.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import polars as pl

from salesflow.adapters.lake import compaction
from salesflow.adapters.lake.compaction import Compaction
from salesflow.adapters.lake.files import (
    COMPRESSION_LEVEL,
    META,
    SMALL_BYTES,
    Encoded,
    check_dataset,
    encode,
    encode_file,
    fetch_all,
    fetch_fragment,
    fragment_path,
    part_number,
    scan,
    scan_indexed,
)
from salesflow.adapters.lake.parallel import each, settle_all
from salesflow.adapters.lake.reads import LakeReader
from salesflow.adapters.lake.resolve import DUPLICATE, VERSION_COLUMNS, Resolution, decide
from salesflow.adapters.lake.staging import Staging
from salesflow.adapters.lake.zones import KeyProbe, Zone, ranges_overlap, source_hits, zone_of
from salesflow.errors import TerminalError, TransientError
from salesflow.layout import WORK, staging_key
from salesflow.models import Fragment
from salesflow.ports import Catalog, Locks, ObjectStore

log = logging.getLogger(__name__)

COMPACTIONS = f"{WORK}compactions/"
"""``work/compactions/<dataset>/<commit>``: present while a compaction runs, so one that a crash
interrupted is finished (committed) or thrown away (not) by the next."""


class ParquetLake(LakeReader):
    """The record store: ``store`` holds the Parquet files, ``catalog`` which ones are visible.

    ``work_dir`` is a local folder for files being written (on the same filesystem as a local
    store, so they are renamed in, not copied). ``new_commit`` hands out commit ids for
    compactions (the lineage sequence). A month is compacted once one of its size tiers holds
    ``fanout`` fragments smaller than ``target_rows`` (see ``compaction``).
    """

    def __init__(
        self,
        store: ObjectStore,
        catalog: Catalog,
        locks: Locks,
        *,
        work_dir: Path,
        new_commit: Callable[[], int],
        target_rows: int = 1_000_000,
        fanout: int = 8,
        first_tier_rows: int = 8_192,
        lock_timeout: float = 600.0,
        key_cache: int = 64 << 20,
    ) -> None:
        super().__init__(store, catalog, key_cache=key_cache)
        if fanout < 2 or target_rows < 1 or first_tier_rows < 1:
            raise ValueError("the lake needs fanout >= 2, target_rows >= 1, first_tier_rows >= 1")
        self.locks = locks
        self.work_dir = Path(work_dir)
        self.new_commit = new_commit
        self.target_rows = target_rows
        self.fanout = fanout
        self.first_tier_rows = first_tier_rows
        self.lock_timeout = lock_timeout
        self._parts: dict[tuple[str, int], int] = {}
        self._parts_lock = threading.Lock()

    def close(self) -> None:
        """Close the catalog (its SQLite connection, locally)."""
        closer = getattr(self.catalog, "close", None)
        if callable(closer):
            closer()

    @staticmethod
    def lock_name(dataset: str) -> str:
        """The lock a commit of ``dataset`` holds from ``resolve`` to its commit marker."""
        return f"lake:{dataset}"

    # -- stage ---------------------------------------------------------------------------
    def stage(self, dataset: str, commit: int) -> Staging:
        """Open a staging of ``commit``'s rows of ``dataset`` (see ``Staging``). Several may
        be opened for one commit (a group of files) in one process. A commit that failed or
        crashed is ``discard``-ed before it is staged again."""
        check_dataset(dataset)
        return Staging(
            store=self.store,
            catalog=self.catalog,
            work_dir=self.work_dir,
            dataset=dataset,
            commit=commit,
            next_part=lambda: self._next_part(dataset, commit),
            remember=self.remember_schema,
            learn=self.keys.learn_hashes,
        )

    def _reserve_parts(self, dataset: str, commit: int, fragments: Sequence[Fragment]) -> None:
        """Number new fragments of ``commit`` after those the catalog already has."""
        known = [part_number(f.path) for f in fragments if f.created_by == commit]
        with self._parts_lock:
            key = (dataset, commit)
            self._parts[key] = max([self._parts.get(key, -1), *known])

    def _next_part(self, dataset: str, commit: int) -> int:
        with self._parts_lock:
            key = (dataset, commit)
            self._parts[key] = self._parts.get(key, -1) + 1
            return self._parts[key]

    # -- resolve -------------------------------------------------------------------------
    def resolve(
        self,
        dataset: str,
        commit: int,
        *,
        replace_sources: Mapping[str, tuple[int, int]] | None = None,
    ) -> Resolution:
        """Settle ``commit``'s conflicts with the visible rows (see ``resolve.decide``).

        Call it holding ``locks.hold(lock_name(dataset))`` and keep the lock until the commit
        marker is written: the visible set must not change in between. ``replace_sources``
        maps a source to the version ``(arrived, seq)`` that replaces all its older rows.
        Once per commit attempt: after a failure, ``discard`` and redo the commit.
        """
        sources = dict(replace_sources or {})
        everything = self.catalog.fragments(check_dataset(dataset))
        staged = [f for f in everything if f.created_by == commit and not f.published]
        visible = [f for f in self.visible_of(everything) if f.created_by != commit]
        template = self._template(staged or visible)
        if not staged and not sources:
            return _resolution(template, [], [], [])
        self._reserve_parts(dataset, commit, everything)
        several = len({f.min_seq for f in staged} | {f.max_seq for f in staged}) > 1
        union = Zone()
        for fragment in staged:
            union = union.merge(Zone.of(fragment))
        by_key = [v for v in visible if ranges_overlap(v, union)] if union.rows else []
        by_source = [v for v in visible if sources and source_hits(v, sources)]
        if not (by_key or by_source or several):
            return _resolution(template, [], [], [])
        staged_rows = self._versions(staged)
        probe = KeyProbe(staged_rows.get_column("_key"))
        hits = [v for v, hit in zip(by_key, probe.hits(by_key), strict=True) if hit]
        chosen = {v.path for v in self.may_hold(hits, probe.keys)}
        chosen.update(v.path for v in by_source)
        candidates = [v for v in visible if v.path in chosen]
        if not (candidates or several):
            return _resolution(template, [], [], [])
        visible_rows = self._conflicting(candidates, probe, sources)
        visible_losers, staged_losers = decide(visible_rows, staged_rows, sources)
        replaced = self._replace(dataset, commit, candidates, visible_losers)
        superseded, duplicates = self._drop_staged(dataset, commit, staged, staged_losers)
        return _resolution(template, replaced, superseded, duplicates)

    def _versions(self, staged: Sequence[Fragment]) -> pl.DataFrame:
        """``VERSION_COLUMNS`` of every staged row, with ``__frag`` and ``__row``."""
        if not staged:
            return _empty_versions()
        with fetch_all(self.store, staged) as sources:
            return scan_indexed(sources, VERSION_COLUMNS).collect()

    def _conflicting(
        self, candidates: Sequence[Fragment], probe: KeyProbe, sources: Mapping[str, object]
    ) -> pl.DataFrame:
        """Version columns of the candidates' rows that share a key with the staged rows or
        belong to a replaced source."""
        if not candidates:
            return _empty_versions()
        wanted = pl.col("_key").is_in(probe.keys.implode())
        if sources:
            wanted = wanted | pl.col("_source").is_in(pl.Series(list(sources)).implode())
        with fetch_all(self.store, candidates) as paths:
            return scan_indexed(paths, VERSION_COLUMNS).filter(wanted).collect()

    def _replace(
        self,
        dataset: str,
        commit: int,
        candidates: Sequence[Fragment],
        losers: pl.DataFrame,
    ) -> list[pl.DataFrame]:
        """Copy-on-write: each visible fragment holding losers is copied without them (a new
        fragment of ``commit``) and retired by ``commit``. Returns the removed rows."""
        lost = losers.partition_by("__frag", as_dict=True, include_key=False)
        originals = [candidates[int(str(index))] for (index,) in lost]
        removed: list[pl.DataFrame] = []
        copies: list[tuple[pl.DataFrame, str, Fragment]] = []
        with fetch_all(self.store, originals) as sources:
            for original, source, rows in zip(originals, sources, lost.values(), strict=True):
                frame = pl.read_parquet(source, hive_partitioning=False)
                index = pl.int_range(pl.len(), dtype=pl.UInt32)
                gone = index.is_in(rows.get_column("__row").implode())
                removed.append(frame.filter(gone))
                kept = frame.filter(~gone)
                if not kept.is_empty():
                    n = self._next_part(dataset, commit)
                    path = fragment_path(dataset, original.year, original.month, commit, n)
                    copies.append((kept, path, original))
        self._put_all_staged(copies, commit)
        self.catalog.retire_fragments([f.path for f in originals], by=commit)
        return removed

    def _drop_staged(
        self,
        dataset: str,
        commit: int,
        staged: Sequence[Fragment],
        losers: pl.DataFrame,
    ) -> tuple[list[pl.DataFrame], list[pl.DataFrame]]:
        """Remove the commit's own losing rows from its staged fragments, in place."""
        superseded: list[pl.DataFrame] = []
        duplicates: list[pl.DataFrame] = []
        for (index,), rows in losers.group_by("__frag", maintain_order=True):
            fragment = staged[int(str(index))]
            frame = self._read_fragment(fragment).with_row_index("__row")
            lost = frame.join(rows.select("__row", "__kind"), on="__row", how="inner")
            duplicates.append(lost.filter(pl.col("__kind") == DUPLICATE).drop("__row", "__kind"))
            superseded.append(lost.filter(pl.col("__kind") != DUPLICATE).drop("__row", "__kind"))
            kept = frame.join(rows.select("__row"), on="__row", how="anti").drop("__row")
            if kept.is_empty():
                self.store.delete(staging_key(fragment.path))
                self.catalog.drop_fragments([fragment.path])
            else:
                self._put_all_staged([(kept, fragment.path, fragment)], commit)
        return superseded, duplicates

    def _template(self, fragments: Sequence[Fragment]) -> pl.DataFrame:
        if not fragments:
            return pl.DataFrame(schema=META)
        return pl.DataFrame(schema=self.newest_schema(fragments))

    def _read_fragment(self, fragment: Fragment) -> pl.DataFrame:
        with fetch_fragment(self.store, fragment) as source:
            return pl.read_parquet(source, hive_partitioning=False)

    def _put_all_staged(
        self, frames: Sequence[tuple[pl.DataFrame, str, Fragment]], commit: int
    ) -> list[Fragment]:
        """Stage each ``(frame, path, like)`` as fragment ``path`` of ``commit``: all registered
        in one catalog write, then put at once."""
        if not frames:
            return []
        encoded: list[Encoded] = []
        try:
            for frame, _, like in frames:
                encoded.append(encode(frame, self._scratch(commit, like)))
            entries = [
                _entry(like, path=path, zone=zone_of(frame), size=content.size, commit=commit)
                for (frame, path, like), content in zip(frames, encoded, strict=True)
            ]
            self.catalog.add_fragments(entries)
            each(
                lambda pair: pair[1].put(self.store, staging_key(pair[0].path)),
                list(zip(entries, encoded, strict=True)),
            )
        finally:
            for content in encoded:
                content.drop()
        for entry, (frame, _, _) in zip(entries, frames, strict=True):
            self.remember_schema(entry, frame.schema)
            self.keys.learn(entry, frame.get_column("_key"))
        return entries

    def _scratch(self, commit: int, like: Fragment) -> Path:
        """A work folder of ``commit``'s (``discard`` removes it after a crash)."""
        return self.work_dir / f"lake-{like.dataset}-{commit:012d}-scratch"

    # -- discard -------------------------------------------------------------------------
    def discard(self, dataset: str, commit: int) -> None:
        """Forget everything ``commit`` staged or retired (it failed, or is being redone).
        Idempotent; refuses a committed commit (publish that instead)."""
        check_dataset(dataset)
        if self.is_committed({commit}):
            raise TerminalError(
                f"commit {commit} of {dataset!r} is committed and cannot be discarded",
                hint="publish it instead (salesflow recover does)",
            )
        mine = [f for f in self.catalog.fragments(dataset) if f.created_by == commit]
        each(self.store.delete, [staging_key(f.path) for f in mine])
        self.catalog.drop_fragments([f.path for f in mine])
        self.catalog.unretire(dataset, by=commit)
        for folder in self.work_dir.glob(f"lake-{dataset}-{commit:012d}-*"):
            shutil.rmtree(folder, ignore_errors=True)
        with self._parts_lock:
            self._parts.pop((dataset, commit), None)
        self.keys.forget(commit)

    # -- publish -------------------------------------------------------------------------
    def publish(self, dataset: str, commit: int, *, compact: bool = True) -> None:
        """After ``commit``'s marker exists: move its fragments to their final paths, delete
        the fragments it replaced, then compact if a month needs it. Idempotent: a crash
        anywhere in it is finished by calling it again. Needs no lock (it takes the dataset's
        lock itself to compact, and skips compacting when another holds it)."""
        check_dataset(dataset)
        if not self.is_committed({commit}):
            raise TerminalError(
                f"commit {commit} of {dataset!r} has no commit marker: it cannot be published",
                hint="write the marker first, or discard the commit",
            )
        fragments = self.catalog.fragments(dataset)
        self._settle(dataset, fragments, only=commit)
        with self._parts_lock:
            self._parts.pop((dataset, commit), None)
        if compact:
            self._auto_compact(dataset, self.visible_of(fragments))

    def _settle(self, dataset: str, fragments: Sequence[Fragment], *, only: int | None) -> None:
        """Publish committed fragments (all, or ``only``'s) and delete the ones they replaced."""
        ids = {f.created_by for f in fragments} | {
            f.retired_by for f in fragments if f.retired_by is not None
        }
        done = self.is_committed(ids)
        ready = [
            f
            for f in fragments
            if not f.published
            and f.created_by in done
            and only in (None, f.created_by)
            and f.retired_by not in done  # else replaced already: its replacer deletes it
        ]
        moves = settle_all(self._move_in, ready)
        moved = []
        for fragment, future in zip(ready, moves, strict=True):
            error = future.exception()
            if error is None:
                moved.append(fragment.path)
            elif not isinstance(error, FileNotFoundError):  # replaced and deleted meanwhile
                raise error
        self.catalog.mark_published(moved)
        if moved:
            self._delete_orphans(dataset, moved)
        retired = [f for f in fragments if f.retired_by in done and only in (None, f.retired_by)]
        # the staged name first: a concurrent publish may still move it to the final one
        each(self.store.delete, [staging_key(f.path) for f in retired])
        each(self.store.delete, [f.path for f in retired])
        self.catalog.drop_fragments([f.path for f in retired])

    def _move_in(self, fragment: Fragment) -> None:
        """Staged name to final path. A move that a crash interrupted (the local store links
        first, then unlinks) or that another publisher is making may have put it there
        already: the staged name is then only left to delete."""
        staged = staging_key(fragment.path)
        try:
            self.store.move(staged, fragment.path)
        except FileExistsError:
            self.store.delete(staged)

    def _delete_orphans(self, dataset: str, moved: Sequence[str]) -> None:
        """A fragment moved while the commit that replaced it deleted it may land at its final
        path after that delete; once its catalog entry is gone, nobody else will delete it."""
        months = {_month_of(path) for path in moved}
        known = {f.path for f in self.catalog.fragments(dataset, months=months)}
        each(self.store.delete, [path for path in moved if path not in known])

    # -- compact -------------------------------------------------------------------------
    def compact(self, dataset: str) -> Compaction:
        """Merge every month's small fragments (``salesflow compact``); also finishes what a
        crash interrupted (publishes, compactions). Waits for the dataset's lock."""
        check_dataset(dataset)
        with self.locks.hold(self.lock_name(dataset), timeout=self.lock_timeout):
            self._recover_compactions(dataset)
            self._settle(dataset, self.catalog.fragments(dataset), only=None)
            return self._compact(dataset, everything=True)

    def _auto_compact(self, dataset: str, visible: Sequence[Fragment]) -> None:
        """Compact the months whose tiers are full, if the lock is free right now (its holder
        publishes and compacts next). A failure here never fails the publish."""
        if not self._plan(visible):
            return
        try:
            with self.locks.hold(self.lock_name(dataset), timeout=0.0):
                self._recover_compactions(dataset)
                self._compact(dataset, everything=False)
        except TransientError:
            return
        except Exception as exc:  # compaction is an optimisation: the publish stands
            log.warning(
                "compaction of lake %r failed (%s); the next publish or `salesflow compact` "
                "retries it",
                dataset,
                exc,
            )

    def _plan(self, visible: Sequence[Fragment]) -> list[list[Fragment]]:
        return compaction.plan(
            visible, target_rows=self.target_rows, fanout=self.fanout, base=self.first_tier_rows
        )

    def _compact(self, dataset: str, *, everything: bool) -> Compaction:
        visible = self.visible(dataset)
        if everything:
            groups = compaction.plan_all(visible, target_rows=self.target_rows)
        else:
            groups = self._plan(visible)
        if not groups:
            return Compaction()
        commit = self.new_commit()
        marker = f"{COMPACTIONS}{dataset}/{commit:012d}"
        self.store.put_bytes(marker, b"")
        base = self.newest_schema(visible, [f for g in groups for f in g])
        for n, group in enumerate(groups):
            path = fragment_path(dataset, group[0].year, group[0].month, commit, n)
            self._merge(group, base, path, commit)
        self.catalog.retire_fragments([f.path for g in groups for f in g], by=commit)
        self.catalog.commit(commit)
        self._committed.add(commit)
        self._settle(dataset, self.catalog.fragments(dataset), only=commit)
        self.store.delete(marker)
        merged = [f for g in groups for f in g]
        return Compaction(merged=len(merged), written=len(groups), rows=sum(f.rows for f in merged))

    def _merge(self, group: Sequence[Fragment], base: pl.Schema, path: str, commit: int) -> None:
        """Stage ``group`` as one fragment of ``commit``: merged in memory when small, else
        streamed through a file (bounded memory)."""
        scratch = self._scratch(commit, group[0])
        merged: pl.DataFrame | None = None
        with fetch_all(self.store, group) as sources:
            rows = scan(sources, base)
            if sum(f.bytes for f in group) <= SMALL_BYTES:
                merged = rows.collect()
                content = encode(merged, scratch)
            else:
                content = encode_file(
                    scratch,
                    lambda local: rows.sink_parquet(
                        local,
                        compression="zstd",
                        compression_level=COMPRESSION_LEVEL,
                        engine="streaming",
                    ),
                )
        try:
            zone = Zone()
            for fragment in group:
                zone = zone.merge(Zone.of(fragment))
            entry = _entry(group[0], path=path, zone=zone, size=content.size, commit=commit)
            self.catalog.add_fragments([entry])
            content.put(self.store, staging_key(path))
        finally:
            content.drop()
        if merged is not None:
            self.remember_schema(entry, merged.schema)
            self.keys.learn(entry, merged.get_column("_key"))

    def _recover_compactions(self, dataset: str) -> None:
        """Finish or throw away compactions a crash interrupted (call under the lock)."""
        for marker in self.store.list(f"{COMPACTIONS}{dataset}/"):
            try:
                commit = int(marker.key.rsplit("/", 1)[1])
            except ValueError:
                continue
            if self.is_committed({commit}):
                self._settle(dataset, self.catalog.fragments(dataset), only=commit)
            else:
                self.discard(dataset, commit)
            self.store.delete(marker.key)


def _entry(like: Fragment, *, path: str, zone: Zone, size: int, commit: int) -> Fragment:
    return dataclasses.replace(
        like,
        path=path,
        rows=zone.rows,
        min_key=zone.min_key,
        max_key=zone.max_key,
        min_seq=zone.min_seq,
        max_seq=zone.max_seq,
        min_source=zone.min_source,
        max_source=zone.max_source,
        created_by=commit,
        retired_by=None,
        published=False,
        bytes=size,
    )


def _month_of(path: str) -> tuple[int, int]:
    """``(year, month)`` of ``lake/<dataset>/year=YYYY/month=MM/part-...``."""
    parts = path.split("/")
    return int(parts[2].removeprefix("year=")), int(parts[3].removeprefix("month="))


def _resolution(
    template: pl.DataFrame,
    replaced: list[pl.DataFrame],
    superseded: list[pl.DataFrame],
    duplicates: list[pl.DataFrame],
) -> Resolution:
    gone = _concat(replaced, template)
    days = gone.get_column("_day").drop_nulls().unique().to_list() if gone.height else []
    return Resolution(
        replaced=gone,
        superseded=_concat(superseded, template),
        duplicates=_concat(duplicates, template),
        days=frozenset(days),
    )


def _empty_versions() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            **{c: META[c] for c in VERSION_COLUMNS},
            "__row": pl.UInt32(),
            "__frag": pl.UInt32(),
        }
    )


def _concat(frames: list[pl.DataFrame], template: pl.DataFrame) -> pl.DataFrame:
    frames = [f for f in frames if not f.is_empty()]
    if not frames:
        return template
    return pl.concat(frames, how="diagonal_relaxed")
