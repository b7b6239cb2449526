"""Headless Chromium (Debian's `chromium` + `chromium-driver`) driven by Selenium, for the
report tests and bench: every network request blocked, console messages collected."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

REPO = Path(__file__).resolve().parents[1]
INSTALL = REPO / "compose" / "chromium" / "install.sh"
BLOCKED = ["http://*", "https://*", "ws://*", "wss://*", "ftp://*"]


def ensure_chromium() -> tuple[str, str]:
    """Paths of chromium and chromedriver, installed by the project's script when missing."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        subprocess.run(["bash", str(INSTALL)], check=True)
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "compose/chromium/install.sh did not install chromium"
    return chromium, driver


@contextmanager
def browser(width: int = 1400, height: int = 1000) -> Iterator[webdriver.Chrome]:
    chromium, driver = ensure_chromium()
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
        # Belt and braces with Network.setBlockedURLs: no name resolves, no proxy answers.
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--proxy-server=127.0.0.1:9",
        "--allow-file-access-from-files",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    drv = webdriver.Chrome(service=Service(driver), options=opts)
    try:
        drv.execute_cdp_cmd("Network.enable", {})
        drv.execute_cdp_cmd("Network.setBlockedURLs", {"urls": BLOCKED})
        yield drv
    finally:
        drv.quit()


def open_report(drv: webdriver.Chrome, path: Path, timeout_s: float = 30.0) -> float:
    """Loads the report and waits until every chart is drawn; returns the seconds from
    navigation start until the page had drawn every chart (the page's own clock)."""
    drv.get(path.resolve().as_uri())
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if drv.execute_script("return document.body.getAttribute('data-ready')") == "1":
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"{path}: charts not drawn within {timeout_s} s")
    ms = drv.execute_script("return document.body.getAttribute('data-ready-ms')")
    return float(ms) / 1000.0


def console_errors(drv: webdriver.Chrome) -> list[dict[str, Any]]:
    return [e for e in drv.get_log("browser") if e.get("level") == "SEVERE"]


def network_requests(drv: webdriver.Chrome) -> list[str]:
    """URLs the page asked for (from the performance log), other than file: and data:."""
    import json

    urls = []
    for entry in drv.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            url = msg["params"]["request"]["url"]
            if not url.startswith(("file:", "data:", "blob:")):
                urls.append(url)
    return urls
