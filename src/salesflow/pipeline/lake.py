"""The curated lake's layout: records of one chunk split into monthly Parquet fragments."""

from __future__ import annotations

import polars as pl

from salesflow.layout import lake_key


def lake_fragments(
    dataset: str, seq: int, part: int, frame: pl.DataFrame
) -> tuple[pl.DataFrame, dict[str, pl.DataFrame]]:
    """The chunk with ``_key``/``_seq``/``_day`` normalised, and its rows by lake key
    (``lake/<dataset>/year=YYYY/month=MM/part-<seq>-<part>.parquet``; no day: year 0000).

    Every record store writes the same fragments, so the lake reads the same on any backend.
    """
    missing = {"_key", "_day"} - set(frame.columns)
    if missing:
        raise ValueError(f"records of {dataset!r} lack the columns {sorted(missing)}")
    frame = frame.with_columns(
        pl.col("_key").cast(pl.String),
        pl.lit(seq, dtype=pl.Int64).alias("_seq"),
        pl.col("_day").cast(pl.Date),
    )
    months = frame.with_columns(
        pl.col("_day").dt.year().fill_null(0).alias("__y"),
        pl.col("_day").dt.month().fill_null(0).alias("__m"),
    ).partition_by(["__y", "__m"], as_dict=True, include_key=False, maintain_order=True)
    fragments = {
        lake_key(dataset, int(y), int(m), seq, part): rows
        for (y, m), rows in sorted(months.items())
    }
    return frame, fragments
