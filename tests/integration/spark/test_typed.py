"""Spark types values exactly as the Polars engine does, on a corpus of awkward strings.

The Polars engine (``validation.parse.parse_field``) is the reference: each string is typed
by both engines and the values and missing flags must agree. Without the fences in
``engines.spark.typed`` Spark would read ``1.5d``, ``0x1p3`` or ``2023`` where Polars does not.
"""

from __future__ import annotations

import polars as pl
import pytest
from pyspark.sql import functions as F

from salesflow.datasets import get_spec
from salesflow.datasets.spec import FieldSpec
from salesflow.engines.spark import SparkEngine
from salesflow.engines.spark.typed import parse, spark_pattern
from salesflow.rules.to_spark import float_text
from salesflow.validation.parse import parse_field

pytestmark = pytest.mark.spark

INTEGERS = ["5", "+5", "-5", " 5", "5 ", "007", "5.0", "1e3", "99999999999999999999", "", "  ",
            "abc", "0x10", "٥", None]  # fmt: skip
FLOATS = ["1.5", "+1.5", ".5", "5.", "1e3", "1E+3", "inf", "-inf", "NaN", "infinity", "1.5d",
          "1.5f", "0x1p3", "1,5", "1_0", "  2.5 ", "-0.0", "1e400", "twelve", "-12.50", ".",
          "", None]  # fmt: skip
ISO = ["2023-01-05 10:11:12 UTC", "2023-01-05 10:11:12.123456 UTC", "2023-01-05T10:11:12Z",
       "2023-01-05T10:11:12+02:00", "2023-01-05 10:11", "2023-01-05", "2023-1-5 10:11:12",
       "31/12/2023 10:00", "2023-01-05 10:11:12.123456789", "2023-01-05T10:11:12.5+0200",
       "2023-01-05 25:00:00", "2023-02-30 10:00:00", "2023-01-05 10:11:12 utc",
       " 2023-01-05 10:11:12 UTC", "20230105", "2023-01-05T10:11", "2023-01-05 8:11:12",
       "2023-01-05 10:1:12", "2023-01-05 10:11+02:00", "2023-01-05+02:00", "2023-01-05Z",
       "2023-01-05 UTC", "2023-01-05t10:11:12", "2023-01-05 10:11:12 Z", "2023-01-05 10:11:12-05",
       "2023-01-05 10:11:12 -0500", "2023-01-05 10:11:12GMT", "02023-01-05 10:11:12",
       "2023-01-05  10:11:12", "2023-01-05 10:11:12.", "2023", "2023-01-05 10:11:12+2:00", "",
       "twelve", None]  # fmt: skip
US = ["12/1/2010 8:26", "12/01/2010 08:26", "1/2/2011 13:05:09", "13/1/2010 8:26",
      "12/1/2010 8:26 ", "12/1/2010  8:26", "2010-12-01 08:26", "1/2/2011 13:05", "",
      None]  # fmt: skip
TEXTS = ["a", " a ", "", "   ", "\u00a0x\u2003", "é", None]


def _field(dataset: str, name: str) -> FieldSpec:
    return get_spec(dataset).get_field(name)


CASES = [
    (_field("orders", "user_id"), INTEGERS),
    (_field("sale_events", "price"), FLOATS),
    (_field("order_items", "created_at"), ISO),
    (_field("online_retail", "InvoiceDate"), US),
    (_field("online_retail", "StockCode"), TEXTS),
]


@pytest.mark.parametrize(("spec", "values"), CASES, ids=[c[0].name for c in CASES])
def test_spark_types_every_value_as_polars_does(
    spark_engine: SparkEngine, spec: FieldSpec, values: list[str | None]
) -> None:
    want_value, want_missing = parse_field(pl.Series("s", values, dtype=pl.Utf8), spec)
    frame = spark_engine.spark.createDataFrame([(v,) for v in values], "s string")
    value, missing = parse(F.col("s"), spec)
    rows = frame.select(value.alias("v"), missing.alias("m")).collect()
    got_value = pl.Series("v", [r["v"] for r in rows])
    if spec.is_date:
        got_value = got_value.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    table = pl.DataFrame({"input": values, "polars": want_value, "spark": got_value})
    differ = table.filter(pl.col("polars").ne_missing(pl.col("spark")))
    assert differ.is_empty(), differ.to_dicts()
    assert [r["m"] for r in rows] == want_missing.to_list()


def test_numbers_in_messages_read_as_polars_prints_them(spark_engine: SparkEngine) -> None:
    values = [0.0, -0.0, -5.0, -12.34, 1e7, 1e-4, 1e-5, 1e-7, 123456789.123, 9.99e15, 1e16,
              -1.5e20, 0.1 + 0.2, 1234567.0, float("inf"), float("-inf")]  # fmt: skip
    frame = spark_engine.spark.createDataFrame([(v,) for v in values], "d double")
    got = [r[0] for r in frame.select(float_text(F.col("d"))).collect()]
    assert got == pl.Series(values).cast(pl.Utf8).to_list()


def test_a_date_format_spark_cannot_read_fails_loudly() -> None:
    assert spark_pattern("%m/%d/%Y %H:%M") == "M/d/y H:m"
    with pytest.raises(NotImplementedError, match="%b"):
        spark_pattern("%d %b %Y")
