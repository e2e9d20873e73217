"""The Spark engine validates exactly as the Polars engine does, however Spark splits a file.

On generated files with every fault kind (1% each), the real Online Retail sample and seed
002's JSON example: the same valid rows (typed values, ``_record``, ``_key``, ``_day``,
amounts, derived flags, ``_extra``), the same rejected rows (record number, key, raw text,
every reason with its message) and the same report (counts per rule, samples, warnings).
Then the same files read in 1, 4 and 16 Spark partitions give the same again: record numbers,
first-occurrence-wins keys and invoice line numbers do not depend on how Spark splits.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from salesflow.datasets import get_spec
from salesflow.engines.spark import SparkEngine
from salesflow.validation import Reference, ValidationResult, validate_file
from tests.fixtures.parity import NOW, assert_same_frames, dataset_of, sample_files, whole
from tests.fixtures.spark import with_partitions

pytestmark = pytest.mark.spark

CHUNK_ROWS = 700
"""Small chunks, so that files span several chunks on both engines."""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return sample_files(tmp_path_factory.mktemp("parity"))


@pytest.fixture(scope="module")
def reference(files: dict[str, Path]) -> Reference:
    """The keys of the products and orders files, as the pipeline passes them."""
    keys = {}
    for name in ("products", "orders"):
        result = validate_file(files[name], get_spec(name), source=name, now=NOW)
        keys[name] = result.valid.get_column("_key")
    return Reference(keys)


def _polars(files: dict[str, Path], case: str, reference: Reference) -> ValidationResult:
    spec = get_spec(dataset_of(case))
    ref = reference if spec.references else None
    path = files[case]
    return validate_file(
        path, spec, source=path.name, reference=ref, now=NOW, chunk_rows=CHUNK_ROWS
    )


def _assert_parity(
    engine: SparkEngine, files: dict[str, Path], case: str, reference: Reference
) -> None:
    want = _polars(files, case, reference)
    spec = get_spec(dataset_of(case))
    path = files[case]
    chunks = list(
        engine.validate(
            path,
            spec,
            source=path.name,
            reference=reference if spec.references else None,
            now=NOW,
            chunk_rows=CHUNK_ROWS,
        )
    )
    assert all(c.rows_in <= CHUNK_ROWS for c in chunks)
    valid, rejected, report = whole(chunks, path.name, spec.name)
    expected = want.report.to_dict()
    expected.pop("chunks")
    assert report == expected
    assert_same_frames(want.valid, valid)
    assert_same_frames(want.rejected, rejected)


CASES = [
    "orders_json",
    "sale_events",
    "online_retail",
    "products",
    "orders",
    "order_items",
    "online_retail_sample",
    "seed_002",
]


@pytest.mark.parametrize("case", CASES)
def test_spark_validates_as_polars_does(
    spark_engine: SparkEngine, files: dict[str, Path], reference: Reference, case: str
) -> None:
    _assert_parity(spark_engine, files, case, reference)


def test_every_fault_kind_is_in_the_parity_data(
    files: dict[str, Path], reference: Reference
) -> None:
    """The parity above covers every rule the generator can break (not only a lucky few)."""
    broken = set()
    for case in CASES:
        broken |= set(_polars(files, case, reference).report.rules)
    assert {
        "presence.contact_info", "presence.order_info", "presence.required", "type.integer",
        "type.number", "type.date", "date.future", "email.format", "range.positive",
        "range.non_negative", "range.nonzero", "format.currency", "enum.status",
        "business.quantity_sign", "business.cost_le_retail", "business.num_of_item",
        "business.sale_price", "unique.key", "ref.product_id", "ref.order_id",
    } <= broken  # fmt: skip


@pytest.mark.parametrize("partitions", [1, 4, 16])
@pytest.mark.parametrize("case", ["order_items", "online_retail_sample"])
def test_any_split_of_a_file_gives_the_same_result(
    spark_engine: SparkEngine,
    files: dict[str, Path],
    reference: Reference,
    case: str,
    partitions: int,
) -> None:
    engine = with_partitions(spark_engine, partitions)
    read = engine.spark.read.csv(str(files[case]))
    with engine._split(files[case].stat().st_size):  # the file is read in that many splits
        assert read.rdd.getNumPartitions() == partitions
    _assert_parity(engine, files, case, reference)


def test_a_file_with_only_a_header_gives_one_empty_chunk(
    spark_engine: SparkEngine, tmp_path: Path
) -> None:
    path = tmp_path / "products.csv"
    path.write_text("id,cost,category,name,brand,retail_price,department,sku\n")
    [chunk] = spark_engine.validate(path, get_spec("products"), source="p.csv", now=NOW)
    assert (chunk.rows_in, chunk.valid.height, chunk.rejected.height) == (0, 0, 0)
    assert chunk.valid.schema == pl.Schema(get_spec("products").valid_schema())
