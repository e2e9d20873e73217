"""Decide whether a file is text we can read, and hand Polars UTF-8 with LF/CRLF line ends.

Real exports are UTF-8 (often with a BOM) or, from older tools, Latin-1 (the Online Retail
data); some are gzip-compressed (``orders.csv.gz``), some come from an old Mac, whose records
end with a bare CR. Polars reads only UTF-8 ended by LF or CRLF, so a file that is
compressed, not valid UTF-8, or holds a bare CR is rewritten once into a *scratch copy*, with
a note in the report's warnings: gzip inflated, Latin-1 transcoded, bare CRs read as line
breaks (a CR inside a quoted field stays inside it, as a line break). NUL bytes, a ZIP or
another binary format mean the file is not text at all.

gzip is accepted rather than refused because exports and S3 batch jobs write ``.csv.gz``
routinely and inflating is a few lines of the standard library. It is bounded: a stream that
inflates past ``MAX_INFLATED`` bytes or ``MAX_RATIO`` times its size (a zip bomb) fails the
file with ``structure.bad_gzip``, having written at most that many bytes.

Scratch copies go to the caller's scratch folder (the data dir's ``scratch/`` for the local
pipeline; the system temp dir only where there is no data dir, as in ``validate`` and on
AWS). A copy is removed when its file is done; a copy a killed process left behind carries
its pid in the name, and :func:`clean_scratch` removes it at the next start.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import re
import secrets
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from salesflow.datasets.content import binary_kind, is_gzip, named_json
from salesflow.errors import FileLevelError

BOM = b"\xef\xbb\xbf"
BLOCK = 1 << 22
HEAD = 1 << 16
MAX_INFLATED = 4 << 30
"""A gzip file may inflate to at most 4 GiB..."""
MAX_RATIO = 200
"""...and at most 200 times its own size (CSV compresses 5-20x; a bomb does 1000x)."""
_INFLATE_FLOOR = 64 << 20
"""Small files may always inflate to 64 MiB, whatever the ratio."""
_BARE_CR = re.compile(rb"\r(?!\n)")
_SCRATCH_NAME = re.compile(r"^salesflow-(\d+)-[0-9a-f]+\.\w+$")


@dataclass
class TextFile:
    """A readable UTF-8 file: where it is, its first bytes, and how it was decoded.

    ``name`` is the file's key or name: ``.json``/``.jsonl``/``.ndjson`` say JSON whatever
    the content, so a broken JSON file is reported as broken JSON, not as a bad CSV header.
    """

    path: Path
    head: bytes
    warnings: list[str] = field(default_factory=list)
    name: str = ""

    @property
    def format(self) -> str:
        """``json`` if the name says so, or the first non-blank character is ``{`` or ``[``
        (or the whole small file is one JSON value, such as ``42``), else ``csv``."""
        if named_json(self.name):
            return "json"
        body = self.head.removeprefix(BOM).strip()
        if body[:1] in (b"{", b"["):
            return "json"
        if len(self.head) < HEAD:
            try:
                json.loads(body)
            except (ValueError, RecursionError):
                return "csv"
            return "json"
        return "csv"


@dataclass
class _Scan:
    """What one pass over the bytes found: the first byte that is not UTF-8, a bare CR."""

    bad_utf8: int | None = None
    bare_cr: bool = False

    @property
    def clean(self) -> bool:
        return self.bad_utf8 is None and not self.bare_cr


def _not_text(source: str, what: str) -> FileLevelError:
    return FileLevelError(
        source,
        f"it is not text: {what}",
        rule="structure.not_text",
        hint="upload CSV or JSON saved as UTF-8 text (gzip is fine; not ZIP, Excel or UTF-16)",
    )


def _scan(path: Path, source: str) -> _Scan:
    """One pass: where UTF-8 breaks, whether a bare CR occurs; raises on NUL bytes."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    scan = _Scan()
    offset = 0
    pending_cr = False
    with path.open("rb") as fh:
        while block := fh.read(BLOCK):
            nul = block.find(b"\x00")
            if nul >= 0:
                raise _not_text(source, f"NUL byte at offset {offset + nul}")
            if not scan.bare_cr:
                # a CR ending the block is judged by the next block's first byte
                found = _BARE_CR.search(block)
                scan.bare_cr = (pending_cr and not block.startswith(b"\n")) or (
                    found is not None and found.start() < len(block) - 1
                )
                pending_cr = block.endswith(b"\r")
            if scan.bad_utf8 is None:
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as exc:
                    scan.bad_utf8 = offset + exc.start
            offset += len(block)
        scan.bare_cr = scan.bare_cr or pending_cr
        if scan.bad_utf8 is None:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError as exc:
                scan.bad_utf8 = offset + exc.start
    return scan


def scratch_path(scratch: Path | None, suffix: str) -> Path:
    """A fresh scratch file name, carrying this process's id (see :func:`clean_scratch`)."""
    folder = scratch if scratch is not None else Path(tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"salesflow-{os.getpid()}-{secrets.token_hex(6)}.{suffix}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def clean_scratch(scratch: Path | None) -> list[Path]:
    """Remove the scratch copies of processes that are gone (killed mid-file); return them.

    Copies of live processes (another ``salesflow`` on the same folder) are left alone."""
    folder = scratch if scratch is not None else Path(tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _SCRATCH_NAME.match(entry.name)
        if match and int(match.group(1)) != os.getpid() and not _alive(int(match.group(1))):
            with contextlib.suppress(OSError):
                entry.unlink()
                removed.append(entry)
    return removed


def _inflate(path: Path, out: Path, source: str) -> None:
    """Decompress the gzip file at ``path`` into ``out``, within the bounds above.

    Concatenated members (``cat a.gz b.gz``) are read one after the other, as gzip does."""
    size = path.stat().st_size
    limit = min(MAX_INFLATED, max(_INFLATE_FLOOR, size * MAX_RATIO))
    written = 0
    inflater = zlib.decompressobj(wbits=31)
    try:
        with path.open("rb") as fh, out.open("wb") as dst:
            while block := fh.read(1 << 20):
                data = block
                while data:
                    if inflater.eof:
                        if not data.strip(b"\x00"):
                            break  # zero padding after the last member
                        inflater = zlib.decompressobj(wbits=31)
                    # max_length bounds what one call may produce (never 0: that means all)
                    chunk = inflater.decompress(data, limit + 1 - written)
                    written += len(chunk)
                    if written > limit:
                        raise FileLevelError(
                            source,
                            f"the gzip data inflates past {limit:,} bytes ({size:,} compressed):"
                            " refused as a possible zip bomb",
                            rule="structure.bad_gzip",
                            hint="split the file, or upload it uncompressed",
                        )
                    dst.write(chunk)
                    data = inflater.unconsumed_tail or (
                        inflater.unused_data if inflater.eof else b""
                    )
            if not inflater.eof:
                raise zlib.error("the stream ends before its end marker")
    except zlib.error as exc:
        raise FileLevelError(
            source,
            f"the gzip data is corrupt or cut short: {exc}",
            rule="structure.bad_gzip",
            hint="the upload may be truncated; compress the file again and re-upload it",
        ) from exc


def _rewrite(path: Path, out: Path, scan: _Scan) -> None:
    """Copy ``path`` to ``out`` as UTF-8 (from Latin-1 if it is not UTF-8), with every bare
    CR turned into LF. CR is one byte in both encodings, so block edges are safe once a CR
    at the end of a block is held back until the next block shows what follows it."""
    latin1 = scan.bad_utf8 is not None
    carry = b""
    with path.open("rb") as fh, out.open("wb") as dst:
        while block := fh.read(BLOCK):
            block = carry + block
            carry = b""
            if block.endswith(b"\r"):
                block, carry = block[:-1], b"\r"
            if scan.bare_cr:
                block = _BARE_CR.sub(b"\n", block)
            dst.write(block.decode("latin-1").encode("utf-8") if latin1 else block)
        if carry:
            dst.write(b"\n")


def _notes(scan: _Scan) -> list[str]:
    notes = []
    if scan.bad_utf8 is not None:
        notes.append(
            f"decoded as Latin-1: not valid UTF-8 (first bad byte at offset {scan.bad_utf8})"
        )
    if scan.bare_cr:
        notes.append("bare CR line endings (old Mac) read as line breaks")
    return notes


def _head(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(HEAD)


@contextmanager
def open_text(path: Path, source: str, *, scratch: Path | None = None) -> Iterator[TextFile]:
    """A UTF-8 view of ``path``: the file itself, or a scratch copy (see the module doc).

    ``source`` names the file in errors (its key); ``scratch`` is the folder for copies.
    Raises ``FileLevelError`` for an empty file (``structure.empty``), one that is not text
    (``structure.not_text``) or a broken or oversized gzip stream (``structure.bad_gzip``).
    """
    made: list[Path] = []

    def copy(suffix: str) -> Path:
        if not made:
            clean_scratch(scratch)
        made.append(scratch_path(scratch, suffix))
        return made[-1]

    try:
        head = _head(path)
        warnings: list[str] = []
        if is_gzip(head):
            inflated = copy("inflated")
            _inflate(path, inflated, source)
            path, head = inflated, _head(inflated)
            warnings.append("gzip-compressed: inflated before reading")
        if not head.removeprefix(BOM).strip():
            raise FileLevelError(
                source,
                "the file is empty",
                rule="structure.empty",
                hint="upload the file again; a CSV needs at least its header line",
            )
        kind = binary_kind(head)
        if kind is not None:
            raise _not_text(source, kind)
        scan = _scan(path, source)
        if not scan.clean:
            rewritten = copy("utf8")
            _rewrite(path, rewritten, scan)
            path, head = rewritten, _head(rewritten)
            warnings += _notes(scan)
        yield TextFile(path, head, warnings, name=source)
    finally:
        for made_path in made:
            made_path.unlink(missing_ok=True)
