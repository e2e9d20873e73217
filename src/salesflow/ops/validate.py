"""Validate local files without storing anything (``salesflow validate``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from salesflow.errors import FileLevelError
from salesflow.pipeline.steps import HEAD_BYTES, resolve_dataset
from salesflow.validation import FileReport, validate_file

if TYPE_CHECKING:
    from salesflow.engines import Engine


def _unreadable(path: Path, exc: OSError) -> FileLevelError:
    """Why ``path`` cannot be read, and what to do, as a file-level error."""
    source = str(path)
    if path.is_dir():
        cause, hint = "it is a folder, not a file", f"pass the files in it, e.g. {path}/*.csv"
    elif not path.exists():
        cause, hint = "no such file", "check the path (relative to the current folder)"
    else:
        cause, hint = f"cannot read: {exc.strerror}", "check the file's permissions"
    return FileLevelError(source, cause, rule="structure.io", hint=hint)


def validate_paths(
    paths: Sequence[Path], *, dataset: str | None = None, engine: Engine | None = None
) -> list[dict[str, Any]]:
    """One report dict per file (the same schema as the stored reports), validated by
    ``engine`` (default: Polars in this process).

    A file that cannot be read gives a report with ``error`` set instead of raising.
    """
    reports = []
    for path in paths:
        source = str(path)
        name = dataset or "unknown"
        try:
            with path.open("rb") as fh:
                head = fh.read(HEAD_BYTES)
            name = resolve_dataset(path.name, head, dataset)
            from salesflow.datasets import get_spec

            spec = get_spec(name)
            if engine is None or engine.name == "polars":
                report = validate_file(path, spec, source=source).report
            else:
                chunks = engine.validate(path, spec, source=source)
                report = FileReport(file=source, dataset=spec.name)
                for chunk in chunks:
                    report.add(chunk)
            reports.append(report.to_dict())
        except FileLevelError as exc:
            reports.append(FileReport.failed(source, name, exc).to_dict())
        except OSError as exc:
            reports.append(FileReport.failed(source, name, _unreadable(path, exc)).to_dict())
    return reports
