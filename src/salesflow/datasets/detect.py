"""Which dataset a file holds: from its inbox key, else from its first bytes.

Like sqlite-utils, peek rather than trust the file name: a CSV header (BOM-tolerant,
case- and separator-insensitive) or the shape of the JSON (``{"orders": [...]}``, a list,
JSON Lines, a single sale-event object). A gzip stream is peeked at inflated.

Detection never raises: bytes it cannot make sense of (binary, a broken header) are
``None``, and :func:`undetected` then says why in one line (not text, broken JSON, or no
dataset matches) for the file's lineage.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping

from salesflow.datasets.content import binary_kind, inflate_head, is_gzip, named_json
from salesflow.datasets.spec import DatasetSpec, normalize
from salesflow.errors import FileLevelError, UnknownDatasetError
from salesflow.layout import inbox_dataset

BOM = b"\xef\xbb\xbf"
_JSON_KEY = re.compile(r'"([^"\\]{1,64})"\s*:')


def sniff_format(head: bytes, key: str = "") -> str:
    """``"json"`` if the name ends in ``.json``/``.jsonl``/``.ndjson`` or the first non-blank
    character is ``{`` or ``[``, else ``"csv"``."""
    if named_json(key):
        return "json"
    stripped = head.removeprefix(BOM).lstrip()
    return "json" if stripped[:1] in (b"{", b"[") else "csv"


def header_fields(head: bytes) -> list[str]:
    """The cells of the first CSV line of ``head`` (decoded leniently, BOM removed; any line
    ending, an old Mac's bare CR included). Empty if it cannot be read as CSV."""
    text = head.removeprefix(BOM).decode("utf-8", errors="replace")
    try:
        first = next(csv.reader(io.StringIO(text, newline="")), [])
    except csv.Error:
        return []
    return [cell.strip() for cell in first]


def match_header(spec: DatasetSpec, header: list[str]) -> tuple[dict[str, int], list[str]]:
    """Map each field of ``spec`` to the index of its column; also list missing headers.

    The first column whose normalized name is a spelling of a field wins.
    """
    found: dict[str, int] = {}
    names = [normalize(h) for h in header]
    for f in spec.fields:
        spellings = f.spellings
        for i, n in enumerate(names):
            if n in spellings:
                found[f.name] = i
                break
    missing = [f.name for f in spec.fields if f.header and f.name not in found]
    return found, missing


def _detect_csv(specs: Mapping[str, DatasetSpec], head: bytes) -> str | None:
    header = header_fields(head)
    best: tuple[int, str] | None = None
    for spec in specs.values():
        if "csv" not in spec.formats:
            continue
        found, missing = match_header(spec, header)
        if not missing and (best is None or len(found) > best[0]):
            best = (len(found), spec.name)
    return best[1] if best else None


def _json_keys(head: bytes) -> set[str]:
    text = head.removeprefix(BOM).decode("utf-8", errors="replace")
    return {normalize(k) for k in _JSON_KEY.findall(text)}


def _detect_json(specs: Mapping[str, DatasetSpec], head: bytes) -> str | None:
    keys = _json_keys(head)
    best: tuple[int, str] | None = None
    for spec in specs.values():
        if "json" not in spec.formats:
            continue
        markers = set(spec.json_containers) | set(spec.json_markers)
        score = len(keys & markers)
        if score and (best is None or score > best[0]):
            best = (score, spec.name)
    if best:
        return best[1]
    # No marker key: the dataset whose field names the keys match best (at least two).
    scores = []
    for spec in specs.values():
        if "json" in spec.formats:
            names = {p.split(".")[-1] for f in spec.fields for p in f.spellings}
            scores.append((len(keys & names), spec.name))
    score, name = max(scores)
    return name if score >= 2 else None


def folder_dataset(specs: Mapping[str, DatasetSpec], folder: str | None) -> str | None:
    """The dataset an inbox folder names, in any common spelling: ``order_items``,
    ``order-items``, ``OrderItems`` and ``ORDER ITEMS`` all name ``order_items`` (seed 004
    writes ``order-items/`` and ``Products/``).

    >>> folder_dataset({"order_items": None, "products": None}, "Order-Items")  # doctest: +SKIP
    'order_items'
    """
    if not folder:
        return None
    wanted = _fold(folder)
    for name in specs:
        if _fold(name) == wanted:
            return name
    return None


def _fold(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def detect(specs: Mapping[str, DatasetSpec], key: str, head: bytes) -> str | None:
    """The dataset of the object at ``key`` whose first bytes are ``head``, or None.

    Never raises: what cannot be told (binary bytes, no matching header) is None."""
    named = folder_dataset(specs, inbox_dataset(key))
    if named is not None:
        return named
    if is_gzip(head):
        head = inflate_head(head)
    if not head.removeprefix(BOM).strip() or binary_kind(head) is not None:
        return None
    try:
        if sniff_format(head, key) == "json":
            return _detect_json(specs, head)
        return _detect_csv(specs, head)
    except (csv.Error, ValueError, RecursionError):  # pragma: no cover - belt and braces
        return None


def undetected(key: str, head: bytes) -> FileLevelError:
    """Why the dataset of ``key`` cannot be told from ``head``, as the error to fail it with:
    not text (``structure.not_text``), JSON that does not parse (``structure.bad_json``, when
    ``head`` holds the whole file), or no dataset matches (``structure.unknown_dataset``)."""
    inflated = inflate_head(head) if is_gzip(head) else head
    kind = binary_kind(inflated)
    if kind is not None:
        return FileLevelError(
            key,
            f"it is not text: {kind}",
            rule="structure.not_text",
            hint="upload CSV or JSON saved as UTF-8 text (gzip is fine; not ZIP, Excel or UTF-16)",
        )
    whole = len(head) < _WHOLE and len(inflated) < _WHOLE
    if whole and sniff_format(inflated, key) == "json":
        text = inflated.removeprefix(BOM).decode("utf-8", errors="replace")
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            if not _json_lines(text):
                return FileLevelError(
                    key,
                    f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
                    rule="structure.bad_json",
                    hint="the file may be truncated or not JSON; fix it and upload it again",
                )
        except RecursionError:
            pass  # too deep: a dataset folder gets it to the decoder, which says so
    return UnknownDatasetError(key)


_WHOLE = 1 << 16
"""A head shorter than this is the whole file (the pipeline peeks at 64 KiB)."""


def _json_lines(text: str) -> bool:
    """Whether ``text`` starts like JSON Lines: two lines, the first one parses."""
    lines = [line for line in text.split("\n") if line.strip()]
    if len(lines) < 2:
        return False
    try:
        json.loads(lines[0])
    except (ValueError, RecursionError):
        return False
    return True


__all__ = [
    "detect",
    "folder_dataset",
    "header_fields",
    "match_header",
    "sniff_format",
    "undetected",
]
