"""Exactly-once effect: kill -9 a real ``salesflow`` process, restart, compare with a clean run.

For each failpoint, ``salesflow ingest`` is SIGKILLed while it loads order_items (several
chunks, references checked against products and orders already stored, high-value items),
with an orders_json file and two sale_events files waiting behind it (one a corrected
re-upload of a high-value sale whose alert was already sent). Then ``salesflow run`` is
started without the failpoint and left to drain the inbox (the product has no one-shot
"recover and drain" command, so the test stops the service with SIGTERM once the inbox is
empty and no alert is pending). The end state must equal a run of the same files with no
crash: records, lake fragments, dead letters, lineage, KPIs and totals, alerts (once each
in the JSONL sink), archive layout and reports; and ``salesflow audit`` must pass. A second
test kills a 300k-row ingest at a random moment.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import signal
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from salesflow.datasets import SPECS
from salesflow.kpis import CATEGORY_KPIS, ORDER_KPIS, TOTALS
from salesflow.models import AlertStatus, DeadLetter, FileStatus
from salesflow.samples.generate import generate
from tests.fixtures.cli import Cli, backend_of, drop_file, files_under, jsonl, wait_for

pytestmark = pytest.mark.subprocess

FAILPOINTS = ("after_start", "after_chunk", "after_load", "after_aggregate", "after_lineage")
KILLED = -signal.SIGKILL
VIP_SALE = {
    "sale_id": "vip-0001",
    "product": "Espresso machine",
    "category": "Kitchen",
    "price": 1250.0,
    "quantity": 2,
    "timestamp": "2024-05-04T10:30:00Z",
    "customer_email": "vip.buyer@example.com",
    "currency": "EUR",
}
ENV = {
    # several chunks per order_items file, so a crash can land between chunks
    "SALESFLOW_CHUNK_ROWS": "500",
    # the restarted service must not wait 20 minutes for a trio's quiet time
    "SALESFLOW_BATCHING__QUIET_SECONDS": "1",
}
DRAIN_SECONDS = 30.0


# -- a comparable picture of a data dir ------------------------------------------------------

_MONTH = re.compile(r"year=\d{4}/month=\d{2}/")
_NOW = r"now \([^)]*\)"
"""The processing time quoted in a ``date.future`` message."""
PROCESSING_DAY = {name for name, spec in SPECS.items() if spec.day_column is None}
"""Datasets whose ``_day`` is the day they were processed: two runs either side of midnight
differ there legitimately, so that day is left out (like the time quoted in messages)."""


def _month_free(key: str | None) -> str | None:
    return None if key is None else _MONTH.sub("year=*/month=*/", key)


@dataclass(eq=False)
class Rows:
    """A frame in a canonical form (columns and rows sorted, floats rounded), compared by
    value; big frames stay in Polars."""

    frame: pl.DataFrame

    @classmethod
    def of(cls, frame: pl.DataFrame, dataset: str = "") -> Rows:
        if dataset in PROCESSING_DAY and "_day" in frame.columns:
            frame = frame.drop("_day")
        frame = frame.with_columns(pl.col(pl.Float64, pl.Float32).round(6))
        frame = frame.select(sorted(frame.columns))
        return cls(frame.sort(frame.columns, nulls_last=True) if frame.columns else frame)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rows) and self.frame.equals(other.frame)

    def __repr__(self) -> str:
        return f"<{self.frame.height} rows, e.g. {self.frame.head(2).rows()}>"

    def diff(self, want: Rows) -> str:
        if self.frame.schema != want.frame.schema:
            return f"schema {self.frame.schema} != {want.frame.schema}"
        got_rows, want_rows = set(self.frame.rows()), set(want.frame.rows())
        extra, missing = (
            sorted(got_rows - want_rows, key=repr),
            sorted(want_rows - got_rows, key=repr),
        )
        return (
            f"{self.frame.height} vs {want.frame.height} rows; "
            f"extra {_short(extra[:3])}; missing {_short(missing[:3])}"
        )


def _lake(bucket: Path) -> dict[str, Rows]:
    out: dict[str, Rows] = {}
    for key in files_under(bucket, "lake"):
        if key.endswith(".parquet"):
            dataset = key.split("/")[1]
            name = _month_free(key) if dataset in PROCESSING_DAY else key
            frame = pl.read_parquet(bucket / key, hive_partitioning=False).drop("_arrived")
            out[name or key] = Rows.of(frame, dataset)
    return out


def _letters(letters: list[DeadLetter]) -> Rows:
    frame = pl.DataFrame(
        {
            "id": [x.id for x in letters],
            "dataset": [x.dataset for x in letters],
            "source_file": [x.source_file for x in letters],
            "record": [x.record for x in letters],
            "reasons": [json.dumps([r.to_dict() for r in x.reasons]) for x in letters],
            "raw": [json.dumps(x.raw, sort_keys=True) for x in letters],
            "status": [x.status.value for x in letters],
        },
        schema={c: pl.Int64 if c == "record" else pl.Utf8 for c in LETTER_COLUMNS},
    )
    return Rows.of(frame.with_columns(pl.col("reasons").str.replace_all(_NOW, "now (...)")))


LETTER_COLUMNS = ("id", "dataset", "source_file", "record", "reasons", "raw", "status")


def snapshot(data_dir: Path) -> dict[str, Any]:
    """Everything a data dir holds as plain data, without timestamps and attempt counters."""
    with backend_of(data_dir) as backend:
        records = {
            # _arrived is the wall-clock time each run placed the file: left out like the others
            name: Rows.of(backend.lake.read(name).drop("_arrived"), name)
            for name in sorted(SPECS)
        }
        lineage = {
            f.key: (
                f.dataset,
                f.status.value,
                f.seq,
                f.sha256,
                f.rows_in,
                f.valid,
                f.rejected,
                _month_free(f.archive_key),
                f.report_key,
                bool(f.error),
            )
            for f in backend.tables.list_files()
        }
        letters = _letters(backend.letters.find())
        aggregates = {
            spec.name: Rows.of(backend.tables.read_aggregates(spec))
            for spec in (ORDER_KPIS, CATEGORY_KPIS, TOTALS)
        }
        alerts = sorted(
            (a.id, a.status.value, round(a.amount, 6)) for a in backend.tables.list_alerts()
        )
        pending = [p.key for p in backend.tables.list_pending()]
    bucket = data_dir / "bucket"
    sunk = Counter(str(line.get("id")) for line in jsonl(data_dir / "alerts.jsonl"))
    # the parts that explain a difference best come first
    return {
        "lineage": lineage,
        "inbox": files_under(bucket, "inbox"),
        "pending": pending,
        "archive": [_month_free(k) for k in files_under(bucket, "processed")]
        + [_month_free(k) for k in files_under(bucket, "failed")],
        "alerts": alerts,
        "alerts_in_jsonl_sink": dict(sorted(sunk.items())),
        "dead_letters": letters,
        "records": records,
        "lake": _lake(bucket),
        "aggregates": aggregates,
        "reports": files_under(bucket, "reports"),
    }


def assert_same_state(got: dict[str, Any], want: dict[str, Any]) -> None:
    """Compare part by part, so a failure names the part that differs and how."""
    assert got.keys() == want.keys()
    for part in want:
        if got[part] != want[part]:
            raise AssertionError(
                f"{part} differs from the clean run:\n{_diff(got[part], want[part])}"
            )


def _diff(got: Any, want: Any) -> str:
    if isinstance(want, Rows) and isinstance(got, Rows):
        return "  " + got.diff(want)
    if isinstance(want, dict) and isinstance(got, dict):
        lines = [
            f"  {k!r}: {_diff(got.get(k), want.get(k)).strip()}"
            for k in sorted(set(got) | set(want), key=repr)
            if got.get(k) != want.get(k)
        ]
        return "\n".join(lines[:20])
    if isinstance(want, list) and isinstance(got, list):
        extra = [x for x in got if x not in want][:3]
        missing = [x for x in want if x not in got][:3]
        return (
            f"  {len(got)} vs {len(want)} items; extra {_short(extra)}; missing {_short(missing)}"
        )
    return f"  got {_short(got)}, want {_short(want)}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 400 else text[:400] + "..."


def lineage_status(data_dir: Path) -> dict[str, FileStatus]:
    with backend_of(data_dir) as backend:
        return {f.key: f.status for f in backend.tables.list_files()}


# -- running and draining ------------------------------------------------------------------


def _quiet(data_dir: Path) -> bool:
    """No file in the inbox or IN_PROGRESS, and no alert waiting to be delivered."""
    if files_under(data_dir / "bucket", "inbox"):
        return False
    with backend_of(data_dir) as backend:
        return not backend.tables.list_files(FileStatus.IN_PROGRESS) and not (
            backend.tables.list_alerts(AlertStatus.PENDING.value)
        )


def drain(cli: Cli, env: dict[str, str] | None = None) -> None:
    """Run the service until all is done (``_quiet``), then stop it with SIGTERM (exit 0)."""
    bucket = cli.data_dir / "bucket"
    with cli.service(env=env) as svc:

        def drained() -> bool:
            svc.assert_alive()
            return _quiet(cli.data_dir)

        try:
            wait_for(drained, timeout=DRAIN_SECONDS, interval=0.2, what="all work done")
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}; still in the inbox: {files_under(bucket, 'inbox')}; "
                f"lineage: {lineage_status(cli.data_dir)}\n{svc.stdout}\n{svc.stderr}"
            ) from exc
        assert svc.stop() == 0, svc.stderr


@dataclass
class Corpus:
    """Files for the crash tests and a data dir where the first two are already stored."""

    first: list[Path]
    second: list[Path]
    base: Path
    reference: dict[str, Any]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    root = tmp_path_factory.mktemp("crash")
    files = root / "files"
    thelook = generate("order_items", 3000, files, invalid_rate=0.02, seed=11).files
    orders_json = generate("orders_json", 300, files, invalid_rate=0.05, seed=12).files
    sales = generate("sale_events", 120, files, invalid_rate=0.05, seed=13).files
    vip = files / "sale_events_vip.json"
    vip.write_text(json.dumps(VIP_SALE))
    # the same sale uploaded again, corrected: its alert was sent, it must not be sent again
    vip_fix = files / "sale_events_vip_fix.json"
    vip_fix.write_text(json.dumps({**VIP_SALE, "quantity": 3}))
    by_name = {p.name: p for p in thelook}
    first = [by_name["products.csv"], by_name["orders.csv"], vip]
    # order_items runs first (ingest orders batched datasets first), then the rest in the
    # same order as the service would take them from the inbox (by key)
    second = [by_name["order_items.csv"], *orders_json, *sales, vip_fix]
    assert [p.name for p in second[1:]] == sorted(p.name for p in second[1:])

    base = root / "base" / "data"
    Cli(base, env=ENV).run("ingest", *first)
    ref = root / "reference" / "data"
    shutil.copytree(base, ref)
    ref_cli = Cli(ref, env=ENV)
    ref_cli.run("ingest", *second)
    ref_cli.run("audit")
    reference = snapshot(ref)
    # the reference exercises what the crash must not break
    assert (
        reference["dead_letters"].frame.height and reference["records"]["order_items"].frame.height
    )
    sunk = reference["alerts_in_jsonl_sink"]
    assert sunk["sale_events:vip-0001@jsonl"] == 1 and set(sunk.values()) == {1}
    assert len(sunk) == len(reference["alerts"]) > 1
    sales = reference["records"]["sale_events"].frame
    vip_row = sales.filter(pl.col("_key") == "vip-0001")
    assert vip_row.get_column("quantity").to_list() == [3]  # the correction replaced the sale
    assert {s[1] for s in reference["lineage"].values()} == {"SUCCESS"}
    assert not reference["inbox"] and not reference["pending"]
    return Corpus(first, second, base, reference)


def _copy_base(corpus: Corpus, tmp_path: Path) -> Cli:
    data = tmp_path / "data"
    shutil.copytree(corpus.base, data)
    return Cli(data, env=ENV)


@pytest.mark.parametrize("failpoint", FAILPOINTS)
def test_kill_at_a_failpoint_then_restart_ends_like_a_clean_run(
    corpus: Corpus, tmp_path: Path, failpoint: str
) -> None:
    cli = _copy_base(corpus, tmp_path)
    crashed = cli.run("ingest", *corpus.second, code=None, env={"SALESFLOW_FAILPOINT": failpoint})
    assert crashed.returncode == KILLED, str(crashed)

    # the kill left the work half done, where the failpoint says
    items = "inbox/order_items/order_items.csv"
    status = lineage_status(cli.data_dir)
    committed = failpoint in ("after_lineage", "after_aggregate")  # both follow the commit
    want = FileStatus.SUCCESS if committed else FileStatus.IN_PROGRESS
    assert status[items] == want
    assert items in files_under(cli.data_dir / "bucket", "inbox")

    drain(cli)
    assert_same_state(snapshot(cli.data_dir), corpus.reference)
    assert cli.run("audit", code=None).returncode == 0


# -- the service killed in the middle of a batch --------------------------------------------


def _land_trio(corpus: Corpus, data_dir: Path) -> Cli:
    """A fresh data dir with products, orders and order_items waiting in the inbox."""
    trio = [*corpus.first[:2], corpus.second[0]]
    for path in trio:
        drop_file(data_dir / "bucket" / "inbox" / path.stem, path.name, path.read_bytes())
    return Cli(data_dir, env=ENV)


@pytest.fixture(scope="module")
def batch_reference(corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    cli = _land_trio(corpus, tmp_path_factory.mktemp("batch") / "data")
    drain(cli)
    reference = snapshot(cli.data_dir)
    assert [s[1] for s in reference["lineage"].values()] == ["SUCCESS"] * 3
    return reference


@pytest.mark.parametrize("failpoint", ["after_chunk", "after_lineage"])
def test_service_killed_in_a_batch_then_restarted_ends_like_a_clean_run(
    corpus: Corpus, batch_reference: dict[str, Any], tmp_path: Path, failpoint: str
) -> None:
    """``salesflow run`` dies in the first file of a trio batch (products); the restart
    must finish the batch without touching what is already done."""
    cli = _land_trio(corpus, tmp_path / "data")
    crashed = cli.start("run", env={"SALESFLOW_FAILPOINT": failpoint})
    assert crashed.wait(timeout=60) == KILLED, crashed.stderr
    assert "inbox/products/products.csv" in lineage_status(cli.data_dir)
    drain(cli)
    assert_same_state(snapshot(cli.data_dir), batch_reference)
    assert cli.run("audit", code=None).returncode == 0


# -- a kill at a random moment during a big file ---------------------------------------------


@dataclass
class BigCorpus:
    files: list[Path]
    base: Path
    reference: dict[str, Any]
    busy_seconds: float


def _ingest_in_background(cli: Cli, files: list[Path]) -> tuple[Any, float]:
    """Start ``salesflow ingest``; return it once its files are in the inbox, with that time."""
    svc = cli.start("ingest", *files)
    inbox = cli.data_dir / "bucket" / "inbox"
    seen: set[str] = set()

    def placed() -> bool:
        # every file shows up in the inbox at some point; the first may leave before the last
        seen.update(files_under(inbox))
        return svc.proc.poll() is not None or len(seen) == len(files)

    wait_for(placed, timeout=60, interval=0.01, what="ingest to place its files")
    return svc, time.monotonic()


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> BigCorpus:
    root = tmp_path_factory.mktemp("big")
    files = generate("order_items", 300_000, root / "files", invalid_rate=0.0005, seed=5).files
    base = root / "base" / "data"
    base.mkdir(parents=True)
    ref = root / "reference" / "data"
    shutil.copytree(base, ref)
    cli = Cli(ref, env={"SALESFLOW_CHUNK_ROWS": "50000"})
    svc, placed = _ingest_in_background(cli, files)
    assert svc.wait(timeout=180) == 0, svc.stderr
    busy = time.monotonic() - placed
    cli.run("audit")
    return BigCorpus(files, base, snapshot(ref), busy)


def test_kill_at_a_random_moment_during_a_big_ingest_then_restart(
    big: BigCorpus, tmp_path: Path
) -> None:
    rng = random.Random()
    fraction = rng.uniform(0.05, 0.8)
    for attempt in range(4):
        data = tmp_path / f"try{attempt}" / "data"
        shutil.copytree(big.base, data)
        cli = Cli(data, env={"SALESFLOW_CHUNK_ROWS": "50000"})
        svc, placed = _ingest_in_background(cli, big.files)
        delay = fraction * big.busy_seconds
        time.sleep(max(0.0, placed + delay - time.monotonic()))
        svc.kill()
        if svc.proc.returncode == KILLED:
            break
        fraction /= 2  # it finished before the kill: aim earlier
    else:
        pytest.fail(f"ingest always finished before the kill ({big.busy_seconds:.1f}s busy)")
    note = f"killed {delay:.2f}s into a {big.busy_seconds:.2f}s ingest"
    # Files the killed ingest had not started are batch files now; nothing would start the
    # batch (its products are already stored), so the restart runs batches at once.
    drain(cli, env={"SALESFLOW_BATCHING__MIN_FILES": "1"})
    try:
        assert_same_state(snapshot(cli.data_dir), big.reference)
    except AssertionError as exc:
        raise AssertionError(f"{note}: {exc}") from exc
    assert cli.run("audit", code=None).returncode == 0, note
