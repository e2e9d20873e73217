"""Vectorized validation: every record of a file is valid (typed) or rejected with every
reason it broke, and ``rows_in == valid + rejected`` always.

>>> from salesflow.datasets import get_spec
>>> result = validate_file(path, get_spec("orders_json"), source="inbox/orders_json/a.json")
... # doctest: +SKIP
>>> result.report.to_dict()["rules"]  # doctest: +SKIP
{'presence.contact_info': 1}

Rules run as Polars expressions over whole chunks (see ``engine``); big CSVs stream in
chunks of ``chunk_rows`` so memory stays bounded. A file that cannot be read at all raises
``salesflow.errors.FileLevelError``; a bad record never raises.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import polars as pl

from salesflow.datasets.spec import DatasetSpec
from salesflow.errors import FileLevelError
from salesflow.models import utcnow
from salesflow.validation.csv_source import csv_chunks
from salesflow.validation.engine import Arrived, ChunkValidator, Reference, src
from salesflow.validation.json_source import decode, json_chunks
from salesflow.validation.report import (
    REJECTED_SCHEMA,
    Chunk,
    ChunkReport,
    FileReport,
    ValidationResult,
)
from salesflow.validation.rules import RULES
from salesflow.validation.text import open_text


def _empty(spec: DatasetSpec) -> Arrived:
    frame = pl.DataFrame(
        {"_record": pl.Series([], dtype=pl.Int64)}
        | {src(f.name): pl.Series([], dtype=pl.Utf8) for f in spec.fields}
    )
    return Arrived(frame, pl.lit(None, dtype=pl.Utf8), pl.lit(None, dtype=pl.Utf8))


def validate_path(
    path: Path,
    spec: DatasetSpec,
    *,
    source: str,
    reference: Reference | None = None,
    now: datetime | None = None,
    processing_day: date | None = None,
    chunk_rows: int = 1_000_000,
    scratch: Path | None = None,
) -> Iterator[Chunk]:
    """Validate the file at ``path`` as dataset ``spec``, chunk by chunk.

    ``source`` names the file in errors and reports (its object key). ``reference`` holds
    the keys other datasets' records must match (None: referential rules are skipped, and
    a warning says so). ``now`` bounds future dates (default: the current UTC time);
    ``processing_day`` is the business day of datasets without a date (default: now's
    date). ``scratch`` is the folder for a decoded copy when one is needed (gzip, Latin-1,
    bare CRs; default: the system temp dir). Always yields at least one chunk (an empty one
    for a header-only file). Raises ``FileLevelError`` if the file cannot be read at all.
    """
    now = now or utcnow()
    validator = ChunkValidator(spec, now, processing_day or now.date(), reference)
    with open_text(path, source, scratch=scratch) as text:
        if text.format not in spec.formats:
            raise FileLevelError(
                source,
                f"the file is {text.format.upper()}, but {spec.name} accepts "
                f"{' or '.join(f.upper() for f in spec.formats)}",
                rule="structure.format",
                hint="convert the file, or drop it under the right inbox/<dataset>/",
            )
        validator.warnings.extend(text.warnings)
        if text.format == "csv":
            arrivals = csv_chunks(text, spec, source, chunk_rows)
        else:
            arrivals = json_chunks(text, spec, source, chunk_rows, decode(text))
        index = 0
        for arrived in arrivals:
            yield validator.validate(arrived, index)
            index += 1
        if index == 0:
            yield validator.validate(_empty(spec), 0)


def validate_file(
    path: Path,
    spec: DatasetSpec,
    *,
    source: str,
    reference: Reference | None = None,
    now: datetime | None = None,
    processing_day: date | None = None,
    chunk_rows: int = 1_000_000,
    scratch: Path | None = None,
) -> ValidationResult:
    """Validate a whole file at once: :func:`validate_path` with the chunks concatenated."""
    report = FileReport(file=source, dataset=spec.name)
    valid: list[pl.DataFrame] = []
    rejected: list[pl.DataFrame] = []
    for chunk in validate_path(
        path,
        spec,
        source=source,
        reference=reference,
        now=now,
        processing_day=processing_day,
        chunk_rows=chunk_rows,
        scratch=scratch,
    ):
        report.add(chunk)
        valid.append(chunk.valid)
        rejected.append(chunk.rejected)
    return ValidationResult(
        valid=pl.concat(valid, how="vertical"),
        rejected=pl.concat(rejected, how="vertical"),
        report=report,
    )


__all__ = [
    "REJECTED_SCHEMA",
    "RULES",
    "Chunk",
    "ChunkReport",
    "FileReport",
    "Reference",
    "ValidationResult",
    "validate_file",
    "validate_path",
]
