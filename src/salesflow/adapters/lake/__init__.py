"""The lake: current-state Parquet over any ObjectStore, with its Catalog of fragments.

``ParquetLake`` is the record store (the ``Lake`` port of ``salesflow.ports``); ``Staging``
streams one commit's rows; ``Resolution`` is what a commit replaced; ``Compaction`` what a
compaction merged.
"""

from salesflow.adapters.lake.compaction import Compaction
from salesflow.adapters.lake.lake import ParquetLake
from salesflow.adapters.lake.resolve import Resolution
from salesflow.adapters.lake.staging import Staging
from salesflow.ports import Lake


def as_port(lake: ParquetLake) -> Lake:
    """``lake`` as the ``Lake`` port (mypy checks here that it keeps the port's shape)."""
    return lake


__all__ = ["Compaction", "ParquetLake", "Resolution", "Staging", "as_port"]
