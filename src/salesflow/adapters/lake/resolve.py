"""Who wins: the decision at the heart of a commit, on small frames of row versions.

Every row has a version, ``(_arrived, _seq)``: its file's arrival, then its file's number.
A commit's staged rows meet the visible rows they conflict with, and for each conflict the
newest version stays:

- same ``_key``: the highest version wins. A visible row wins a tie (the same record of the
  same file version, stored already: the staged one is a *duplicate*); a staged row that loses
  to a higher version is *superseded*; a visible row that loses is *replaced*.
- same ``_source``, for the sources a commit replaces whole (a file re-sent under its name):
  every row of that source older than its newest version loses, whatever its key, so lines
  the new version no longer holds disappear, and an old version arriving late adds nothing.

``decide`` only says which rows lose; the lake rewrites the fragments that hold them.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from salesflow.ports import Resolution

__all__ = ["DUPLICATE", "SUPERSEDED", "VERSION_COLUMNS", "Resolution", "decide"]

VERSION_COLUMNS = ["_key", "_arrived", "_seq", "_source"]
"""What ``decide`` needs of each row (plus ``__frag`` and ``__row``, where the row lives)."""

SUPERSEDED = "superseded"
DUPLICATE = "duplicate"


def decide(
    visible: pl.DataFrame,
    staged: pl.DataFrame,
    replace_sources: Mapping[str, tuple[int, int]],
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The losers among ``visible`` (``__frag``, ``__row``) and among ``staged`` (``__frag``,
    ``__row``, ``__kind``: superseded or duplicate). Both inputs have ``VERSION_COLUMNS`` plus
    ``__frag`` and ``__row``."""
    columns = [*VERSION_COLUMNS, "__frag", "__row"]
    rows = pl.concat(
        [
            visible.select(columns).with_columns(pl.lit(True).alias("__vis")),
            staged.select(columns).with_columns(pl.lit(False).alias("__vis")),
        ]
    )
    rows = rows.with_columns(_older_than_source(rows, replace_sources).alias("__by_source"))
    contested = rows.filter(~pl.col("__by_source")).filter(pl.len().over("_key") > 1)
    ranked = contested.sort(
        ["_key", "_arrived", "_seq", "__vis", "__frag", "__row"],
        descending=[False, True, True, True, False, False],
    ).with_columns(
        pl.col("_key").is_first_distinct().alias("__wins"),
        (
            (pl.col("_arrived") == pl.col("_arrived").first().over("_key"))
            & (pl.col("_seq") == pl.col("_seq").first().over("_key"))
        ).alias("__tie"),
    )
    by_key = ranked.filter(~pl.col("__wins"))
    by_source = rows.filter(pl.col("__by_source"))
    visible_losers = (
        pl.concat([by_source.filter("__vis"), by_key.filter("__vis").select(by_source.columns)])
        .select("__frag", "__row")
        .unique()
        .sort("__frag", "__row")
    )
    kind = pl.when("__tie").then(pl.lit(DUPLICATE)).otherwise(pl.lit(SUPERSEDED))
    staged_losers = (
        pl.concat(
            [
                by_source.filter(~pl.col("__vis")).select(
                    "__frag", "__row", pl.lit(SUPERSEDED).alias("__kind")
                ),
                by_key.filter(~pl.col("__vis")).select("__frag", "__row", kind.alias("__kind")),
            ]
        )
        .unique(["__frag", "__row"], keep="first", maintain_order=True)
        .sort("__frag", "__row")
    )
    return visible_losers, staged_losers


def _older_than_source(
    rows: pl.DataFrame, replace_sources: Mapping[str, tuple[int, int]]
) -> pl.Series:
    """Per row: does it belong to a replaced source and predate that source's newest version
    (the newest among the rows here and the version the commit gives)?"""
    if not replace_sources or rows.is_empty():
        return pl.Series([False] * rows.height, dtype=pl.Boolean)
    given = pl.DataFrame(
        {
            "_source": list(replace_sources),
            "_arrived": [int(v[0]) for v in replace_sources.values()],
            "_seq": [int(v[1]) for v in replace_sources.values()],
        },
        schema={"_source": pl.String, "_arrived": pl.Int64, "_seq": pl.Int64},
    )
    mine = rows.select("_source", "_arrived", "_seq").filter(
        pl.col("_source").is_in(given.get_column("_source").implode())
    )
    newest = (
        pl.concat([mine, given])
        .sort("_arrived", "_seq")
        .group_by("_source")
        .agg(pl.col("_arrived").last().alias("__top_a"), pl.col("_seq").last().alias("__top_s"))
    )
    marked = rows.select("_source", "_arrived", "_seq").join(
        newest, on="_source", how="left", maintain_order="left"
    )
    older = (pl.col("_arrived") < pl.col("__top_a")) | (
        (pl.col("_arrived") == pl.col("__top_a")) & (pl.col("_seq") < pl.col("__top_s"))
    )
    return marked.select(older.fill_null(False)).to_series()
