#!/usr/bin/env bash
# Signs built-in Stripe events and posts them to a receiver, as `stripe trigger` would:
#   scripts/trigger.sh payment_intent.succeeded [--url URL] [--api-version acacia|dahlia]
#   scripts/trigger.sh --story one-time-purchase     events that belong together, then what
#                                                    Billhook did with them
#   scripts/trigger.sh --list                        the event types
#   scripts/trigger.sh --list-stories                the stories (also: --story --list)
# Every run has ids of its own (cus_…, pi_…, sub_…, an example.com address) and current dates.
# Signs with the first secret of BILLHOOK_WEBHOOK_SECRETS, else with .dev/webhook-secret (the
# one scripts/dev.sh made). Default URL: http://127.0.0.1:8080/api/webhooks/stripe
# (BILLHOOK_TRIGGER_URL). A story reads the worker's database to wait for it and to report:
# DATABASE_URL, else .dev/database-url; it names the emails' files in BILLHOOK_EMAIL_DIR, else
# .dev/mail.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -z "${BILLHOOK_WEBHOOK_SECRETS:-}" ] && [ -s "$root/.dev/webhook-secret" ]; then
  BILLHOOK_WEBHOOK_SECRETS=$(cat "$root/.dev/webhook-secret")
  export BILLHOOK_WEBHOOK_SECRETS
fi
export SQLX_OFFLINE=true
exec cargo run -q --manifest-path "$root/Cargo.toml" -p billhook-testkit --bin billhook-trigger -- "$@"
