"""Local files to ingest: the files given, and every file below the folders given."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from salesflow import layout


def files_below(paths: Iterable[Path]) -> list[Path]:
    """Each path that is a file, and every file below each folder (recursively, in name
    order), skipping what the inbox skips: dotfiles, dot folders and temporary names
    (``.part``, ``.tmp``, ``~``...). Symlinked folders are not followed."""
    found: list[Path] = []
    for path in paths:
        if not path.is_dir():
            found.append(path)
            continue
        below: list[Path] = []
        for folder, dirs, names in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in names:
                full = Path(folder) / name
                if not layout.is_temporary(full.relative_to(path).as_posix()):
                    below.append(full)
        found.extend(sorted(below))
    return found
