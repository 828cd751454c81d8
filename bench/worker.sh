#!/usr/bin/env bash
# Worker benchmark: builds release binaries and, on the local PostgreSQL, measures
#   1. throughput: 10,000 queued ProcessEvent jobs (distinct customer.created/customer.updated
#      events, one customer each, stored through the release receiver) applied by one
#      `billhook-worker run`, once per concurrency × batch-size setting, each on an identical
#      fresh copy of the queued database;
#   2. lag: receiver and worker running, a steady paced load through the receiver; per event
#      `applied_at - received_at` from webhook_events, p50/p90/p99;
#   3. the worker's peak resident memory (VmHWM);
# then drops every database it created, stops every process it started (also on failure or
# Ctrl-C), and writes the "Worker" section of docs/performance.md (between the worker-bench
# markers; the rest of the file is kept).
#
# Usage: bench/worker.sh
#
# Settings (environment):
#   BENCH_PG_URL          server to use, without a database (default postgres://postgres@127.0.0.1:5432;
#                         only 127.0.0.1 is accepted)
#   BENCH_EVENTS          jobs queued for each throughput run (default 10000)
#   BENCH_WORKER_CONFIGS  throughput runs, comma-separated, in order: `default` (no worker setting
#                         changed) or CONCURRENCYxBATCH, optionally +pPOOL for
#                         BILLHOOK_DATABASE_MAX_CONNECTIONS (e.g. 32x100p32).
#                         Default: default,16x10,16x50,16x200,8x50,8x100,32x100,32x100p32,default
#   BENCH_RUN_TIMEOUT     longest one throughput run may take, seconds (default 120)
#   BENCH_LAG_RATE        events/s of the lag run (default 200); BENCH_LAG_SECONDS (default 20)
#   BENCH_LAG_CONFIG      worker setting for the lag run, as above (default: default)
#   BENCH_DOC             where to write (default docs/performance.md); BENCH_WRITE_DOC=0 skips it
#   BENCH_DB_PARAMS       query string added to the receiver's and the worker's database URLs, e.g.
#                         sslmode=disable (default none: sslmode=prefer, so TLS over loopback)
#   BENCH_SKIP_BUILD=1    use the binaries already in target/release
#   BILLHOOK_*            passed on to the receiver and the worker as they are (e.g. BILLHOOK_LOG);
#                         the doc lists the ones set. The script itself sets the worker's
#                         concurrency, batch size and pool size per run, as configured above.
#
# Everything a run produces (worker and receiver logs, worker-load JSON, metrics scrapes,
# per-run results) stays in target/bench-worker/<timestamp>/. Logs go to files at the default
# level (info, JSON), as in production.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_pg_url
EVENTS=${BENCH_EVENTS:-10000}
CONFIGS=${BENCH_WORKER_CONFIGS:-default,16x10,16x50,16x200,8x50,8x100,32x100,32x100p32,default}
RUN_TIMEOUT=${BENCH_RUN_TIMEOUT:-120}
LAG_RATE=${BENCH_LAG_RATE:-200}
LAG_SECONDS=${BENCH_LAG_SECONDS:-20}
LAG_CONFIG=${BENCH_LAG_CONFIG:-default}
DOC=${BENCH_DOC:-docs/performance.md}
DB_PARAMS=${BENCH_DB_PARAMS:-}

check_int() { # name value min max
    [[ $2 =~ ^[0-9]+$ ]] && (( $2 >= $3 && $2 <= $4 )) && return 0
    echo "$1 must be $3..$4" >&2
    exit 2
}
check_int BENCH_EVENTS "$EVENTS" 1 200000
check_int BENCH_RUN_TIMEOUT "$RUN_TIMEOUT" 5 900
check_int BENCH_LAG_RATE "$LAG_RATE" 1 5000
check_int BENCH_LAG_SECONDS "$LAG_SECONDS" 1 120
bench_need psql jq curl ss pgrep

STAMP=$(date -u +%Y%m%d%H%M%S)
DB_PREFIX=billhook_bench_worker_${STAMP}
OUT=$ROOT/target/bench-worker/$STAMP
mkdir -p "$OUT"
SECRET="whsec_bench_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"

WORKER_PID=
RECEIVER_PID=
DATABASES=()

db_url() { echo "$PG/$1${DB_PARAMS:+?$DB_PARAMS}"; }
sql() { psql "$PG/$1" -v ON_ERROR_STOP=1 -qAtX -c "$2"; }

# Stops the process whose pid is in the named variable (SIGTERM, then SIGKILL after $2 s).
stop_pid_var() {
    local var=$1 grace=${2:-40} pid=${!1}
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 $((grace * 5))); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$var $pid still running $grace s after SIGTERM: killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    fi
    printf -v "$var" '%s' ""
}

drop_db() {
    psql_admin -c "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" || { log "could not drop $1"; return 0; }
    local kept=() db
    for db in "${DATABASES[@]}"; do [[ $db == "$1" ]] || kept+=("$db"); done
    DATABASES=("${kept[@]}")
}

cleanup() {
    local status=$?
    stop_pid_var WORKER_PID 40
    stop_pid_var RECEIVER_PID 15
    for db in "${DATABASES[@]}"; do drop_db "$db"; done
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

create_db() { # name [template]
    if [[ -n ${2:-} ]]; then
        psql_admin -c "CREATE DATABASE \"$1\" TEMPLATE \"$2\""
        DATABASES+=("$1")
    else
        psql_admin -c "CREATE DATABASE \"$1\""
        DATABASES+=("$1")
        DATABASE_URL="$(db_url "$1")" target/release/billhook-worker migrate >"$OUT/migrate-$1.log" 2>&1 \
            || { cat "$OUT/migrate-$1.log" >&2; exit 1; }
    fi
}

# --- CPU and memory from /proc ------------------------------------------------------------
# machine: "total idle" ticks; a process: utime + stime of all its threads.
machine_ticks() { awk '/^cpu / { t = 0; for (i = 2; i <= 9; i++) t += $i; print t, $5 + $6; exit }' /proc/stat; }
pid_ticks() {
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    s=${s##*) }
    # shellcheck disable=SC2086
    set -- $s
    echo $(( ${12} + ${13} ))
}
postgres_ticks() {
    local t=0 p
    for p in $(pgrep -x postgres); do t=$((t + $(pid_ticks "$p"))); done
    echo "$t"
}
# cpu_sample PID... → "machine_total machine_idle postgres pid1 pid2 …"
cpu_sample() {
    local s p
    s="$(machine_ticks) $(postgres_ticks)"
    for p in "$@"; do s="$s $(pid_ticks "$p")"; done
    echo "$s"
}
# cpu_usage "BEFORE" "AFTER" → "busy postgres pid1 pid2 …" in % of one core
cpu_usage() {
    awk -v a="$1" -v b="$2" -v n="$(nproc)" 'BEGIN {
        split(a, x, " "); split(b, y, " "); total = y[1] - x[1];
        if (total <= 0) { print "0 0 0 0"; exit }
        f = n * 100 / total; out = sprintf("%.1f", (total - (y[2] - x[2])) * f);
        for (i = 3; i <= length(y); i++) out = out sprintf(" %.1f", (y[i] - x[i]) * f);
        print out }'
}
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# config → environment assignments for the worker
config_env() {
    local c=$1
    [[ $c == default ]] && return 0
    [[ $c =~ ^([0-9]+)x([0-9]+)(p([0-9]+))?$ ]] || { log "bad worker setting '$c' (default or CxB[pP])"; exit 2; }
    echo "BILLHOOK_WORKER_CONCURRENCY=${BASH_REMATCH[1]}"
    echo "BILLHOOK_WORKER_BATCH_SIZE=${BASH_REMATCH[2]}"
    [[ -n ${BASH_REMATCH[4]} ]] && echo "BILLHOOK_DATABASE_MAX_CONNECTIONS=${BASH_REMATCH[4]}"
    return 0
}
config_label() {
    local c=$1
    if [[ $c == default ]]; then echo "defaults (16 × 100, pool 16)"; return; fi
    [[ $c =~ ^([0-9]+)x([0-9]+)(p([0-9]+))?$ ]]
    echo "${BASH_REMATCH[1]} × ${BASH_REMATCH[2]}, pool ${BASH_REMATCH[4]:-16}"
}
IFS=',' read -r -a CONFIG_LIST <<<"$CONFIGS"
for c in "${CONFIG_LIST[@]}" "$LAG_CONFIG"; do config_env "$c" >/dev/null; done

start_worker() { # db config logfile
    local port
    port=$(free_port)
    WORKER_ADMIN="127.0.0.1:$port"
    local -a envs
    mapfile -t envs < <(config_env "$2")
    # Per-run settings only: the defaults run gets none of them even if the caller set them.
    env -u BILLHOOK_WORKER_CONCURRENCY -u BILLHOOK_WORKER_BATCH_SIZE -u BILLHOOK_DATABASE_MAX_CONNECTIONS \
        "${envs[@]}" \
        DATABASE_URL="$(db_url "$1")" \
        BILLHOOK_WORKER_ADMIN_LISTEN="$WORKER_ADMIN" \
        BILLHOOK_CONSOLE_LISTEN="127.0.0.1:$(free_port)" \
        target/release/billhook-worker run >"$3" 2>&1 &
    WORKER_PID=$!
}

start_receiver() { # db logfile
    local port admin
    port=$(free_port); admin=$(free_port)
    [[ $admin != "$port" ]] || admin=$(free_port)
    RECEIVER_URL="http://127.0.0.1:$port/api/webhooks/stripe"
    DATABASE_URL="$(db_url "$1")" \
    BILLHOOK_WEBHOOK_SECRETS="bench=$SECRET" \
    BILLHOOK_RECEIVER_LISTEN="127.0.0.1:$port" \
    BILLHOOK_RECEIVER_ADMIN_LISTEN="127.0.0.1:$admin" \
        target/release/billhook-receiver >"$2" 2>&1 &
    RECEIVER_PID=$!
    wait_http "http://127.0.0.1:$admin/healthz" "$RECEIVER_PID" receiver || { tail -20 "$2" >&2; exit 1; }
}

load() { # tag events [worker-load options…] → JSON on stdout
    local tag=$1 n=$2
    shift 2
    BILLHOOK_WEBHOOK_SECRETS="bench=$SECRET" target/release/worker-load \
        --url "$RECEIVER_URL" --tag "$tag" --events "$n" "$@" \
        >"$OUT/load-$tag.json" 2> >(tee "$OUT/load-$tag.log" >&2)
    local errors
    errors=$(jq '.errors + .duplicates' "$OUT/load-$tag.json")
    [[ $errors == 0 ]] || { log "worker-load $tag: $errors errors or duplicates"; exit 1; }
}

# Waits until `count` events of the tag are finished (not received/processing/failed), or fails.
wait_finished() { # db tag count timeout_s
    local done_n
    for _ in $(seq 1 $(($4 * 4))); do
        done_n=$(sql "$1" "SELECT count(*) FROM webhook_events WHERE id LIKE 'evt\\_$2\\_%' AND status IN ('applied','ignored','stale','dead')")
        [[ $done_n -ge $3 ]] && return 0
        [[ -z $WORKER_PID ]] || kill -0 "$WORKER_PID" 2>/dev/null || { log "worker exited"; return 1; }
        sleep 0.25
    done
    log "only $done_n of $3 $2 events finished within $4 s"
    return 1
}

# --- build ---------------------------------------------------------------------------------
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    log "building release binaries"
    SQLX_OFFLINE=true cargo build --release -p billhook-receiver -p billhook-worker -p worker-load
fi
LOADAVG_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# --- 1. queue the jobs once --------------------------------------------------------------------
SEED_DB=${DB_PREFIX}_seed
log "database $SEED_DB: $EVENTS events and jobs through the receiver"
create_db "$SEED_DB"
start_receiver "$SEED_DB" "$OUT/receiver-seed.log"
load tp "$EVENTS" --concurrency 16 --max-run-secs 200
stop_pid_var RECEIVER_PID 15
read -r SEED_EVENTS SEED_JOBS <<<"$(sql "$SEED_DB" "SELECT (SELECT count(*) FROM webhook_events WHERE status = 'received'),
    (SELECT count(*) FROM apalis.jobs WHERE status = 'Pending')" | tr '|' ' ')"
[[ $SEED_EVENTS == "$EVENTS" && $SEED_JOBS == "$EVENTS" ]] \
    || { log "queued $SEED_EVENTS events and $SEED_JOBS pending jobs, expected $EVENTS of each"; exit 1; }
MEAN_BODY=$(sql "$SEED_DB" "SELECT round(avg(length(body))) FROM webhook_events")
sql "$SEED_DB" "VACUUM ANALYZE" >/dev/null
log "queued: $SEED_EVENTS events, $SEED_JOBS pending jobs (mean body $MEAN_BODY bytes)"

# --- 2. throughput runs ------------------------------------------------------------------------
RESULTS=$OUT/throughput.tsv
printf 'run\tconfig\tstart_to_last_per_s\tfirst_to_last_per_s\tstart_delay_s\tfinished\tapplied\tworker_cpu\tpostgres_cpu\tother_cpu\tbusy\thwm_kb\n' >"$RESULTS"
MAX_HWM=0
run_no=0
for config in "${CONFIG_LIST[@]}"; do
    run_no=$((run_no + 1))
    db=${DB_PREFIX}_tp${run_no}
    create_db "$db" "$SEED_DB"
    log "run $run_no: $(config_label "$config")"
    before_loadavg=$(cut -d' ' -f1 /proc/loadavg)
    t0=$(date +%s.%N)
    start_worker "$db" "$config" "$OUT/worker-tp$run_no.log"
    cpu0=$(cpu_sample "$WORKER_PID")
    wait_finished "$db" tp "$EVENTS" "$RUN_TIMEOUT" || { tail -20 "$OUT/worker-tp$run_no.log" >&2; exit 1; }
    cpu1=$(cpu_sample "$WORKER_PID")
    hwm=$(hwm_kb "$WORKER_PID")
    (( hwm > MAX_HWM )) && MAX_HWM=$hwm
    stop_pid_var WORKER_PID 40
    read -r busy pg_cpu worker_cpu <<<"$(cpu_usage "$cpu0" "$cpu1")"
    other=$(awk -v b="$busy" -v p="$pg_cpu" -v w="$worker_cpu" 'BEGIN { o = b - p - w; printf "%.1f", o < 0 ? 0 : o }')
    IFS='|' read -r first last applied finished <<<"$(sql "$db" "SELECT extract(epoch FROM min(applied_at)), extract(epoch FROM max(applied_at)),
        count(*) FILTER (WHERE status = 'applied'), count(*) FROM webhook_events WHERE status <> 'received'")"
    read -r s2l f2l delay <<<"$(awk -v t0="$t0" -v a="$first" -v z="$last" -v n="$finished" 'BEGIN {
        printf "%.0f %.0f %.3f\n", n / (z - t0), (n - 1) / (z - a > 0 ? z - a : 1e-9), a - t0 }')"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$run_no" "$config" "$s2l" "$f2l" "$delay" \
        "$finished" "$applied" "$worker_cpu" "$pg_cpu" "$other" "$busy" "$hwm" >>"$RESULTS"
    log "run $run_no: $s2l events/s from start ($f2l first→last), start delay ${delay}s, applied $applied/$finished;" \
        "cpu% worker $worker_cpu postgres $pg_cpu other $other; VmHWM $hwm kB; load before $before_loadavg"
    drop_db "$db"
done
drop_db "$SEED_DB"

# --- 3. lag under a steady load ----------------------------------------------------------------
LAG_DB=${DB_PREFIX}_lag
LAG_EVENTS=$((LAG_RATE * LAG_SECONDS))
log "lag: database $LAG_DB, receiver + worker ($(config_label "$LAG_CONFIG")), $LAG_RATE events/s for $LAG_SECONDS s"
create_db "$LAG_DB"
start_receiver "$LAG_DB" "$OUT/receiver-lag.log"
start_worker "$LAG_DB" "$LAG_CONFIG" "$OUT/worker-lag.log"
wait_http "http://$WORKER_ADMIN/readyz" "$WORKER_PID" worker || { tail -20 "$OUT/worker-lag.log" >&2; exit 1; }
# Warm-up (1 s at the same rate, excluded from the figures): every pool connection opened.
load warm "$LAG_RATE" --rate "$LAG_RATE" --concurrency 16 --max-run-secs 30
wait_finished "$LAG_DB" warm "$LAG_RATE" 60
sleep 1
curl -fsS "http://$WORKER_ADMIN/metrics" >"$OUT/metrics-before.txt"
cpu0=$(cpu_sample "$WORKER_PID" "$RECEIVER_PID")
load lag "$LAG_EVENTS" --rate "$LAG_RATE" --concurrency 16 --max-run-secs $((LAG_SECONDS + 30))
wait_finished "$LAG_DB" lag "$LAG_EVENTS" 120 || { tail -20 "$OUT/worker-lag.log" >&2; exit 1; }
cpu1=$(cpu_sample "$WORKER_PID" "$RECEIVER_PID")
curl -fsS "http://$WORKER_ADMIN/metrics" >"$OUT/metrics-after.txt"
LAG_HWM=$(hwm_kb "$WORKER_PID")
(( LAG_HWM > MAX_HWM )) && MAX_HWM=$LAG_HWM
RECEIVER_HWM=$(hwm_kb "$RECEIVER_PID")
read -r LAG_BUSY LAG_PG LAG_WORKER LAG_RECEIVER <<<"$(cpu_usage "$cpu0" "$cpu1")"
stop_pid_var WORKER_PID 40
stop_pid_var RECEIVER_PID 15
IFS='|' read -r LAG_N LAG_APPLIED LAG_P50 LAG_P90 LAG_P99 LAG_MAX LAG_MEAN <<<"$(sql "$LAG_DB" "
    SELECT count(*), count(*) FILTER (WHERE status = 'applied'),
           round(percentile_disc(0.50) WITHIN GROUP (ORDER BY ms), 1),
           round(percentile_disc(0.90) WITHIN GROUP (ORDER BY ms), 1),
           round(percentile_disc(0.99) WITHIN GROUP (ORDER BY ms), 1),
           round(max(ms), 1), round(avg(ms), 1)
      FROM (SELECT status, (extract(epoch FROM applied_at - received_at) * 1000)::numeric AS ms
              FROM webhook_events WHERE id LIKE 'evt\\_lag\\_%') s")"
# Per event, for a closer look: id, received_at, applied_at, lag in ms.
sql "$LAG_DB" "COPY (SELECT id, received_at, applied_at, round((extract(epoch FROM applied_at - received_at) * 1000)::numeric, 2)
    FROM webhook_events WHERE id LIKE 'evt\\_lag\\_%' ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)" >"$OUT/lag.csv"
# The worker's own histogram (receipt to after its commit, by the worker's clock): share of the
# timed events within 250 ms, from the difference of two scrapes.
bucket() { awk -v le="$2" 'index($0, "billhook_worker_event_lag_seconds_bucket{") == 1 && index($0, "status=\"applied\"") && index($0, "le=\"" le "\"") { print $NF }' "$1"; }
B0=$(bucket "$OUT/metrics-before.txt" 0.25); B1=$(bucket "$OUT/metrics-after.txt" 0.25)
I0=$(bucket "$OUT/metrics-before.txt" +Inf); I1=$(bucket "$OUT/metrics-after.txt" +Inf)
METRIC_SHARE=$(awk -v b0="${B0:-0}" -v b1="${B1:-0}" -v i0="${I0:-0}" -v i1="${I1:-0}" 'BEGIN {
    n = i1 - i0; if (n <= 0) print "n/a"; else printf "%.2f %% of %d", (b1 - b0) * 100 / n, n }')
LOAD_RATE=$(jq '.achieved_per_s' "$OUT/load-lag.json")
LOAD_LATE99=$(jq '.send_late_ms.p99' "$OUT/load-lag.json")
LOAD_HTTP99=$(jq '.http_latency_ms.p99' "$OUT/load-lag.json")
LOAD_WALL=$(jq '.wall_s' "$OUT/load-lag.json")
log "lag: $LAG_N events ($LAG_APPLIED applied): p50 $LAG_P50 ms, p90 $LAG_P90, p99 $LAG_P99, max $LAG_MAX;" \
    "worker histogram ≤ 250 ms: $METRIC_SHARE; sent at $LOAD_RATE/s; cpu% worker $LAG_WORKER receiver $LAG_RECEIVER postgres $LAG_PG"
drop_db "$LAG_DB"

# --- machine -----------------------------------------------------------------------------------
CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
NPROC=$(nproc)
MEM_GB=$(awk '/MemTotal/ {printf "%.1f", $2/1048576}' /proc/meminfo)
PG_VERSION=$(psql_admin -c "SHOW server_version")
PG_SYNC=$(psql_admin -c "SHOW synchronous_commit")
PG_FSYNC=$(psql_admin -c "SHOW fsync")
PG_SHARED=$(psql_admin -c "SHOW shared_buffers")
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || COMMIT="$COMMIT + uncommitted changes"
# shellcheck disable=SC2016 # the backquotes are Markdown
SETTINGS=$(env | grep -E '^BILLHOOK_' | grep -v '^BILLHOOK_WEBHOOK_SECRETS=' | sort | sed 's/^/`/; s/$/`/' | paste -sd' ' - || true)
[[ -n $SETTINGS ]] || SETTINGS="none beyond the per-run worker settings (log level info, JSON, to a file)"

# --- report ------------------------------------------------------------------------------------
verdict() { if [[ $1 == 1 ]]; then echo "met"; else echo "**not met**"; fi; }
DEFAULT_TPS=$(awk -F'\t' 'NR > 1 && $2 == "default" { s += $3; n++ } END { if (n) printf "%.0f", s / n; else print "" }' "$RESULTS")
DEFAULT_RANGE=$(awk -F'\t' 'NR > 1 && $2 == "default" { if (min == "" || $3 < min) min = $3; if ($3 > max) max = $3; n++ }
    END { if (n > 1) printf " (runs: %s–%s)", min, max }' "$RESULTS")
BEST=$(awk -F'\t' 'NR > 1 && $3 > best { best = $3; line = $2 "\t" $3 } END { print line }' "$RESULTS")
BEST_CONFIG=${BEST%%$'\t'*}; BEST_TPS=${BEST##*$'\t'}
TABLE=$(awk -F'\t' -v OFS=' | ' 'NR > 1 {
    c = $2; if (c == "default") c = "defaults (16 × 100, pool 16)";
    else if (match(c, /p[0-9]+$/)) { p = substr(c, RSTART + 1); c = substr(c, 1, RSTART - 1); sub("x", " × ", c); c = c ", pool " p }
    else { sub("x", " × ", c); c = c ", pool 16" }
    print "| " $1, c, $3, $4, $5, $7 " / " $6, $8, $9, $10, sprintf("%.1f", $12 / 1024) " |" }' "$RESULTS")
TPS_DEFAULT_OK=$(awk -v t="${DEFAULT_TPS:-0}" 'BEGIN { print (t >= 1500) ? 1 : 0 }')
TPS_BEST_OK=$(awk -v t="${BEST_TPS:-0}" 'BEGIN { print (t >= 1500) ? 1 : 0 }')
LAG_OK=$(awk -v p="$LAG_P99" -v n="$LAG_APPLIED" -v e="$LAG_EVENTS" 'BEGIN { print (p < 250 && n == e) ? 1 : 0 }')
RSS_MB=$(awk -v k="$MAX_HWM" 'BEGIN { printf "%.1f", k / 1024 }')
RSS_OK=$(awk -v k="$MAX_HWM" 'BEGIN { print (k > 0 && k < 100 * 1024) ? 1 : 0 }')
RECEIVER_MB=$(awk -v k="${RECEIVER_HWM:-0}" 'BEGIN { printf "%.1f", k / 1024 }')

SECTION="$OUT/section.md"
{
    echo "<!-- worker-bench:start -->"
    echo "## Worker"
    echo
    echo "Written by \`bench/worker.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') (commit $COMMIT). Do not edit between"
    echo "the markers: the next run replaces it."
    echo
    echo "### Throughput"
    echo
    echo "$EVENTS distinct events (customer.created and customer.updated alternating, both API shapes,"
    echo "each about a customer of its own, mean body $MEAN_BODY bytes) were posted through the release"
    echo "receiver, so each is stored with its ProcessEvent job as in production; the database was then"
    echo "vacuumed and analysed and copied (\`CREATE DATABASE … TEMPLATE\`) once per run, so every run starts"
    echo "from the same $EVENTS pending jobs. Each run starts one \`billhook-worker run\` (release, logs at"
    echo "info to a file) and ends when all $EVENTS events are finished in \`webhook_events\`."
    echo "\"From start\" is $EVENTS ÷ (last \`applied_at\` − the moment the process was started), process"
    echo "start-up included; \"first → last\" leaves start-up out. CPU is in % of one core over the run (all"
    echo "\`postgres\` processes summed; $NPROC cores, so $((NPROC * 100)) % is everything; \"other\" is anything else on the"
    echo "machine). Concurrency × batch size are \`BILLHOOK_WORKER_CONCURRENCY\` × \`BILLHOOK_WORKER_BATCH_SIZE\`;"
    echo "pool is \`BILLHOOK_DATABASE_MAX_CONNECTIONS\`."
    echo
    echo "| run | concurrency × batch, pool | events/s from start | events/s first → last | start-up s | applied / finished | worker CPU % | PostgreSQL CPU % | other CPU % | worker VmHWM MB |"
    echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    echo "$TABLE"
    echo
    echo "Defaults: **${DEFAULT_TPS} events/s**$DEFAULT_RANGE. Best: **$BEST_TPS events/s** with $(config_label "$BEST_CONFIG")."
    echo "Single runs on this shared 2-core machine vary by about ±15 %: compare several runs, not two figures."
    echo
    echo "### Lag under a steady load"
    echo
    echo "Receiver and worker ($(config_label "$LAG_CONFIG")) running on one database; \`worker-load\` sent"
    echo "$LAG_EVENTS events at a steady $LAG_RATE events/s (paced: each event due at start + n/$LAG_RATE s, 16"
    echo "keep-alive connections, achieved $LOAD_RATE/s over $LOAD_WALL s, 99 % sent within $LOAD_LATE99 ms of their due"
    echo "time, HTTP p99 $LOAD_HTTP99 ms), after a 1 s warm-up at the same rate that is not counted."
    echo
    echo "The lag of an event is \`applied_at - received_at\` in \`webhook_events\`. Both are \`now()\` in"
    echo "PostgreSQL, the start time of the transaction that writes them: \`received_at\` is set by the"
    echo "database when the receiver inserts the event (its transaction commits just before the 200 is"
    echo "sent), \`applied_at\` when the worker's ProcessEvent transaction marks it applied. So the figure runs"
    echo "from the receiver's insert to the start of the worker's apply transaction: it leaves out the few"
    echo "milliseconds that transaction takes until its commit. The worker's own histogram"
    echo "(\`billhook_worker_event_lag_seconds\`, receipt to after the commit, by the worker's clock) is the"
    echo "cross-check in the last row."
    echo
    echo "| events | applied | lag p50 ms | p90 ms | p99 ms | max ms | mean ms |"
    echo "|---:|---:|---:|---:|---:|---:|---:|"
    echo "| $LAG_N | $LAG_APPLIED | $LAG_P50 | $LAG_P90 | $LAG_P99 | $LAG_MAX | $LAG_MEAN |"
    echo
    echo "- Worker histogram, share of the timed events within 250 ms (receipt to after commit): $METRIC_SHARE."
    echo "- CPU during the timed load, % of one core: worker $LAG_WORKER, receiver $LAG_RECEIVER, PostgreSQL"
    echo "  $LAG_PG, whole machine $LAG_BUSY of $((NPROC * 100))."
    echo "- Receiver peak RSS (VmHWM) at the end: $RECEIVER_MB MB."
    echo
    echo "### Memory"
    echo
    echo "Worker peak resident memory (VmHWM from /proc/PID/status, read just before each worker was"
    echo "stopped), highest of all runs above: **$RSS_MB MB**."
    echo
    echo "### Targets"
    echo
    echo "| target | measured | |"
    echo "|---|---|---|"
    echo "| ≥ 1,500 events/s applied, default settings | ${DEFAULT_TPS} events/s | $(verdict "$TPS_DEFAULT_OK") |"
    echo "| ≥ 1,500 events/s applied, best setting tried | $BEST_TPS events/s ($(config_label "$BEST_CONFIG")) | $(verdict "$TPS_BEST_OK") |"
    echo "| lag p99 < 250 ms at $LAG_RATE events/s (receipt to applied) | p99 $LAG_P99 ms ($LAG_APPLIED of $LAG_EVENTS applied) | $(verdict "$LAG_OK") |"
    echo "| worker peak RSS < 100 MB | $RSS_MB MB | $(verdict "$RSS_OK") |"
    echo
    echo "### Machine and settings"
    echo
    echo "- CPU: $CPU_MODEL, $NPROC cores (\`nproc\`); memory $MEM_GB GiB; kernel $(uname -r)."
    echo "- Worker, receiver, load generator and PostgreSQL share the machine. Load average before the"
    echo "  run: $LOADAVG_BEFORE."
    echo "- PostgreSQL $PG_VERSION on 127.0.0.1 (TCP): synchronous_commit = $PG_SYNC, fsync = $PG_FSYNC,"
    echo "  shared_buffers = $PG_SHARED."
    echo "- Release builds. Environment: $SETTINGS."
    echo "- Database URLs: ${DB_PARAMS:-no parameters: sslmode=prefer, so TLS even over loopback}."
    echo
    echo "Reproduce (needs PostgreSQL on 127.0.0.1:5432 as user postgres, jq, curl):"
    echo
    echo '```sh'
    echo "bench/worker.sh"
    echo '```'
    echo
    echo "Raw results of this run: \`target/bench-worker/$STAMP/\` (not committed)."
    echo "<!-- worker-bench:end -->"
} >"$SECTION"

if [[ ${BENCH_WRITE_DOC:-1} == 1 ]]; then
    mkdir -p "$(dirname "$DOC")"
    if [[ -f $DOC ]] && grep -q '<!-- worker-bench:start -->' "$DOC" && grep -q '<!-- worker-bench:end -->' "$DOC"; then
        awk -v section="$SECTION" '
            /<!-- worker-bench:start -->/ { while ((getline l < section) > 0) print l; skip = 1; next }
            /<!-- worker-bench:end -->/ { skip = 0; next }
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
