#!/usr/bin/env bash
# Signs a built-in Stripe event and posts it to a receiver, as `stripe trigger` would:
#   scripts/trigger.sh payment_intent.succeeded [--url URL] [--api-version acacia|dahlia]
#   scripts/trigger.sh --list
# Signs with the first secret of BILLHOOK_WEBHOOK_SECRETS, else with .dev/webhook-secret (the
# one scripts/dev.sh made). Default URL: http://127.0.0.1:8080/api/webhooks/stripe.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -z "${BILLHOOK_WEBHOOK_SECRETS:-}" ] && [ -s "$root/.dev/webhook-secret" ]; then
  BILLHOOK_WEBHOOK_SECRETS=$(cat "$root/.dev/webhook-secret")
  export BILLHOOK_WEBHOOK_SECRETS
fi
export SQLX_OFFLINE=true
exec cargo run -q --manifest-path "$root/Cargo.toml" -p billhook-testkit --bin billhook-trigger -- "$@"
