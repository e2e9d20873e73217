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
    kind = type(value)
    if kind is str or value is None:
        return value  # type: ignore[no-any-return]
    if kind is bool:
        return "true" if value else "false"
    if kind is float and value.is_integer():
        return str(int(value))
    if kind in (int, float):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def _leaves(obj: dict[str, Any], path: str) -> Iterator[tuple[str, Any]]:
    for k, v in obj.items():
        p = f"{path}.{k}"
        if type(v) is dict and v:
            yield from _leaves(v, p)
        else:
            yield p, v


class _Flattener:
    """Maps the leaves of each record to the spec's fields (one pass of Python per record;
    key spellings are normalised once per distinct path, not once per record)."""

    def __init__(self, spec: DatasetSpec) -> None:
        self.spec = spec
        self.spellings = {s: f.name for f in spec.fields for s in f.spellings}
        self.paths: dict[str, str | None] = {}
        self.rows: list[dict[str, str | None]] = []
        self.extras: list[str | None] = []
        self.problems: list[tuple[str, str] | None] = []
        self.records: list[Any] = []
        self.texts: list[str | None] = []

    def _field(self, path: str) -> str | None:
        try:
            return self.paths[path]
        except KeyError:
            name = self.paths[path] = self.spellings.get(normalize(path))
            return name

    def add(self, record: Any, text: str | None = None, *, broken: bool = False) -> None:
        """Add one record; ``text`` is its source line (JSON Lines), ``broken`` if that
        line did not parse."""
        values: dict[str, str | None] = {}
        extra: dict[str, Any] = {}
        problem: tuple[str, str] | None = None
        if type(record) is dict:
            for key, item in record.items():
                leaves = _leaves(item, key) if type(item) is dict and item else ((key, item),)
                for path, value in leaves:
                    name = self._field(path)
                    if name is not None and name not in values:
                        values[name] = value if type(value) is str else _scalar(value)
                    elif value is not None and value != {}:
                        extra[path] = value
        elif broken:
            problem = ("structure.bad_json", "this line is not valid JSON")
            text = json.dumps({"_raw": text}, ensure_ascii=False)
        else:
            problem = ("structure.not_object", f"record is a {type(record).__name__}")
            text = json.dumps({"_value": record}, ensure_ascii=False)
        self.rows.append(values)
        self.extras.append(json.dumps(extra, ensure_ascii=False) if extra else None)
        self.problems.append(problem)
        self.records.append(record)
        self.texts.append(text)

    def raw(self, records: pl.Series) -> pl.Series:
        """The raw JSON text of the given record numbers: the line as it arrived for JSON
        Lines, else the record re-serialised."""
        out = []
        for n in records.to_list():
            text = self.texts[n - 1]
            out.append(
                text if text is not None else json.dumps(self.records[n - 1], ensure_ascii=False)
            )
        return pl.Series("raw", out, dtype=pl.Utf8)

    def frame(self) -> pl.DataFrame:
        rows = self.rows
        data: dict[str, Any] = {
            "_record": pl.int_range(1, len(rows) + 1, dtype=pl.Int64, eager=True),
            "_extra": pl.Series(self.extras, dtype=pl.Utf8),
        }
        for f in self.spec.fields:
            data[src(f.name)] = pl.Series([r.get(f.name) for r in rows], dtype=pl.Utf8)
        if any(p is not None for p in self.problems):
            data[STRUCTURE] = pl.Series([p and p[0] for p in self.problems], dtype=pl.Utf8)
            data[STRUCTURE_MSG] = pl.Series([p and p[1] for p in self.problems], dtype=pl.Utf8)
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


def _json_lines(text: str) -> list[tuple[Any, str, bool]] | None:
    """Records of a JSON Lines text as (value, line, broken), or None if it is not JSON
    Lines (fewer than two lines, or a first line that does not parse)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        return None
    out: list[tuple[Any, str, bool]] = []
    for i, line in enumerate(lines):
        try:
            out.append((json.loads(line), line.strip(), False))
        except ValueError:
            if i == 0:
                return None
            out.append((None, line, True))
    return out


class Flattened:
    """A JSON file's records as string columns (``frame``) and their raw texts (``raw``)."""

    def __init__(self, flat: _Flattener) -> None:
        self.frame = flat.frame()
        self.raw = flat.raw


def flatten(spec: DatasetSpec, source: str, content: str) -> Flattened:
    """Parse ``content`` (the decoded file): one document of records, or JSON Lines.

    Raises ``FileLevelError`` when it is neither, or has a shape ``spec`` does not accept."""
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
        for record, line, broken in lines:
            flat.add(record, line, broken=broken)
    return Flattened(flat)


def json_chunks(
    text: TextFile, spec: DatasetSpec, source: str, chunk_rows: int, content: str
) -> Iterator[Arrived]:
    """Parse ``content`` (the decoded file) and yield it in chunks of ``chunk_rows``."""
    flat = flatten(spec, source, content)
    frame = flat.frame
    extra = pl.col("_extra")
    for start in range(0, frame.height, chunk_rows):
        yield Arrived(frame.slice(start, chunk_rows), flat.raw, extra)


def decode(text: TextFile) -> str:
    """The whole file as text (``text.path`` is UTF-8 already), BOM removed."""
    return text.path.read_bytes().removeprefix(BOM).decode("utf-8")
