"""The whole pipeline with ``engine=spark`` ends in the same state as with the default engine.

The same files (every fault kind, the Online Retail sample, seed 002's example) are ingested
into two data dirs, once per engine. Then per file rows_in/valid/rejected, the dead letters
(record number and rule ids), the stored records, the KPIs by day and by category, the totals
and the alerts are compared. Counts, keys and records are equal exactly; sums of money agree
to 1e-9 relative (Spark adds in another order than Polars).

And Spark reads the lake the Polars path wrote (plain Hive-partitioned Parquet, nothing but
the pyspark wheel) and gets the rows the record store gives.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from salesflow.adapters import build_backend
from salesflow.config import Settings
from salesflow.engines.spark import SparkEngine
from salesflow.engines.spark.kpis import read_records
from salesflow.kpis import CATEGORY_KPIS, ORDER_KPIS, TOTALS
from salesflow.pipeline.inbox import ingest
from tests.fixtures.parity import sample_files
from tests.fixtures.spark import LOCAL

pytestmark = pytest.mark.spark

DATASETS = ("orders_json", "sale_events", "online_retail", "products", "orders", "order_items")


@dataclass
class Run:
    """What one engine's run left behind."""

    data_dir: Path
    files: list[tuple[str, str, str, int, int, int]]
    letters: set[tuple[str, int, tuple[str, ...]]]
    records: dict[str, pl.DataFrame]
    aggregates: dict[str, pl.DataFrame]
    alerts: set[str]


def _run(engine: str, data_dir: Path, files: list[Path]) -> Run:
    settings = Settings(
        data_dir=data_dir,
        engine=engine,
        spark=LOCAL,
        alerts={"sinks": ["jsonl"], "jsonl_path": data_dir / "alerts.jsonl"},
    )
    backend = build_backend(settings)
    try:
        states = ingest(backend, settings, files)
        return Run(
            data_dir,
            [(s.key, s.dataset, s.status, s.rows_in, s.valid, s.rejected) for s in states],
            {
                (letter.source_file, letter.record, tuple(sorted(r.rule for r in letter.reasons)))
                for letter in backend.letters.find()
            },
            # _arrived is when each run placed the file: not the engine's to agree on
            {ds: backend.lake.read(ds).drop("_arrived").sort("_key") for ds in DATASETS},
            {
                spec.name: backend.tables.read_aggregates(spec).sort(list(spec.key))
                for spec in (ORDER_KPIS, CATEGORY_KPIS, TOTALS)
            },
            {a.id for a in backend.tables.list_alerts()},
        )
    finally:
        backend.close()


@pytest.fixture(scope="module")
def runs(
    spark_engine: SparkEngine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Run]]:
    folder = tmp_path_factory.mktemp("pipeline-parity")
    files = list(sample_files(folder / "files").values())
    yield {engine: _run(engine, folder / engine, files) for engine in ("polars", "spark")}


def test_every_file_has_the_same_counts(runs: dict[str, Run]) -> None:
    assert runs["spark"].files == runs["polars"].files
    assert all(status == "SUCCESS" for _, _, status, *_ in runs["polars"].files)
    assert sum(rejected for *_, rejected in runs["polars"].files) > 0


def test_the_same_records_are_dead_lettered_for_the_same_rules(runs: dict[str, Run]) -> None:
    assert runs["spark"].letters == runs["polars"].letters
    rejected = sum(rejected for *_, rejected in runs["polars"].files)
    assert len(runs["polars"].letters) == rejected > 50
    rules = {rule for *_, rules in runs["polars"].letters for rule in rules}
    assert {"type.integer", "type.number", "unique.key", "range.nonzero"} <= rules, rules


@pytest.mark.parametrize("dataset", DATASETS)
def test_the_same_records_are_stored(runs: dict[str, Run], dataset: str) -> None:
    want, got = runs["polars"].records[dataset], runs["spark"].records[dataset]
    assert want.height > 0
    assert_frame_equal(got, want, check_exact=True)


@pytest.mark.parametrize("table", ["order_kpis", "category_kpis", "totals"])
def test_the_same_kpis_and_totals(runs: dict[str, Run], table: str) -> None:
    want, got = runs["polars"].aggregates[table], runs["spark"].aggregates[table]
    assert want.height > 0
    assert_frame_equal(got, want, check_exact=False, rel_tol=1e-9, abs_tol=1e-9)


def test_the_same_alerts(runs: dict[str, Run]) -> None:
    assert runs["spark"].alerts == runs["polars"].alerts
    assert runs["polars"].alerts


@pytest.mark.parametrize("dataset", ["order_items", "online_retail"])
def test_spark_reads_the_lake_the_polars_path_wrote(
    spark_engine: SparkEngine, runs: dict[str, Run], dataset: str
) -> None:
    backend = build_backend(Settings(data_dir=runs["polars"].data_dir))
    try:
        stored = backend.records.read(dataset)
        columns = [c for c in stored.columns if c not in ("_key", "_seq", "_day")]
        frame = read_records(spark_engine.spark, backend.records, dataset, columns=columns)
        got = pl.from_arrow(frame.toArrow())
    finally:
        backend.close()
    assert isinstance(got, pl.DataFrame)
    want = stored.select(got.columns).sort("_key")
    assert_frame_equal(got.sort("_key"), want, check_exact=True, check_dtypes=False)
    assert got.schema["_day"] == pl.Date and got.height == stored.height > 0
