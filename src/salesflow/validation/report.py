"""Validation results as data: chunks, per-chunk counts, and the per-file JSON report.

The JSON report (``FileReport.to_dict``) has a stable schema, documented on the method:
the CLI prints it, the pipeline stores it under ``reports/validation/`` and later commands
read the same names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from salesflow.errors import FileLevelError

SAMPLE_SIZE = 5

REASON = pl.Struct({"rule": pl.Utf8, "field": pl.Utf8, "message": pl.Utf8})
REJECTED_SCHEMA: dict[str, pl.DataType] = {
    "_record": pl.Int64(),
    "_key": pl.Utf8(),
    "raw": pl.Utf8(),
    "reasons": pl.List(REASON),
}
"""Schema of ``Chunk.rejected``: record number, key (null if it could not be read), the raw
record as a JSON object, and every reason it was rejected."""


@dataclass
class ChunkReport:
    """Counts of one chunk. ``rules``: rule id -> number of records that broke it."""

    index: int
    rows_in: int
    valid: int
    rejected: int
    rules: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "rows_in": self.rows_in,
            "valid": self.valid,
            "rejected": self.rejected,
            "rules": dict(sorted(self.rules.items())),
        }


@dataclass
class Chunk:
    """One validated chunk of a file.

    ``valid``: typed columns (schema ``DatasetSpec.valid_schema()``): the fields, ``_record``
    (1-based record number in the file), ``_key``, ``_day``, ``amount`` when the dataset has
    one, derived flags and ``_extra`` (JSON object of unknown fields, or null).
    ``rejected``: ``REJECTED_SCHEMA``. ``warnings``: file-level notes found while reading
    this chunk (e.g. the Latin-1 fallback; they come with chunk 0).
    """

    index: int
    rows_in: int
    valid: pl.DataFrame
    rejected: pl.DataFrame
    report: ChunkReport
    warnings: list[str] = field(default_factory=list)


def _sample(row: dict[str, Any]) -> dict[str, Any]:
    raw = json.loads(row["raw"])  # always a JSON object (see REJECTED_SCHEMA)
    return {"record": row["_record"], "key": row["_key"], "reasons": row["reasons"], "raw": raw}


@dataclass
class FileReport:
    """The validation report of one file, built chunk by chunk with :meth:`add`."""

    file: str
    dataset: str
    rows_in: int = 0
    valid: int = 0
    rejected: int = 0
    rules: dict[str, int] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    chunks: list[ChunkReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: FileLevelError | None = None

    def add(self, chunk: Chunk) -> None:
        """Count ``chunk`` in (call once per chunk, in order)."""
        r = chunk.report
        self.rows_in += r.rows_in
        self.valid += r.valid
        self.rejected += r.rejected
        for rule, n in r.rules.items():
            self.rules[rule] = self.rules.get(rule, 0) + n
        self.chunks.append(r)
        for w in chunk.warnings:
            if w not in self.warnings:
                self.warnings.append(w)
        need = SAMPLE_SIZE - len(self.samples)
        if need > 0 and chunk.rejected.height:
            self.samples.extend(_sample(row) for row in chunk.rejected.head(need).to_dicts())

    def fail(self, error: FileLevelError) -> None:
        """Mark the file as unreadable; counts so far are kept (conservation still holds)."""
        self.error = error

    @classmethod
    def from_chunks(cls, file: str, dataset: str, chunks: list[Chunk]) -> FileReport:
        report = cls(file=file, dataset=dataset)
        for c in chunks:
            report.add(c)
        return report

    @classmethod
    def failed(cls, source: str, dataset: str, error: FileLevelError) -> FileReport:
        """The report of a file that could not be read at all."""
        return cls(file=source, dataset=dataset, error=error)

    @property
    def ok(self) -> bool:
        """Whether the file could be read (rejected records do not make it fail)."""
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """The JSON report. Schema (stable; new keys may be added, none removed)::

        {"file": str, "dataset": str, "rows_in": int, "valid": int, "rejected": int,
         "rules": {rule_id: records that broke it},
         "samples": [{"record": int, "key": str|null, "reasons": [{"rule", "field",
                      "message"}], "raw": object}]   # the first 5 rejected records
         "chunks": [{"index", "rows_in", "valid", "rejected", "rules"}],
         "warnings": [str],
         "error": null | {"rule": str, "cause": str, "hint": str}}
        """
        error = None
        if self.error is not None:
            e = self.error
            error = {"rule": e.rule, "cause": e.cause, "hint": e.hint}
        return {
            "file": self.file,
            "dataset": self.dataset,
            "rows_in": self.rows_in,
            "valid": self.valid,
            "rejected": self.rejected,
            "rules": dict(sorted(self.rules.items())),
            "samples": self.samples,
            "chunks": [c.to_dict() for c in self.chunks],
            "warnings": list(self.warnings),
            "error": error,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, default=str)


@dataclass
class ValidationResult:
    """A whole file validated: every chunk concatenated, and its report."""

    valid: pl.DataFrame
    rejected: pl.DataFrame
    report: FileReport

    @property
    def rows_in(self) -> int:
        return self.report.rows_in
