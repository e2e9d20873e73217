"""CSV files as a stream of string chunks, in bounded memory.

The header is read with the ``csv`` module and matched to the spec's fields (case- and
separator-insensitive, BOM-tolerant); the body is streamed by Polars with every column as
a string, so ``raw`` keeps each value exactly as it arrived. One extra ``_overflow``
column catches records with more fields than the header (``structure.field_count``).
Records with no value at all (blank lines) are skipped and not counted; ``_record``
numbers the remaining records from 1, as ``csv.DictReader`` would.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import polars as pl

from salesflow.datasets.detect import match_header
from salesflow.datasets.spec import DatasetSpec
from salesflow.errors import FileLevelError
from salesflow.validation.engine import STRUCTURE, STRUCTURE_MSG, Arrived, src
from salesflow.validation.text import BOM, TextFile

OVERFLOW = "_overflow"


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
    schema = {c: pl.Utf8 for c in cols} | {OVERFLOW: pl.Utf8}
    lazy = pl.scan_csv(
        text.path,
        has_header=False,
        skip_rows=1,
        schema=schema,
        truncate_ragged_lines=True,
        empty_string_is_null=False,
        missing_columns="insert",
        raise_if_empty=False,
    )
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
    blank = pl.all_horizontal([pl.col(c) == "" for c in cols])  # a blank line
    message = pl.format(
        "record has more fields than the {} header columns (extra: '{}')",
        pl.lit(len(header)),
        pl.col(OVERFLOW),
    )
    seen = 0
    try:
        for batch in lazy.collect_batches(chunk_size=chunk_rows):
            # One contiguous chunk per column: later column additions then never force a
            # copy of the whole frame to realign chunks.
            batch = batch.filter(~blank).rechunk()
            if batch.height == 0:
                continue
            frame = batch.with_columns(
                pl.int_range(seen + 1, seen + batch.height + 1, dtype=pl.Int64).alias("_record"),
                *[e.alias(src(f.name)) for e, f in zip(fields, spec.fields, strict=True)],
            )
            overflow = frame.get_column(OVERFLOW).fill_null("") != ""
            if overflow.any():  # rare: only then pay for the structure columns
                frame = frame.with_columns(
                    pl.when(overflow).then(pl.lit("structure.field_count")).alias(STRUCTURE),
                    pl.when(overflow).then(message).alias(STRUCTURE_MSG),
                )
            seen += batch.height
            yield Arrived(frame, raw.struct.json_encode(), extra)
    except pl.exceptions.PolarsError as exc:
        raise FileLevelError(
            source,
            f"the CSV cannot be parsed after record {seen}: {str(exc).splitlines()[0]}",
            rule="structure.bad_csv",
            hint="check for an unterminated quote or a truncated upload, then re-upload",
        ) from exc
