"""What kind of bytes a file holds, from its first bytes: text, gzip, or another binary format.

Detection and decoding both peek here, so a ``.csv.gz``, an Excel workbook or a PNG dropped
into the inbox is named for what it is ("a ZIP archive (an .xlsx workbook?)") instead of
being read as a CSV with a strange header, and nothing that peeks at it can raise.

>>> binary_kind(b"PK\\x03\\x04...")
'a ZIP archive (an Excel .xlsx workbook?)'
>>> binary_kind(b"order_id,sku\\n1,A\\n") is None
True
"""

from __future__ import annotations

import zlib

GZIP_MAGIC = b"\x1f\x8b"

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx workbook?)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Excel .xls workbook"),
    (b"BZh", "bzip2-compressed"),
    (b"\xfd7zXZ\x00", "xz-compressed"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"PAR1", "a Parquet file"),
    (b"%PDF", "a PDF document"),
    (b"\xff\xfe", "UTF-16 text"),
    (b"\xfe\xff", "UTF-16 text"),
)
_JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")


def is_gzip(head: bytes) -> bool:
    """Whether ``head`` starts a gzip stream (``.gz``: decompressed on the fly)."""
    return head.startswith(GZIP_MAGIC)


def binary_kind(head: bytes) -> str | None:
    """What a non-text file is (``"a PDF document"``), or None if it may be text.

    gzip is not in the list: salesflow reads it (see ``salesflow.validation.text``).
    """
    for magic, kind in _SIGNATURES:
        if head.startswith(magic):
            return kind
    if b"\x00" in head:
        return "binary (it holds NUL bytes)"
    return None


def inflate_head(head: bytes, limit: int = 1 << 16) -> bytes:
    """The first (at most ``limit``) decompressed bytes of the gzip stream starting ``head``;
    whatever could be decompressed if the stream is cut short or corrupt (never raises)."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        return inflater.decompress(head, limit)
    except zlib.error:
        return b""


def named_json(name: str) -> bool:
    """Whether a file name says JSON (``.json``, ``.jsonl``, ``.ndjson``, also ``.gz``)."""
    lower = name.lower().removesuffix(".gz")
    return lower.endswith(_JSON_SUFFIXES)


__all__ = ["GZIP_MAGIC", "binary_kind", "inflate_head", "is_gzip", "named_json"]
