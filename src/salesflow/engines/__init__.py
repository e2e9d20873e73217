"""Where the heavy work runs: validation of a file, and the KPIs and totals of the store.

An :class:`Engine` takes the same specs (``salesflow.datasets``, written in the rule language
of ``salesflow.rules``) and gives the same results on any engine:

- ``polars``: this process, in bounded memory (the default);
- ``spark``: a Spark session, local (``local[*]``) or a cluster (``--spark-master``), for data
  that outgrows one machine. Needs ``pip install "salesflow[spark]"``.

The pipeline asks for the engine of its settings once and calls it::

    engine = engine_for(settings)
    for chunk in engine.validate(path, spec, source=key, reference=ref, now=now, ...):
        ...
    refresh_aggregates(records, tables, dataset, days, engine=engine)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Protocol, cast, runtime_checkable

import polars as pl

from salesflow.config import Settings
from salesflow.datasets.spec import DatasetSpec
from salesflow.errors import SalesflowError
from salesflow.ports import RecordStore
from salesflow.validation.filewide import Reference
from salesflow.validation.report import Chunk


@runtime_checkable
class Engine(Protocol):
    """Validation and aggregation, on some engine. Every method returns Polars frames of the
    same schema whatever the engine (small results, or bounded chunks)."""

    name: str

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
        """Validate the file at ``path`` (object key ``source``) chunk by chunk, in record
        order: ``validation.validate_path``'s contract. Chunks hold at most ``chunk_rows``
        records; valid frames carry ``_record``, ``_key`` and ``_day``."""

    def kpis(
        self, records: RecordStore, days: Collection[date]
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Order KPIs and category KPIs of ``days``, from the current order_items and
        products (``kpis.ORDER_KPIS`` and ``kpis.CATEGORY_KPIS`` schemas)."""

    def totals(
        self, records: RecordStore, dataset: str, days: Collection[date] | None = None
    ) -> pl.DataFrame:
        """Totals of ``dataset`` (``kpis.TOTALS`` schema), only of ``days`` when given."""


def _polars(settings: Settings) -> Engine:
    from salesflow.engines.polars_engine import PolarsEngine

    return PolarsEngine()


def _spark(settings: Settings) -> Engine:
    module = importlib.import_module("salesflow.engines.spark")
    return cast(Engine, module.SparkEngine.from_settings(settings.spark))


ENGINES: dict[str, Callable[[Settings], Engine]] = {"polars": _polars, "spark": _spark}
_BUILT: dict[str, Engine] = {}


def engine_for(settings: Settings) -> Engine:
    """The engine ``settings.engine`` names, built once per process and configuration (a
    Spark session takes seconds to start)."""
    try:
        factory = ENGINES[settings.engine]
    except KeyError:
        raise SalesflowError(
            f"unknown engine {settings.engine!r}", hint=f"choose one of {sorted(ENGINES)}"
        ) from None
    ident = f"{settings.engine}:{settings.spark.model_dump_json()}"
    if ident not in _BUILT:
        _BUILT[ident] = factory(settings)
    return _BUILT[ident]


__all__ = ["ENGINES", "Engine", "engine_for"]
