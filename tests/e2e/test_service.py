"""``salesflow run`` as a real, long-running subprocess.

Each test starts the service on its own data dir, lands files in the inbox the way an upload
does (write a hidden file, rename it into place) and watches the state through the CLI and
the adapters. Time bounds are generous ceilings that catch a service that never reacts, not
benchmarks.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from salesflow.models import FileRecord
from salesflow.samples.generate import generate
from tests.fixtures.cli import Cli, backend_of, drop_file, files_under, wait_for

pytestmark = pytest.mark.subprocess

REACT_SECONDS = 30.0  # generous for a loaded CI machine; polling is set to 60 s
"""Ceiling for the service to notice and process a small file."""


def sale(sale_id: str, price: float, quantity: int = 1) -> str:
    return json.dumps(
        {
            "sale_id": sale_id,
            "product": "Desk",
            "category": "Office",
            "price": price,
            "quantity": quantity,
            "timestamp": "2024-05-04T10:30:00Z",
        }
    )


def lineage(cli: Cli) -> dict[str, FileRecord]:
    with backend_of(cli.data_dir) as backend:
        return {f.key: f for f in backend.tables.list_files()}


def processed(cli: Cli, *keys: str) -> bool:
    """Whether every key has a final lineage row and has left the inbox."""
    rows = lineage(cli)
    inbox = set(files_under(cli.data_dir / "bucket", "inbox"))
    return all(k in rows and rows[k].status.value != "IN_PROGRESS" for k in keys) and not (
        set(keys) & inbox
    )


def status(cli: Cli) -> dict[str, Any]:
    result: dict[str, Any] = cli.json("status")
    return result


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "data")


def inbox(cli: Cli, dataset: str) -> Path:
    return cli.data_dir / "bucket" / "inbox" / dataset


def test_catches_up_on_start_then_sees_new_files_by_filesystem_events(cli: Cli) -> None:
    drop_file(inbox(cli, "sale_events"), "early.json", sale("early-1", 120.0))
    drop_file(inbox(cli, "orders_json"), "early.json", json.dumps({"orders": []}))
    # polling every 60 s: only filesystem events can make the service react within seconds
    with cli.service(env={"SALESFLOW_POLL_SECONDS": "60"}) as svc:
        wait_for(
            lambda: processed(cli, "inbox/sale_events/early.json", "inbox/orders_json/early.json"),
            timeout=30,
            what="the files that landed while the service was down",
        )
        time.sleep(0.5)  # let it settle into waiting
        landed = time.monotonic()
        drop_file(inbox(cli, "sale_events"), "live.json", sale("live-1", 80.0, 2))
        wait_for(
            lambda: processed(cli, "inbox/sale_events/live.json"),
            timeout=REACT_SECONDS,
            what="the service to process a new file",
        )
        took = time.monotonic() - landed
        svc.assert_alive()
        totals = cli.json("totals", "--by", "product", "--dataset", "sale_events")
        info = status(cli)
        assert svc.stop() == 0, svc.stderr
    assert took < REACT_SECONDS
    desk = [t for t in totals if t["id"] == "Desk"]
    assert desk and desk[0]["total_amount"] == pytest.approx(120.0 + 160.0)
    assert info["files"]["SUCCESS"] == 3 and info["valid"] == 2
    assert "early.json" in svc.stdout and "live.json" in svc.stdout


def _thelook(tmp_path: Path, seed: int, rows: int = 30) -> dict[str, Path]:
    files = generate("order_items", rows, tmp_path / f"thelook{seed}", seed=seed).files
    return {p.stem: p for p in files}


def test_trio_waits_for_all_three_then_runs_after_the_quiet_time(cli: Cli, tmp_path: Path) -> None:
    trio = _thelook(tmp_path, seed=1)
    env = {"SALESFLOW_BATCHING__QUIET_SECONDS": "1", "SALESFLOW_BATCHING__MIN_FILES": "10"}
    with cli.service(env=env) as svc:
        drop_file(inbox(cli, "products"), "p.csv", trio["products"].read_bytes())
        drop_file(inbox(cli, "orders"), "o.csv", trio["orders"].read_bytes())
        wait_for(lambda: status(cli)["pending"] == 2, timeout=REACT_SECONDS, what="2 pending")
        time.sleep(2.0)  # twice the quiet time: two of three types must keep waiting
        info = status(cli)
        assert info["pending"] == 2 and sum(info["files"].values()) == 0
        drop_file(inbox(cli, "order_items"), "i.csv", trio["order_items"].read_bytes())
        arrived = datetime.now(UTC)
        keys = [f"inbox/{d}/{n}" for d, n in (("products", "p.csv"), ("orders", "o.csv"))]
        keys.append("inbox/order_items/i.csv")
        wait_for(lambda: processed(cli, *keys), timeout=REACT_SECONDS, what="the batch")
        assert svc.stop() == 0, svc.stderr
    rows = lineage(cli)
    assert [rows[k].status.value for k in keys] == ["SUCCESS"] * 3
    # dependency order, and not before the quiet time had passed since the last arrival
    assert rows[keys[0]].seq < rows[keys[1]].seq < rows[keys[2]].seq
    assert min(r.started_at for r in rows.values()) >= arrived + timedelta(seconds=0.8)
    assert rows[keys[2]].rejected == 0 and rows[keys[2]].valid == 30
    assert status(cli)["pending"] == 0


def test_a_file_that_waited_for_its_batch_runs_once_its_dataset_is_no_longer_batched(
    cli: Cli, tmp_path: Path
) -> None:
    trio = _thelook(tmp_path, seed=5)
    cli.run("ingest", trio["products"], "--dataset", "products")
    cli.run("ingest", trio["orders"], "--dataset", "orders")
    key = "inbox/order_items/i.csv"
    with cli.service() as svc:  # the default rules: a lone order_items file waits for its trio
        drop_file(inbox(cli, "order_items"), "i.csv", trio["order_items"].read_bytes())
        wait_for(lambda: status(cli)["pending"] == 1, timeout=REACT_SECONDS, what="1 pending")
        assert svc.stop() == 0, svc.stderr
    assert key not in lineage(cli)
    # Nothing batched any more: the waiting file runs at once, and the service keeps running.
    with cli.service(env={"SALESFLOW_BATCHING__DATASETS": "[]"}) as svc:
        wait_for(lambda: processed(cli, key), timeout=REACT_SECONDS, what="the waiting file")
        drop_file(inbox(cli, "order_items"), "j.csv", trio["order_items"].read_bytes())
        later = "inbox/order_items/j.csv"
        wait_for(lambda: processed(cli, later), timeout=REACT_SECONDS, what="a later file")
        assert svc.stop() == 0, svc.stderr
    rows = lineage(cli)
    assert rows[key].status.value == "SUCCESS" and rows[key].valid == 30
    assert rows[later].status.value in {"SUCCESS", "DUPLICATE"}
    assert status(cli)["pending"] == 0


def test_ten_waiting_batch_files_run_at_once(cli: Cli, tmp_path: Path) -> None:
    trios = [_thelook(tmp_path, seed=s, rows=10) for s in (1, 2, 3, 4)]
    files = [(name, trio[name]) for trio in trios[:3] for name in trio]
    files.append(("products", trios[3]["products"]))  # the tenth
    env = {"SALESFLOW_BATCHING__QUIET_SECONDS": "3600"}
    with cli.service(env=env) as svc:
        for n, (dataset, path) in enumerate(files[:9]):
            drop_file(inbox(cli, dataset), f"f{n}.csv", path.read_bytes())
        wait_for(lambda: status(cli)["pending"] == 9, timeout=REACT_SECONDS, what="9 pending")
        time.sleep(1.0)
        assert sum(status(cli)["files"].values()) == 0  # 9 < 10, no timer: still waiting
        dataset, path = files[9]
        drop_file(inbox(cli, dataset), "f9.csv", path.read_bytes())
        keys = [f"inbox/{d}/f{n}.csv" for n, (d, _) in enumerate(files)]
        wait_for(lambda: processed(cli, *keys), timeout=REACT_SECONDS, what="10 files")
        assert svc.stop() == 0, svc.stderr
    info = status(cli)
    assert info["pending"] == 0 and info["files"]["SUCCESS"] == 10


def test_sigterm_stops_between_files_and_leaves_a_consistent_state(
    cli: Cli, tmp_path: Path
) -> None:
    """The service's promise: SIGTERM stops it between files, not after the whole backlog."""
    files = [
        p
        for s in range(1, 6)
        for p in generate("sale_events", 5000, tmp_path / f"s{s}", seed=s).files
    ]
    env = {"SALESFLOW_ALERTS__THRESHOLD": "1e12"}  # no alerts: only files take time
    for n, path in enumerate(files):
        drop_file(inbox(cli, "sale_events"), f"big{n}.jsonl", path.read_bytes())
    with cli.service(env=env) as svc:
        wait_for(lambda: lineage(cli), timeout=30, interval=0.05, what="a file to start")
        svc.proc.terminate()
        code = svc.wait(timeout=60)
    assert code == 0, svc.stderr
    assert "Traceback" not in svc.stderr
    rows = lineage(cli)
    assert all(r.status.value == "SUCCESS" for r in rows.values())  # the file in hand finished
    left = files_under(cli.data_dir / "bucket", "inbox")
    assert len(left) + len(rows) == len(files)
    assert left, f"SIGTERM waited for the whole backlog: {len(rows)} files processed"
    assert cli.run("audit", code=None).returncode == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Hooks(http.server.BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.received.append((dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


def test_failing_webhook_does_not_block_ingestion_and_the_alert_is_retried(cli: Cli) -> None:
    webhook_port = _free_port()  # nothing listens there until the test starts a receiver
    env = {
        "SALESFLOW_ALERTS__SINKS": '["jsonl", "webhook"]',
        "SALESFLOW_ALERTS__WEBHOOK_URL": f"http://127.0.0.1:{webhook_port}/hook",
        "SALESFLOW_ALERTS__WEBHOOK_TIMEOUT": "1",
        "SALESFLOW_ALERTS__MAX_ATTEMPTS": "1000",
    }
    handler = type("Hooks", (_Hooks,), {"received": []})
    with cli.service(env=env) as svc:
        drop_file(inbox(cli, "sale_events"), "vip.json", sale("vip-7", 900.0))
        drop_file(inbox(cli, "sale_events"), "small.json", sale("small-1", 20.0))
        wait_for(
            lambda: processed(cli, "inbox/sale_events/vip.json", "inbox/sale_events/small.json"),
            timeout=REACT_SECONDS,
            what="ingestion while the webhook is down",
        )

        def hook_alert() -> dict[str, Any] | None:
            alerts = cli.json("alerts", env=env)
            return next((a for a in alerts if a["id"].endswith("@webhook")), None)

        first = wait_for(
            lambda: (a := hook_alert()) and a["attempts"] >= 2 and a,
            timeout=30,
            what="the webhook alert to be retried",
        )
        assert first["status"] == "PENDING" and first["error"]
        server = http.server.ThreadingHTTPServer(("127.0.0.1", webhook_port), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            sent = wait_for(
                lambda: (a := hook_alert()) and a["status"] == "SENT" and a,
                timeout=30,
                what="the webhook alert to be delivered once the receiver is up",
            )
        finally:
            server.shutdown()
            server.server_close()
        assert svc.stop() == 0, svc.stderr
    assert sent["record_key"] == "vip-7"
    assert len(handler.received) == 1
    headers, body = handler.received[0]
    assert "vip-7" in body.decode()
    assert {k.lower(): v for k, v in headers.items()}.get("idempotency-key") == sent["id"]
    jsonl_ids = [
        json.loads(x)["id"] for x in (cli.data_dir / "alerts.jsonl").read_text().splitlines()
    ]
    assert jsonl_ids == ["sale_events:vip-7@jsonl"]


def test_live_feed_from_generate_stream_is_stored(cli: Cli) -> None:
    with cli.service() as svc:
        feed = cli.run(
            "generate",
            "sale_events",
            "--stream",
            "--every",
            "0.1s",
            "--count",
            "5",
            "--data-dir",
            cli.data_dir,
            timeout=60,
        )
        assert feed.stdout.count("sale ") == 5

        def stored() -> int:
            with backend_of(cli.data_dir) as backend:
                return backend.records.read("sale_events").height

        wait_for(lambda: stored() == 5, timeout=REACT_SECONDS, what="5 stored sales")
        assert svc.stop() == 0, svc.stderr
    info = status(cli)
    assert info["files"]["SUCCESS"] == 5 and info["valid"] == 5 and info["rejected"] == 0


def _watching(cli: Cli, folder: Path, name: str = "old-1") -> None:
    """Land a file last modified an hour ago and wait until the service took it: it has
    started watching, and has listed everything that landed before."""
    old = drop_file(folder, f"{name}.json", sale(name, 10.0))
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    wait_for(lambda: processed(cli, f"inbox/sale_events/{name}.json"), timeout=REACT_SECONDS)


def test_a_file_its_writer_finished_is_taken_without_waiting_to_settle(cli: Cli) -> None:
    """With a settle time of ten minutes, a file renamed in or closed after writing is taken
    within seconds; one still open for writing waits, and is taken once closed."""
    folder = inbox(cli, "sale_events")
    env = {"SALESFLOW_SETTLE_SECONDS": "600", "SALESFLOW_POLL_SECONDS": "60"}
    with cli.service(env=env) as svc:
        _watching(cli, folder)
        with (folder / "open.jsonl").open("w") as writer:
            writer.write(sale("open-1", 10.0) + "\n")
            writer.flush()
            drop_file(folder, "renamed.json", sale("renamed-1", 10.0))
            wait_for(
                lambda: processed(cli, "inbox/sale_events/renamed.json"), timeout=REACT_SECONDS
            )
            assert "inbox/sale_events/open.jsonl" not in lineage(cli)  # still open: it waits
            (folder / "copied.json").write_text(sale("copied-1", 10.0))  # written whole, closed
            wait_for(lambda: processed(cli, "inbox/sale_events/copied.json"), timeout=REACT_SECONDS)
            outside = cli.data_dir.parent / "outside.json"  # renamed in from outside the inbox
            outside.write_text(sale("outside-1", 10.0))
            outside.replace(folder / "outside.json")
            wait_for(
                lambda: processed(cli, "inbox/sale_events/outside.json"), timeout=REACT_SECONDS
            )
            assert "inbox/sale_events/open.jsonl" not in lineage(cli)
            writer.write(sale("open-2", 10.0) + "\n")
            writer.close()
            wait_for(lambda: processed(cli, "inbox/sale_events/open.jsonl"), timeout=REACT_SECONDS)
        assert svc.stop() == 0, svc.stderr
    assert lineage(cli)["inbox/sale_events/open.jsonl"].valid == 2


def test_a_writer_that_may_append_later_can_turn_event_settling_off(cli: Cli) -> None:
    """``settle_on_events = false``: a file renamed in still waits out the settle time, while
    one last modified long ago is taken on the same pass."""
    folder = inbox(cli, "sale_events")
    env = {"SALESFLOW_SETTLE_SECONDS": "600", "SALESFLOW_SETTLE_ON_EVENTS": "false"}
    with cli.service(env=env) as svc:
        _watching(cli, folder)
        drop_file(folder, "renamed.json", sale("renamed-1", 10.0))
        _watching(cli, folder, "old-2")
        assert svc.stop() == 0, svc.stderr
    assert "inbox/sale_events/renamed.json" not in lineage(cli)
    assert (folder / "renamed.json").exists()
