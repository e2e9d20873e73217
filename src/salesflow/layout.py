"""Object keys: where each file goes, and the check that no key can leave the bucket."""

from __future__ import annotations

import posixpath
from datetime import datetime

from salesflow.errors import InvalidKeyError

DATASETS = ("online_retail", "order_items", "orders", "orders_json", "products", "sale_events")
"""The datasets salesflow knows, by name (``datasets.SPECS`` has a spec for each: a test holds
them equal); here so a command's help can list them without importing the specs."""

INBOX = "inbox/"
PROCESSED = "processed/"
FAILED = "failed/"
LAKE = "lake/"
WORK = "work/"
"""Per file version: spooled dead letters and alerts, read by publish after the commit."""
RUNS = "work/runs/"
"""Per Step Functions execution: the files of a big stage and each file's step results (AWS)."""
REDRIVE = "redrive/"
"""Files that ``dlq redrive`` builds, processed like uploads but never from the inbox."""
REPORTS = "reports/validation/"
KEYS = "reports/keys/"
"""Per committed file version: the key manifest (``_key``, ``_source``, ``_arrived``,
``_seq`` of every valid record it staged), for the audit's latest-arrival check."""
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


def report_key(key: str, dataset: str, seq: int) -> str:
    """Where the JSON validation report of a file goes."""
    return f"{REPORTS}{dataset}/{seq:012d}-{posixpath.basename(key)}.report.json"


def lake_key(dataset: str, year: int, month: int, seq: int, part: int = 0) -> str:
    """One Parquet fragment of the curated lake, Hive-partitioned: file ``seq``, chunk ``part``."""
    return f"{LAKE}{dataset}/year={year:04d}/month={month:02d}/part-{seq:012d}-{part:05d}.parquet"


TEMPORARY_SUFFIXES = (".part", ".tmp", "~", ".crdownload", ".partial", ".swp")


def is_temporary(key: str) -> bool:
    """Whether ``key`` names a file still being written or hidden: a dotfile (or a file in a
    dot folder) or a name with a temporary suffix. The inbox ignores these.

    >>> is_temporary("inbox/orders.csv.part"), is_temporary("inbox/.orders.csv")
    (True, True)
    """
    parts = key.split("/")
    return any(p.startswith(".") for p in parts) or parts[-1].endswith(TEMPORARY_SUFFIXES)


def source_name(key: str, dataset: str | None = None) -> str:
    """A file's name for identity: its path below ``inbox/<folder>/`` when the first folder
    names its dataset (any spelling), else below ``inbox/``; other keys keep their path.

    >>> source_name("inbox/online_retail/2010/dec.csv", "online_retail")
    '2010/dec.csv'
    >>> source_name("inbox/dec.csv", "online_retail")
    'dec.csv'
    """
    if not key.startswith(INBOX):
        return key
    rest = key[len(INBOX) :]
    head, sep, tail = rest.partition("/")
    if sep and tail and (dataset is None or _folder(head) == _folder(dataset)):
        return tail
    return rest


def _folder(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def archive_key_for(key: str, dataset: str, seq: int, *, ok: bool, when: datetime) -> str:
    """``processed/`` or ``failed/`` ``year=YYYY/month=MM/<dataset>/<dir>/<seq>-<basename>``:
    unique per file version (``seq``), so an archived file is never overwritten.

    >>> archive_key_for("inbox/orders_json/v1/orders.json", "orders_json", 42, ok=True,
    ...                 when=datetime(2026, 11, 30))
    'processed/year=2026/month=11/orders_json/v1/000000000042-orders.json'
    """
    root = PROCESSED if ok else FAILED
    folder, _, base = source_name(key, dataset).rpartition("/")
    folder = f"{folder}/" if folder else ""
    return f"{root}year={when:%Y}/month={when:%m}/{dataset}/{folder}{seq:012d}-{base}"


def staging_key(path: str) -> str:
    """Where fragment ``path`` lives until its commit is published: beside it, under a name
    that directory readers skip (a leading ``_`` for Spark, Hive, Athena and Arrow datasets,
    no ``.parquet`` suffix for ``**/*.parquet`` globs), so publishing is a rename within
    one folder.

    >>> staging_key("lake/orders/year=2024/month=01/part-000000000007-00000.parquet")
    'lake/orders/year=2024/month=01/_part-000000000007-00000.parquet.staged'
    """
    folder, _, name = path.rpartition("/")
    return f"{folder}/_{name}.staged"


def keys_prefix(dataset: str, seq: int | None = None) -> str:
    """Where the key manifests of ``dataset`` (of version ``seq`` only, if given) are kept."""
    return f"{KEYS}{dataset}/" + ("" if seq is None else f"{seq:012d}-")


def keys_key(dataset: str, seq: int, part: int) -> str:
    """Part ``part`` of the key manifest of version ``seq``:
    ``reports/keys/<dataset>/<seq:012d>-<part:05d>.parquet``."""
    return f"{keys_prefix(dataset, seq)}{part:05d}.parquet"


def keys_seq(key: str) -> int | None:
    """The version ``seq`` of a key manifest's object key, or None if it is not one."""
    name = key.rpartition("/")[2]
    head, _, _ = name.partition("-")
    return int(head) if head.isdigit() else None


def work_key(seq: int, name: str) -> str:
    """A spool object of file version ``seq``: ``work/<seq>/<name>``."""
    return f"{WORK}{seq:012d}/{name}"
