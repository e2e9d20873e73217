"""Fragment files: where one lives, how to open many as local paths, how to read them as one.

A fragment lives at its staging key until it is published, then at its final path. A reader
that learnt the flag a moment ago may find it already moved: it tries the other place before
giving up, and a fragment gone from both was replaced since the listing (the read starts over).
"""

from __future__ import annotations

import contextlib
import io
import re
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from salesflow.adapters.lake.parallel import settle_all
from salesflow.layout import lake_key, staging_key
from salesflow.models import Fragment
from salesflow.ports import ObjectStore

META = {
    "_key": pl.String(),
    "_day": pl.Date(),
    "_arrived": pl.Int64(),
    "_seq": pl.Int64(),
    "_source": pl.String(),
    "_record": pl.Int64(),
}
"""Columns every row of the lake carries besides its dataset's own."""

_CAST = pl.ScanCastOptions(integer_cast="upcast", float_cast="upcast")
_PART = re.compile(r"part-(\d{12})-(\d{5})\.parquet$")
_DATASET = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
COMPRESSION_LEVEL = 1
"""zstd level 1: as small as the default level here, and a third less CPU to write."""


def check_dataset(dataset: str) -> str:
    """``dataset`` if it can name a lake folder, else ``ValueError`` saying what is allowed."""
    if not _DATASET.fullmatch(dataset):
        raise ValueError(
            f"dataset name {dataset!r} cannot name a lake folder: "
            "use letters, digits, '_', '-' and '.'"
        )
    return dataset


def fragment_path(dataset: str, year: int, month: int, commit: int, n: int) -> str:
    """``lake/<dataset>/year=YYYY/month=MM/part-<commit>-<n>.parquet``."""
    return lake_key(dataset, year, month, commit, n)


def part_number(path: str) -> int:
    """The ``n`` of ``part-<commit>-<n>.parquet``."""
    match = _PART.search(path)
    if match is None:
        raise ValueError(f"{path!r} is not a lake fragment path (part-<commit>-<n>.parquet)")
    return int(match.group(2))


Source = Path | io.BytesIO
"""A fragment opened for Polars: a local file, or the bytes of a small one."""

SMALL_BYTES = 8 << 20
"""Fragments up to this size are read into memory (no temporary file from a remote store) and
frames up to it are written from memory (no file in the work folder)."""


@contextlib.contextmanager
def fetch_fragment(
    store: ObjectStore, fragment: Fragment, *, as_file: bool = False
) -> Iterator[Source]:
    """The fragment's content wherever it is (staging or final): its bytes when it is small,
    else a local path (``as_file``: always a path)."""
    staged = staging_key(fragment.path)
    order = (fragment.path, staged) if fragment.published else (staged, fragment.path)
    small = not as_file and 0 < fragment.bytes <= SMALL_BYTES
    with contextlib.ExitStack() as stack:
        for key in order:
            try:
                source: Source = (
                    io.BytesIO(store.get_bytes(key))
                    if small
                    else stack.enter_context(store.fetch(key))
                )
            except FileNotFoundError:
                continue
            break
        else:
            raise FileNotFoundError(f"lake fragment {fragment.path} is gone (replaced meanwhile)")
        yield source


@contextlib.contextmanager
def fetch_all(
    store: ObjectStore, fragments: Sequence[Fragment], *, as_files: bool = False
) -> Iterator[list[Source]]:
    """Every fragment opened, valid inside the ``with`` block: all as bytes when all are small
    (Polars scans bytes or files, not a mix), else all as local paths."""
    files = as_files or any(not 0 < f.bytes <= SMALL_BYTES for f in fragments)

    def open_one(fragment: Fragment) -> tuple[Source, contextlib.ExitStack]:
        with contextlib.ExitStack() as own:
            source = own.enter_context(fetch_fragment(store, fragment, as_file=files))
            return source, own.pop_all()

    with contextlib.ExitStack() as stack:
        opened = settle_all(open_one, fragments)
        for future in opened:  # close every one that opened, even if another failed
            if future.exception() is None:
                stack.push(future.result()[1])
        yield [future.result()[0] for future in opened]


@contextlib.contextmanager
def fetch_paths(store: ObjectStore, fragments: Sequence[Fragment]) -> Iterator[list[Path]]:
    """Every fragment as a local file (downloaded from a remote store), inside the block."""
    with fetch_all(store, fragments, as_files=True) as sources:
        yield [s for s in sources if isinstance(s, Path)]


@dataclass
class Encoded:
    """A frame written as Parquet and ready to go up: its bytes, or a file in the work folder
    that the store moves in. Writing first lets the catalog know a fragment's size before its
    object exists, so no object is ever unknown to the catalog."""

    size: int
    data: bytes | None = None
    path: Path | None = None

    def put(self, store: ObjectStore, key: str) -> None:
        if self.path is not None:
            store.put_file(key, self.path, move=True)
        else:
            store.put_bytes(key, self.data or b"")

    def drop(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def encode(frame: pl.DataFrame, work_dir: Path) -> Encoded:
    """``frame`` as Parquet: in memory when small, else in a file in ``work_dir``."""
    if frame.estimated_size() <= SMALL_BYTES:
        buffer = io.BytesIO()
        frame.write_parquet(buffer, compression="zstd", compression_level=COMPRESSION_LEVEL)
        data = buffer.getvalue()
        return Encoded(len(data), data=data)
    return encode_file(
        work_dir,
        lambda path: frame.write_parquet(
            path, compression="zstd", compression_level=COMPRESSION_LEVEL
        ),
    )


def encode_file(work_dir: Path, write: Callable[[Path], object]) -> Encoded:
    """A Parquet file that ``write`` produces in ``work_dir``."""
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / f"{uuid.uuid4().hex}.parquet"
    try:
        write(path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return Encoded(path.stat().st_size, path=path)


def newest(fragments: Sequence[Fragment]) -> Fragment:
    """The fragment written last (its schema is the dataset's current one)."""
    return max(fragments, key=lambda f: (f.created_by, f.path))


def scan(sources: Sequence[Source], schema: Mapping[str, pl.DataType]) -> pl.LazyFrame:
    """A lazy scan of ``sources`` read as ``schema``: columns a fragment lacks are nulls,
    integers and floats are widened, columns the schema does not know are dropped."""
    return pl.scan_parquet(
        list(sources),  # type: ignore[arg-type]
        hive_partitioning=False,
        schema=schema,
        missing_columns="insert",
        extra_columns="ignore",
        cast_options=_CAST,
    )


def scan_indexed(sources: Sequence[Source], columns: Sequence[str]) -> pl.LazyFrame:
    """``columns`` of each fragment, with ``__frag`` (its position in ``sources``) and
    ``__row`` (the row's position in it), so rows can be told apart and removed later."""
    frames = [
        pl.scan_parquet(source, hive_partitioning=False)
        .select(columns)
        .with_row_index("__row")
        .with_columns(pl.lit(i, dtype=pl.UInt32).alias("__frag"))
        for i, source in enumerate(sources)
    ]
    return pl.concat(frames, how="vertical")
