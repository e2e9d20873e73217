"""The lake: current-state Parquet over any ObjectStore, with its Catalog of fragments."""
