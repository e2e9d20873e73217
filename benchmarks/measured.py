"""Run a process and measure it: wall, CPU and peak RSS, the last clean of the runner's own.

Linux keeps a process's peak RSS across ``execve``: a child that the runner spawns starts
with the runner's high-water mark (the exec records the peak of the memory it replaces,
which a ``vfork``-ed child shares with its parent). A runner that once held 5.6 GB (it had
generated the 20M-row files) saw every child "peak" at 5.6 GB. So the measured command is
started by a small launcher, a fresh interpreter whose own peak is ~10 MB, which waits for
it with ``wait4`` and hands its figures back.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

_LAUNCH = """\
import json, os, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
with open(sys.argv[1], "w") as out:
    json.dump([os.waitstatus_to_exitcode(status), usage.ru_maxrss,
               usage.ru_utime + usage.ru_stime], out)
"""


@dataclass(frozen=True)
class Measured:
    code: int
    wall_s: float
    peak_rss_mb: float
    """MiB (``ru_maxrss`` is in KiB on Linux)."""
    cpu_s: float


def run(
    args: list[str],
    *,
    cwd: Path | None = None,
    stdout: IO[Any] | int | None = None,
    stderr: IO[Any] | int | None = None,
) -> Measured:
    """Run ``args`` to the end and measure it (its own figures, not the caller's)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        figures = Path(handle.name)
    try:
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", _LAUNCH, str(figures), *args],
            cwd=cwd,
            stdout=stdout,
            stderr=stderr,
            check=True,
        )
        wall = time.perf_counter() - started
        code, maxrss, cpu = json.loads(figures.read_text())
    finally:
        figures.unlink(missing_ok=True)
    return Measured(int(code), wall, maxrss / 1024, float(cpu))
