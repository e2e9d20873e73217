"""Alert delivery against a bad sink: what it costs ingestion, and how soon it recovers.

Run: ``.venv/bin/python -m benchmarks.alerts`` (a few tens of seconds; loopback only). The
numbers go to stdout and ``benchmarks/results/alerts.json``.

Three measurements, each with 10 high-value sales in one file and the sinks jsonl + webhook:

- ``ingest_hanging``: wall time of ``inbox.ingest`` while the webhook accepts the request and
  never answers (default ``webhook_timeout`` 5 s, ``ingest_budget_seconds`` 3 s). Before this
  change delivery ran in line, one timeout per alert: 10 alerts took 51 s.
- ``service_next_file``: ``salesflow run`` (in a thread) processes a first file whose webhook
  alert hangs, then a second file lands; the time from the second drop to its SUCCESS row,
  against the same with no webhook at all. Before: the next file waited 47 s.
- ``outage_500``: the webhook answers 500 for 5 s, then 200. Time from recovery until all 10
  webhook alerts are SENT, and how many requests the receiver saw during the outage (the old
  code sent each alert 5 times, 1 s apart, then gave up for good).
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from salesflow.adapters import build_backend
from salesflow.config import Settings
from salesflow.models import AlertStatus, FileStatus
from salesflow.pipeline.inbox import ingest

SALES = 10


class Receiver:
    """A loopback webhook: ``mode`` is "hang", "ok", or an HTTP status to answer."""

    def __init__(self) -> None:
        self.mode: str | int = "ok"
        self.requests = 0
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests += 1
                if receiver.mode == "hang":
                    receiver.release.wait(120)
                status = receiver.mode if isinstance(receiver.mode, int) else 200
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def sales(prefix: str) -> str:
    return "\n".join(
        json.dumps(
            {
                "sale_id": f"{prefix}-{n}",
                "product": "Desk",
                "category": "Office",
                "price": 900.0,
                "quantity": 1,
                "timestamp": "2024-05-04T10:30:00Z",
            }
        )
        for n in range(SALES)
    )


def settings(folder: Path, url: str | None) -> Settings:
    sinks = ["jsonl", "webhook"] if url else ["jsonl"]
    return Settings(data_dir=folder, alerts={"sinks": sinks, "webhook_url": url})


def wait(predicate: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.01)


def ingest_hanging(folder: Path) -> float:
    receiver = Receiver()
    receiver.mode = "hang"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sales.jsonl"
    path.write_text(sales("h"))
    config = settings(folder / "data", receiver.url)
    backend = build_backend(config)
    try:
        started = time.perf_counter()
        ingest(backend, config, [path], dataset="sale_events")
        return time.perf_counter() - started
    finally:
        backend.close()
        receiver.close()


@contextmanager
def service(config: Settings) -> Iterator[None]:
    from salesflow.entrypoints.service import serve

    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(config,), kwargs={"stop": stop}, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)


def drop(config: Settings, name: str, body: str) -> None:
    inbox = config.bucket_dir / "inbox" / "sale_events"
    inbox.mkdir(parents=True, exist_ok=True)
    tmp = inbox / f".{name}.part"
    tmp.write_text(body)
    tmp.replace(inbox / name)


def succeeded(config: Settings, key: str) -> bool:
    backend = build_backend(settings(config.data_dir, None))
    try:
        rows = backend.tables.list_files(key=key)
    finally:
        backend.close()
    return any(row.status == FileStatus.SUCCESS for row in rows)


def next_file_latency(folder: Path, *, hanging: bool) -> float:
    receiver = Receiver()
    receiver.mode = "hang"
    config = settings(folder, receiver.url if hanging else None)
    try:
        with service(config):
            drop(config, "first.json", sales("a"))
            if hanging:
                wait(lambda: receiver.requests >= 1)
            else:
                wait(lambda: succeeded(config, "inbox/sale_events/first.json"))
            started = time.perf_counter()
            drop(config, "second.json", sales("b"))
            wait(lambda: succeeded(config, "inbox/sale_events/second.json"))
            took = time.perf_counter() - started
            receiver.release.set()
        return took
    finally:
        receiver.close()


def outage_500(folder: Path) -> dict[str, float]:
    receiver = Receiver()
    receiver.mode = 500
    config = settings(folder, receiver.url)
    backend = build_backend(settings(folder, None))

    def all_sent() -> bool:
        hooks = [a for a in backend.tables.list_alerts() if a.sink == "webhook"]
        return len(hooks) == SALES and all(a.status == AlertStatus.SENT for a in hooks)

    try:
        with service(config):
            drop(config, "outage.json", sales("o"))
            wait(lambda: receiver.requests >= 1)
            time.sleep(5.0)  # the outage being measured
            during = receiver.requests
            receiver.mode = "ok"
            recovered = time.perf_counter()
            wait(all_sent, timeout=600)
            took = time.perf_counter() - recovered
        attempts = sum(a.attempts for a in backend.tables.list_alerts() if a.sink == "webhook")
        return {"requests_during_outage": during, "recovered_in_s": took, "attempts": attempts}
    finally:
        backend.close()
        receiver.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        results = {
            "ingest_hanging_s": ingest_hanging(root / "ingest"),
            "next_file_with_hanging_webhook_s": next_file_latency(root / "hang", hanging=True),
            "next_file_without_webhook_s": next_file_latency(root / "plain", hanging=False),
            "outage_500": outage_500(root / "outage"),
        }
    text = json.dumps(results, indent=2)
    print(text)
    (Path(__file__).parent / "results" / "alerts.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
