"""The file sink: one JSON line per alert, appended and fsynced."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from salesflow.adapters.alerts.errors import SinkError
from salesflow.models import Alert


class JsonlNotifier:
    """Appends each alert as one JSON line to ``path``.

    One ``write`` of a whole line to a file opened with ``O_APPEND`` keeps lines from several
    processes whole; the ``fsync`` makes a line that was reported sent survive a crash.
    """

    name = "jsonl"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def send(self, alert: Alert) -> None:
        line = (json.dumps(alert.to_dict(), ensure_ascii=False) + "\n").encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, line)
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as exc:
            raise SinkError(self.name, alert.id, f"cannot append to {self.path}: {exc}") from exc
