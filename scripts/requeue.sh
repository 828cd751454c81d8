#!/usr/bin/env bash
# Replay dead-lettered jobs: a wrapper around `billhook-worker requeue`.
#
#   scripts/requeue.sh --event evt_123 --reason "SMTP was down"
#   scripts/requeue.sh --type customer.updated --since 2h --reason "bug #42 fixed" --dry-run
#   scripts/requeue.sh --all --reason "database failover" --by ana
#
# Selectors: --id JOB, --event EVT (both repeatable), --type TYPE, --since TIME|DURATION, --all.
# --reason is required; --by defaults to $USER. Uses DATABASE_URL, or the dev database that
# scripts/dev.sh uses when DATABASE_URL is unset. `scripts/requeue.sh --help` lists everything.
set -euo pipefail
cd "$(dirname "$0")/.."
export SQLX_OFFLINE=true

if [[ -z "${DATABASE_URL:-}" && -f .dev/database-url ]]; then
  DATABASE_URL="$(cat .dev/database-url)"
  export DATABASE_URL
fi
if [[ -z "${DATABASE_URL:-}" ]]; then
  echo "requeue.sh: set DATABASE_URL to the Billhook database (or run scripts/dev.sh once)" >&2
  exit 2
fi
cargo build -q -p billhook-worker --bin billhook-worker
exec target/debug/billhook-worker requeue "$@"
