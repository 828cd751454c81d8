#!/usr/bin/env bash
# Remakes the console's screenshots in docs/images/ (console-overview.png, console-event.png,
# console-dead-letters.png): the browser test that walks through the console saves them there
# when BILLHOOK_SCREENSHOTS_DIR says so. Needs what scripts/test.sh needs (PostgreSQL, found or
# started; Chromium and ChromeDriver, installed when missing).
#
# Usage: scripts/console-screenshots.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/pg.sh
source scripts/lib/pg.sh
# shellcheck source=scripts/lib/browser.sh
source scripts/lib/browser.sh

browser_ensure
trap pg_stop_private EXIT
pg_select_server .dev/test-pg "${BILLHOOK_TEST_DATABASE_URL:-}" "${DATABASE_URL:-}"
export BILLHOOK_TEST_DATABASE_URL=$PG_SERVER_URL SQLX_OFFLINE=true
mkdir -p docs/images
BILLHOOK_SCREENSHOTS_DIR="$PWD/docs/images" cargo test -p billhook-worker --test jobs \
  console::browser -- --nocapture
ls -l docs/images/console-*.png
