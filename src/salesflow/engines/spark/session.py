"""The Spark session salesflow runs on: UTC, ANSI, quiet, one per process.

``local[*]`` by default; ``--spark-master`` / ``SALESFLOW_SPARK__MASTER`` names a cluster
(``spark://host:7077``, ``yarn``). Under ``spark-submit``, EMR Serverless or Glue a session
already exists and is reused as it is (only the time zone is set: every timestamp is UTC).
Nothing here downloads a jar: the lake is plain Parquet, which the pyspark wheel reads.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING

from salesflow.config import SparkSettings
from salesflow.errors import MissingDependencyError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def import_pyspark() -> None:
    """Import pyspark, or say which extra brings it."""
    try:
        with warnings.catch_warnings():
            # pyspark warns about pandas >= 3 at import; salesflow never goes through pandas.
            warnings.filterwarnings("ignore", message="PySpark does not yet fully support")
            importlib.import_module("pyspark.sql")
    except ImportError as exc:
        raise MissingDependencyError("spark", "pyspark") from exc


def spark_session(settings: SparkSettings) -> SparkSession:
    """The process's Spark session, created from ``settings`` if there is none yet."""
    import_pyspark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        active.conf.set("spark.sql.session.timeZone", "UTC")
        return active
    builder = (
        SparkSession.builder.master(settings.master)
        .appName(settings.app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.ansi.enabled", "true")
        .config("spark.sql.shuffle.partitions", str(settings.shuffle_partitions))
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.log.level", settings.log_level)
    )
    if settings.master.startswith("local"):
        builder = builder.config("spark.ui.enabled", "false")
    for key, value in settings.conf.items():
        builder = builder.config(key, value)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support")
        return builder.getOrCreate()
