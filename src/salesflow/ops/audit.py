"""``salesflow audit``: check every invariant the pipeline promises, report each violation."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from salesflow import layout
from salesflow.kpis import CATEGORY_KPIS, ORDER_KPIS, TOTALS, category_kpis, order_kpis, totals
from salesflow.kpis.aggregates import TOTALS_BY, totals_columns
from salesflow.models import FileStatus, LetterStatus
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
    """Conservation per file, records stored per file, archives, dead letters, and every
    aggregate equal to a fresh recomputation from the stored records."""
    report = AuditReport()
    files = backend.tables.list_files()
    stored: dict[str, dict[int, int]] = {}
    for record in files:
        name = record.key
        if record.status == FileStatus.IN_PROGRESS:
            report.check("finished", False, f"{name} is still IN_PROGRESS (crashed or running)")
            continue
        report.check(
            "conservation",
            record.rows_in == record.valid + record.rejected,
            f"{name}: rows_in {record.rows_in} != valid {record.valid} "
            f"+ rejected {record.rejected}",
        )
        _check_archive(backend, report, record.key, record.archive_key, record.status)
        if record.status == FileStatus.SUCCESS:
            if record.dataset not in stored:
                stored[record.dataset] = backend.records.count_by_seq(record.dataset)
            written = stored[record.dataset].get(record.seq, 0)
            report.check(
                "records_stored",
                written == record.valid,
                f"{name}: {record.valid} valid rows but {written} in the store/lake",
            )
            letters = len(backend.dlq.list(source_file=record.key))
            report.check(
                "dead_letters",
                letters >= record.rejected,
                f"{name}: {record.rejected} rejected rows but {letters} dead letters",
            )
        if record.status == FileStatus.FAILED:
            report.check("failed_has_error", bool(record.error), f"{name}: FAILED with no error")
    _check_aggregates(backend, report, {r.dataset for r in files})
    return report


def _check_archive(
    backend: Backend, report: AuditReport, name: str, archive: str | None, status: FileStatus
) -> None:
    want = layout.FAILED if status == FileStatus.FAILED else layout.PROCESSED
    ok = bool(archive) and archive is not None and archive.startswith(want)
    report.check("archived", ok, f"{name}: {status.value} but archive key is {archive!r}")
    if ok and archive is not None:
        other = (layout.PROCESSED if want == layout.FAILED else layout.FAILED) + archive[
            len(want) :
        ]
        report.check("archived", backend.store.exists(archive), f"{name}: {archive} is missing")
        report.check(
            "not_both", not backend.store.exists(other), f"{name}: both {archive} and {other}"
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
    """Dead letters by status."""
    return {s.value: backend.dlq.count(s) for s in LetterStatus}
