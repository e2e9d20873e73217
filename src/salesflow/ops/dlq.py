"""Working with the dead-letter queue: export for a person to fix, and redrive.

Export writes one row per letter with its id, reasons and the raw fields. CSV cells that a
spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, tab or CR) are
prefixed with ``'`` (OWASP's CSV-injection advice). Redrive takes letters (as they are, or
corrected in an exported file), writes them back as a new inbox file of their dataset, and
runs it through the whole pipeline: what passes is stored and its letter marked REDRIVEN.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from salesflow import layout
from salesflow.config import Settings
from salesflow.datasets import get_spec
from salesflow.errors import TerminalError
from salesflow.models import DeadLetter, LetterStatus, utcnow
from salesflow.pipeline.state import StepState
from salesflow.pipeline.steps import process_file
from salesflow.ports import Backend

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
META = ("_letter_id", "_dataset", "_source_file", "_record", "_rules", "_reasons")


def neutralise(cell: Any) -> str:
    """A CSV cell that no spreadsheet will evaluate.

    >>> neutralise("=HYPERLINK('http://x')")
    "'=HYPERLINK('http://x')"
    """
    text = "" if cell is None else cell if isinstance(cell, str) else json.dumps(cell)
    return "'" + text if text.startswith(FORMULA_START) else text


def _flat(letter: DeadLetter) -> dict[str, Any]:
    row: dict[str, Any] = {
        "_letter_id": letter.id,
        "_dataset": letter.dataset,
        "_source_file": letter.source_file,
        "_record": letter.record,
        "_rules": ",".join(letter.rules),
        "_reasons": "; ".join(f"{r.rule}: {r.message}" for r in letter.reasons),
    }
    row.update(letter.raw)
    return row


def export(letters: Sequence[DeadLetter], fmt: str) -> str:
    """Letters as ``csv`` (formulas neutralised) or ``jsonl`` (``DeadLetter.to_dict`` per line)."""
    if fmt == "jsonl":
        return "".join(json.dumps(letter.to_dict(), default=str) + "\n" for letter in letters)
    if fmt != "csv":
        raise TerminalError(f"unknown export format {fmt!r}", hint="use --format csv or jsonl")
    rows = [_flat(letter) for letter in letters]
    columns = list(META)
    for row in rows:
        columns.extend(c for c in row if c not in columns)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: neutralise(row.get(c)) for c in columns})
    return out.getvalue()


def read_corrections(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(letter id, corrected raw record)`` pairs from an exported (and edited) file."""
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix == ".csv":
        pairs = []
        for row in csv.DictReader(io.StringIO(text)):
            raw = {k: _unquote(v) for k, v in row.items() if k not in META and v != ""}
            pairs.append((row["_letter_id"], raw))
        return pairs
    pairs = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                item = json.loads(line)
            except ValueError as exc:
                raise TerminalError(
                    f"{path}: line {n} is not JSON ({exc})", hint="fix the line or re-export"
                ) from exc
            pairs.append((str(item["id"]), dict(item["raw"])))
    return pairs


def _unquote(value: str) -> str:
    return value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_START) else value


@dataclass
class RedriveResult:
    files: list[StepState] = field(default_factory=list)
    redriven: int = 0
    still_failing: int = 0
    unknown: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": [s.to_dict() for s in self.files],
            "redriven": self.redriven,
            "still_failing": self.still_failing,
            "unknown": self.unknown,
        }


def _encode(dataset: str, raws: Iterable[dict[str, Any]]) -> tuple[str, bytes]:
    """A file of the dataset holding ``raws`` in order: JSON Lines, or CSV for CSV-only data."""
    spec = get_spec(dataset)
    items = list(raws)
    if "json" in spec.formats:
        return "jsonl", "".join(json.dumps(r) + "\n" for r in items).encode()
    columns: list[str] = [f.name for f in spec.fields]
    for r in items:
        columns.extend(c for c in r if c not in columns)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for r in items:
        writer.writerow({c: r.get(c, "") for c in columns})
    return "csv", out.getvalue().encode()


def redrive(
    backend: Backend,
    settings: Settings,
    letters: Sequence[DeadLetter],
    corrections: dict[str, dict[str, Any]] | None = None,
) -> RedriveResult:
    """Run ``letters`` (with their raw record replaced by ``corrections[id]`` where given)
    through the pipeline again, one new inbox file per dataset."""
    corrections = corrections or {}
    result = RedriveResult()
    by_dataset: dict[str, list[DeadLetter]] = defaultdict(list)
    for letter in letters:
        if letter.status == LetterStatus.NEW:
            by_dataset[letter.dataset].append(letter)
    stamp = utcnow().strftime("%Y%m%dT%H%M%S%f")
    for dataset, group in sorted(by_dataset.items()):
        ext, body = _encode(dataset, (corrections.get(x.id, x.raw) for x in group))
        key = layout.check_key(f"{layout.INBOX}{dataset}/redrive-{stamp}.{ext}")
        backend.store.put_bytes(key, body)
        state = process_file(backend, settings, key, dataset=dataset, dedup=False)
        result.files.append(state)
        failing = {x.record for x in backend.dlq.list(source_file=key)}
        passed = [
            x for i, x in enumerate(group, 1) if state.status == "SUCCESS" and i not in failing
        ]
        backend.dlq.mark(passed, LetterStatus.REDRIVEN)
        result.redriven += len(passed)
        result.still_failing += len(group) - len(passed)
    return result


def discard(backend: Backend, letters: Sequence[DeadLetter]) -> list[DeadLetter]:
    """Mark the open (NEW) ``letters`` DISCARDED, kept for the record; return those marked."""
    open_letters = [x for x in letters if x.status == LetterStatus.NEW]
    backend.dlq.mark(open_letters, LetterStatus.DISCARDED)
    return open_letters
