"""One definition of the rules, two engines.

``expr`` is the language specs write rules, amounts and KPIs in; ``to_polars`` compiles it
for the Polars engine and ``to_spark`` (imported only with the ``spark`` extra) for Spark.
"""

from salesflow.rules.expr import (
    Expr,
    col,
    concat,
    count,
    lit,
    n_unique,
    text,
    total,
    when,
)
from salesflow.rules.to_polars import to_polars

__all__ = [
    "Expr",
    "col",
    "concat",
    "count",
    "lit",
    "n_unique",
    "text",
    "to_polars",
    "total",
    "when",
]
