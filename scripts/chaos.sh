#!/usr/bin/env bash
# Billhook's fault suite. Starts a private PostgreSQL cluster (temp dir, free port), the
# receiver, two or more workers, a real SMTP server and an application endpoint, all on
# 127.0.0.1; sends the same mixed stream of signed Stripe events twice, into a database
# without faults and then into one while faults are injected (worker SIGKILLs, PostgreSQL
# restarts -m immediate / -m fast, pg_terminate_backend, SMTP down, SMTP silent, application
# down); and checks that the second run ends exactly like the first. Details:
# scripts/chaos/README.md.
#
#   scripts/chaos.sh [--quick] [--seed N] [--workers N] [--no-build] [--keep]
#
#   --quick      about 3 minutes (CI); the default run takes about 10
#   --seed N     replay a run's stream, fault order and timing choices
#   --workers N  worker processes (default: 2 quick, 3 otherwise)
#   --no-build   use target/debug as it is (default: cargo build --bins first)
#   --keep       keep the run directory (logs, mail, PostgreSQL data) even when all passed
#
# The last line printed is `N passed, N failed`; the exit code is non-zero if a check failed.
# Everything it starts is stopped on exit, Ctrl-C included.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
quick="" seed="" workers="" build=1 keep=0
while [ $# -gt 0 ]; do
  case $1 in
    --quick) quick=--quick ;;
    --seed) seed=${2:?--seed needs a number}; shift ;;
    --workers) workers=${2:?--workers needs a number}; shift ;;
    --no-build) build=0 ;;
    --keep) keep=1 ;;
    -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# shellcheck source=lib/pg.sh
. "$root/scripts/lib/pg.sh"

missing=()
if ! command -v python3 >/dev/null 2>&1; then
  missing+=("python3 (3.8 or newer; the driver uses its standard library only)")
elif ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 8))'; then
  missing+=("python3 3.8 or newer (found $(python3 --version 2>&1))")
fi
for prog in initdb pg_ctl psql; do
  pg_find_bin "$prog" >/dev/null || missing+=("$prog (PostgreSQL 15+ server programs: apt-get install postgresql)")
done
if [ "$(id -u)" -eq 0 ]; then
  os_user=${BILLHOOK_PG_OS_USER:-postgres}
  id "$os_user" >/dev/null 2>&1 ||
    missing+=("an OS user '$os_user' to run PostgreSQL as (running as root; set BILLHOOK_PG_OS_USER or useradd --system $os_user)")
  command -v runuser >/dev/null 2>&1 || missing+=("runuser (util-linux), to run PostgreSQL as $os_user")
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "scripts/chaos.sh cannot run; missing:" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

if [ "$build" = 1 ]; then
  echo "building: SQLX_OFFLINE=true cargo build --bins" >&2
  (cd "$root" && SQLX_OFFLINE=true cargo build --bins) >&2
fi
for bin in billhook-receiver billhook-worker; do
  if [ ! -x "$root/target/debug/$bin" ]; then
    echo "target/debug/$bin is missing: run SQLX_OFFLINE=true cargo build --bins" >&2
    echo "0 passed, 1 failed"
    exit 1
  fi
done

run_dir=$(mktemp -d "${TMPDIR:-/tmp}/billhook-chaos.XXXXXX")
# PostgreSQL may run as another OS user (when we are root): it needs to reach its folder.
chmod 755 "$run_dir"
py_pid=""
rc=1

cleanup() {
  # The driver stops what it started; this catches what a crashed driver left behind,
  # by the process ids it recorded, and the cluster by its data directory.
  if [ -n "$py_pid" ] && kill -0 "$py_pid" 2>/dev/null; then
    kill -TERM "$py_pid" 2>/dev/null || true
    wait "$py_pid" 2>/dev/null || true
  fi
  if [ -f "$run_dir/pids" ]; then
    while read -r pid; do
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    done <"$run_dir/pids"
  fi
  if [ -f "$run_dir/pg/data/postmaster.pid" ]; then
    _pg_as_owner "$(pg_find_bin pg_ctl)" -D "$run_dir/pg/data" -m immediate -w -t 30 -s stop \
      >/dev/null 2>&1 || true
  fi
  if [ "$rc" = 0 ] && [ "$keep" = 0 ] && [ ! -f "$run_dir/keep" ]; then
    rm -rf "$run_dir"
  fi
}
trap cleanup EXIT
# A background job of a script ignores SIGINT: Ctrl-C reaches this shell, which hands it on.
trap '[ -n "$py_pid" ] && kill -TERM "$py_pid" 2>/dev/null' INT TERM

args=(--dir "$run_dir" --root "$root")
[ -n "$quick" ] && args+=("$quick")
[ -n "$seed" ] && args+=(--seed "$seed")
[ -n "$workers" ] && args+=(--workers "$workers")
PYTHONDONTWRITEBYTECODE=1 python3 "$root/scripts/chaos/chaos.py" "${args[@]}" &
py_pid=$!
# `wait` returns early when a trapped signal arrives; wait again until the driver is gone.
while :; do
  set +e
  wait "$py_pid"
  rc=$?
  set -e
  kill -0 "$py_pid" 2>/dev/null || break
done
py_pid=""
exit "$rc"
