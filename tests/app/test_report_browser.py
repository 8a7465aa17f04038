"""The report in a real headless browser: the Debian `chromium` driven by Playwright's Python API.

Skipped, with what to install, where either is missing (never passed silently); .ci/run installs
both. The screenshot is kept in the test's tmp folder and, where LTBENCH_TEST_ARTIFACTS names a
folder (CI sets test-artifacts/), copied there.
"""
import os
import shutil
from pathlib import Path

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


@pytest.fixture(scope="session")
def chromium():
    """(sync_playwright, the browser's path), or a skip saying what to install; checked before the
    records are made, so a machine without a browser spends nothing on this test."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("needs Playwright: pip install playwright (or pip install -e '.[test]'); "
                    "`playwright install` is not needed, the system chromium is used")
    executable = next((shutil.which(name) for name in BROWSERS if shutil.which(name)), None)
    if executable is None:
        pytest.skip("needs a Chromium browser on PATH: apt-get install chromium (Debian/Ubuntu)")
    return sync_playwright, executable


def _column_texts(page, column):
    return page.eval_on_selector_all(f"#leaderboard tbody tr td:nth-child({column})",
                                     "cells => cells.map(cell => cell.textContent.trim())")


@pytest.mark.browser
def test_the_report_renders_sorts_and_links_in_chromium(chromium, quickstart_results, digits_reported, run_cli, tmp_path):
    sync_playwright, executable = chromium
    site = tmp_path / "site"
    code, _, err = run_cli("report", "--results", quickstart_results, "--out", site, "--reported", digits_reported)
    assert code == 0, err
    problems = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1000})
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("request", lambda request: problems.append(f"fetched {request.url}")
                    if not request.url.startswith(("file:", "data:")) else None)

            page.goto((site / "index.html").as_uri())
            page.click("a[href='digits_lt/index.html']")
            page.wait_for_selector("#leaderboard")
            headers = page.eval_on_selector_all("#leaderboard thead th", "cells => cells.map(c => c.textContent.trim())")
            assert headers[:8] == ["Method", "Backbone", "Split", "Seeds", "Many", "Medium", "Few", "Overall"]
            assert "Reported" in headers
            assert sorted(_column_texts(page, 1)) == ["linear_probe", "zeroshot_clip"]
            assert "42.5 (T)" in _column_texts(page, headers.index("Reported") + 1)

            overall = headers.index("Overall") + 1
            for order in ("ascending", "descending"):
                page.click(f"#leaderboard thead th:nth-child({overall})")
                assert page.get_attribute(f"#leaderboard thead th:nth-child({overall})", "aria-sort") == order
                values = [float(text) for text in _column_texts(page, overall)]
                assert values == sorted(values, reverse=order == "descending")
            assert _column_texts(page, 1)[0] == "linear_probe"  # the better run first, descending
            page.click("#leaderboard thead th:nth-child(1)")
            assert _column_texts(page, 1) == ["linear_probe", "zeroshot_clip"]

            images = page.eval_on_selector_all(".figures img", "imgs => imgs.map(i => i.complete && i.naturalWidth)")
            assert len(images) == 5 and all(images), "a figure did not render"  # plots.KINDS: one figure each
            screenshot = tmp_path / "report-digits_lt.png"
            page.screenshot(path=str(screenshot), full_page=True)

            page.click("#leaderboard tbody tr:first-child a.run-link")
            page.wait_for_selector("#per-class")
            assert page.inner_text("h1") == "linear_probe on digits_lt (seed 0)"
            assert page.eval_on_selector_all("#per-class tbody tr", "rows => rows.length") == 10
        finally:
            browser.close()
    assert screenshot.stat().st_size > 10_000
    artifacts = os.environ.get("LTBENCH_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(artifacts) / screenshot.name)
    assert problems == [], f"console errors or network requests: {problems}"
