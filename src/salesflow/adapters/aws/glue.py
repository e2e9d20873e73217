"""The lake's tables in the Glue Data Catalog, generated from salesflow's own definitions.

Athena (and anything reading the Glue catalog: Spark, QuickSight, Redshift Spectrum) queries
the lake where it lies: ``lake/<table>/year=YYYY/month=MM/part-*.parquet``. Each table here is
an ``AWS::Glue::Table`` with partition projection on ``year``/``month``, so a new month is
queryable the moment its first fragment lands, with no crawler and no ``MSCK REPAIR``.

No column list is written twice:

- a dataset's columns are what the lake writes for it: a header-only file goes through the
  real validation (``validate_path``) and the lake's own normalisation (``lake_fragments``),
  and the resulting Parquet schema is the table's;
- the KPI and totals tables are the ``AggregateSpec`` schemas (``salesflow.kpis``);
- the dead letters' columns are ``DEAD_LETTERS`` below, the schema a lake export of letters
  writes (``letters_frame``).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from salesflow import layout
from salesflow.models import DeadLetter

DEAD_LETTERS = "dead_letters"
DEAD_LETTER_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.String(),
    "dataset": pl.String(),
    "source_file": pl.String(),
    "record": pl.Int64(),
    "seq": pl.Int64(),
    "status": pl.String(),
    "rules": pl.List(pl.String()),
    "reasons": pl.String(),
    "raw": pl.String(),
    "attempts": pl.Int64(),
    "created_at": pl.Datetime("us", "UTC"),
    "updated_at": pl.Datetime("us", "UTC"),
}
"""One row per letter: ``reasons`` and ``raw`` as JSON text, partitioned by ``created_at``."""
PARTITIONS = ({"Name": "year", "Type": "int"}, {"Name": "month", "Type": "int"})
PARQUET = {
    "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    "SerdeInfo": {
        "SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    },
}
DATABASE = "LakeDatabase"
"""The template's ``AWS::Glue::Database``."""


def letters_frame(letters: Sequence[DeadLetter]) -> pl.DataFrame:
    """Dead letters as rows of the ``dead_letters`` table (for a lake export)."""
    rows = [
        {
            "id": x.id,
            "dataset": x.dataset,
            "source_file": x.source_file,
            "record": x.record,
            "seq": x.seq,
            "status": x.status.value,
            "rules": x.rules,
            "reasons": json.dumps([r.to_dict() for r in x.reasons], ensure_ascii=False),
            "raw": json.dumps(x.raw, ensure_ascii=False, default=str),
            "attempts": x.attempts,
            "created_at": x.created_at,
            "updated_at": x.updated_at,
        }
        for x in letters
    ]
    return pl.DataFrame(rows, schema=DEAD_LETTER_SCHEMA)


def record_schema(dataset: str) -> dict[str, pl.DataType]:
    """The columns the lake writes for ``dataset``, found by running a header-only file through
    validation and the lake's normalisation."""
    from salesflow.adapters.lake.files import META
    from salesflow.datasets import get_spec
    from salesflow.models import FileRecord, FileStatus, utcnow
    from salesflow.pipeline.lake import identify
    from salesflow.validation import validate_path

    spec = get_spec(dataset)
    with tempfile.TemporaryDirectory(prefix="salesflow-schema-") as tmp:
        if "csv" in spec.formats:
            path = Path(tmp) / "header.csv"
            path.write_text(",".join(spec.field_names) + "\n", encoding="utf-8")
        else:
            path = Path(tmp) / "empty.json"
            path.write_text("[]", encoding="utf-8")
        first = next(iter(validate_path(path, spec, source=f"{layout.INBOX}{dataset}/header")))
    version = FileRecord(
        key=f"{layout.INBOX}{dataset}/header", sha256="", size=0, dataset=spec.name,
        status=FileStatus.IN_PROGRESS, seq=0, started_at=utcnow(),
    )  # fmt: skip
    frame = identify(spec, version, first.valid)
    return {**dict(frame.schema), **META}


def glue_type(dtype: Any) -> str:
    """The Hive/Glue type Athena reads a Polars-written Parquet column of ``dtype`` as."""
    if isinstance(dtype, pl.List):
        return f"array<{glue_type(dtype.inner)}>"
    if isinstance(dtype, pl.Datetime):
        return "timestamp"
    if isinstance(dtype, pl.Decimal):
        return f"decimal({dtype.precision or 38},{dtype.scale or 0})"
    simple = {
        pl.String: "string",
        pl.Int64: "bigint",
        pl.Int32: "int",
        pl.Int16: "smallint",
        pl.Int8: "tinyint",
        pl.UInt32: "bigint",
        pl.UInt64: "decimal(20,0)",
        pl.Float64: "double",
        pl.Float32: "float",
        pl.Boolean: "boolean",
        pl.Date: "date",
        pl.Null: "string",
    }
    for kind, name in simple.items():
        if dtype == kind:
            return name
    raise ValueError(f"no Glue type for the Polars type {dtype}")


def lake_tables() -> dict[str, dict[str, pl.DataType]]:
    """Every table of the lake and its columns: datasets, dead letters, KPIs and totals."""
    from salesflow.datasets import SPECS
    from salesflow.kpis import AGGREGATES

    tables = {name: record_schema(name) for name in SPECS}
    tables[DEAD_LETTERS] = DEAD_LETTER_SCHEMA
    tables.update({name: dict(spec.schema) for name, spec in AGGREGATES.items()})
    return tables


def logical_id(table: str) -> str:
    return "LakeTable" + "".join(part.capitalize() for part in table.split("_"))


def table_resource(table: str, schema: dict[str, pl.DataType]) -> dict[str, Any]:
    """An ``AWS::Glue::Table`` for ``lake/<table>/`` with ``year``/``month`` projected."""
    location = ["s3://", {"Ref": "DataBucket"}, f"/{layout.LAKE}{table}/"]
    return {
        "Type": "AWS::Glue::Table",
        "Properties": {
            "CatalogId": {"Ref": "AWS::AccountId"},
            "DatabaseName": {"Ref": DATABASE},
            "TableInput": {
                "Name": table,
                "Description": f"lake/{table}/: current state, Parquet, by month",
                "TableType": "EXTERNAL_TABLE",
                "Parameters": {
                    "classification": "parquet",
                    "projection.enabled": "true",
                    "projection.year.type": "integer",
                    "projection.year.range": "0,9999",
                    "projection.year.digits": "4",
                    "projection.month.type": "integer",
                    "projection.month.range": "0,12",
                    "projection.month.digits": "2",
                    # Fn::Join, not Fn::Sub: ${year} and ${month} are Athena's placeholders.
                    "storage.location.template": {
                        "Fn::Join": ["", [*location, "year=${year}/month=${month}/"]]
                    },
                },
                "PartitionKeys": list(PARTITIONS),
                "StorageDescriptor": {
                    "Location": {"Fn::Join": ["", location]},
                    "Columns": [
                        {"Name": name.lower(), "Type": glue_type(dtype)}
                        for name, dtype in schema.items()
                    ],
                    **PARQUET,
                },
            },
        },
    }


def catalog_resources() -> dict[str, dict[str, Any]]:
    """The template resources of every lake table, by logical id."""
    return {logical_id(t): table_resource(t, s) for t, s in lake_tables().items()}
