"""Valid records as a Parquet lake: the ``RecordStore`` port on one machine.

The lake *is* the record store, so the bulk path is a Parquet write, not millions of row
upserts. Layout (Hive-partitioned, so DuckDB, Spark or Athena read it as is)::

    <root>/lake/<dataset>/year=YYYY/month=MM/part-<seq:012d>-<part:05d>.parquet

One fragment per (file ``seq``, chunk ``part``, month of ``_day``). Records whose ``_day`` is
null go to ``year=0000/month=00``. A fragment is written to a hidden temporary file and renamed
into place, so readers in other processes never see half a file, and scans skip the temporaries.

Upsert semantics come from ``_seq``: a read keeps, per ``_key``, the row with the highest
``_seq``. Older versions stay on disk until ``compact`` removes them. Writes, drops and
compaction of one dataset take an exclusive ``flock`` on ``lake/<dataset>/.lock``; reads take
no lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from salesflow.adapters.local.files import write_atomic
from salesflow.errors import InvalidKeyError
from salesflow.layout import check_key
from salesflow.pipeline.lake import lake_fragments

META_COLUMNS = ("_key", "_seq", "_day")
ROWS_META = "salesflow.rows"
"""Parquet key-value metadata: rows the file wrote, kept by ``compact`` for ``count_by_seq``."""

_FRAGMENT = re.compile(r"part-(\d{12})-(\d{5})\.parquet")
_DATASET = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_N = "__salesflow_n"
_I = "__salesflow_index"
_PATH = "__salesflow_path"
_NEWEST = "__salesflow_newest"
VANISHED_RETRIES = 5
_CAST = pl.ScanCastOptions(integer_cast="upcast", float_cast="upcast")


def _order_of(path: Path) -> tuple[int, int]:
    """(seq, part) of a fragment: the order in which its rows were written."""
    match = _FRAGMENT.fullmatch(path.name)
    assert match is not None  # only called on paths filtered with the fragment pattern
    return int(match.group(1)), int(match.group(2))


def _seq_of(path: Path) -> int:
    return _order_of(path)[0]


def _month_of(path: Path) -> tuple[int, int]:
    """(year, month) from ``.../year=YYYY/month=MM/part-....parquet``."""
    return int(path.parent.parent.name[5:]), int(path.parent.name[6:])


def _rows_written(path: Path) -> int:
    """Rows a fragment was written with (its metadata), or its row count if written elsewhere."""
    rows = pl.read_parquet_metadata(path).get(ROWS_META)
    if rows is not None:
        return int(rows)
    return int(pl.scan_parquet(path).select(pl.len()).collect().item())


def latest_versions(frame: pl.LazyFrame) -> pl.DataFrame:
    """One row per ``_key``: the one with the highest ``_seq`` (the last written on a tie).

    Grouping millions of string keys is the slow part, so keys are first counted by their
    64-bit hash; only rows whose hash occurs more than once (updated keys, or a rare collision)
    go through the exact, key-based dedup, and the losers are masked out by position.
    """
    df = frame.with_columns(pl.len().over(pl.col("_key").hash()).alias(_N)).collect()
    if df.is_empty() or df[_N].max() == 1:
        return df.drop(_N)
    losers = (
        df.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias(_I), "_key", "_seq", _N)
        .filter(pl.col(_N) > 1)
        .sort("_seq", maintain_order=True)
        .filter(~pl.col("_key").is_last_distinct())
        .get_column(_I)
        .to_numpy()
    )
    keep = np.ones(df.height, dtype=bool)
    keep[losers] = False
    return df.drop(_N).filter(pl.Series(keep))


class ParquetRecordStore:
    """A ``RecordStore`` over the lake folder below ``store_root`` (the bucket folder)."""

    def __init__(self, store_root: Path) -> None:
        self.root = Path(store_root)

    # -- paths ---------------------------------------------------------------------------
    def dataset_dir(self, dataset: str) -> Path:
        if not _DATASET.fullmatch(dataset):
            raise InvalidKeyError(dataset, "a dataset name is letters, digits, '_', '-', '.'")
        return self.root / check_key(f"lake/{dataset}")

    def fragments(self, dataset: str) -> list[Path]:
        """Every fragment of ``dataset``, in write order: ``seq``, ``part``, then partition."""
        folder = self.dataset_dir(dataset)
        found = folder.glob("year=*/month=*/part-*.parquet")
        paths = [p for p in found if _FRAGMENT.fullmatch(p.name)]
        return sorted(paths, key=lambda p: (*_order_of(p), p.as_posix()))

    @contextlib.contextmanager
    def _locked(self, dataset: str) -> Iterator[None]:
        folder = self.dataset_dir(dataset)
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- writes --------------------------------------------------------------------------
    def write(self, dataset: str, seq: int, frame: pl.DataFrame, *, part: int = 0) -> None:
        """Store chunk ``part`` of file ``seq``'s records, one fragment per month of ``_day``.

        New fragments replace same-named old ones atomically first; fragments of
        ``(seq, part)`` in months the new frame no longer touches are removed after. So
        writing the same ``(seq, part)`` twice is idempotent, and a reader never sees a month
        of it vanish and come back. Within one file, a later ``part`` wins a tie on ``_key``.
        """
        _, fragments = lake_fragments(dataset, seq, part, frame)
        with self._locked(dataset):
            old = {p for p in self.fragments(dataset) if _order_of(p) == (seq, part)}
            for key, rows in fragments.items():
                path = self.root / key
                self._write_fragment(path, rows, rows=rows.height)
                old.discard(path)
            for path in old:
                path.unlink(missing_ok=True)

    @staticmethod
    def _write_fragment(path: Path, frame: pl.DataFrame, *, rows: int) -> None:
        # zstd level 1: as small as the default level here, and a third less CPU to write.
        write_atomic(
            path,
            lambda tmp: frame.write_parquet(
                tmp, compression="zstd", compression_level=1, metadata={ROWS_META: str(rows)}
            ),
        )

    def drop(self, dataset: str, seq: int) -> None:
        """Remove every fragment of file ``seq`` (idempotent)."""
        with self._locked(dataset):
            for path in self.fragments(dataset):
                if _seq_of(path) == seq:
                    path.unlink(missing_ok=True)

    # -- reads ---------------------------------------------------------------------------
    def _scan(
        self,
        paths: Sequence[Path],
        schema: Mapping[str, pl.DataType],
        *,
        path_column: str | None = None,
    ) -> pl.LazyFrame:
        """A lazy scan of ``paths``, read as ``schema`` (the newest fragment's): columns a
        fragment lacks are nulls, integers and floats are widened, extra columns dropped."""
        return pl.scan_parquet(
            list(paths),
            include_file_paths=path_column,
            hive_partitioning=False,
            schema=schema,
            missing_columns="insert",
            extra_columns="ignore",
            cast_options=_CAST,
        )

    def read(
        self,
        dataset: str,
        *,
        days: Collection[date] | None = None,
        columns: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        """The current version of every record, optionally only on ``days``.

        The day filter applies *after* dedup: a record whose newest version moved to another
        day is not returned for its old day. With ``days``, only the months of those days are
        scanned in full; newer files are scanned for ``_key`` and ``_seq`` only. A fragment that
        a writer removes mid-scan (a redo, a drop) makes the read start over on a fresh listing.
        """
        for attempt in range(VANISHED_RETRIES):
            try:
                return self._read(dataset, days, columns)
            except FileNotFoundError:
                if attempt == VANISHED_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def previous_days(self, dataset: str, keys: pl.Series, *, before_seq: int) -> pl.DataFrame:
        """The newest older version's day of each of ``keys`` (fragments of ``before_seq`` and
        later are not read, so a bulk load into an empty lake reads nothing)."""
        empty = pl.DataFrame(schema={"_key": pl.String, "_day": pl.Date})
        for attempt in range(VANISHED_RETRIES):
            paths = [p for p in self.fragments(dataset) if _seq_of(p) < before_seq]
            if not paths or keys.is_empty():
                return empty
            try:
                scan = self._scan(paths, pl.read_parquet_schema(paths[-1]))
                found = (
                    scan.select("_key", "_seq", "_day")
                    .filter(pl.col("_key").is_in(keys.cast(pl.String).implode()))
                    .sort("_seq")
                    .group_by("_key")
                    .agg(pl.col("_day").last())
                    .collect()
                )
                return found.select("_key", pl.col("_day").cast(pl.Date))
            except FileNotFoundError:
                if attempt == VANISHED_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _read(
        self, dataset: str, days: Collection[date] | None, columns: Sequence[str] | None
    ) -> pl.DataFrame:
        paths = self.fragments(dataset)
        wanted = None if columns is None else list(dict.fromkeys([*META_COLUMNS, *columns]))
        if not paths:
            extra = {c: pl.Null() for c in wanted or [] if c not in META_COLUMNS}
            return pl.DataFrame(
                schema={"_key": pl.String, "_seq": pl.Int64, "_day": pl.Date, **extra}
            )
        schema = pl.read_parquet_schema(paths[-1])
        if days is None:
            scan = self._scan(paths, schema)
            return latest_versions(scan.select(wanted) if wanted else scan)
        return self._read_days(paths, schema, set(days), wanted)

    def _read_days(
        self,
        paths: list[Path],
        schema: Mapping[str, pl.DataType],
        days: set[date],
        wanted: list[str] | None,
    ) -> pl.DataFrame:
        months = {(d.year, d.month) for d in days}
        in_months = [p for p in paths if _month_of(p) in months]
        day_list = pl.Series(sorted(days), dtype=pl.Date)
        scan = self._scan(in_months or paths[-1:], schema).filter(pl.col("_day").is_in(day_list))
        found = latest_versions(scan.select(wanted) if wanted else scan)
        if found.is_empty():
            return found
        lowest = int(found["_seq"].min())  # type: ignore[arg-type]
        newer = [p for p in paths if _seq_of(p) > lowest]
        if not newer:
            return found
        newest = (
            self._scan(newer, schema)
            .select("_key", "_seq")
            .join(found.lazy().select("_key"), on="_key", how="semi")
            .group_by("_key")
            .agg(pl.col("_seq").max().alias(_NEWEST))
            .collect()
        )
        return (
            found.join(newest, on="_key", how="left")
            .filter(pl.col(_NEWEST).is_null() | (pl.col(_NEWEST) <= pl.col("_seq")))
            .drop(_NEWEST)
        )

    def count_by_seq(self, dataset: str) -> dict[int, int]:
        """Rows each file wrote, from Parquet footers only (no data pages are read)."""
        counts: dict[int, int] = {}
        for path in self.fragments(dataset):
            seq = _seq_of(path)
            try:
                counts[seq] = counts.get(seq, 0) + _rows_written(path)
            except FileNotFoundError:  # dropped since the listing: it wrote nothing now
                continue
        return counts

    # -- maintenance ---------------------------------------------------------------------
    def compact(self, dataset: str) -> int:
        """Remove superseded versions from every fragment; return how many rows went.

        Each fragment is rewritten on its own, atomically, keeping only the rows that no
        fragment with a higher ``_seq`` replaces. ``read`` returns the same result before,
        during and after compaction, so it is safe while readers run. ``count_by_seq`` is
        unchanged (it reports rows written, kept in each fragment's metadata). Run it when no
        file is in progress: ``drop(seq)`` of a file written before compaction can no longer
        bring back the versions that ``seq`` had replaced.
        """
        removed = 0
        with self._locked(dataset):
            paths = self.fragments(dataset)
            if not paths:
                return 0
            rows = self._scan(paths, pl.read_parquet_schema(paths[-1]), path_column=_PATH)
            rows = rows.select("_key", "_seq", _PATH)
            newest = rows.group_by("_key").agg(pl.col("_seq").max().alias(_NEWEST))
            stale = (
                rows.join(newest, on="_key")
                .filter(pl.col("_seq") < pl.col(_NEWEST))
                .select(_PATH, "_key")
                .collect()
            )
            for (name,), keys in stale.group_by(_PATH):
                path = Path(str(name))
                fragment = pl.read_parquet(path)
                kept = fragment.join(
                    keys.select("_key"), on="_key", how="anti", maintain_order="left"
                )
                self._write_fragment(path, kept, rows=_rows_written(path))
                removed += fragment.height - kept.height
        return removed
