"""sqlite-utils, imported without its optional pandas hook.

sqlite-utils imports pandas when it is installed, only to map ``pandas.Timestamp`` values
to TEXT columns. salesflow never hands it pandas objects, and that import alone cost about
0.5 s of every command's start-up (``salesflow kpis`` took 1.3 s, nearly all of it imports)
wherever pandas happens to be installed. The import is made with pandas hidden, and pandas
is importable again right after for anyone else.
"""

from __future__ import annotations

import sys

if "pandas" in sys.modules or "sqlite_utils" in sys.modules:
    import sqlite_utils
else:
    sys.modules["pandas"] = None  # type: ignore[assignment]  # makes `import pandas` fail
    try:
        import sqlite_utils
    finally:
        del sys.modules["pandas"]

__all__ = ["sqlite_utils"]
