"""Decide whether a file is text we can read, and hand Polars UTF-8.

Real exports are UTF-8 (often with a BOM) or, from older tools, Latin-1 (seed 000's Online
Retail data). A file that is not valid UTF-8 is transcoded from Latin-1 to a temporary
UTF-8 copy, with a warning in the report; NUL bytes mean the file is not text at all.
"""

from __future__ import annotations

import codecs
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from salesflow.errors import FileLevelError

BOM = b"\xef\xbb\xbf"
BLOCK = 1 << 22
HEAD = 1 << 16


@dataclass
class TextFile:
    """A readable UTF-8 file: where it is, its first bytes, and how it was decoded."""

    path: Path
    head: bytes
    warnings: list[str] = field(default_factory=list)

    @property
    def format(self) -> str:
        """``json`` if the first non-blank character is ``{`` or ``[`` (or the whole small
        file is one JSON value, such as ``42``), else ``csv``."""
        body = self.head.removeprefix(BOM).strip()
        if body[:1] in (b"{", b"["):
            return "json"
        if len(self.head) < HEAD:
            try:
                json.loads(body)
            except ValueError:
                return "csv"
            return "json"
        return "csv"


def _first_bad_utf8(path: Path, source: str) -> int | None:
    """Offset of the first byte that is not UTF-8 (None if all is), raising on NUL bytes."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with path.open("rb") as fh:
        while block := fh.read(BLOCK):
            nul = block.find(b"\x00")
            if nul >= 0:
                raise FileLevelError(
                    source,
                    f"it is not text: NUL byte at offset {offset + nul}",
                    rule="structure.not_text",
                    hint="upload CSV or JSON saved as UTF-8 (not UTF-16, Excel or gzip)",
                )
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                return offset + exc.start
            offset += len(block)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            return offset + exc.start
    return None


@contextmanager
def open_text(path: Path, source: str) -> Iterator[TextFile]:
    """A UTF-8 view of ``path``: the file itself, or a Latin-1 -> UTF-8 temporary copy.

    Raises ``FileLevelError`` for an empty file (``structure.empty``) or one that is not
    text (``structure.not_text``).
    """
    with path.open("rb") as fh:
        head = fh.read(HEAD)
    if not head.removeprefix(BOM).strip():
        raise FileLevelError(
            source,
            "the file is empty",
            rule="structure.empty",
            hint="upload the file again; a CSV needs at least its header line",
        )
    bad = _first_bad_utf8(path, source)
    if bad is None:
        yield TextFile(path, head)
        return
    fd, name = tempfile.mkstemp(prefix="salesflow-", suffix=".utf8")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out, path.open("rb") as fh:
            while block := fh.read(BLOCK):
                out.write(block.decode("latin-1").encode("utf-8"))
        with tmp.open("rb") as fh:
            head = fh.read(HEAD)
        note = f"decoded as Latin-1: not valid UTF-8 (first bad byte at offset {bad})"
        yield TextFile(tmp, head, [note])
    finally:
        tmp.unlink(missing_ok=True)
