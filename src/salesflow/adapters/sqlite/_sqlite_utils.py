"""sqlite-utils, imported when first needed and without its optional pandas hook.

Only schema creation and upserts use sqlite-utils; a read-only command (``salesflow kpis``
on an existing data dir) never imports it, nor the NumPy it pulls in. When it is imported,
pandas is hidden: sqlite-utils imports pandas wherever it is installed, only to map
``pandas.Timestamp`` values to TEXT columns; salesflow never hands it pandas objects, and
that import alone cost about 0.5 s of every command's start-up (``salesflow kpis`` took
1.3 s, nearly all of it imports). pandas is importable again right after for anyone else.
"""

from __future__ import annotations

import sys
from types import ModuleType


def sqlite_utils() -> ModuleType:
    """The ``sqlite_utils`` module."""
    if "sqlite_utils" in sys.modules or "pandas" in sys.modules:
        import sqlite_utils as module

        return module
    sys.modules["pandas"] = None  # type: ignore[assignment]  # makes `import pandas` fail
    try:
        import sqlite_utils as module
    finally:
        del sys.modules["pandas"]
    return module
