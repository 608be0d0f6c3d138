"""The report page in headless Chromium (Debian's, driven by playwright): the lift table shows.

Opens the HTML a closed-loop backtest wrote, as a marketer would from disk, and
checks what a person sees: the lift table is visible with the holdout rule and
its interval, the SVG plots are drawn. Keeps a screenshot at docs/report.png.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.dashboards.report.test_end_to_end import backtest
from tests.simulators.test_closed_loop import HOLDOUT_RULE

CHROMIUM = "/usr/bin/chromium"
SCREENSHOT = Path(__file__).resolve().parents[3] / "docs" / "report.png"

pytestmark = pytest.mark.integration


def test_the_report_page_shows_the_lift_table(tmp_path: Path) -> None:
    html, _ = backtest(tmp_path)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(html.as_uri())
            lift = page.locator("table#lift")
            lift.wait_for(state="visible", timeout=5000)
            row = lift.locator("tr", has_text=HOLDOUT_RULE).first
            assert row.is_visible()
            cells = row.locator("td").all_inner_texts()
            assert " pp to " in cells[-1], cells  # the 95% interval
            assert page.locator("table#rules tr").count() > 10
            assert (
                page.locator("svg[aria-label='holdout lift with 95% intervals'] circle").count()
                == 1
            )
            assert page.locator("svg").first.bounding_box() is not None
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    SCREENSHOT.parent.mkdir(exist_ok=True)
    shutil.copyfile(shot, SCREENSHOT)
