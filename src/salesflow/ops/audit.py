"""``salesflow audit``: check every promise the pipeline makes, by content, not only counts.

- every file version is final and every committed one is settled (its publish finished);
- conservation per file: ``rows_in == valid + rejected``;
- every SUCCESS or DUPLICATE version's archived object exists under ``processed/`` and holds
  exactly the bytes that were hashed (its sha256 is recomputed); every FAILED version is
  under ``failed/``; no version's object is left in the inbox;
- every rejected record of a file has its own letter (one per record, with the file's
  ``seq``);
- every aggregate equals a recomputation from the stored records.

Each check is named; ``salesflow audit`` exits 1 when any fails and lists what it found.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from salesflow import layout
from salesflow.kpis import CATEGORY_KPIS, ORDER_KPIS, TOTALS, category_kpis, order_kpis, totals
from salesflow.kpis.aggregates import TOTALS_BY, totals_columns
from salesflow.models import FileRecord, FileStatus, LetterStatus
from salesflow.ops.dlq import Filters, stream
from salesflow.ports import AggregateSpec, Backend


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


def audit(backend: Backend) -> AuditReport:
    """Every invariant, checked against what the stores hold now."""
    report = AuditReport()
    files = backend.tables.list_files()
    for record in files:
        _check_file(backend, report, record)
    _check_letters(backend, report, files)
    try:
        _check_lake(backend, report, files)
        _check_aggregates(backend, report, {r.dataset for r in files})
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


def _check_lake(backend: Backend, report: AuditReport, files: list[FileRecord]) -> None:
    """The lake holds rows of committed versions only, no more of each than it kept
    (``valid - superseded``; later versions may have replaced some), and one row per key."""
    committed: dict[str, dict[int, FileRecord]] = {}
    for record in files:
        if record.status == FileStatus.SUCCESS:
            committed.setdefault(record.dataset, {})[record.seq] = record
    datasets = {r.dataset for r in files if r.status == FileStatus.SUCCESS}
    for dataset in sorted(datasets):
        held = backend.lake.rows_by_seq(dataset)
        mine = committed.get(dataset, {})
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
            kept = found.valid - found.superseded
            report.check(
                "lake_rows",
                rows <= kept,
                f"{_name(found)}: the lake holds {rows} of its rows, it kept {kept}",
            )
        keys = backend.lake.read(dataset, columns=[]).get_column("_key")
        report.check(
            "one_version",
            keys.n_unique() == keys.len(),
            f"{dataset}: {keys.len() - keys.n_unique()} keys held by more than one row",
        )


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


def _check_aggregates(backend: Backend, report: AuditReport, datasets: set[str]) -> None:
    records = backend.records
    tables = backend.tables
    if "order_items" in datasets:
        items = records.read(
            "order_items", columns=["status", "sale_price", "order_id", "product_id"]
        )
        products = records.read("products", columns=["category"])
        for spec, fresh in (
            (ORDER_KPIS, order_kpis(items)),
            (CATEGORY_KPIS, category_kpis(items, products)),
        ):
            stored = tables.read_aggregates(spec)
            report.check(
                "kpis", _same(stored, fresh, spec), f"{spec.name} differs from a recompute"
            )
    for dataset in sorted(datasets & set(TOTALS_BY)):
        fresh = totals(dataset, records.read(dataset, columns=totals_columns(dataset)))
        scopes = [f"{dataset}.{by}" for by in TOTALS_BY[dataset]]
        stored = tables.read_aggregates(TOTALS, column="scope", values=scopes)
        report.check("totals", _same(stored, fresh, TOTALS), f"totals of {dataset} differ")


def dead_letter_counts(backend: Backend) -> dict[str, int]:
    """Dead letters by status, counted in the store."""
    return {s.value: backend.letters.count(status=s) for s in LetterStatus}
