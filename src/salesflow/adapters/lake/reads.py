"""Reading the lake: the visible fragments only, read as the dataset's newest schema.

A fragment is visible iff its ``created_by`` commit is committed and its ``retired_by`` (if
any) is not. Commits never revert, so the ids known to be committed are cached in-process and
only the others are asked about. The visible set holds exactly one version of each key, so a
read is a plain scan: no dedup. A fragment that vanishes mid-read was replaced by a commit
since the listing; the read starts over on a fresh listing.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import TypeVar

import polars as pl

from salesflow.adapters.lake.files import (
    META,
    check_dataset,
    fetch_all,
    fetch_fragment,
    fetch_paths,
    scan,
    scan_indexed,
)
from salesflow.adapters.lake.files import newest as newest_fragment
from salesflow.adapters.lake.zones import KeyCache, KeyProbe, content_key, hash_keys
from salesflow.models import Fragment
from salesflow.ports import Catalog, ObjectStore

ALWAYS = ("_key", "_seq", "_day", "_arrived")
"""Columns every read returns, whatever ``columns`` asks for."""
VANISHED_RETRIES = 5
SCHEMAS_KEPT = 4_096
"""Fragment schemas kept in-process (oldest out): a long-running service sees every fragment
that was ever written."""
_T = TypeVar("_T")


def empty_frame(columns: Sequence[str] = ()) -> pl.DataFrame:
    """No rows: the meta columns typed, other asked-for columns as nulls."""
    schema: dict[str, pl.DataType] = {c: META[c] for c in ALWAYS}
    schema.update({c: META.get(c, pl.Null()) for c in columns if c not in schema})
    return pl.DataFrame(schema=schema)


LEARN_ROWS = 1_000_000
"""Keys read at a time to fill the key cache (a batch of fragments, or one bigger one)."""
HASH_PROBE_MAX = 200_000
"""Up to this many keys, a lookup asks the key cache before reading a fragment; more keys
would cost more to search than the fragments cost to read."""


class LakeReader:
    """The read side of the lake over ``store`` and ``catalog``; ``key_cache`` bytes of key
    hashes are kept in-process (see ``zones.KeyCache``)."""

    def __init__(self, store: ObjectStore, catalog: Catalog, *, key_cache: int = 64 << 20) -> None:
        self.store = store
        self.catalog = catalog
        self.keys = KeyCache(key_cache)
        self._committed: set[int] = set()
        self._schemas: OrderedDict[tuple[object, ...], pl.Schema] = OrderedDict()

    # -- visibility ----------------------------------------------------------------------
    def is_committed(self, commits: Collection[int]) -> set[int]:
        """Which of ``commits`` are committed (cached: a commit never reverts)."""
        unknown = {c for c in commits if c not in self._committed}
        if unknown:
            self._committed.update(self.catalog.committed(unknown))
        return {c for c in commits if c in self._committed}

    def visible_of(self, fragments: Sequence[Fragment]) -> list[Fragment]:
        """The visible ones among ``fragments``."""
        ids = {f.created_by for f in fragments}
        ids.update(f.retired_by for f in fragments if f.retired_by is not None)
        done = self.is_committed(ids)
        return [
            f
            for f in fragments
            if f.created_by in done and (f.retired_by is None or f.retired_by not in done)
        ]

    def visible(
        self, dataset: str, *, months: Collection[tuple[int, int]] | None = None
    ) -> list[Fragment]:
        """The fragments a reader sees now, by path."""
        return self.visible_of(self.catalog.fragments(check_dataset(dataset), months=months))

    def remember_schema(self, fragment: Fragment, schema: pl.Schema) -> None:
        """Note the schema of a fragment just written (no need to read its footer back)."""
        self._keep_schema(_schema_key(fragment), schema)

    def _keep_schema(self, key: tuple[object, ...], schema: pl.Schema) -> None:
        self._schemas[key] = schema
        while len(self._schemas) > SCHEMAS_KEPT:
            self._schemas.popitem(last=False)

    def schema_of(self, fragment: Fragment) -> pl.Schema:
        """The fragment's Parquet schema (cached: a fragment's file never changes once
        visible)."""
        key = _schema_key(fragment)
        found = self._schemas.get(key)
        if found is None:
            with fetch_fragment(self.store, fragment) as path:
                found = pl.Schema(pl.read_parquet_schema(path))
            self._keep_schema(key, found)
        return found

    def newest_schema(
        self, fragments: Sequence[Fragment], reading: Sequence[Fragment] = ()
    ) -> pl.Schema:
        """The schema a read of ``reading`` uses: the most recently written fragment's, with
        the columns of ``reading`` it lacks after it, each column widened to what every one of
        them holds (an ``Int32`` read beside an ``Int64`` is read as ``Int64``)."""
        first = newest_fragment(fragments)
        schemas = [self.schema_of(first)]
        schemas += [self.schema_of(f) for f in reading if f.path != first.path]
        if len(schemas) == 1 or all(s == schemas[0] for s in schemas):
            return schemas[0]
        empty = [pl.DataFrame(schema=s) for s in schemas]
        return pl.concat(empty, how="diagonal_relaxed").schema

    def may_hold(self, fragments: Sequence[Fragment], keys: pl.Series) -> list[Fragment]:
        """Those of ``fragments`` (already pruned by zone maps) that may hold one of ``keys``
        by the key cache; the keys of fragments not cached yet are read once and cached."""
        if not fragments or keys.len() > HASH_PROBE_MAX:
            return list(fragments)
        missing = self.keys.missing(fragments)
        if missing:
            for batch in _learnable(fragments, missing, self.keys.budget // KeyCache.ROW_BYTES):
                self._learn(batch)
        hits = self.keys.may_hold(fragments, hash_keys(keys))
        return [f for f, hit in zip(fragments, hits, strict=True) if hit]

    def _learn(self, fragments: Sequence[Fragment]) -> None:
        """Read the keys of ``fragments`` and cache their hashes."""
        with fetch_all(self.store, fragments) as sources:
            found = scan_indexed(sources, ["_key"]).collect()
        parts = found.partition_by("__frag", as_dict=True, include_key=False)
        del found
        empty = pl.Series("_key", [], dtype=pl.String)
        for index, fragment in enumerate(fragments):
            part = parts.pop((index,), None)
            self.keys.learn(fragment, empty if part is None else part.get_column("_key"))

    def _again(self, attempt: Callable[[], _T]) -> _T:
        for tries in range(VANISHED_RETRIES):
            try:
                return attempt()
            except FileNotFoundError:
                if tries == VANISHED_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    # -- reads ---------------------------------------------------------------------------
    def read(
        self,
        dataset: str,
        *,
        days: Collection[date] | None = None,
        columns: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        """Every current record, optionally only those whose ``_day`` is in ``days`` (only
        those days' months are read), optionally only ``columns`` (plus ``ALWAYS``)."""
        return self._again(lambda: self._read(dataset, days, columns))

    def _read(
        self, dataset: str, days: Collection[date] | None, columns: Sequence[str] | None
    ) -> pl.DataFrame:
        everything = self.visible(dataset)
        wanted = None if columns is None else list(dict.fromkeys([*ALWAYS, *columns]))
        fragments = everything
        if days is not None:
            months = {(d.year, d.month) for d in days}
            fragments = [f for f in everything if (f.year, f.month) in months]
        if not fragments:
            return self._empty(everything, wanted)
        schema = self.newest_schema(everything, fragments)
        with fetch_all(self.store, fragments) as paths:
            frame = scan(paths, schema)
            if days is not None:
                day_list = pl.Series(sorted(set(days)), dtype=pl.Date)
                frame = frame.filter(pl.col("_day").is_in(day_list.implode()))
            return frame.select(_columns(schema, wanted)).collect()

    def _empty(self, everything: Sequence[Fragment], wanted: list[str] | None) -> pl.DataFrame:
        if not everything:
            return empty_frame(wanted or ())
        schema = self.newest_schema(everything)
        return pl.DataFrame(schema=schema).select(_columns(schema, wanted))

    def lookup(self, dataset: str, keys: pl.Series, *, columns: Sequence[str] = ()) -> pl.DataFrame:
        """The current rows of ``keys`` (those stored), reading only the fragments whose key
        range holds one of them (and, once known, whose keys hash like one of them)."""
        wanted = list(dict.fromkeys([*ALWAYS, *columns]))
        return self._again(lambda: self._lookup(dataset, keys, wanted))

    def _lookup(
        self, dataset: str, keys: pl.Series, wanted: list[str], *, streaming: bool = False
    ) -> pl.DataFrame:
        everything = self.visible(dataset)
        probe = KeyProbe(keys)
        fragments = [f for f, hit in zip(everything, probe.hits(everything), strict=True) if hit]
        fragments = self.may_hold(fragments, probe.keys)
        if not fragments or not len(probe):
            return self._empty(everything, wanted)
        schema = self.newest_schema(everything, fragments)
        with fetch_all(self.store, fragments) as paths:
            return (
                scan(paths, schema)
                .filter(pl.col("_key").is_in(probe.keys.implode()))
                .select(_columns(schema, wanted))
                .collect(engine="streaming" if streaming else "auto")
            )

    def contains(self, dataset: str, values: pl.Series) -> pl.Series:
        """Per value: is a record with that key stored? (Referential checks; nulls: False.)
        Reads only the ``_key`` column of the fragments that may hold the values, on the
        streaming engine: a dataset bigger than the key cache (8M stored orders) is read
        unpruned, and read whole it held ~2.4M keys at once for every chunk that asked."""
        keys = values.cast(pl.String)
        found = self._again(
            lambda: self._lookup(dataset, keys, ["_key"], streaming=True)
        ).get_column("_key")
        return keys.is_in(found.implode()).fill_null(False).alias(values.name)

    @contextlib.contextmanager
    def local_paths(self, dataset: str) -> Iterator[list[Path]]:
        """Local paths of the visible fragments (downloaded when the store is remote), for
        DuckDB or Spark. A compaction that finishes meanwhile may delete one of them: hold
        the block for the length of one query."""
        for tries in range(VANISHED_RETRIES):
            fragments = self.visible(dataset)
            try:
                stack = contextlib.ExitStack()
                paths = stack.enter_context(fetch_paths(self.store, fragments))
            except FileNotFoundError:
                if tries == VANISHED_RETRIES - 1:
                    raise
                continue
            with stack:
                yield paths
            return

    def rows_by_seq(self, dataset: str) -> dict[int, int]:
        """Visible rows per ``_seq`` (file version), for the audit. A fragment holding one
        version is counted from the catalog; only mixed fragments are read."""
        return self._again(lambda: self._rows_by_seq(dataset))

    def _rows_by_seq(self, dataset: str) -> dict[int, int]:
        counts: dict[int, int] = {}
        mixed = []
        for fragment in self.visible(dataset):
            if fragment.min_seq == fragment.max_seq:
                counts[fragment.min_seq] = counts.get(fragment.min_seq, 0) + fragment.rows
            else:
                mixed.append(fragment)
        if mixed:
            with fetch_all(self.store, mixed) as paths:
                found = (
                    scan(paths, {"_seq": pl.Int64()})
                    .group_by("_seq")
                    .agg(pl.len().alias("rows"))
                    .collect()
                )
            for seq, rows in found.iter_rows():
                counts[int(seq)] = counts.get(int(seq), 0) + int(rows)
        return dict(sorted(counts.items()))


def _learnable(
    asked: Sequence[Fragment], missing: Sequence[Fragment], room: int
) -> Iterator[list[Fragment]]:
    """Those of ``missing`` whose keys the cache can take (``room`` keys) beside the cached
    ones of ``asked``, in batches of about ``LEARN_ROWS`` keys. Learning more would evict
    fragments this very question needs, which the next one reads again: a dataset bigger
    than the cache (8M stored orders against 64 MB) was read whole for every chunk of a
    file that refers to it, holding all its keys at once (~0.9 GB). The others are read
    by the lookup, unpruned."""
    gone = {content_key(f) for f in missing}
    held = sum(f.rows for f in asked if content_key(f) not in gone)
    batch: list[Fragment] = []
    rows = 0
    for fragment in missing:
        if held + fragment.rows > room:
            continue
        held += fragment.rows
        if batch and rows + fragment.rows > LEARN_ROWS:
            yield batch
            batch, rows = [], 0
        batch.append(fragment)
        rows += fragment.rows
    if batch:
        yield batch


def _columns(schema: pl.Schema, wanted: Sequence[str] | None) -> list[pl.Expr]:
    """``wanted`` (all of ``schema`` if ``None``); a column no fragment has reads as nulls."""
    names = schema.names() if wanted is None else wanted
    return [pl.col(c) if c in schema else pl.lit(None).alias(c) for c in names]


def _schema_key(fragment: Fragment) -> tuple[object, ...]:
    return content_key(fragment)
