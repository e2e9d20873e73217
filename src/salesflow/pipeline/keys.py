"""Object keys: where each file goes, and the check that no key can leave the bucket."""

from __future__ import annotations

import posixpath
from datetime import datetime

from salesflow.errors import InvalidKeyError

INBOX = "inbox/"
PROCESSED = "processed/"
FAILED = "failed/"
LAKE = "lake/"
REPORTS = "reports/validation/"
BATCH_MARKER = "reports/batches/running.txt"
"""Present while a batch runs, so a batch a crash interrupted is finished on restart."""


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative object key, else raise ``InvalidKeyError``.

    >>> check_key("inbox/orders_json/a.json")
    'inbox/orders_json/a.json'
    """
    if not key:
        raise InvalidKeyError(key, "it is empty")
    if "\x00" in key:
        raise InvalidKeyError(key, "it contains a NUL byte")
    if "\\" in key:
        raise InvalidKeyError(key, "it contains a backslash")
    if key.startswith("/") or (len(key) > 1 and key[1] == ":"):
        raise InvalidKeyError(key, "it is absolute")
    parts = key.split("/")
    if any(p in ("..", ".") for p in parts):
        raise InvalidKeyError(key, "it contains '.' or '..' segments")
    if posixpath.normpath(key).startswith(".."):
        raise InvalidKeyError(key, "it leaves the bucket")
    return key


def inbox_dataset(key: str) -> str | None:
    """The dataset named by an ``inbox/<dataset>/...`` key, if any."""
    if key.startswith(INBOX):
        rest = key[len(INBOX) :].split("/")
        if len(rest) >= 2 and rest[0]:
            return rest[0]
    return None


def _relative(key: str) -> str:
    """The part of an inbox key below ``inbox/<dataset>/`` (or below ``inbox/``)."""
    if key.startswith(INBOX):
        rest = key[len(INBOX) :]
        head, _, tail = rest.partition("/")
        return tail or head
    return posixpath.basename(key)


def archive_key(key: str, dataset: str, *, ok: bool, when: datetime) -> str:
    """``processed/year=YYYY/month=MM/<dataset>/<name>`` or ``failed/...`` (seeds 000, 004)."""
    root = PROCESSED if ok else FAILED
    return f"{root}year={when:%Y}/month={when:%m}/{dataset}/{_relative(key)}"


def report_key(key: str, dataset: str, seq: int) -> str:
    """Where the JSON validation report of a file goes."""
    return f"{REPORTS}{dataset}/{seq:012d}-{posixpath.basename(key)}.report.json"


def lake_key(dataset: str, year: int, month: int, seq: int, part: int = 0) -> str:
    """One Parquet fragment of the curated lake, Hive-partitioned: file ``seq``, chunk ``part``."""
    return f"{LAKE}{dataset}/year={year:04d}/month={month:02d}/part-{seq:012d}-{part:05d}.parquet"
