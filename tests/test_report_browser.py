"""The report in a real browser: Debian's headless Chromium (installed by
compose/chromium/install.sh when missing) opens the file with every network request
blocked; no console error, every section drawn with titled charts, the headline figures
equal DuckDB's sums of the output tables, a legend click and a hover work, and a
screenshot is saved (GPULEDGER_REPORT_SCREENSHOT=path also copies it there)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from report_browser import browser, console_errors, network_requests, open_report
from report_data import config, independent_sums, outputs
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

from gpuledger.report import report

SECTIONS = ("headline", "idle", "utilization", "buffers", "latency", "forgotten", "quality")


@pytest.fixture(scope="session")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    data = outputs(tmp_path_factory)
    out = tmp_path_factory.mktemp("report") / "report.html"
    report([data["full"]], out=out, config=config())
    return data["full"], out


def test_report_in_headless_chromium(page: tuple[Path, Path], tmp_path: Path) -> None:
    data, html = page
    with browser() as drv:
        ready_s = open_report(drv, html)
        assert ready_s < 10

        assert console_errors(drv) == []
        assert network_requests(drv) == []

        for key in SECTIONS:
            section = drv.find_element(By.CSS_SELECTOR, f'section[data-section="{key}"]')
            assert section.find_element(By.TAG_NAME, "h2").text.strip(), key
            charts = section.find_elements(By.CSS_SELECTOR, "div.chart")
            assert charts, f"section {key} has no chart"
            for chart in charts:
                assert chart.find_elements(By.CSS_SELECTOR, "svg.main-svg"), key
                title = chart.find_element(By.CSS_SELECTOR, ".gtitle").text
                assert len(title) > 10, (key, title)
                drawn = chart.find_elements(
                    By.CSS_SELECTOR, "g.trace, g.hm, image, g.barlayer path, g.scatterlayer path"
                )
                assert drawn, f"section {key}: chart {title!r} drew nothing"
            assert "not in the input" not in section.text, key

        want = independent_sums(data)
        for key, value in want.items():
            shown = drv.find_element(By.CSS_SELECTOR, f'.figure[data-key="{key}"]').text
            assert shown == f"${value:,.2f}", key

        drv.execute_script("window.scrollTo(0, 0)")
        height = int(drv.execute_script("return document.body.scrollHeight"))
        drv.set_window_size(1400, height)
        shot = tmp_path / "report.png"
        assert drv.save_screenshot(str(shot))
        assert shot.stat().st_size > 50_000

        # A legend click hides a team's area.
        idle_chart = drv.find_element(By.CSS_SELECTOR, 'section[data-section="idle"] div.chart')
        chart_id = idle_chart.get_attribute("id")
        toggle = idle_chart.find_elements(By.CSS_SELECTOR, ".legend .traces .legendtoggle")[0]
        drv.execute_script("arguments[0].scrollIntoView({block: 'center'})", idle_chart)
        ActionChains(drv).move_to_element(toggle).click().perform()
        hidden = (
            "return document.getElementById(arguments[0]).data.filter("
            "function (t) { return t.visible === 'legendonly'; }).length"
        )
        # Plotly waits out its double-click delay before acting on a single click.
        deadline = time.monotonic() + 3
        while drv.execute_script(hidden, chart_id) == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert drv.execute_script(hidden, chart_id) == 1

        # A hover on a headline bar shows its exact value.
        bar = drv.find_element(
            By.CSS_SELECTOR, 'section[data-section="headline"] .barlayer .point path'
        )
        drv.execute_script("arguments[0].scrollIntoView({block: 'center'})", bar)
        ActionChains(drv).move_to_element(bar).perform()
        hover = drv.find_elements(By.CSS_SELECTOR, 'section[data-section="headline"] .hovertext')
        assert hover and "GPU spend: $" in hover[0].text, [h.text for h in hover]
        assert f"{want['gpu_spend_usd']:,.2f}" in hover[0].text

        assert console_errors(drv) == []
        copy = os.environ.get("GPULEDGER_REPORT_SCREENSHOT")
        if copy:
            shutil.copyfile(shot, copy)
