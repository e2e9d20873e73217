"""The Spark engine: the same rules and KPIs as the Polars engine, on a Spark session.

Needs the ``spark`` extra (``pip install "salesflow[spark]"``: PySpark 4 and a Java 17
runtime). Local by default (``local[*]``); ``--spark-master`` names a cluster. Results come
back to the driver as Polars frames in bounded chunks, so the pipeline around the engine
(lineage, dead letters, alerts, archive) is the same whatever the engine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from salesflow.config import SparkSettings
from salesflow.datasets.spec import DatasetSpec
from salesflow.engines.spark.session import import_pyspark, spark_session
from salesflow.errors import FileLevelError, SalesflowError, TerminalError, TransientError
from salesflow.models import utcnow
from salesflow.ports import RecordStore
from salesflow.validation.filewide import Reference
from salesflow.validation.report import Chunk
from salesflow.validation.text import open_text

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_SPLIT_CONF = (
    "spark.sql.files.maxPartitionBytes",
    "spark.sql.files.openCostInBytes",
    "spark.sql.files.minPartitionNum",
)


@contextlib.contextmanager
def spark_errors(what: str) -> Iterator[None]:
    """Spark's failures as salesflow's: a plan Spark rejects is terminal (retrying the same
    file gives the same plan), a failed job is transient (an executor or the master lost)."""
    try:
        yield
    except SalesflowError:
        raise
    except Exception as exc:
        from py4j.protocol import Py4JError
        from pyspark.errors import AnalysisException, PySparkException

        cause = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        if isinstance(exc, AnalysisException):
            raise TerminalError(
                f"{what}: Spark rejected the query: {cause}",
                hint="this is a salesflow bug; report it with the file, or use --engine polars",
            ) from exc
        if isinstance(exc, PySparkException | Py4JError):
            raise TransientError(
                f"{what}: the Spark job failed: {cause}",
                hint="check that the Spark master and its executors are up, then retry",
            ) from exc
        raise


class SparkEngine:
    """``Engine`` on Spark. Build with :meth:`from_settings`; one per process."""

    name = "spark"

    def __init__(self, spark: SparkSession, settings: SparkSettings) -> None:
        self.spark = spark
        self.settings = settings

    @classmethod
    def from_settings(cls, settings: SparkSettings) -> SparkEngine:
        import_pyspark()
        return cls(spark_session(settings), settings)

    @contextlib.contextmanager
    def _split(self, size: int) -> Iterator[None]:
        """Split a file of ``size`` bytes into ``settings.partitions`` read partitions."""
        n = self.settings.partitions
        if not n:
            yield
            return
        conf = self.spark.conf
        saved = {k: conf.get(k, None) for k in _SPLIT_CONF}
        conf.set("spark.sql.files.maxPartitionBytes", str(max(1, -(-size // n))))
        conf.set("spark.sql.files.openCostInBytes", "0")
        conf.set("spark.sql.files.minPartitionNum", "1")  # else it caps the split size
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    conf.unset(key)
                else:
                    conf.set(key, value)

    def _uri(self, path: Path, source: str, latin1: bool) -> tuple[str, str]:
        """Where executors read the file, and in which encoding."""
        if self.settings.bucket_uri:
            return f"{self.settings.bucket_uri.rstrip('/')}/{source}", (
                "ISO-8859-1" if latin1 else "UTF-8"
            )
        return str(path), "UTF-8"  # the driver's copy, already UTF-8

    def validate(
        self,
        path: Path,
        spec: DatasetSpec,
        *,
        source: str,
        reference: Reference | None = None,
        now: datetime | None = None,
        processing_day: date | None = None,
        chunk_rows: int = 1_000_000,
        scratch: Path | None = None,
    ) -> Iterator[Chunk]:
        """``validation.validate_path`` on Spark: the same chunks' contents, in record order."""
        from salesflow.engines.spark.read import read_csv, read_json
        from salesflow.engines.spark.validate import SparkValidation, chunks

        now = now or utcnow()
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        with open_text(path, source) as text:
            if text.format not in spec.formats:
                raise FileLevelError(
                    source,
                    f"the file is {text.format.upper()}, but {spec.name} accepts "
                    f"{' or '.join(f.upper() for f in spec.formats)}",
                    rule="structure.format",
                    hint="convert the file, or drop it under the right inbox/<dataset>/",
                )
            day = processing_day or now.date()
            validation = SparkValidation(self.spark, spec, now, day, reference, list(text.warnings))
            with self._split(path.stat().st_size), spark_errors(source):
                if text.format == "csv":
                    uri, encoding = self._uri(text.path, source, bool(text.warnings))
                    data = read_csv(self.spark, text, spec, source, uri, encoding=encoding)
                else:
                    data = read_json(self.spark, text, spec, source)
                    if self.settings.partitions:
                        data.frame = data.frame.repartition(self.settings.partitions)
                yield from chunks(
                    validation, data, chunk_rows=chunk_rows, bucket_uri=self.settings.bucket_uri
                )

    def kpis(
        self, records: RecordStore, days: Collection[date]
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        from salesflow.engines.spark.kpis import kpis

        with spark_errors("KPIs"):
            return kpis(self.spark, records, days)

    def totals(
        self, records: RecordStore, dataset: str, days: Collection[date] | None = None
    ) -> pl.DataFrame:
        from salesflow.engines.spark.kpis import totals

        with spark_errors(f"totals of {dataset}"):
            return totals(self.spark, records, dataset, days)

    def close(self) -> None:
        self.spark.stop()


__all__ = ["SparkEngine"]
