"""The lake: current-state Parquet over any ObjectStore, with its Catalog of fragments.

``ParquetLake`` is the record store; ``Staging`` streams one commit's rows; ``Resolution`` is
what a commit replaced; ``Compaction`` what a compaction merged.
"""

from salesflow.adapters.lake.compaction import Compaction
from salesflow.adapters.lake.lake import ParquetLake
from salesflow.adapters.lake.resolve import Resolution
from salesflow.adapters.lake.staging import Staging

Lake = ParquetLake

__all__ = ["Compaction", "Lake", "ParquetLake", "Resolution", "Staging"]
