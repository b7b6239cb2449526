#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium and its matching WebDriver for the report's
# browser tests (tests/test_report_browser.py) and bench (benches/bench_report.py).
# Idempotent: does nothing when `chromium` and `chromedriver` are already on PATH.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    # Not Debian: say so, and let the browser test fail with this message if it runs.
    echo "compose/chromium/install.sh: no apt-get; install chromium and its chromedriver" \
         "(same version) for the report's browser test" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
command -v chromium >/dev/null && command -v chromedriver >/dev/null
