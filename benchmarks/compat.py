"""Run an outside script under a Polars compatibility shim: ``python -m benchmarks.compat S ...``.

``../shared/bench/gen_thelook.py`` builds its fault columns as ``pl.Series(name, array,
dtype=pl.String)`` from NumPy object arrays. Polars 2.1 refuses that at scale 1.0 ("cannot
cast 'Object' type"). The script is run as it is; only ``pl.Series`` is wrapped so that an
object array is handed over as a list, which every Polars version accepts. Its output is the
same: the strings and nulls of the array. ``benchmarks.outside`` uses this only after a
plain run has failed with that error, and says so in the results.
"""

from __future__ import annotations

import runpy
import sys
from typing import Any

import numpy as np
import polars as pl

_Series = pl.Series


class _ListedSeries(_Series):
    """``pl.Series`` that takes a NumPy object array as a list; still a type for isinstance."""

    def __new__(cls, name: Any = None, values: Any = None, *args: Any, **kw: Any) -> Any:
        if isinstance(values, np.ndarray) and values.dtype == object:
            values = values.tolist()
        return _Series(name, values, *args, **kw)


def main(argv: list[str]) -> None:
    script, *rest = argv
    pl.Series = _ListedSeries  # type: ignore[misc]
    sys.argv = [script, *rest]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
