#!/usr/bin/env bash
# Console benchmark: builds release binaries and, on the local PostgreSQL,
#   1. seeds a fresh database with BENCH_EVENTS events (default 1,000,000) and what an install
#      of that size holds (bench/console-seed.sql: failures, dead letters, audit, mirror,
#      orders, ledger, emails, notices, dunning runs, jobs), and times it;
#   2. serves it with `billhook-worker console` (a token, a free port);
#   3. measures every API call and page with bench/console-load: p50/p95/p99/max per endpoint,
#      one request at a time, then all of them from BENCH_CLIENTS clients together;
# then stops the console, drops the database (unless BENCH_KEEP_DB=1) and writes the "Console"
# section of docs/performance.md (between the console-bench markers).
#
# Usage: bench/console.sh
#
# Settings (environment):
#   BENCH_PG_URL       server to use, without a database (default postgres://postgres@127.0.0.1:5432;
#                      only 127.0.0.1 is accepted)
#   BENCH_EVENTS       events to seed (default 1000000); BENCH_CUSTOMERS (default 50000)
#   BENCH_REQUESTS     timed requests per endpoint (default 200)
#   BENCH_CLIENTS      clients of the mixed run (default 4); BENCH_MIXED_SECONDS (default 15)
#   BENCH_REUSE_DB     a database seeded by an earlier run (kept with BENCH_KEEP_DB=1): no seeding
#   BENCH_KEEP_DB=1    keep the database for another run or for EXPLAIN
#   BENCH_SKIP_BUILD=1 use the binaries already in target/release
#   BENCH_DOC          where to write (default docs/performance.md); BENCH_WRITE_DOC=0 skips it
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_pg_url
EVENTS=${BENCH_EVENTS:-1000000}
CUSTOMERS=${BENCH_CUSTOMERS:-50000}
REQUESTS=${BENCH_REQUESTS:-200}
CLIENTS=${BENCH_CLIENTS:-4}
MIXED_SECONDS=${BENCH_MIXED_SECONDS:-15}
DOC=${BENCH_DOC:-docs/performance.md}
bench_need psql curl ss jq

STAMP=$(date -u +%Y%m%d%H%M%S)
OUT=$ROOT/target/bench-console/$STAMP
mkdir -p "$OUT"
DB=${BENCH_REUSE_DB:-billhook_bench_console_$STAMP}
TOKEN="bench$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
CONSOLE_PID=
CREATED=

sql() { psql "$PG/$DB" -v ON_ERROR_STOP=1 -qAtX -c "$1"; }

cleanup() {
    local status=$?
    if [[ -n $CONSOLE_PID ]] && kill -0 "$CONSOLE_PID" 2>/dev/null; then
        kill -TERM "$CONSOLE_PID" 2>/dev/null || true
        wait "$CONSOLE_PID" 2>/dev/null || true
    fi
    if [[ -n $CREATED && ${BENCH_KEEP_DB:-0} != 1 ]]; then
        psql_admin -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" || log "could not drop $DB"
    elif [[ -n $CREATED ]]; then
        log "kept database $DB (BENCH_REUSE_DB=$DB reuses it)"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    log "building release binaries"
    SQLX_OFFLINE=true cargo build --release -q -p billhook-worker -p console-load
fi

SEED_SECONDS=reused
if [[ -z ${BENCH_REUSE_DB:-} ]]; then
    psql_admin -c "CREATE DATABASE \"$DB\""
    CREATED=1
    DATABASE_URL="$PG/$DB" target/release/billhook-worker migrate >"$OUT/migrate.log" 2>&1 \
        || { cat "$OUT/migrate.log" >&2; exit 1; }
    log "seeding $EVENTS events for $CUSTOMERS customers"
    t0=$SECONDS
    psql "$PG/$DB" -X -q -v ON_ERROR_STOP=1 -v events="$EVENTS" -v customers="$CUSTOMERS" \
        -f bench/console-seed.sql >"$OUT/seed.log" 2>&1 || { cat "$OUT/seed.log" >&2; exit 1; }
    sql "VACUUM ANALYZE"
    SEED_SECONDS=$((SECONDS - t0))
    log "seeded in ${SEED_SECONDS} s"
fi

PORT=$(free_port)
DATABASE_URL="$PG/$DB" BILLHOOK_CONSOLE_LISTEN="127.0.0.1:$PORT" \
    BILLHOOK_CONSOLE_TOKENS="bench=read:$TOKEN" BILLHOOK_LOG_FORMAT=json \
    target/release/billhook-worker console >"$OUT/console.log" 2>&1 &
CONSOLE_PID=$!
for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$PORT/login" 2>/dev/null && break
    kill -0 "$CONSOLE_PID" 2>/dev/null || { cat "$OUT/console.log" >&2; exit 1; }
    sleep 0.1
done

log "measuring every endpoint ($REQUESTS requests each, then $CLIENTS clients for $MIXED_SECONDS s)"
CONSOLE_LOAD_TOKEN=$TOKEN DATABASE_URL="$PG/$DB" target/release/console-load \
    --base "http://127.0.0.1:$PORT" --requests "$REQUESTS" --clients "$CLIENTS" \
    --mixed-seconds "$MIXED_SECONDS" --out "$OUT/results.json" | tee "$OUT/results.txt"

SIZES=$(sql "SELECT string_agg(format('%s %s', c.relname, pg_size_pretty(pg_total_relation_size(c.oid))), '; ' ORDER BY pg_total_relation_size(c.oid) DESC)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind = 'r' AND n.nspname IN ('public', 'apalis') AND pg_total_relation_size(c.oid) > 8 * 1024 * 1024")
DB_SIZE=$(sql "SELECT pg_size_pretty(pg_database_size(current_database()))")
ROWS=$(sql "SELECT format('%s events, %s audit entries, %s orders, %s emails, %s notices, %s dead letters, %s customers',
                     (SELECT count(*) FROM webhook_events), (SELECT count(*) FROM audit_log), (SELECT count(*) FROM orders),
                     (SELECT count(*) FROM emails), (SELECT count(*) FROM app_notifications),
                     (SELECT count(*) FROM dead_letters), (SELECT count(*) FROM customers))")
CPU=$(awk -F: '/model name/ { gsub(/^ +/, "", $2); print $2; exit }' /proc/cpuinfo)
SLOW=$(jq -r '.over_100ms_p99 | if length == 0 then "none" else join(", ") end' "$OUT/results.json")

SECTION=$OUT/section.md
{
    echo "<!-- console-bench:start -->"
    echo "## Console"
    echo
    echo "Every API call and page of the console (issue 14) on a database of $ROWS"
    echo "(${DB_SIZE}; seeded in ${SEED_SECONDS} s by \`bench/console-seed.sql\`), served by one"
    echo "\`billhook-worker console\` (release build). Latency from sending the request to the last byte"
    echo "of the answer, $REQUESTS requests per endpoint one after another, each show page cycling through"
    echo "50 real ids spread over the 60 days; run of $(date -u +%Y-%m-%d)."
    echo
    echo "| endpoint | p50 ms | p95 ms | p99 ms | max ms |"
    echo "|---|---:|---:|---:|---:|"
    jq -r '.endpoints[] | "| \(.endpoint) | \(.sequential.p50_ms) | \(.sequential.p95_ms) | \(.sequential.p99_ms) | \(.sequential.max_ms) |"' "$OUT/results.json"
    echo
    jq -r --arg c "$CLIENTS" --arg s "$MIXED_SECONDS" '.mixed | "All endpoints together from \($c) clients for \($s) s: \(.requests) requests, p50 \(.p50_ms) ms, p99 \(.p99_ms) ms, max \(.max_ms) ms."' "$OUT/results.json"
    echo
    echo "Endpoints at or over 100 ms p99: $SLOW."
    echo
    echo "- Machine: $(nproc) cores ($CPU), $(awk '/MemTotal/ {printf "%.1f", $2/1048576}' /proc/meminfo) GiB; PostgreSQL $(sql "SHOW server_version"), shared_buffers $(sql "SHOW shared_buffers")."
    echo "- Tables over 8 MB: $SIZES."
    echo
    echo '```sh'
    echo "bench/console.sh            # BENCH_EVENTS=100000 for a quick run"
    echo '```'
    echo
    echo "Raw results of this run: \`target/bench-console/$STAMP/\` (not committed)."
    echo "<!-- console-bench:end -->"
} >"$SECTION"

if [[ ${BENCH_WRITE_DOC:-1} == 1 ]]; then
    if grep -q '<!-- console-bench:start -->' "$DOC" && grep -q '<!-- console-bench:end -->' "$DOC"; then
        awk -v section="$SECTION" '
            /<!-- console-bench:start -->/ { while ((getline l < section) > 0) print l; skip = 1; next }
            /<!-- console-bench:end -->/ { skip = 0; next }
            !skip { print }' "$DOC" >"$DOC.tmp"
        mv "$DOC.tmp" "$DOC"
    else
        { echo; cat "$SECTION"; } >>"$DOC"
    fi
    log "wrote $DOC"
fi
