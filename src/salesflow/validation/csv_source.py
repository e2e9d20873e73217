"""CSV files as a stream of string chunks, in bounded memory.

The header is read with the ``csv`` module and matched to the spec's fields (case- and
separator-insensitive, BOM-tolerant); the body is streamed by Polars with every column as
a string, so ``raw`` keeps each value exactly as it arrived. Records with no value at all
(blank lines) are skipped and not counted; ``_record`` numbers the remaining records from
1, as ``csv.DictReader`` would.

A record whose field count differs from the header's is ``structure.field_count``:

- more fields: always rejected, its raw form keeping *every* field (the extras as
  ``column_<n>``). Polars keeps only the first extra (the ``_overflow`` column), so the few
  such records are read again, in full, with the ``csv`` module. (An extra field is seen
  when the first extra is not empty: ``a,b,c,,x`` on a 3-column header reads as ``a,b,c``.)
- fewer fields: rejected when a *required* field is among the missing ones (the record
  was cut short); accepted when only optional trailing fields are missing, read as
  missing values, because spreadsheets drop trailing empty cells. Polars reads a missing
  field as an empty one, so the records whose required fields are empty to the end of the
  line are counted again with the ``csv`` module.

The body is parsed a block of bytes at a time (``record_blocks``), each block cut at a record
boundary, and re-cut into chunks of ``chunk_rows`` records: memory holds a block and a chunk,
whatever the file's size. (Polars' streaming ``collect_batches`` reads ahead of a slow
consumer without bound: on a 4M-row file it held ~170 MB more than on a 1M-row one.)
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl

from salesflow.datasets.detect import match_header
from salesflow.datasets.spec import DatasetSpec
from salesflow.errors import FileLevelError
from salesflow.validation.engine import STRUCTURE, STRUCTURE_MSG, Arrived, src
from salesflow.validation.text import BOM, TextFile

OVERFLOW = "_overflow"
RAW_FULL = "_raw_full"
_FIELD_LIMIT = 2**31 - 1


_BLOCK = 1 << 24
BLOCK_BYTES = 8 << 20
"""Bytes of CSV parsed at a time (more while one record is longer than that)."""
_QUOTE, _LF = ord('"'), ord("\n")


def _last_boundary(data: bytes) -> int:
    """The end (exclusive) of the last complete record in ``data``, which starts at a record
    boundary, or -1: the position after the last line feed outside quotes. A quote toggles
    quoting (an escaped ``""`` toggles twice), as Polars finds record boundaries."""
    if b'"' not in data:
        return data.rfind(b"\n") + 1 or -1
    raw = np.frombuffer(data, dtype=np.uint8)
    # quotes before each byte, mod 256 (uint8 wraps): its parity is all that counts
    inside = np.cumsum(raw == _QUOTE, dtype=np.uint8) & 1
    ends = np.flatnonzero((raw == _LF) & (inside == 0))
    return int(ends[-1]) + 1 if len(ends) else -1


def record_blocks(path: Path, size: int = BLOCK_BYTES) -> Iterator[bytes]:
    """The bytes of ``path`` in blocks of about ``size`` bytes, each ending at a record
    boundary (``_last_boundary``) or at the end of the file; joined, they are the file.

    A file smaller than ``size`` is one block. In a bigger one, a stray quote inside an
    unquoted field (``Levi"s``) shifts the boundaries as it shifts the chunks Polars' own
    multithreaded reader splits a big file into: the file fails as ``structure.bad_csv``,
    as it did before (a 14 MB file with one ``Levi"s`` and a quoted line break fails a
    plain ``scan_csv(...).collect()``)."""
    with path.open("rb") as fh:
        carry = b""
        while True:
            block = fh.read(size)
            if not block:
                if carry:
                    yield carry
                return
            data = carry + block if carry else block
            if len(block) < size:  # the end: the rest whole, as one scan of it would read it
                yield data
                return
            cut = _last_boundary(data)
            if cut < 0:  # no complete record yet: read on
                carry = data
                continue
            carry = data[cut:]
            yield data[:cut] if cut < len(data) else data


def quote_free(path: Path) -> bool:
    """Whether the file holds no quote character and no carriage return: then each line is
    one record and its fields are the line split at commas, as the ``csv`` module reads it."""
    with path.open("rb") as fh:
        while block := fh.read(_BLOCK):
            if b'"' in block or b"\r" in block:
                return False
    return True


class RawRecords:
    """The complete fields of chosen records, re-read with the ``csv`` module.

    Records are asked for in file order across chunks, so one reader walks the file once,
    and only as far as the last record asked for. Numbering matches the Polars scan: the
    header is skipped, and so are records whose first ``width`` fields are all empty.

    A file with no quote and no carriage return (``quote_free``) is walked as lines instead:
    the same records, without parsing the lines nobody asked for (7 s -> ~1.5 s for 5M
    lines). ``lines=None`` decides by looking at the file on the first ``fetch``."""

    def __init__(self, path: Path, width: int, *, lines: bool | None = None) -> None:
        self.path = path
        self.width = width
        self.lines = lines
        self._reader: Iterator[list[str]] | None = None
        self._fh: io.TextIOWrapper | None = None
        self._bin: io.BufferedReader | None = None
        self._n = 0

    def fetch(self, wanted: list[int]) -> dict[int, list[str]]:
        """Record number -> its fields, for each number in ``wanted`` (ascending, not yet
        passed). Numbers the file does not reach are left out."""
        if self.lines is None:
            self.lines = quote_free(self.path)
        if self.lines:
            return self._fetch_lines(wanted)
        if self._reader is None:
            csv.field_size_limit(_FIELD_LIMIT)
            self._fh = self.path.open(encoding="utf-8-sig", newline="")
            self._reader = csv.reader(self._fh)
            next(self._reader, None)
        want = set(wanted)
        last = max(wanted, default=0)
        found: dict[int, list[str]] = {}
        while self._n < last:
            row = next(self._reader, None)
            if row is None:
                break
            if not any(row[: self.width]):  # all empty; any() stays in C, all(... == "") did not
                continue
            self._n += 1
            if self._n in want:
                found[self._n] = row
        return found

    def _fetch_lines(self, wanted: list[int]) -> dict[int, list[str]]:
        if self._bin is None:
            self._bin = self.path.open("rb")
            self._bin.readline()  # the header
        want = set(wanted)
        last = max(wanted, default=0)
        found: dict[int, list[str]] = {}
        if self._n >= last:
            return found
        for line in self._bin:
            if line[:1] in (b",", b"\n"):  # may be blank: only then split it
                if not any(line.rstrip(b"\n").split(b",", self.width)[: self.width]):
                    continue
            self._n += 1
            if self._n in want:
                text = line.rstrip(b"\n").decode("utf-8", errors="replace")
                found[self._n] = text.split(",")
            if self._n >= last:
                break
        return found

    def close(self) -> None:
        for fh in (self._fh, self._bin):
            if fh is not None:
                fh.close()


def read_header(text: TextFile) -> list[str]:
    """The header cells of the CSV (first record, BOM removed, blanks stripped)."""
    decoded = text.head.removeprefix(BOM).decode("utf-8", errors="replace")
    first = next(csv.reader(io.StringIO(decoded, newline="")), [])
    return [cell.strip() for cell in first]


def unique_names(header: list[str]) -> list[str]:
    """Header names usable as JSON keys: blanks named by position, repeats numbered."""
    names: list[str] = []
    for i, h in enumerate(header):
        name = h or f"column_{i + 1}"
        while name in names:
            name = f"{name}_{i + 1}"
        names.append(name)
    return names


def check_header(spec: DatasetSpec, header: list[str], source: str) -> dict[str, int]:
    found, missing = match_header(spec, header)
    if missing:
        hint = f"the first line must be a header with: {','.join(spec.required_headers)}"
        other = [sep for sep in (";", "\t", "|") if len(header) == 1 and sep in header[0]]
        if other:
            hint = f"the header looks {other[0]!r}-separated; export the file with commas"
        raise FileLevelError(
            source,
            f"missing required column(s) {', '.join(missing)} in header {header!r}",
            rule="structure.missing_header",
            hint=hint,
        )
    return found


def csv_chunks(
    text: TextFile, spec: DatasetSpec, source: str, chunk_rows: int
) -> Iterator[Arrived]:
    """Stream ``text`` as arrived chunks of about ``chunk_rows`` records."""
    header = read_header(text)
    found = check_header(spec, header, source)
    names = unique_names(header)
    cols = [f"c{i}" for i in range(len(header))]
    shape = _Shape(spec, found, names, cols)
    schema: dict[str, pl.DataType] = {c: pl.Utf8() for c in [*cols, OVERFLOW]}
    fields = [
        pl.col(cols[found[f.name]]) if f.name in found else pl.lit(None, dtype=pl.Utf8)
        for f in spec.fields
    ]
    matched = set(found.values())
    extras = [
        pl.col(c).alias(n)
        for i, (c, n) in enumerate(zip(cols, names, strict=True))
        if i not in matched
    ]
    raw = pl.struct([pl.col(c).alias(n) for c, n in zip(cols, names, strict=True)])
    extra = pl.struct(extras).struct.json_encode() if extras else pl.lit(None, dtype=pl.Utf8)
    # a blank line: no value at all, not even a first extra field
    blank = pl.all_horizontal([pl.col(c) == "" for c in [*cols, OVERFLOW]])
    again = RawRecords(text.path, len(cols) + 1)
    seen = 0
    try:
        for batch in _batches(text.path, schema, chunk_rows):
            # One contiguous chunk per column: later column additions then never force a
            # copy of the whole frame to realign chunks.
            batch = batch.filter(~blank.fill_null(True)).rechunk()
            if batch.height == 0:
                continue
            frame = batch.with_columns(
                pl.int_range(seen + 1, seen + batch.height + 1, dtype=pl.Int64).alias("_record"),
                *[e.alias(src(f.name)) for e, f in zip(fields, spec.fields, strict=True)],
            )
            seen += batch.height
            doubtful = frame.select(shape.doubtful).to_series()
            if doubtful.any():  # rare: only then re-read and pay for the structure columns
                frame = shape.judge(frame, doubtful, again)
            as_json = raw.struct.json_encode()
            if RAW_FULL in frame.columns:  # the complete form of the re-read records
                as_json = pl.coalesce(pl.col(RAW_FULL), as_json)
            yield Arrived(frame, as_json, extra)
    except pl.exceptions.PolarsError as exc:
        raise FileLevelError(
            source,
            f"the CSV cannot be parsed after record {seen}: {str(exc).splitlines()[0]}",
            rule="structure.bad_csv",
            hint="check for an unterminated quote or a truncated upload, then re-upload",
        ) from exc
    finally:
        again.close()


def _parse(block: bytes, schema: dict[str, pl.DataType], *, header: bool) -> pl.DataFrame:
    """The records of one block, every column a string (``header``: skip the first)."""
    return pl.scan_csv(
        io.BytesIO(block),
        has_header=False,
        skip_rows=1 if header else 0,
        schema=schema,
        truncate_ragged_lines=True,
        empty_string_is_null=False,
        missing_columns="insert",
        extra_columns="ignore",  # a first record with extra fields is judged like any other
        raise_if_empty=False,
    ).collect()


def _batches(path: Path, schema: dict[str, pl.DataType], chunk_rows: int) -> Iterator[pl.DataFrame]:
    """The records of the file after its header, ``chunk_rows`` at a time (the last fewer),
    parsed a block at a time."""
    held: list[pl.DataFrame] = []
    rows = 0
    for n, block in enumerate(record_blocks(path, BLOCK_BYTES)):
        frame = _parse(block, schema, header=n == 0)
        del block
        if frame.height == 0:
            continue
        held.append(frame)
        rows += frame.height
        if rows < chunk_rows:
            continue
        joined = pl.concat(held, rechunk=False) if len(held) > 1 else held[0]
        start = 0
        while rows - start >= chunk_rows:
            yield joined.slice(start, chunk_rows)
            start += chunk_rows
        held = [joined.slice(start)] if rows > start else []
        rows -= start
        del joined
    if rows:
        yield pl.concat(held, rechunk=False) if len(held) > 1 else held[0]


class _Shape:
    """Which records may have the wrong number of fields, and the verdict on them."""

    def __init__(
        self, spec: DatasetSpec, found: dict[str, int], names: list[str], cols: list[str]
    ) -> None:
        self.names = names
        self.cols = cols
        self.required = {
            found[f.name]: f.name for f in spec.fields if f.required and f.name in found
        }
        overflow = pl.col(OVERFLOW).fill_null("") != ""
        if self.required:
            last = max(self.required)  # the last required column, and everything after it
            cut = pl.all_horizontal([pl.col(c).fill_null("") == "" for c in cols[last:]])
            self.doubtful = overflow | cut
        else:
            self.doubtful = overflow

    def _verdict(self, row: list[str]) -> tuple[str, str] | None:
        width = len(self.cols)
        if len(row) > width:
            extra = ", ".join(repr(v) for v in row[width : width + 3])
            more = ", ..." if len(row) > width + 3 else ""
            return (
                "structure.field_count",
                f"record has {len(row)} fields but the header has {width} columns "
                f"(extra: {extra}{more})",
            )
        required = [self.required[i] for i in sorted(self.required) if i >= len(row)]
        if required:
            names = ", ".join(self.names[i] for i in range(len(row), width))
            return (
                "structure.field_count",
                f"record has {len(row)} fields but the header has {width} columns "
                f"(missing: {names}; required among them: {', '.join(required)}); "
                "was the line cut short?",
            )
        return None

    def judge(self, frame: pl.DataFrame, doubtful: pl.Series, again: RawRecords) -> pl.DataFrame:
        """Add ``_structure``/``_structure_msg`` and the complete raw form (``_raw_full``) to
        the records whose field count is wrong."""
        at = doubtful.arg_true()
        records = frame.get_column("_record").gather(at).to_list()
        firsts = frame.get_column(self.cols[0]).gather(at).to_list()
        overflows = frame.get_column(OVERFLOW).gather(at).fill_null("").to_list()
        rows = again.fetch(records)
        width = len(self.cols)
        rule: list[str | None] = []
        message: list[str | None] = []
        full: list[str | None] = []
        for n, first, overflow in zip(records, firsts, overflows, strict=True):
            row = rows.get(n)
            if row is not None and (row[:1] or [""])[0] != first:
                row = None  # the two readers disagree on this record: keep what Polars read
            verdict = self._verdict(row) if row is not None else None
            if verdict is None and overflow:
                verdict = (
                    "structure.field_count",
                    f"record has more fields than the {width} header columns (extra: {overflow!r})",
                )
                row = None
            rule.append(verdict[0] if verdict else None)
            message.append(verdict[1] if verdict else None)
            if verdict and row is not None:
                keys = self.names + [f"column_{i + 1}" for i in range(width, len(row))]
                full.append(json.dumps(dict(zip(keys, row, strict=False)), ensure_ascii=False))
            else:
                full.append(None)

        def column(name: str, values: list[str | None]) -> pl.Series:
            empty = pl.Series(name, [], dtype=pl.Utf8).extend_constant(None, frame.height)
            return empty.scatter(at, pl.Series(values, dtype=pl.Utf8))

        return frame.with_columns(
            column(STRUCTURE, rule), column(STRUCTURE_MSG, message), column(RAW_FULL, full)
        )
