#!/usr/bin/env bash
# Receiver benchmark: builds release binaries, runs billhook-receiver against a fresh database
# on the local PostgreSQL, drives it with bench/receiver-load at several concurrencies, runs
# the pgbench ceiling (bench/pgbench-ingest.sql) against another fresh database, cleans up,
# and writes the "Receiver ingest" section of docs/performance.md (between the
# receiver-bench markers; the rest of the file is kept).
#
# Usage: bench/receiver.sh
#
# Settings (environment):
#   BENCH_PG_URL        server to use, without a database (default postgres://postgres@127.0.0.1:5432;
#                       only 127.0.0.1 is accepted)
#   BENCH_CONCURRENCY   receiver-load runs (default 1,16,64)
#   BENCH_EVENTS        timed events per run, one number or one per run (default 2000,20000,20000)
#   BENCH_WARMUP        untimed events before each run (default 200)
#   BENCH_TYPES         handled (default: event_types::HANDLED, every event stored and enqueued) or
#                       all (every testkit example, realistic sizes; unhandled ones stored as ignored)
#   PGBENCH_CLIENTS     pgbench clients (default 16); PGBENCH_SECONDS (default 10)
#   BENCH_DOC           where to write (default docs/performance.md); BENCH_WRITE_DOC=0 skips it
#   BENCH_DB_PARAMS     query string added to the receiver's and pgbench's database URLs, e.g.
#                       sslmode=disable (both default to sslmode=prefer: TLS over loopback)
#   BENCH_SKIP_BUILD=1  use the binaries already in target/release
#   BENCH_SKIP_PGBENCH=1
#   BILLHOOK_*          passed on to the receiver as they are (e.g. BILLHOOK_DATABASE_MAX_CONNECTIONS,
#                       BILLHOOK_HTTP_WORKERS, BILLHOOK_LOG); the doc lists the ones set.
#
# The receiver listens on free ports picked here (not port 0: at BILLHOOK_LOG=warn it would not
# log the ports it bound). Everything the run produces (receiver log, JSON results, pgbench output, top samples) stays in
# target/bench-receiver/<timestamp>/. The receiver logs at its default level (info, JSON) to
# that directory's receiver.log, one line per event, as in production.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_pg_url
CONCURRENCY=${BENCH_CONCURRENCY:-1,16,64}
EVENTS=${BENCH_EVENTS:-2000,20000,20000}
WARMUP=${BENCH_WARMUP:-200}
TYPES=${BENCH_TYPES:-handled}
PGBENCH_CLIENTS=${PGBENCH_CLIENTS:-16}
PGBENCH_SECONDS=${PGBENCH_SECONDS:-10}
DOC=${BENCH_DOC:-docs/performance.md}
DB_PARAMS=${BENCH_DB_PARAMS:-}

STAMP=$(date -u +%Y%m%d%H%M%S)
DB=billhook_bench_${STAMP}
CEILING_DB=billhook_bench_${STAMP}_pgbench
OUT=$ROOT/target/bench-receiver/$STAMP
mkdir -p "$OUT"
SECRET="whsec_bench_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"

RECEIVER_PID=
TOP_PID=
DATABASES=()


stop_receiver() {
    if [[ -n $RECEIVER_PID ]] && kill -0 "$RECEIVER_PID" 2>/dev/null; then
        kill -TERM "$RECEIVER_PID"
        for _ in $(seq 1 20); do
            kill -0 "$RECEIVER_PID" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 "$RECEIVER_PID" 2>/dev/null; then
            log "receiver still running 10 s after SIGTERM (nothing in flight): killing it"
            kill -KILL "$RECEIVER_PID"
        fi
        wait "$RECEIVER_PID" 2>/dev/null || true
    fi
    RECEIVER_PID=
}

cleanup() {
    local status=$?
    stop_receiver
    if [[ -n $TOP_PID ]]; then kill "$TOP_PID" 2>/dev/null || true; fi
    for db in "${DATABASES[@]}"; do
        psql_admin -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" || log "could not drop $db"
    done
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

create_db() {
    psql_admin -c "CREATE DATABASE \"$1\""
    DATABASES+=("$1")
    DATABASE_URL="$PG/$1" target/release/billhook-worker migrate >"$OUT/migrate-$1.log" 2>&1 \
        || { cat "$OUT/migrate-$1.log" >&2; exit 1; }
}

# --- build ---------------------------------------------------------------------------------
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    log "building release binaries"
    SQLX_OFFLINE=true cargo build --release -p billhook-receiver -p billhook-worker -p receiver-load
fi

LOADAVG_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# --- receiver ------------------------------------------------------------------------------
log "database $DB"
create_db "$DB"
DB_URL="$PG/$DB"
RECEIVER_DB_URL="$DB_URL${DB_PARAMS:+?$DB_PARAMS}"
PORT=$(free_port)
ADMIN_PORT=$(free_port)
[[ $ADMIN_PORT != "$PORT" ]] || ADMIN_PORT=$(free_port)

log "starting billhook-receiver (log: $OUT/receiver.log)"
DATABASE_URL="$RECEIVER_DB_URL" \
BILLHOOK_WEBHOOK_SECRETS="bench=$SECRET" \
BILLHOOK_RECEIVER_LISTEN="127.0.0.1:$PORT" \
BILLHOOK_RECEIVER_ADMIN_LISTEN="127.0.0.1:$ADMIN_PORT" \
    target/release/billhook-receiver >"$OUT/receiver.log" 2>&1 &
RECEIVER_PID=$!

for i in $(seq 1 150); do
    kill -0 "$RECEIVER_PID" 2>/dev/null || { cat "$OUT/receiver.log" >&2; log "receiver exited"; exit 1; }
    curl -fsS --max-time 1 "http://127.0.0.1:$ADMIN_PORT/healthz" >/dev/null 2>&1 && break
    [[ $i == 150 ]] && { log "no /healthz answer within 30 s"; exit 1; }
    sleep 0.2
done
log "receiver pid $RECEIVER_PID on 127.0.0.1:$PORT (admin $ADMIN_PORT)"

# One top sample every 2 s while the load runs (bounded: at most 10 minutes).
top -b -d 2 -n 300 -w 200 >"$OUT/top.txt" 2>/dev/null &
TOP_PID=$!

log "receiver-load --concurrency $CONCURRENCY --events $EVENTS"
BILLHOOK_WEBHOOK_SECRETS="bench=$SECRET" target/release/receiver-load \
    --url "http://127.0.0.1:$PORT/api/webhooks/stripe" \
    --concurrency "$CONCURRENCY" --events "$EVENTS" --warmup "$WARMUP" --types "$TYPES" \
    --receiver-pid "$RECEIVER_PID" --json \
    >"$OUT/receiver-load.json" 2> >(tee "$OUT/receiver-load.log" >&2)
kill "$TOP_PID" 2>/dev/null || true
wait "$TOP_PID" 2>/dev/null || true
TOP_PID=

# Sanity: every 200 is a row, and every handled one a job.
STORED_EVENTS=$(psql "$DB_URL" -qAtX -c "SELECT count(*) FROM webhook_events")
STORED_HANDLED=$(psql "$DB_URL" -qAtX -c "SELECT count(*) FROM webhook_events WHERE status = 'received'")
STORED_JOBS=$(psql "$DB_URL" -qAtX -c "SELECT count(*) FROM apalis.jobs")
ANSWERED_OK=$(jq '[.runs[].ok] | add' "$OUT/receiver-load.json")
RUNS=$(jq '.runs | length' "$OUT/receiver-load.json")
EXPECTED=$((ANSWERED_OK + RUNS * WARMUP))
log "stored events $STORED_EVENTS ($STORED_HANDLED handled), jobs $STORED_JOBS; expected $EXPECTED events (timed 200s + warm-up)"
[[ $STORED_EVENTS == "$EXPECTED" && $STORED_JOBS == "$STORED_HANDLED" ]] || log "WARNING: stored rows do not match the answers"
TYPE_LIST=$(jq -r '.event_types | join(", ")' "$OUT/receiver-load.json")
MEAN_BODY=$(psql "$DB_URL" -qAtX -c "SELECT round(avg(length(body))) FROM webhook_events")
# The pgbench body: a real stored body of about the mean size.
BODY_HEX=$(psql "$DB_URL" -qAtX -c "SELECT encode(body, 'hex') FROM webhook_events
    ORDER BY abs(length(body) - (SELECT avg(length(body)) FROM webhook_events)) LIMIT 1")
psql "$DB_URL" -qAtX -c "SELECT metadata::text FROM apalis.jobs LIMIT 1" >"$OUT/job-metadata-sample.txt"

stop_receiver
LOG_LINES=$(wc -l <"$OUT/receiver.log")
LOG_BYTES=$(wc -c <"$OUT/receiver.log")

# --- pgbench ceiling -----------------------------------------------------------------------
PGB_TPS='' PGB_LAT='' PGB_P50='' PGB_P99='' PGB1_TPS='' PGB1_LAT='' PGB_ROWS=''
if [[ ${BENCH_SKIP_PGBENCH:-0} != 1 ]]; then
    log "pgbench ceiling on $CEILING_DB"
    create_db "$CEILING_DB"
    run_pgbench() { # clients seconds tag
        mkdir -p "$OUT/pgbench-$3"
        (cd "$OUT/pgbench-$3" && pgbench -n -M prepared -c "$1" -j 2 -T "$2" -l \
            -f "$ROOT/bench/pgbench-ingest.sql" \
            -D run="$3" -D seq=0 -D body="\\x$BODY_HEX" "$PG/$CEILING_DB${DB_PARAMS:+?$DB_PARAMS}") >"$OUT/pgbench-$3.txt" 2>&1 \
            || { cat "$OUT/pgbench-$3.txt" >&2; exit 1; }
    }
    tps_of() { grep -m1 '^tps' "$1" | awk '{print $3}'; }
    lat_of() { grep -m1 '^latency average' "$1" | awk '{print $4}'; }
    run_pgbench 1 5 c1
    PGB1_TPS=$(tps_of "$OUT/pgbench-c1.txt"); PGB1_LAT=$(lat_of "$OUT/pgbench-c1.txt")
    run_pgbench "$PGBENCH_CLIENTS" "$PGBENCH_SECONDS" "c$PGBENCH_CLIENTS"
    PGB_TPS=$(tps_of "$OUT/pgbench-c$PGBENCH_CLIENTS.txt"); PGB_LAT=$(lat_of "$OUT/pgbench-c$PGBENCH_CLIENTS.txt")
    # Per-transaction latencies (µs, third column of pgbench's -l log) → p50/p99 in ms.
    read -r PGB_P50 PGB_P99 < <(cat "$OUT/pgbench-c$PGBENCH_CLIENTS"/pgbench_log.* | awk '{print $3}' | sort -n \
        | awk '{a[NR]=$1} END {i50=int(NR*0.50+0.999); i99=int(NR*0.99+0.999); printf "%.2f %.2f\n", a[i50]/1000, a[i99]/1000}')
    PGB_ROWS=$(psql "$PG/$CEILING_DB" -qAtX -c "SELECT (SELECT count(*) FROM webhook_events) || ' events, ' || (SELECT count(*) FROM apalis.jobs) || ' jobs'")
    log "pgbench: 1 client $PGB1_TPS tx/s; $PGBENCH_CLIENTS clients $PGB_TPS tx/s, avg $PGB_LAT ms, p50 $PGB_P50 ms, p99 $PGB_P99 ms ($PGB_ROWS)"
fi

# --- machine -------------------------------------------------------------------------------
CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
NPROC=$(nproc)
MEM_GB=$(awk '/MemTotal/ {printf "%.1f", $2/1048576}' /proc/meminfo)
PG_VERSION=$(psql_admin -c "SHOW server_version")
PG_SYNC=$(psql_admin -c "SHOW synchronous_commit")
PG_FSYNC=$(psql_admin -c "SHOW fsync")
PG_SHARED=$(psql_admin -c "SHOW shared_buffers")
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || COMMIT="$COMMIT + uncommitted changes"
SETTINGS=$(env | grep -E '^BILLHOOK_' | grep -v '^BILLHOOK_WEBHOOK_SECRETS=' | sort | sed 's/^/`/; s/$/`/' | paste -sd' ' - || true)
[[ -n $SETTINGS ]] || SETTINGS="defaults (16 pooled connections, min 4; 2 ingest writers, batches of up to 64; one HTTP worker per core; log level info, JSON)"

# --- report --------------------------------------------------------------------------------
J="$OUT/receiver-load.json"
HWM_KB=$(jq '.receiver_memory_kb.vm_hwm_kb // 0' "$J")
TABLE=$(jq -r 'def ms: . * 100 | round / 100; .runs[] | "| \(.concurrency) | \(.events) | \(.throughput_per_s | round) | \(.latency_ms.p50 | ms) | \(.latency_ms.p90 | ms) | \(.latency_ms.p99 | ms) | \(.latency_ms.max | ms) | \(.errors) |"' "$J")
CPU_TABLE=$(jq -r '.runs[] | .cpu_percent_of_one_core as $c | "| \(.concurrency) | \($c.receiver) | \($c.postgres) | \($c.load_generator) | \([$c.machine_busy - $c.receiver - $c.postgres - $c.load_generator, 0] | max | . * 10 | round / 10) | \($c.machine_busy) of \($c.machine_capacity) |"' "$J")
MAX_P99=$(jq '[.runs[].latency_ms.p99] | max | . * 10 | round / 10' "$J")
C16=$(jq -c '[.runs[] | select(.concurrency == 16)] | first // empty' "$J")
verdict() { if [[ $1 == 1 ]]; then echo "met"; else echo "**not met**"; fi; }
P99_OK=$(jq '[.runs[] | .latency_ms.p99 < 100 and .errors == 0] | all' "$J" | sed 's/true/1/;s/false/0/')
if [[ -n $C16 ]]; then
    C16_TPS=$(jq '.throughput_per_s | round' <<<"$C16"); C16_P99=$(jq '.latency_ms.p99 | . * 10 | round / 10' <<<"$C16")
    C16_OK=$(jq '.throughput_per_s >= 5000 and .latency_ms.p99 < 10' <<<"$C16" | sed 's/true/1/;s/false/0/')
    C16_LINE="| at c=16: ≥ 5,000 events/s with p99 < 10 ms | $C16_TPS events/s, p99 $C16_P99 ms | $(verdict "$C16_OK") |"
else
    C16_LINE="| at c=16: ≥ 5,000 events/s with p99 < 10 ms | no c=16 run | – |"
fi
RSS_MB=$(awk -v k="$HWM_KB" 'BEGIN {printf "%.1f", k/1024}')
RSS_OK=$(awk -v k="$HWM_KB" 'BEGIN {print (k > 0 && k < 50*1024) ? 1 : 0}')
PER_EVENT_LOG=$(awk -v b="$LOG_BYTES" -v n="$STORED_EVENTS" 'BEGIN {if (n > 0) printf "%.0f", b/n; else print 0}')

SECTION="$OUT/section.md"
{
    echo "<!-- receiver-bench:start -->"
    echo "## Receiver ingest"
    echo
    echo "Written by \`bench/receiver.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') (commit $COMMIT). Do not edit between"
    echo "the markers: the next run replaces it."
    echo
    echo "Each request is one realistic Stripe event, signed before timing: the receiver verifies the"
    echo "signature, parses the envelope, inserts the event and (for handled types) enqueues its job in"
    echo "one transaction, shared with the other requests in flight (the ingest writers batch them), and"
    echo "answers 200 once that transaction has committed. Event mix (\`--types $TYPES\`, both API shapes, mean body"
    echo "$MEAN_BODY bytes): $TYPE_LIST."
    echo "\`receiver-load\` (bench/receiver-load) keeps one HTTP/1.1 keep-alive connection per concurrent"
    echo "client and sends $WARMUP untimed warm-up events per run first. Latency is from sending the request to"
    echo "the last byte of the answer."
    echo
    echo "| concurrency | events | throughput (events/s) | p50 ms | p90 ms | p99 ms | max ms | errors |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
    echo "$TABLE"
    echo
    echo "Single runs on this shared 2-core machine vary by about ±15 %: compare several runs, not two"
    echo "figures. The handled mix follows \`event_types::HANDLED\` and grows (with larger bodies) as handlers land."
    echo
    echo "Peak resident memory of the receiver (VmHWM, after all runs): **$RSS_MB MB**."
    echo "Stored afterwards: $STORED_EVENTS events ($STORED_HANDLED handled, the rest ignored) and $STORED_JOBS jobs"
    echo "for $EXPECTED accepted deliveries (timed and warm-up)."
    echo
    echo "CPU during each timed run, in % of one core (all \`postgres\` processes summed; the machine has"
    echo "$NPROC cores, so $((NPROC * 100)) % is everything; \"anything else\" is other processes, e.g. a build):"
    echo
    echo "| concurrency | receiver | PostgreSQL | load generator | anything else | whole machine |"
    echo "|---:|---:|---:|---:|---:|---:|"
    echo "$CPU_TABLE"
    echo
    if [[ -n $PGB_TPS ]]; then
        echo "### PostgreSQL ceiling (pgbench)"
        echo
        echo "The same transaction without HTTP, verification or the receiver: \`bench/pgbench-ingest.sql\`"
        echo "(BEGIN; INSERT INTO webhook_events with a real $(( ${#BODY_HEX} / 2 ))-byte body; INSERT INTO apalis.jobs through"
        echo "apalis-postgres's push query, NOTIFY trigger included; COMMIT), \`pgbench -M prepared\`, fresh database."
        echo "One event per transaction, as the receiver stores a lone request: under load the receiver"
        echo "stores the events in flight together, which is how it gets past this figure."
        echo
        echo "| clients | duration | transactions/s (= events/s) | latency avg ms | p50 ms | p99 ms |"
        echo "|---:|---:|---:|---:|---:|---:|"
        echo "| 1 | 5 s | ${PGB1_TPS%.*} | $PGB1_LAT | | |"
        echo "| $PGBENCH_CLIENTS | $PGBENCH_SECONDS s | ${PGB_TPS%.*} | $PGB_LAT | $PGB_P50 | $PGB_P99 |"
        echo
    fi
    echo "### Targets"
    echo
    echo "| target | measured | |"
    echo "|---|---|---|"
    echo "| p99 < 100 ms at every concurrency, no errors | highest p99 $MAX_P99 ms | $(verdict "$P99_OK") |"
    echo "$C16_LINE"
    echo "| receiver peak RSS < 50 MB | $RSS_MB MB | $(verdict "$RSS_OK") |"
    echo
    echo "### Machine and settings"
    echo
    echo "- CPU: $CPU_MODEL, $NPROC cores (\`nproc\`); memory $MEM_GB GiB; kernel $(uname -r)."
    echo "- Load generator, receiver and PostgreSQL share the machine. Load average before the run:"
    echo "  $LOADAVG_BEFORE."
    echo "- PostgreSQL $PG_VERSION on 127.0.0.1 (TCP): synchronous_commit = $PG_SYNC, fsync = $PG_FSYNC,"
    echo "  shared_buffers = $PG_SHARED."
    echo "- Receiver: release build; settings: $SETTINGS."
    echo "- Database URLs (receiver and pgbench): ${DB_PARAMS:-no parameters: sslmode=prefer, so TLS even over loopback}."
    echo "- Receiver logs: default level (info), JSON, to a file: $LOG_LINES lines, $LOG_BYTES bytes"
    echo "  (~$PER_EVENT_LOG bytes per stored event)."
    echo
    echo "Reproduce (needs PostgreSQL on 127.0.0.1:5432 as user postgres, pgbench, jq, curl):"
    echo
    echo '```sh'
    echo "bench/receiver.sh"
    echo '```'
    echo
    echo "Raw results of this run: \`target/bench-receiver/$STAMP/\` (not committed)."
    echo "<!-- receiver-bench:end -->"
} >"$SECTION"

if [[ ${BENCH_WRITE_DOC:-1} == 1 ]]; then
    mkdir -p "$(dirname "$DOC")"
    if [[ -f $DOC ]] && grep -q '<!-- receiver-bench:start -->' "$DOC" && grep -q '<!-- receiver-bench:end -->' "$DOC"; then
        awk -v section="$SECTION" '
            /<!-- receiver-bench:start -->/ { while ((getline l < section) > 0) print l; skip = 1; next }
            /<!-- receiver-bench:end -->/ { skip = 0; next }
            !skip { print }' "$DOC" >"$DOC.tmp"
        mv "$DOC.tmp" "$DOC"
    elif [[ -f $DOC ]]; then
        { echo; cat "$SECTION"; } >>"$DOC"
    else
        { echo "# Performance"; echo; cat "$SECTION"; } >"$DOC"
    fi
    log "wrote $DOC"
fi
cat "$SECTION"
