#!/usr/bin/env bash
# Browser tests (tests/browser): the customer pages (run.mjs) and the /app workspace (app.mjs, on
# SQLite and, with TEST_POSTGRES_URL, on a throwaway PostgreSQL database too). Playwright
# (playwright-core) drives Debian's Chromium, axe-core audits every page, screenshots go to
# target/screenshots/.
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
# Every workspace suite (tests/browser/app*.mjs) runs on SQLite, then on PostgreSQL.
suites=$(ls tests/browser/app*.mjs | sort)
for suite in $suites; do
    echo "--- $suite on SQLite"
    node "$suite"
done
if [ -n "${TEST_POSTGRES_URL:-}" ]; then
    db="closeloop_browser_$$"
    admin="$TEST_POSTGRES_URL"
    trap 'psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
    for suite in $suites; do
        echo "--- $suite on PostgreSQL"
        psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
        CLOSELOOP_TEST_DATABASE_URL="${admin%/*}/$db" node "$suite"
    done
fi
