"""Dead letters as files: the export a person fixes, reading it back, and the redrive file.

**Export.** ``jsonl`` writes ``{"_letter_id": id, **DeadLetter.to_dict()}`` per line. ``csv``
writes one row per letter: the meta columns (``_letter_id``, ``_dataset``, ``_source_file``,
``_record``, ``_status``, ``_rules``, ``_reasons``, ``_keys``, ``_json``), then one column per
raw field. Every cell, header cells included, is neutralised (OWASP's CSV-injection advice):
a cell a spreadsheet would run as a formula gets a leading ``'``. Every cell is quoted, so a
CR or LF inside a value never splits a row. Exports stream: letters are read a page at a time
and spooled to an unlinked temporary file while the CSV columns are collected.

**Round trip.** ``read_corrections`` undoes all of it: the ``'`` of neutralised cells (a value
that itself starts with ``'`` before a formula character was given one more), raw keys that
start with ``_`` (exported as ``__key`` so they never clash with the meta columns), ``_keys``
(the record's keys, in order: a blank cell of a key the record had is ``""``, a key it did not
have stays absent) and ``_json`` (keys whose value is not a string and was written as JSON).
An exported file read back gives exactly the letters' raw records.

**Redrive file.** ``build_redrive`` writes records in their dataset's own format, numbered
from 1 as the pipeline numbers them, with the letter each record came from.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from salesflow.datasets import get_spec
from salesflow.datasets.spec import DatasetSpec, normalize
from salesflow.errors import TerminalError
from salesflow.models import DeadLetter

FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")
"""What makes a spreadsheet read a cell as a formula (OWASP), LF included for safety."""
META = (
    "_letter_id",
    "_dataset",
    "_source_file",
    "_record",
    "_status",
    "_rules",
    "_reasons",
    "_keys",
    "_json",
)
FORMATS = ("csv", "jsonl")
CSV_FIELD_LIMIT = 2**31 - 1
"""Raw records can hold fields far beyond the csv module's default 128 KiB."""


def neutralise(cell: str) -> str:
    """A cell no spreadsheet will evaluate, that ``restore`` turns back into ``cell``.

    >>> neutralise("=HYPERLINK('http://x')"), neutralise("\\r=1+1"), neutralise("'=x")
    ("'=HYPERLINK('http://x')", "'\\r=1+1", "''=x")
    """
    return "'" + cell if _risky(cell) else cell


def restore(cell: str) -> str:
    """The value ``neutralise`` was given."""
    return cell[1:] if cell.startswith("'") and _risky(cell[1:]) else cell


def _risky(cell: str) -> bool:
    """Starts with a formula character, or with ``'`` quotes before one (so the quote a
    person's value already had survives ``restore``)."""
    return cell.lstrip("'").startswith(FORMULA_START)


def column_of(key: str) -> str:
    """The CSV column of raw key ``key``: keys starting with ``_`` get one more, so they
    never clash with the meta columns."""
    return "_" + key if key.startswith("_") else key


def key_of(column: str) -> str | None:
    """The raw key of a CSV column, or None for a meta column."""
    if column.startswith("__"):
        return column[1:]
    return None if column.startswith("_") else column


def _cell(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _meta(letter: DeadLetter) -> dict[str, str]:
    raw = letter.raw
    return {
        "_letter_id": letter.id,
        "_dataset": letter.dataset,
        "_source_file": letter.source_file,
        "_record": str(letter.record),
        "_status": letter.status.value,
        "_rules": ",".join(letter.rules),
        "_reasons": "; ".join(f"{r.rule}: {r.message}" for r in letter.reasons),
        "_keys": json.dumps(list(raw), ensure_ascii=False),
        "_json": json.dumps([k for k, v in raw.items() if not isinstance(v, str)]),
    }


def export(
    letters: Iterable[DeadLetter], fmt: str, out: IO[str], *, spool: Path | None = None
) -> int:
    """Write ``letters`` to ``out`` as ``csv`` or ``jsonl``; return how many were written.

    The letters are consumed once, as they come. CSV needs its columns before its first row,
    so they are spooled to an unlinked temporary file (in ``spool``, else the system's) while
    the columns are collected; nothing but the column names is held in memory.
    """
    if fmt not in FORMATS:
        raise TerminalError(f"unknown export format {fmt!r}", hint="use --format csv or jsonl")
    if fmt == "jsonl":
        n = 0
        for letter in letters:
            row = {"_letter_id": letter.id, **letter.to_dict()}
            out.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            n += 1
        return n
    with tempfile.TemporaryFile("w+", encoding="utf-8", dir=spool) as spooled:
        columns: dict[str, None] = {}
        n = 0
        for letter in letters:
            row = _meta(letter) | {column_of(k): _cell(v) for k, v in letter.raw.items()}
            columns.update(dict.fromkeys(k for k in row if k not in META))
            spooled.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
        spooled.seek(0)
        header = [*META, *columns]
        writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
        writer.writerow([neutralise(c) for c in header])
        for line in spooled:
            row = json.loads(line)
            writer.writerow([neutralise(row.get(c, "")) for c in header])
    return n


# ---------------------------------------------------------------- reading corrections
Correction = tuple[str | None, dict[str, Any]]


def read_corrections(path: Path) -> list[Correction]:
    """``(letter id or None, raw record)`` pairs from an export, possibly edited by a person.

    The format is told from the first character (``{`` is JSON Lines, anything else CSV).
    A row with no ``_letter_id`` is a new record. In a JSON line, ``raw`` is the record when
    the line is an exported letter; otherwise the line itself is the record.
    """
    try:
        # newline="": a CR inside a quoted CSV cell is data, not a line ending.
        with path.open(encoding="utf-8-sig", newline="") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise TerminalError(
            f"{path}: no such file", hint="give the file `salesflow dlq export --out` wrote"
        ) from None
    except IsADirectoryError:
        raise TerminalError(f"{path} is a directory", hint="give the exported file") from None
    except UnicodeDecodeError as exc:
        raise TerminalError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})",
            hint="save the file as UTF-8 (CSV UTF-8 in a spreadsheet) and try again",
        ) from exc
    if text.lstrip().startswith("{"):
        return list(_jsonl_corrections(path, text))
    return list(_csv_corrections(path, text))


def _jsonl_corrections(path: Path, text: str) -> Iterator[Correction]:
    # Split on LF only: JSON escapes CR and LF in strings, but not U+2028 and the other
    # characters str.splitlines() also breaks at.
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise TerminalError(
                f"{path}: line {n} is not JSON ({exc})", hint="fix the line or export again"
            ) from exc
        if not isinstance(item, dict):
            raise TerminalError(
                f"{path}: line {n} is not a JSON object", hint="one letter or record per line"
            )
        letter_id = item.get("_letter_id", item.get("id") if "raw" in item else None)
        if isinstance(item.get("raw"), dict):
            yield (str(letter_id) if letter_id else None), item["raw"]
        else:
            record = {k: v for k, v in item.items() if k != "_letter_id"}
            yield (str(letter_id) if letter_id else None), record


def _csv_corrections(path: Path, text: str) -> Iterator[Correction]:
    csv.field_size_limit(CSV_FIELD_LIMIT)
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise TerminalError(f"{path}: not a readable CSV ({exc})", hint="export again") from exc
    if not rows:
        return
    header = [restore(c) for c in rows[0]]
    for n, cells in enumerate(rows[1:], 2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(header):
            raise TerminalError(
                f"{path}: line {n} has {len(cells)} cells but the header has {len(header)}",
                hint="a cell may have lost its quotes; export again or fix the row",
            )
        row = dict(zip(header, (restore(c) for c in cells), strict=False))
        yield (row.get("_letter_id") or None), _record_of(path, n, row)


def _record_of(path: Path, line: int, row: dict[str, str]) -> dict[str, Any]:
    """A row's raw record: the keys ``_keys`` names, in order, then any other column a
    person filled in; ``_json`` keys, and added cells holding a JSON object or list, are
    parsed back (a value a person typed that is not JSON stays text)."""
    try:
        keys = json.loads(row["_keys"]) if row.get("_keys") else []
        typed = set(json.loads(row["_json"])) if row.get("_json") else set()
    except ValueError as exc:
        raise TerminalError(
            f"{path}: line {line}: the _keys or _json cell is not JSON ({exc})",
            hint="leave the _ columns as exported",
        ) from exc
    record: dict[str, Any] = {}
    for key in keys:
        record[key] = row.get(column_of(key), "")
    for column, value in row.items():
        key = key_of(column)
        if key is not None and key not in record and value != "":
            record[key] = value
            if value.lstrip().startswith(("{", "[")):
                typed.add(key)  # an object a person added to a JSON record
    for key in typed & set(record):
        try:
            record[key] = json.loads(record[key])
        except ValueError:
            pass
    return record


# ---------------------------------------------------------------- redrive files
@dataclass(frozen=True)
class RedriveFile:
    """Records to run through the pipeline again, in their dataset's own format.

    ``origins[n]`` is the letter record ``n`` of the file came from (``None`` for a record a
    person added); records are numbered from 1, as the pipeline numbers them.
    """

    ext: str
    body: bytes
    origins: dict[int, str | None] = field(default_factory=dict)
    blank: list[str] = field(default_factory=list)
    """Letters whose record was left with no value at all: the pipeline would skip such a
    line, so it is not in the file (and the letter is left as it is)."""


def build_redrive(dataset: str, items: Iterable[Correction]) -> RedriveFile:
    """One file of ``dataset`` holding the records of ``items``: JSON Lines when the dataset
    accepts JSON (a one-element JSON array for a single record, which JSON Lines cannot tell
    from a document), else CSV with a header of every key in first-seen order."""
    spec = get_spec(dataset)
    kept: list[Correction] = []
    blank: list[str] = []
    for letter_id, raw in items:
        record = _parsed(raw)
        if all(v is None or (isinstance(v, str) and not v.strip()) for v in record.values()):
            if letter_id is not None:
                blank.append(letter_id)
            continue
        kept.append((letter_id, record))
    origins = {n: letter_id for n, (letter_id, _raw) in enumerate(kept, 1)}
    if "json" in spec.formats:
        lines = [json.dumps(r, ensure_ascii=False, default=str) for _id, r in kept]
        if len(lines) == 1:
            return RedriveFile("json", f"[{lines[0]}]\n".encode(), origins, blank)
        return RedriveFile("jsonl", "".join(x + "\n" for x in lines).encode(), origins, blank)
    rows = [_canonical(spec, r) for _id, r in kept]
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerow(list(columns))
    for row in rows:
        writer.writerow([_csv_value(row.get(c)) for c in columns])
    return RedriveFile("csv", out.getvalue().encode(), origins, blank)


def _parsed(raw: dict[str, Any]) -> dict[str, Any]:
    """A record that arrived as an unreadable line (``{"_raw": text}``) and was fixed by a
    person is read from its text again."""
    if set(raw) == {"_raw"} and isinstance(raw["_raw"], str):
        try:
            fixed = json.loads(raw["_raw"])
        except ValueError:
            return raw
        if isinstance(fixed, dict):
            return fixed
    return raw


def _canonical(spec: DatasetSpec, raw: dict[str, Any]) -> dict[str, Any]:
    """Keys spelt as the dataset's field names, so records from files with differently
    spelt headers (``OrderId``, ``order_id``) share one column."""
    names = {s: f.name for f in spec.fields for s in f.spellings}
    return {names.get(normalize(str(k)), str(k)): v for k, v in raw.items()}


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
