"""JSON files (one document, or JSON Lines) flattened once into string columns.

JSON inputs are small (a batch of orders, a sale event), so records are parsed and
flattened with Python in one pass; every rule still runs column-wise in the engine.
Keys are matched spelling-insensitively along their dotted path (``order-info.OrderId``
== ``orderInfo.order_id``); keys the spec does not know are kept in ``_extra``.

Nesting is bounded before anything is parsed: a document nested deeper than ``MAX_DEPTH``
fails the file (``structure.json_depth``), a JSON Lines line that deep is rejected on its
own. Python's recursive decoder would otherwise raise ``RecursionError`` (a 200 KB file of
``[[[[...]]]]`` did), and every step after parsing recurses too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import polars as pl

from salesflow.datasets.spec import DatasetSpec, normalize
from salesflow.errors import FileLevelError
from salesflow.validation.engine import STRUCTURE, STRUCTURE_MSG, Arrived, src
from salesflow.validation.text import BOM, TextFile

MAX_DEPTH = 64
"""Sales records nest a few levels; 64 leaves room for any real export."""
_STEP = np.zeros(256, dtype=np.int8)
_STEP[[ord("["), ord("{")]] = 1
_STEP[[ord("]"), ord("}")]] = -1
_QUOTE, _BACKSLASH, _NEWLINE = ord('"'), ord("\\"), ord("\n")


def _unescaped(raw: np.ndarray[Any, Any], quotes: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The quotes that open or close a string (not preceded by an odd run of backslashes)."""
    after_backslash = quotes[(quotes > 0) & (raw[np.maximum(quotes - 1, 0)] == _BACKSLASH)]
    escaped = []
    for q in after_backslash.tolist():  # rare: only quotes right after a backslash
        run = 0
        while q - run - 1 >= 0 and raw[q - run - 1] == _BACKSLASH:
            run += 1
        if run % 2:
            escaped.append(q)
    return np.setdiff1d(quotes, np.asarray(escaped, dtype=quotes.dtype)) if escaped else quotes


def nesting(text: str) -> tuple[int, list[int]]:
    """How deep ``text`` nests as a whole, and each ``\\n``-separated line on its own
    (brackets inside strings do not count). No recursion and no parse: a few vectorised
    passes over the bytes, so a 17 MB file costs tens of milliseconds.

    A string never spans a line in JSON, so whether a bracket is inside one is decided by
    the quotes before it on its own line: a broken line cannot mislead the lines after it.

    >>> nesting('{"a": [1, "]]"]}\\n[[[]]]')
    (3, [2, 3])
    """
    raw = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    newlines = np.flatnonzero(raw == _NEWLINE)
    lines = np.zeros(len(newlines) + 1, dtype=np.int64)
    folded = raw | 0x20  # "[" -> "{" and "]" -> "}": two comparisons find all four
    brackets = np.flatnonzero((folded == ord("{")) | (folded == ord("}")))
    if not brackets.size:
        return 0, lines.tolist()
    line_of = np.searchsorted(newlines, brackets)
    starts = np.zeros_like(brackets)
    if newlines.size:
        starts = np.where(line_of > 0, newlines[np.maximum(line_of - 1, 0)] + 1, 0)
    quotes = _unescaped(raw, np.flatnonzero(raw == _QUOTE))
    inside = (np.searchsorted(quotes, brackets) - np.searchsorted(quotes, starts)) % 2 == 1
    brackets, line_of = brackets[~inside], line_of[~inside]
    if not brackets.size:
        return 0, lines.tolist()
    depth = np.cumsum(_STEP[raw[brackets]], dtype=np.int64)
    first = np.flatnonzero(np.r_[True, line_of[1:] != line_of[:-1]])
    peaks = np.maximum.reduceat(depth, first)
    base = np.where(first > 0, depth[np.maximum(first - 1, 0)], 0)
    lines[line_of[first]] = (peaks - base).clip(min=0)
    return max(int(depth.max()), 0), lines.tolist()


def _too_deep(source: str, depth: int) -> FileLevelError:
    return FileLevelError(
        source,
        f"JSON nested deeper than {MAX_DEPTH} levels (it reaches {depth:,})",
        rule="structure.json_depth",
        hint="sales records nest a few levels; check what wrote the file, and flatten it",
    )


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
            if isinstance(record, int):  # too deep to parse: the depth it reaches
                problem = (
                    "structure.json_depth",
                    f"this line nests deeper than {MAX_DEPTH} levels ({record:,})",
                )
                record = None
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


def _json_lines(text: str, depths: list[int]) -> list[tuple[Any, str, bool]] | None:
    """Records of a JSON Lines text as (value, line, broken), or None if it is not JSON
    Lines (fewer than two lines, or a first line that does not parse).

    Lines are separated by ``\\n`` only (``\\r\\n`` too): U+2028 and friends are legal
    inside JSON strings and must not split a record. A line nested deeper than
    ``MAX_DEPTH`` is broken, its value the depth it reaches."""
    lines = [
        (line, depth) for line, depth in zip(text.split("\n"), depths, strict=True) if line.strip()
    ]
    if len(lines) < 2:
        return None
    out: list[tuple[Any, str, bool]] = []
    for i, (line, depth) in enumerate(lines):
        try:
            if depth > MAX_DEPTH:
                raise RecursionError
            out.append((json.loads(line), line.strip(), False))
        except (ValueError, RecursionError):
            if i == 0:
                return None
            out.append((depth if depth > MAX_DEPTH else None, line.removesuffix("\r"), True))
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
    depth, depths = nesting(content)
    top: Any = None
    lines = None
    try:
        if depth > MAX_DEPTH:
            raise RecursionError(depth)
        top = json.loads(content)
    except RecursionError:  # one document too deep, unless it is JSON Lines
        lines = _json_lines(content, depths)
        if lines is None:
            raise _too_deep(source, depth) from None
    except json.JSONDecodeError as exc:
        lines = _json_lines(content, depths)
        if lines is None:
            raise FileLevelError(
                source,
                f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
                rule="structure.bad_json",
                hint="the file may be truncated or not JSON; fix it and upload it again",
            ) from exc
    if lines is None:
        for record in _records(spec, top, source):
            flat.add(record)
    else:
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
