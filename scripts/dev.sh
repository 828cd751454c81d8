#!/usr/bin/env bash
# Runs Billhook locally: PostgreSQL (found or started), migrations, the receiver and, once the
# worker has its `run` subcommand, the worker. Ctrl-C (or SIGTERM) stops everything this
# script started and exits 0.
#
# DATABASE_URL             the database to use; unset: database billhook_dev on 127.0.0.1:5432,
#                          else on a private cluster kept in .dev/pg
# BILLHOOK_WEBHOOK_SECRETS unset: a dev secret made once and kept in .dev/webhook-secret
# Every other BILLHOOK_* setting passes through (docs/configuration.md).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/pg.sh
source scripts/lib/pg.sh

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust with rustup (https://rustup.rs), then open a new shell." >&2
  exit 1
fi

pids=()
names=()
stop_all() {
  local i pid waited
  trap - INT TERM
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null || true
  done
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    pid=${pids[i]}
    waited=0
    while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 150 ]; do
      sleep 0.2
      waited=$((waited + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "${names[i]} did not stop within 30 s: killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  pids=()
  pg_stop_private
}
trap stop_all EXIT
trap 'echo; echo "stopping…"; exit 0' INT TERM

mkdir -p .dev

# --- database -------------------------------------------------------------------------------
if [ -n "${DATABASE_URL:-}" ]; then
  if ! pg_reachable "$DATABASE_URL"; then
    echo "DATABASE_URL is set, but no PostgreSQL answers at $(pg_redact "$DATABASE_URL")." >&2
    echo "Start that server, or unset DATABASE_URL to use 127.0.0.1:5432 or a private cluster." >&2
    exit 1
  fi
else
  pg_select_server .dev/pg
  psql=$(pg_find_bin psql) || {
    echo "psql not found: install the PostgreSQL client, or set DATABASE_URL to a database." >&2
    exit 1
  }
  exists=$("$psql" -X -w -qtA -d "$PG_SERVER_URL" \
    -c "select 1 from pg_database where datname = 'billhook_dev'" </dev/null)
  if [ "$exists" != 1 ]; then
    "$psql" -X -w -q -d "$PG_SERVER_URL" -c 'CREATE DATABASE billhook_dev' </dev/null
    echo "created database billhook_dev"
  fi
  DATABASE_URL="${PG_SERVER_URL%/*}/billhook_dev"
fi
export DATABASE_URL
# scripts/requeue.sh reads it when DATABASE_URL is unset.
mkdir -p .dev && printf '%s\n' "$DATABASE_URL" > .dev/database-url

# --- build and migrate ----------------------------------------------------------------------
# Only the two binaries it runs (not the benchmark tools or the test helpers).
echo "building (cargo build -p billhook-receiver -p billhook-worker)…"
SQLX_OFFLINE=true cargo build -p billhook-receiver -p billhook-worker
bin=${CARGO_TARGET_DIR:-target}/debug
export BILLHOOK_LOG_FORMAT=${BILLHOOK_LOG_FORMAT:-text}
"$bin/billhook-worker" migrate

# --- webhook secret -------------------------------------------------------------------------
secret_from_env=${BILLHOOK_WEBHOOK_SECRETS:+yes}
if [ -z "${BILLHOOK_WEBHOOK_SECRETS:-}" ]; then
  if [ ! -s .dev/webhook-secret ]; then
    # 4 KiB of random bytes hold ~1,000 alphanumerics; the first 32 are kept.
    random=$(head -c 4096 /dev/urandom | LC_ALL=C tr -dc 'A-Za-z0-9' | cut -c1-32)
    (umask 077 && printf 'whsec_%s\n' "$random" >.dev/webhook-secret)
    echo "made a dev webhook secret: .dev/webhook-secret"
  fi
  BILLHOOK_WEBHOOK_SECRETS=$(cat .dev/webhook-secret)
fi
export BILLHOOK_WEBHOOK_SECRETS

# --- email ----------------------------------------------------------------------------------
# Without an SMTP server, the worker writes each email as an .eml file here.
if [ -z "${BILLHOOK_SMTP_HOST:-}" ]; then
  export BILLHOOK_EMAIL_DIR=${BILLHOOK_EMAIL_DIR:-$PWD/.dev/mail}
  mail_line="emails          written as .eml files to $BILLHOOK_EMAIL_DIR (set BILLHOOK_SMTP_HOST to send)"
else
  mail_line="emails          sent through $BILLHOOK_SMTP_HOST:${BILLHOOK_SMTP_PORT:-587}"
fi

# --- dunning --------------------------------------------------------------------------------
# Seconds apart instead of days, so `scripts/trigger.sh --story renewal-fails-to-cancellation`
# shows a whole run.
export BILLHOOK_DUNNING_SCHEDULE=${BILLHOOK_DUNNING_SCHEDULE:-0s,10s,20s,30s}

# --- alerts and the daily summary -----------------------------------------------------------
# Emailed like every email (above), linking to the local console.
export BILLHOOK_ALERT_EMAIL=${BILLHOOK_ALERT_EMAIL:-ops@example.com}
export BILLHOOK_SUMMARY_EMAIL=${BILLHOOK_SUMMARY_EMAIL:-ops@example.com}
if [ "${BILLHOOK_CONSOLE_LISTEN:-}" != off ]; then
  export BILLHOOK_CONSOLE_URL=${BILLHOOK_CONSOLE_URL:-http://${BILLHOOK_CONSOLE_LISTEN:-127.0.0.1:9090}}
fi

# --- processes ------------------------------------------------------------------------------
export BILLHOOK_RECEIVER_LISTEN=${BILLHOOK_RECEIVER_LISTEN:-127.0.0.1:8080}
export BILLHOOK_RECEIVER_ADMIN_LISTEN=${BILLHOOK_RECEIVER_ADMIN_LISTEN:-127.0.0.1:9080}

# http://HOST:PORT for a listen address, with a wildcard host replaced by 127.0.0.1.
local_url() {
  local host=${1%:*} port=${1##*:}
  case $host in "" | 0.0.0.0 | "[::]") host=127.0.0.1 ;; esac
  printf 'http://%s:%s\n' "$host" "$port"
}
web_url=$(local_url "$BILLHOOK_RECEIVER_LISTEN")
admin_url=$(local_url "$BILLHOOK_RECEIVER_ADMIN_LISTEN")

answers() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null
  else
    local rest=${1#http://}
    rest=${rest%%/*}
    (exec 3<>"/dev/tcp/${rest%:*}/${rest##*:}") 2>/dev/null
  fi
}

start() {
  local name=$1
  shift
  "$@" &
  pids+=("$!")
  names+=("$name")
}

# Waits until the process started last answers URL (its /healthz), for up to 30 s.
wait_until_up() {
  local url=$1 last=$((${#pids[@]} - 1)) waited=0
  local name=${names[last]} pid=${pids[last]}
  until answers "$url"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$name exited at start (its messages are above)." >&2
      exit 1
    fi
    if [ "$waited" -ge 300 ]; then
      echo "$name did not answer $url within 30 s." >&2
      exit 1
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
}

start billhook-receiver "$bin/billhook-receiver"
wait_until_up "$admin_url/healthz"

if "$bin/billhook-worker" run --help >/dev/null 2>&1; then
  start billhook-worker "$bin/billhook-worker" run
  worker_admin=$(local_url "${BILLHOOK_WORKER_ADMIN_LISTEN:-127.0.0.1:9081}")
  worker_note="worker admin    $worker_admin/healthz  $worker_admin/readyz  $worker_admin/metrics"
  if [ "${BILLHOOK_CONSOLE_LISTEN:-}" != off ]; then
    worker_note+=$'\n'"console         $(local_url "${BILLHOOK_CONSOLE_LISTEN:-127.0.0.1:9090}")/   (pages; JSON under /api/v1)"
  fi
  # The banner comes after the worker's own start-up lines.
  wait_until_up "$worker_admin/healthz"
else
  worker_note="billhook-worker has no \`run\` subcommand in this build: events are stored and queued, not applied"
fi

if [ -n "$secret_from_env" ]; then
  secret_line="from BILLHOOK_WEBHOOK_SECRETS (not shown)"
else
  secret_line="$BILLHOOK_WEBHOOK_SECRETS   (kept in .dev/webhook-secret)"
fi
cat <<EOF

Billhook is running.
  webhook URL     $web_url/api/webhooks/stripe
  signing secret  $secret_line
  database        $(pg_redact "$DATABASE_URL")
  receiver admin  $admin_url/healthz  $admin_url/readyz  $admin_url/metrics
  $worker_note
  $mail_line
  alerts          to $BILLHOOK_ALERT_EMAIL, the daily summary to $BILLHOOK_SUMMARY_EMAIL at ${BILLHOOK_SUMMARY_AT:-08:00 UTC} (docs/alerts.md)

Send a signed test event, or a whole story with what Billhook did (another terminal):
  scripts/trigger.sh payment_intent.succeeded        (scripts/trigger.sh --list for all types)
  scripts/trigger.sh --story one-time-purchase       (--list-stories for all)
  (dunning steps run at $BILLHOOK_DUNNING_SCHEDULE after a failure: BILLHOOK_DUNNING_SCHEDULE)
Forward real test-mode events with the Stripe CLI:
  stripe listen --forward-to localhost:${web_url##*:}/api/webhooks/stripe
  then restart with the whsec_ the CLI prints, keeping the dev one for scripts/trigger.sh:
  BILLHOOK_WEBHOOK_SECRETS="stripe=whsec_FROM_CLI,dev=\$(cat .dev/webhook-secret)" scripts/dev.sh

Ctrl-C stops everything.
EOF

# Wait; a process that exits on its own ends the session (the trap stops the others).
while :; do
  for ((i = 0; i < ${#pids[@]}; i++)); do
    if ! kill -0 "${pids[i]}" 2>/dev/null; then
      status=0
      wait "${pids[i]}" || status=$?
      echo "${names[i]} exited (status $status): stopping" >&2
      exit 1
    fi
  done
  sleep 1
done
