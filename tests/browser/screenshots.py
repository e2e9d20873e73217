"""Screenshots of the dashboard's pages for the README: ``make screenshots`` (or
``python -m tests.browser.screenshots docs``).

Runs ``salesflow demo`` into a temporary data dir, serves it with ``salesflow ui``, and saves
one PNG per page, in the same headless Chromium the browser tests use.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, dashboard
from tests.fixtures.cli import Cli

PAGES = (
    ("/", "ui-dashboard.png", 1400, 1500),
    ("/files", "ui-files.png", 1720, 760),
    ("/dlq?dataset=orders_json", "ui-dlq.png", 1400, 1100),
)


def _wait_for_a_batch(cli: Cli, tmp: Path) -> None:
    """Two thelook files in the inbox, noticed by one service tick: the batch waits."""
    from salesflow.pipeline.inbox import tick
    from salesflow.samples.generate import generate
    from tests.fixtures.cli import backend_of, settings_of

    inbox = cli.data_dir / "bucket" / "inbox"
    for path in generate("order_items", 50, tmp / "later", seed=11).files[:2]:
        (inbox / path.stem).mkdir(parents=True, exist_ok=True)
        (inbox / path.stem / f"2024-06-02-{path.name}").write_bytes(path.read_bytes())
    with backend_of(cli.data_dir) as backend:
        tick(backend, settings_of(cli.data_dir))


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cli = Cli(Path(tmp) / "data")
        cli.run("demo", "--data-dir", cli.data_dir, "--rows", "3000", timeout=600)
        broken = Path(tmp) / "late-orders.json"
        broken.write_text('{"orders": [{"order-info": ')
        cli.run("ingest", "--dataset", "orders_json", broken, code=None)
        _wait_for_a_batch(cli, Path(tmp))
        with dashboard(cli) as ui, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            for path, name, width, height in PAGES:
                page = browser.new_page(viewport={"width": width, "height": height})
                page.goto(ui.at(path))
                page.wait_for_load_state("networkidle")
                page.screenshot(path=str(out / name))
                print(f"wrote {out / name}")
            browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs"))
