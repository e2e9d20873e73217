"""``salesflow audit``: check every promise the pipeline makes, by content, not only counts.

- every file version is final and every committed one is settled (its publish finished);
- conservation per file: ``rows_in == valid + rejected``;
- every SUCCESS or DUPLICATE version's archived object exists under ``processed/`` and holds
  exactly the bytes that were hashed (its sha256 is recomputed); every FAILED version is
  under ``failed/``; no version's object is left in the inbox;
- every rejected record of a file has its own letter (one per record, with the file's
  ``seq``);
- the lake holds rows of committed versions only, one per key, and each key's row is the one
  of the latest arrival that holds it (for Online Retail, among the latest version of each
  source): the stored ``(_key, _arrived, _seq)`` are compared with what the key manifests
  of the committed versions (``reports/keys/``, written at load) say should be stored, so a
  key held by an older version's row, a lost key and a stray row are all found;
- every aggregate equals a recomputation from the stored records.

Each check is named; ``salesflow audit`` exits 1 when any fails and lists what it found.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable, Collection
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from salesflow import layout
from salesflow.kpis import CATEGORY_KPIS, ORDER_KPIS, TOTALS
from salesflow.kpis.aggregates import TOTALS_BY, category_kpis, order_kpis, totals, totals_columns
from salesflow.models import FileRecord, FileStatus, LetterStatus
from salesflow.ops.dlq import Filters, stream
from salesflow.pipeline.lake import micros
from salesflow.ports import AggregateSpec, Backend

EXAMPLES = 3
"""Keys named per violation of the latest-arrival check."""
ROWS_AT_A_TIME = 2_000_000
"""Stored keys checked per pass (``Settings.audit_rows``)."""
STORED = {"_key": pl.String(), "_arrived": pl.Int64(), "_seq": pl.Int64()}
"""The lake columns the key checks read."""


@dataclass
class AuditReport:
    checks: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "checks": self.checks, "violations": self.violations}

    def check(self, name: str, ok: bool, message: str) -> None:
        self.checks[name] = self.checks.get(name, 0) + 1
        if not ok:
            self.violations.append(f"{name}: {message}")


def audit(backend: Backend, *, rows_at_a_time: int = ROWS_AT_A_TIME) -> AuditReport:
    """Every invariant, checked against what the stores hold now. The lake's keys are
    checked ``rows_at_a_time`` at a time (split by hash) and the aggregates recomputed
    month by month, so memory does not grow with the store: read whole, a store of 28M
    records took 6.2 GB."""
    report = AuditReport()
    files = backend.tables.list_files()
    for record in files:
        _check_file(backend, report, record)
    _check_letters(backend, report, files)
    try:
        _check_lake(backend, report, files, rows_at_a_time)
        _check_aggregates(backend, report, {r.dataset for r in files}, rows_at_a_time)
    except FileNotFoundError as exc:  # a visible fragment's file was deleted behind our back
        report.check("lake_files", False, f"{exc}; restore it from a backup")
    return report


def _name(record: FileRecord) -> str:
    return f"{record.key} (seq {record.seq})"


def _check_file(backend: Backend, report: AuditReport, record: FileRecord) -> None:
    name = _name(record)
    if record.status == FileStatus.IN_PROGRESS:
        report.check("finished", False, f"{name} is still IN_PROGRESS (crashed or running)")
        return
    if record.status == FileStatus.SUCCESS:
        report.check(
            "settled",
            record.settled,
            f"{name} is committed but its publish did not finish: {record.error or 'no error'}",
        )
        report.check(
            "conservation",
            record.rows_in == record.valid + record.rejected,
            f"{name}: rows_in {record.rows_in} != valid {record.valid} "
            f"+ rejected {record.rejected}",
        )
    if record.status == FileStatus.FAILED:
        report.check("failed_has_error", bool(record.error), f"{name}: FAILED with no error")
    if record.status == FileStatus.CHANGED:
        return  # nothing of it was kept; its new content is a version of its own
    _check_archive(backend, report, record)


def _check_archive(backend: Backend, report: AuditReport, record: FileRecord) -> None:
    """The archived object exists where lineage says, under the right root, and holds the
    very bytes that were processed."""
    name = _name(record)
    want = layout.FAILED if record.status == FileStatus.FAILED else layout.PROCESSED
    archive = record.archive_key
    placed = bool(archive) and archive is not None and archive.startswith(want)
    report.check(
        "archived", placed, f"{name}: {record.status.value} but archive key is {archive!r}"
    )
    if not placed or archive is None:
        return
    info = backend.store.stat(archive)
    report.check("archived", info is not None, f"{name}: {archive} is missing")
    if info is None:
        return
    if record.sha256 not in ("missing", "unreadable"):
        try:
            with backend.store.fetch(archive) as path:
                digest = _sha256(path)
        except Exception as exc:  # noqa: BLE001 - a link or an unreadable archive
            digest = f"unreadable ({type(exc).__name__})"
        report.check(
            "archive_content",
            digest == record.sha256,
            f"{name}: {archive} holds other bytes than were processed "
            f"(sha256 {digest[:12]}..., lineage {record.sha256[:12]}...)",
        )
    current = backend.store.stat(record.key)
    report.check(
        "left_inbox",
        current is None or current.version != record.version,
        f"{name}: still in the inbox though archived at {archive}",
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _check_letters(backend: Backend, report: AuditReport, files: list[FileRecord]) -> None:
    """One letter per rejected record of each uploaded version; closed letters say why."""
    # One pass over the store, a page at a time: the queue may hold millions of letters.
    per_seq: Counter[int] = Counter()
    unexplained: list[str] = []
    for letter in stream(backend.letters, Filters(status=None)):
        per_seq[letter.seq] += 1
        if letter.status != LetterStatus.NEW and not any(
            e.event == letter.status.value.lower() for e in letter.history
        ):
            unexplained.append(letter.id)
    report.check(
        "letter_reason",
        not unexplained,
        f"{len(unexplained)} closed letters with no event saying why, e.g. "
        f"{', '.join(unexplained[:5])}",
    )
    for record in files:
        if record.status != FileStatus.SUCCESS or record.origin is not None:
            continue
        report.check(
            "dead_letters",
            per_seq[record.seq] == record.rejected,
            f"{_name(record)}: {record.rejected} rejected records but "
            f"{per_seq[record.seq]} letters",
        )


def _check_lake(
    backend: Backend, report: AuditReport, files: list[FileRecord], rows_at_a_time: int
) -> None:
    """The lake holds rows of committed versions only, no more of each than it kept
    (``valid - superseded``, plus the records redrives stored in its name; later versions may
    have replaced some), one row per key, and each key's row from the latest arrival that
    holds it."""
    committed: dict[str, dict[int, FileRecord]] = {}
    for record in files:
        if record.status == FileStatus.SUCCESS:
            committed.setdefault(record.dataset, {})[record.seq] = record
    for dataset in sorted(committed):
        mine = committed[dataset]
        with ExitStack() as stack:
            manifests = _manifests(backend, report, dataset, mine, stack)
            redriven = _redriven_into(manifests, mine) if manifests is not None else Counter()
            held = backend.lake.rows_by_seq(dataset)
            strays = sorted(set(held) - set(mine))
            report.check(
                "lake_rows",
                not strays,
                f"{dataset}: rows of versions that did not commit (seq {strays[:5]})",
            )
            for seq, rows in sorted(held.items()):
                found = mine.get(seq)
                if found is None:
                    continue
                kept = found.valid - found.superseded + redriven[seq]
                report.check(
                    "lake_rows",
                    rows <= kept,
                    f"{_name(found)}: the lake holds {rows} of its rows, it kept {kept}",
                )
            paths = stack.enter_context(backend.lake.local_paths(dataset))
            passes = max(1, -(-sum(held.values()) // rows_at_a_time))
            repeated = 0
            wrong: list[pl.DataFrame] = []
            for part in _parts(passes):
                stored = _stored(paths, part)
                repeated += stored.height - stored.get_column("_key").n_unique()
                if manifests is not None:
                    wrong.append(_latest_wrong(dataset, mine, _scan(manifests, part), stored))
                del stored
            report.check(
                "one_version", not repeated, f"{dataset}: {repeated} keys held by more than one row"
            )
            if manifests is not None:
                _check_latest(report, dataset, mine, pl.concat(wrong).sort("_key"))


def _parts(passes: int) -> list[pl.Expr]:
    """Filters that split keys into ``passes`` disjoint sets, by hash (one pass: all)."""
    if passes == 1:
        return [pl.lit(True)]
    bucket = pl.col("_key").hash(seed=0xA0D17) % passes
    return [bucket == n for n in range(passes)]


def _stored(paths: Collection[Path], part: pl.Expr) -> pl.DataFrame:
    """``(_key, _arrived, _seq)`` of the stored rows whose key is in ``part``."""
    if not paths:
        return pl.DataFrame(schema=STORED)
    scan = pl.scan_parquet(list(paths), schema=STORED, extra_columns="ignore")
    return scan.filter(part).collect(engine="streaming")


def _manifests(
    backend: Backend,
    report: AuditReport,
    dataset: str,
    mine: dict[int, FileRecord],
    stack: ExitStack,
) -> dict[int, list[Path]] | None:
    """The local files of the key manifests of ``dataset``'s committed versions, by version
    (``_key``, ``_source``, ``_arrived``, ``_seq`` of every valid record each staged), or
    None when one is missing
    (a data dir written before manifests existed, or one deleted): then the latest-arrival
    check cannot be made, and that is a violation of its own."""
    parts: dict[int, list[str]] = defaultdict(list)
    for info in backend.store.list(layout.keys_prefix(dataset)):
        seq = layout.keys_seq(info.key)
        if seq in mine:
            parts[seq].append(info.key)
    missing = sorted(s for s, r in mine.items() if r.valid and s not in parts)
    report.check(
        "key_manifest",
        not missing,
        f"{dataset}: committed versions with no key manifest under {layout.KEYS} (seq "
        f"{missing[:5]}), so which arrival should hold each key cannot be checked",
    )
    if missing:
        return None
    return {
        s: [stack.enter_context(backend.store.fetch(k)) for k in keys] for s, keys in parts.items()
    }


MANIFEST = {"_key": pl.String, "_source": pl.String, "_arrived": pl.Int64, "_seq": pl.Int64}


def _scan(
    manifests: dict[int, list[Path]],
    part: pl.Expr | None = None,
    seqs: Collection[int] | None = None,
) -> pl.LazyFrame:
    """The rows of the manifests (of the versions ``seqs`` only, and the keys in ``part``
    only, if given)."""
    paths = [p for s, ps in sorted(manifests.items()) if seqs is None or s in seqs for p in ps]
    if not paths:
        return pl.LazyFrame(schema=MANIFEST)
    rows = pl.scan_parquet(paths, schema=MANIFEST)
    return rows if part is None else rows.filter(part)


def _redriven_into(manifests: dict[int, list[Path]], mine: dict[int, FileRecord]) -> Counter[int]:
    """Per version, how many records redrives staged in its name (a redriven record takes
    the version of the record it was rejected as)."""
    redrives = {s for s, r in mine.items() if r.origin}
    if not redrives:
        return Counter()
    counts = (
        _scan(manifests, seqs=redrives)
        .filter(pl.col("_seq").is_in(list(redrives)).not_())
        .group_by("_seq")
        .len()
        .collect()
    )
    return Counter(dict(counts.iter_rows()))


def _latest_wrong(
    dataset: str, mine: dict[int, FileRecord], rows: pl.LazyFrame, stored: pl.DataFrame
) -> pl.DataFrame:
    """The keys (of one part) whose stored row is not the one of the latest arrival
    ``(_arrived, _seq)`` whose manifest (``rows``) holds it; for datasets whose sources are
    replaced whole (Online Retail), only the latest version of each source counts. Compares
    versions, not values: a row of an older version, a key no committed version should hold,
    and a key missing from the lake are each listed."""
    from salesflow.datasets import get_spec
    from salesflow.pipeline.lake import replaces_source

    if replaces_source(get_spec(dataset)):
        newest: dict[str, tuple[int, int]] = {}
        for record in mine.values():
            version = (micros(record.arrived_at or record.started_at), record.seq)
            newest[record.source] = max(newest.get(record.source, version), version)
        latest = pl.LazyFrame(
            {
                "_source": list(newest),
                "__a": [v[0] for v in newest.values()],
                "__s": [v[1] for v in newest.values()],
            },
            schema={"_source": pl.String, "__a": pl.Int64, "__s": pl.Int64},
        )
        rows = (
            rows.join(latest, on="_source", how="inner")
            .filter((pl.col("_arrived") == pl.col("__a")) & (pl.col("_seq") == pl.col("__s")))
            .drop("__a", "__s")
        )
    expected = rows.group_by("_key").agg(
        pl.col("_arrived").sort_by("_arrived", "_seq").last().alias("want_arrived"),
        pl.col("_seq").sort_by("_arrived", "_seq").last().alias("want_seq"),
    )
    return (
        expected.join(stored.lazy(), on="_key", how="full", coalesce=True)
        .filter(
            pl.col("_seq").is_null()
            | pl.col("want_seq").is_null()
            | (pl.col("_seq") != pl.col("want_seq"))
            | (pl.col("_arrived") != pl.col("want_arrived"))
        )
        .collect()
    )


def _check_latest(
    report: AuditReport, dataset: str, mine: dict[int, FileRecord], both: pl.DataFrame
) -> None:
    """The three ``latest_arrival`` checks over the keys ``_latest_wrong`` found."""
    _check_keys(
        report,
        both.filter(pl.col("_seq").is_not_null() & pl.col("want_seq").is_not_null()),
        "keys hold a row of another version than the latest arrival that holds them",
        lambda r: (
            f"{r['_key']!r} holds seq {r['_seq']}'s row, the latest arrival is "
            f"{_version(mine, r['want_seq'])}"
        ),
        dataset,
    )
    _check_keys(
        report,
        both.filter(pl.col("_seq").is_null()),
        "keys stored by a committed version are not in the lake",
        lambda r: f"{r['_key']!r} of {_version(mine, r['want_seq'])}",
        dataset,
    )
    _check_keys(
        report,
        both.filter(pl.col("want_seq").is_null()),
        "stored keys that no latest committed version holds",
        lambda r: f"{r['_key']!r} (seq {r['_seq']})",
        dataset,
    )


def _check_keys(
    report: AuditReport,
    wrong: pl.DataFrame,
    what: str,
    example: Callable[[dict[str, Any]], str],
    dataset: str,
) -> None:
    """One ``latest_arrival`` check: ``wrong`` holds the keys that break it."""
    report.check(
        "latest_arrival",
        wrong.is_empty(),
        f"{dataset}: {wrong.height} {what}, e.g. "
        + "; ".join(example(r) for r in wrong.head(EXAMPLES).iter_rows(named=True)),
    )


def _version(mine: dict[int, FileRecord], seq: int) -> str:
    found = mine.get(seq)
    return _name(found) if found is not None else f"seq {seq}"


def _same(stored: pl.DataFrame, fresh: pl.DataFrame, spec: AggregateSpec) -> bool:
    if stored.height != fresh.height:
        return False
    key = list(spec.key)
    a = stored.sort(key)
    b = fresh.sort(key)
    for column, dtype in spec.schema.items():
        left, right = a.get_column(column), b.get_column(column)
        if dtype == pl.Float64():
            if not ((left - right).abs() <= 1e-6 * (1 + right.abs())).fill_null(False).all():
                return False
        elif not left.equals(right):
            return False
    return True


def _check_aggregates(
    backend: Backend, report: AuditReport, datasets: set[str], rows_at_a_time: int
) -> None:
    """Every aggregate equals a recomputation from the stored records, made a few days at a
    time (about ``rows_at_a_time`` records): a day's KPIs need that day's records only, and
    totals are sums, added up over the batches."""
    records = backend.records
    tables = backend.tables
    if "order_items" in datasets:
        products = records.read("products", columns=["category"])
        by_day: list[pl.DataFrame] = []
        by_category: list[pl.DataFrame] = []
        for days in _day_batches(backend, "order_items", rows_at_a_time):
            items = records.read(
                "order_items", days=days, columns=["status", "sale_price", "order_id", "product_id"]
            )
            by_day.append(order_kpis(items))
            by_category.append(category_kpis(items, products))
            del items
        for spec, parts in ((ORDER_KPIS, by_day), (CATEGORY_KPIS, by_category)):
            fresh = pl.concat(parts) if parts else pl.DataFrame(schema=spec.schema)
            stored = tables.read_aggregates(spec)
            report.check(
                "kpis", _same(stored, fresh, spec), f"{spec.name} differs from a recompute"
            )
    for dataset in sorted(datasets & set(TOTALS_BY)):
        columns = totals_columns(dataset)
        parts = [
            totals(dataset, records.read(dataset, days=days, columns=columns))
            for days in _day_batches(backend, dataset, rows_at_a_time)
        ]
        fresh = (
            pl.concat(parts)
            .group_by("scope", "id")
            .agg(pl.col("total_amount").sum(), pl.col("records").sum())
            .select([pl.col(c).cast(t) for c, t in TOTALS.schema.items()])
            if parts
            else pl.DataFrame(schema=TOTALS.schema)
        )
        scopes = [f"{dataset}.{by}" for by in TOTALS_BY[dataset]]
        stored = tables.read_aggregates(TOTALS, column="scope", values=scopes)
        report.check("totals", _same(stored, fresh, TOTALS), f"totals of {dataset} differ")


def _day_batches(backend: Backend, dataset: str, rows: int) -> list[set[date] | None]:
    """The stored days of ``dataset`` in batches of consecutive days holding about ``rows``
    records each (a day bigger than that is a batch of its own); ``[None]`` (everything at
    once) when a record has no day, which a read by days would miss."""
    with backend.lake.local_paths(dataset) as paths:
        if not paths:
            return []
        counts = (
            pl.scan_parquet(paths, schema={"_day": pl.Date()}, extra_columns="ignore")
            .group_by("_day")
            .len()
            .sort("_day", nulls_last=True)
            .collect(engine="streaming")
        )
    if counts.get_column("_day").null_count():
        return [None]
    batches: list[set[date] | None] = []
    batch: set[date] = set()
    held = 0
    for day, n in counts.iter_rows():
        if batch and held + n > rows:
            batches.append(batch)
            batch, held = set(), 0
        batch.add(day)
        held += n
    if batch:
        batches.append(batch)
    return batches


def dead_letter_counts(backend: Backend) -> dict[str, int]:
    """Dead letters by status, counted in the store."""
    return {s.value: backend.letters.count(status=s) for s in LetterStatus}
