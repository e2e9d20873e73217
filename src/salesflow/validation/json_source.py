"""JSON files (one document, or JSON Lines) flattened once into string columns.

JSON inputs are small (a batch of orders, a sale event), so records are parsed and
flattened with Python in one pass; every rule still runs column-wise in the engine.
Keys are matched spelling-insensitively along their dotted path (``order-info.OrderId``
== ``orderInfo.order_id``); keys the spec does not know are kept in ``_extra``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import polars as pl

from salesflow.datasets.spec import DatasetSpec, normalize
from salesflow.errors import FileLevelError
from salesflow.validation.engine import STRUCTURE, STRUCTURE_MSG, Arrived, src
from salesflow.validation.text import BOM, TextFile


def _scalar(value: Any) -> str | None:
    """A JSON value as the string a CSV would have carried."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def _leaves(obj: dict[str, Any], path: str = "") -> Iterator[tuple[str, Any]]:
    for k, v in obj.items():
        p = f"{path}.{k}" if path else str(k)
        if isinstance(v, dict) and v:
            yield from _leaves(v, p)
        else:
            yield p, v


class _Flattener:
    """Maps the leaves of each record to the spec's fields."""

    def __init__(self, spec: DatasetSpec) -> None:
        self.spec = spec
        self.lookup = {s: f.name for f in spec.fields for s in f.spellings}
        self.columns: dict[str, list[Any]] = {src(f.name): [] for f in spec.fields}
        for name in ("_raw", "_extra", STRUCTURE, STRUCTURE_MSG):
            self.columns[name] = []

    def add(self, record: Any, raw: str | None = None) -> None:
        cols = self.columns
        values: dict[str, str | None] = {}
        extra: dict[str, Any] = {}
        if isinstance(record, dict):
            for path, value in _leaves(record):
                name = self.lookup.get(normalize(path))
                if name is not None and name not in values:
                    values[name] = _scalar(value)
                elif value not in (None, {}):
                    extra[path] = value
            problem: tuple[str | None, str | None] = (None, None)
            raw = json.dumps(record, ensure_ascii=False)
        elif raw is not None:
            problem = ("structure.bad_json", "this line is not valid JSON")
            raw = json.dumps({"_raw": raw}, ensure_ascii=False)
        else:
            problem = ("structure.not_object", f"record is a {type(record).__name__}")
            raw = json.dumps({"_value": record}, ensure_ascii=False)
        for f in self.spec.fields:
            cols[src(f.name)].append(values.get(f.name))
        cols["_raw"].append(raw)
        cols["_extra"].append(json.dumps(extra, ensure_ascii=False) if extra else None)
        cols[STRUCTURE].append(problem[0])
        cols[STRUCTURE_MSG].append(problem[1])

    def frame(self) -> pl.DataFrame:
        n = len(self.columns["_raw"])
        data: dict[str, Any] = {"_record": pl.int_range(1, n + 1, dtype=pl.Int64, eager=True)}
        data |= {k: pl.Series(k, v, dtype=pl.Utf8) for k, v in self.columns.items()}
        return pl.DataFrame(data)


def _shape_error(spec: DatasetSpec, source: str, what: str) -> FileLevelError:
    containers = " or ".join(f'{{"{c}": [...]}}' for c in spec.json_containers[:1])
    shapes = ", ".join(p for p in (containers, "a list of records", "JSON Lines") if p)
    return FileLevelError(
        source,
        f"top-level JSON is {what}; {spec.name} expects {shapes}",
        rule="structure.json_shape",
        hint="wrap the records as described, or drop the file under the right inbox/<dataset>/",
    )


def _records(spec: DatasetSpec, top: Any, source: str) -> list[Any]:
    """The records of a parsed JSON document, by the shapes ``spec`` accepts."""
    if isinstance(top, list):
        return top
    if not isinstance(top, dict):
        raise _shape_error(spec, source, f"a {type(top).__name__}")
    keys = {normalize(str(k)): k for k in top}
    for container in spec.json_containers:
        if container in keys:
            inner = top[keys[container]]
            if isinstance(inner, list):
                return inner
            raise _shape_error(spec, source, f'an object whose "{keys[container]}" is not a list')
    known = {s.split(".")[0] for f in spec.fields for s in f.spellings}
    if set(keys) & known:
        return [top]
    raise _shape_error(spec, source, f"an object with keys {sorted(top)[:5]}")


def _json_lines(text: str) -> list[tuple[Any, str | None]] | None:
    """Records of a JSON Lines text (bad lines kept as raw strings), or None if it is not
    JSON Lines (fewer than two lines, or a first line that does not parse)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        return None
    out: list[tuple[Any, str | None]] = []
    for i, line in enumerate(lines):
        try:
            out.append((json.loads(line), None))
        except ValueError:
            if i == 0:
                return None
            out.append((None, line))
    return out


def json_chunks(
    text: TextFile, spec: DatasetSpec, source: str, chunk_rows: int, content: str
) -> Iterator[Arrived]:
    """Parse ``content`` (the decoded file) and yield it in chunks of ``chunk_rows``."""
    flat = _Flattener(spec)
    try:
        for record in _records(spec, json.loads(content), source):
            flat.add(record)
    except json.JSONDecodeError as exc:
        lines = _json_lines(content)
        if lines is None:
            raise FileLevelError(
                source,
                f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
                rule="structure.bad_json",
                hint="the file may be truncated or not JSON; fix it and upload it again",
            ) from exc
        for record, bad in lines:
            flat.add(record, bad)
    frame = flat.frame()
    raw, extra = pl.col("_raw"), pl.col("_extra")
    for start in range(0, frame.height, chunk_rows):
        yield Arrived(frame.slice(start, chunk_rows), raw, extra)


def decode(text: TextFile) -> str:
    """The whole file as text (``text.path`` is UTF-8 already), BOM removed."""
    return text.path.read_bytes().removeprefix(BOM).decode("utf-8")
