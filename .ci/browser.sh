#!/usr/bin/env bash
# Browser tests of the customer pages (tests/browser): Playwright (playwright-core) drives
# Debian's Chromium, axe-core audits every page, screenshots go to target/screenshots/.
# Called from .ci/run; runs from the repository root whatever the current directory.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
    echo "installing Debian's chromium"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core fonts-liberation >/dev/null
fi

# playwright-core never downloads a browser; keep npm quiet and offline-friendly.
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)

cargo build --locked
node tests/browser/run.mjs
