"""One measurement in a fresh process: ``python -m benchmarks.worker APPROACH FOLDER ...``.

A fresh interpreter per measurement keeps runs independent (no warm caches, no memory
left over from the previous approach), so the parent's ``wait4`` rusage gives the peak RSS
of exactly this approach. The outcome is written as JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import resource
from datetime import datetime
from pathlib import Path

from benchmarks.approaches import APPROACHES
from benchmarks.data import Inputs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("approach", choices=sorted(APPROACHES))
    parser.add_argument("folder", type=Path, help="folder with the three CSV files")
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--now", required=True, help="ISO time that bounds future dates")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    outcome = APPROACHES[args.approach](
        Inputs(args.rows, args.folder), datetime.fromisoformat(args.now), args.workdir
    )
    outcome["self_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    args.out.write_text(json.dumps(outcome))


if __name__ == "__main__":
    main()
