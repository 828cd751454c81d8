#!/usr/bin/env bash
# Retention against ingest: does a pass of data retention disturb the receiver? Seeds a database
# with BENCH_EVENTS events all past their retention (bench/console-seed.sql moved 100 days back:
# every body past the 90 days, two thirds of the ids past the 120), starts billhook-receiver on it,
# and runs bench/receiver-load at one concurrency: BENCH_RUNS times on a quiet database, then
# BENCH_RUNS times while `billhook-worker retention` makes its first pass over the whole backlog
# (the heaviest pass there is: a running install's hourly pass has an hour of work), then
# reports both side by side with the pass's own figures, in the "Retention against ingest"
# section of docs/performance.md (between the retention-bench markers).
#
# Usage: bench/retention.sh
#
# Settings (environment):
#   BENCH_PG_URL        server to use, without a database (default postgres://postgres@127.0.0.1:5432;
#                       only 127.0.0.1 is accepted)
#   BENCH_EVENTS        seeded events (default 1000000); BENCH_CUSTOMERS (default 50000)
#   BENCH_CONCURRENCY   receiver-load clients (default 16)
#   BENCH_LOAD_EVENTS   timed events per run (default 20000); BENCH_RUNS runs per phase (default 3)
#   BENCH_DOC           where to write (default docs/performance.md); BENCH_WRITE_DOC=0 skips it
#   BENCH_SKIP_BUILD=1  use the binaries already in target/release
#
# Everything the run produces (logs, JSON results) stays in target/bench-retention/<timestamp>/.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_pg_url
EVENTS=${BENCH_EVENTS:-1000000}
CUSTOMERS=${BENCH_CUSTOMERS:-50000}
CONCURRENCY=${BENCH_CONCURRENCY:-16}
LOAD_EVENTS=${BENCH_LOAD_EVENTS:-20000}
RUNS=${BENCH_RUNS:-3}
DOC=${BENCH_DOC:-docs/performance.md}
bench_need psql jq curl ss

STAMP=$(date -u +%Y%m%d%H%M%S)
DB=billhook_bench_${STAMP}_retention
OUT=$ROOT/target/bench-retention/$STAMP
mkdir -p "$OUT"
SECRET="whsec_bench_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
RECEIVER_PID=
RETENTION_PID=
DB_CREATED=

sql() { psql "$PG/$DB" -v ON_ERROR_STOP=1 -qAtX -c "$1"; }

stop_pid() {
    local pid=$1
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid"
    for _ in $(seq 1 20); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local status=$?
    stop_pid "$RETENTION_PID"
    stop_pid "$RECEIVER_PID"
    if [[ -n $DB_CREATED ]]; then
        psql_admin -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" || log "could not drop $DB"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- build ---------------------------------------------------------------------------------
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    log "building release binaries"
    SQLX_OFFLINE=true cargo build --release -p billhook-receiver -p billhook-worker -p receiver-load
fi

# --- database ------------------------------------------------------------------------------
log "database $DB: migrating, seeding $EVENTS events 100 to 160 days old"
psql_admin -c "CREATE DATABASE \"$DB\""
DB_CREATED=1
DATABASE_URL="$PG/$DB" target/release/billhook-worker migrate >"$OUT/migrate.log" 2>&1 \
    || { cat "$OUT/migrate.log" >&2; exit 1; }
SEED_START=$(date +%s)
psql "$PG/$DB" -qX -v events="$EVENTS" -v customers="$CUSTOMERS" -v days_ago=100 \
    -f bench/console-seed.sql >"$OUT/seed.log" 2>&1 || { cat "$OUT/seed.log" >&2; exit 1; }
sql "VACUUM ANALYZE" >/dev/null
log "seeded in $(( $(date +%s) - SEED_START )) s; database $(sql "SELECT pg_size_pretty(pg_database_size(current_database()))")"

# --- what the pass will remove -------------------------------------------------------------
DATABASE_URL="$PG/$DB" target/release/billhook-worker retention --dry-run >"$OUT/dry-run.txt" 2>"$OUT/dry-run.log" \
    || { cat "$OUT/dry-run.log" >&2; exit 1; }
cat "$OUT/dry-run.txt" >&2

# --- receiver ------------------------------------------------------------------------------
PORT=$(free_port)
ADMIN_PORT=$(free_port)
[[ $ADMIN_PORT != "$PORT" ]] || ADMIN_PORT=$(free_port)
DATABASE_URL="$PG/$DB" \
BILLHOOK_WEBHOOK_SECRETS="bench=$SECRET" \
BILLHOOK_RECEIVER_LISTEN="127.0.0.1:$PORT" \
BILLHOOK_RECEIVER_ADMIN_LISTEN="127.0.0.1:$ADMIN_PORT" \
    target/release/billhook-receiver >"$OUT/receiver.log" 2>&1 &
RECEIVER_PID=$!
wait_http "http://127.0.0.1:$ADMIN_PORT/healthz" "$RECEIVER_PID" receiver || { tail -20 "$OUT/receiver.log" >&2; exit 1; }
log "receiver pid $RECEIVER_PID on 127.0.0.1:$PORT"

load() { # tag
    BILLHOOK_WEBHOOK_SECRETS="bench=$SECRET" target/release/receiver-load \
        --url "http://127.0.0.1:$PORT/api/webhooks/stripe" \
        --concurrency "$CONCURRENCY" --events "$LOAD_EVENTS" --warmup 200 \
        --receiver-pid "$RECEIVER_PID" --json >"$OUT/$1.json" 2>"$OUT/$1.log" \
        || { cat "$OUT/$1.log" >&2; exit 1; }
    log "$1: $(jq -r '.runs[0] | "\(.throughput_per_s | round) events/s, p50 \(.latency_ms.p50) ms, p99 \(.latency_ms.p99) ms, errors \(.errors)"' "$OUT/$1.json")"
}

# --- quiet, then during the pass -----------------------------------------------------------
for r in $(seq 1 "$RUNS"); do load "quiet-$r"; done

log "billhook-worker retention: first pass over the backlog"
PASS_START=$(date +%s.%N)
DATABASE_URL="$PG/$DB" BILLHOOK_LOG_FORMAT=text target/release/billhook-worker retention \
    >"$OUT/retention.txt" 2>"$OUT/retention.log" &
RETENTION_PID=$!
sleep 2
DURING=()
for r in $(seq 1 "$RUNS"); do
    if ! kill -0 "$RETENTION_PID" 2>/dev/null; then
        log "the pass ended before run $r: fewer runs during it (seed more events)"
        break
    fi
    load "during-$r"
    # A run counts as "during" only if the pass was still going when it ended.
    if kill -0 "$RETENTION_PID" 2>/dev/null; then DURING+=("during-$r"); else log "during-$r: the pass ended while it ran; not counted"; fi
done
wait "$RETENTION_PID" || { cat "$OUT/retention.log" >&2; log "retention failed"; exit 1; }
RETENTION_PID=
PASS_SECONDS=$(awk -v s="$PASS_START" -v e="$(date +%s.%N)" 'BEGIN {printf "%.0f", e - s}')
cat "$OUT/retention.txt" >&2
REMOVED=$(awk '/^removed/ {print $2}' "$OUT/retention.txt")
BODIES=$(awk '/event bodies cleared/ {print $NF}' "$OUT/retention.txt")
ROWS=$(awk '/event rows deleted/ {print $NF}' "$OUT/retention.txt")
log "pass: $REMOVED rows in $PASS_SECONDS s"
stop_pid "$RECEIVER_PID"
RECEIVER_PID=

# --- report --------------------------------------------------------------------------------
row() { # tag phase
    jq -r --arg phase "$2" --arg tag "$1" 'def ms: . * 100 | round / 100; .runs[0] |
        "| \($phase) | \($tag) | \(.throughput_per_s | round) | \(.latency_ms.p50 | ms) | \(.latency_ms.p90 | ms) | \(.latency_ms.p99 | ms) | \(.latency_ms.max | ms) | \(.errors) |"' "$OUT/$1.json"
}
median() { # field tag...
    local field=$1 files=() tag
    shift
    for tag in "$@"; do files+=("$OUT/$tag.json"); done
    jq -s "[.[].runs[0] | $field] | sort | .[(length - 1) / 2 | floor] | . * 100 | round / 100" "${files[@]}"
}
QUIET=()
for r in $(seq 1 "$RUNS"); do QUIET+=("quiet-$r"); done
CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
PG_VERSION=$(psql_admin -c "SHOW server_version")
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || COMMIT="$COMMIT + uncommitted changes"
SECTION="$OUT/section.md"
{
    echo "<!-- retention-bench:start -->"
    echo "## Retention against ingest"
    echo
    echo "Written by \`bench/retention.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') (commit $COMMIT). Do not edit"
    echo "between the markers: the next run replaces it."
    echo
    echo "A database seeded with $EVENTS events (\`bench/console-seed.sql\`, $CUSTOMERS customers) moved 100"
    echo "days back, so that every body is past \`BILLHOOK_EVENT_RETENTION\` (90 days) and two thirds of"
    echo "the ids past \`BILLHOOK_EVENT_ID_RETENTION\` (120 days): the first pass on an install that has"
    echo "never pruned, the heaviest there is. The release receiver takes \`receiver-load\` at"
    echo "concurrency $CONCURRENCY ($LOAD_EVENTS timed events a run, handled types), $RUNS runs on the quiet"
    echo "database, then while \`billhook-worker retention\` makes that pass (batches of 1,000 rows, 50 ms"
    echo "apart, as \`run\` does every hour)."
    echo
    echo "| phase | run | events/s | p50 ms | p90 ms | p99 ms | max ms | errors |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|"
    for tag in "${QUIET[@]}"; do row "$tag" "quiet"; done
    for tag in "${DURING[@]}"; do row "$tag" "during the pass"; done
    echo
    echo "Medians: quiet $(median .throughput_per_s "${QUIET[@]}") events/s, p99 $(median .latency_ms.p99 "${QUIET[@]}") ms;"
    if [[ ${#DURING[@]} -gt 0 ]]; then
        echo "during the pass $(median .throughput_per_s "${DURING[@]}") events/s, p99 $(median .latency_ms.p99 "${DURING[@]}") ms."
    else
        echo "no run ended inside the pass."
    fi
    echo
    echo "The pass: $REMOVED rows in $PASS_SECONDS s ($BODIES bodies cleared, $ROWS event rows deleted; the"
    echo "rest emails, notices, failures and requeued dead letters), about"
    echo "$(awk -v n="$REMOVED" -v s="$PASS_SECONDS" 'BEGIN {printf "%.0f", (s > 0 ? n / s : 0)}') rows/s."
    echo
    echo "Machine: $CPU_MODEL, $(nproc) cores, PostgreSQL $PG_VERSION on 127.0.0.1; the receiver, the"
    echo "load generator, the pass and PostgreSQL share it."
    echo
    echo "Reproduce: \`bench/retention.sh\` (PostgreSQL on 127.0.0.1:5432 as user postgres, psql, jq, curl)."
    echo "Raw results of this run: \`target/bench-retention/$STAMP/\` (not committed)."
    echo "<!-- retention-bench:end -->"
} >"$SECTION"
cat "$SECTION"

if [[ ${BENCH_WRITE_DOC:-1} == 1 ]]; then
    if grep -q '<!-- retention-bench:start -->' "$DOC" && grep -q '<!-- retention-bench:end -->' "$DOC"; then
        awk -v section="$SECTION" '
            /<!-- retention-bench:start -->/ { while ((getline l < section) > 0) print l; skip = 1; next }
            /<!-- retention-bench:end -->/ { skip = 0; next }
            !skip { print }' "$DOC" >"$DOC.tmp"
        mv "$DOC.tmp" "$DOC"
    else
        { echo; cat "$SECTION"; } >>"$DOC"
    fi
    log "wrote $DOC"
fi
