# shellcheck shell=bash
# What the benchmark scripts share: the server they may use, log lines, free ports, waiting for
# a process's HTTP endpoint. Sourced by bench/*.sh from the repository root.

# PG: BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432) without a trailing slash; only
# a server on 127.0.0.1 is accepted, so a benchmark never creates and drops databases elsewhere.
bench_pg_url() {
    PG=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}
    PG=${PG%/}
    case "$PG" in
        postgres://*@127.0.0.1:*|postgresql://*@127.0.0.1:*|postgres://127.0.0.1:*|postgresql://127.0.0.1:*) ;;
        *) echo "BENCH_PG_URL must point at 127.0.0.1" >&2; exit 2 ;;
    esac
}

# Exits saying which of the given commands is missing.
bench_need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 2; }
    done
}

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
psql_admin() { psql "$PG/postgres" -v ON_ERROR_STOP=1 -qAtX "$@"; }

# free_port: scripts/lib/ports.sh (a port below the ephemeral range that no socket uses).
# shellcheck source=scripts/lib/ports.sh
source scripts/lib/ports.sh

wait_http() { # url pid what
    for i in $(seq 1 150); do
        kill -0 "$2" 2>/dev/null || { log "$3 exited"; return 1; }
        curl -fsS --max-time 1 "$1" >/dev/null 2>&1 && return 0
        [[ $i == 150 ]] && { log "$3: no answer from $1 within 30 s"; return 1; }
        sleep 0.2
    done
}
