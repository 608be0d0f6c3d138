#!/usr/bin/env python3
"""Refresh docs/floor-page.png: run the live demo briefly and photograph its floor page.

    .venv/bin/python scripts/floor_screenshot.py [--out docs/floor-page.png] [--wait 40]

Starts ``floorwalker demo`` in-process (its own Mosquitto and Redis on free
loopback ports), waits until the floor is busy and an alert is open, then
takes a full-page screenshot in Debian's headless chromium (playwright).
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from floorwalker import services
from floorwalker.dashboards.demo import DemoSettings, run_demo

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "floor-page.png")
    parser.add_argument("--wait", type=float, default=40.0, help="seconds of demo before the shot")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="floorwalker-shot-") as tmp:
        workdir = Path(tmp)
        out = io.StringIO()
        settings = DemoSettings(
            minutes=(args.wait + 60) / 60, shoppers=400, speed=4.0, workdir=workdir, live=False
        )
        demo = threading.Thread(target=run_demo, args=(settings,), kwargs={"out": out}, daemon=True)
        demo.start()
        deadline = time.monotonic() + 60
        while (found := re.search(r"page     (http://\S+/)", out.getvalue())) is None:
            if time.monotonic() > deadline or not demo.is_alive():
                print(out.getvalue(), file=sys.stderr)
                return 1
            time.sleep(0.2)
        url = found[1]
        secret = (workdir / "http-token").read_text(encoding="utf-8").strip()
        time.sleep(args.wait)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=services.find_binary("chromium"),
                args=["--no-sandbox", "--disable-dev-shm-usage"],
            )
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{url}?token={secret}")
            page.wait_for_selector("#live:text('live')", timeout=10_000)
            page.wait_for_selector("#alerts li.open", timeout=60_000)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(args.out), full_page=True)
            browser.close()
        print(f"wrote {args.out}")
        demo.join(timeout=120)  # the demo ends after its minutes and stops its servers
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
