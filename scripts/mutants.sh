#!/usr/bin/env bash
# Mutation testing of the code that decides what the receiver accepts: cargo-mutants changes
# one thing at a time (an operator, a condition, a return value) and checks that some test
# fails. A mutant no test notices is a rule nothing pins down.
#
#   scripts/mutants.sh                 all four files below
#   scripts/mutants.sh FILE...         some of them, e.g. crates/billhook-core/src/stripe/envelope.rs
#   scripts/mutants.sh [FILE...] -- ARG...   ARGs go to cargo mutants; after a second `--`, to
#                                      cargo test, e.g. `-- -- --test answers --test rejections`
#
# Each mutant is tested by the tests of its own package (billhook-core's for the two parsers,
# billhook-receiver's for the route and the rate limiter), with SQLX_OFFLINE=true and a
# PostgreSQL server for the receiver's tests (found as scripts/test.sh does).
# MUTANTS_JOBS (default 1) mutants are built and tested at a time.
#
# It exits non-zero when a mutant survives that scripts/mutants-equivalent.txt does not list.
# That file names the mutants that cannot be caught because they change nothing observable,
# one per line as cargo-mutants names them (without line numbers) followed by `# why`.
# Results, logs and diffs: target/mutants/mutants.out/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/pg.sh
source scripts/lib/pg.sh

files=(
  crates/billhook-core/src/stripe/signature.rs
  crates/billhook-core/src/stripe/envelope.rs
  crates/billhook-receiver/src/routes/webhook.rs
  crates/billhook-receiver/src/rate_limit.rs
)
allow_list=scripts/mutants-equivalent.txt
out=target/mutants

chosen=()
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
  case " ${files[*]} " in
    *" $1 "*) chosen+=("$1") ;;
    *) echo "not one of the mutated files: $1 (choose from: ${files[*]})" >&2; exit 2 ;;
  esac
  shift
done
[ "${1:-}" != "--" ] || shift
if [ "${#chosen[@]}" -gt 0 ]; then
  files=("${chosen[@]}")
fi

if ! cargo mutants --version >/dev/null 2>&1; then
  echo "cargo-mutants not found: installing it (cargo install cargo-mutants --locked)"
  cargo install cargo-mutants --locked
fi

trap pg_stop_private EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
pg_select_server .dev/test-pg "${BILLHOOK_TEST_DATABASE_URL:-}" "${DATABASE_URL:-}"
export BILLHOOK_TEST_DATABASE_URL=$PG_SERVER_URL
export SQLX_OFFLINE=true
echo "test server: $(pg_redact "$PG_SERVER_URL") ($PG_SOURCE)"

file_args=()
for file in "${files[@]}"; do
  file_args+=(--file "$file")
done

started=$SECONDS
# --copy-target: the scratch copy starts from our compiled dependencies instead of building
# them all again. Exit status 2 (survivors) and 3 (timeouts) are judged below.
status=0
cargo mutants "${file_args[@]}" \
  --jobs "${MUTANTS_JOBS:-1}" \
  --copy-target=true \
  --output "$out" "$@" || status=$?
case "$status" in
  0 | 2 | 3) ;;
  *) echo "cargo mutants failed (exit $status): see $out/mutants.out/" >&2; exit "$status" ;;
esac

# Mutant names without `:line:col`, so the allow-list survives edits elsewhere in a file.
without_position() { sed -E 's/^([^:]+):[0-9]+:[0-9]+: /\1: /' "$@"; }
# The allow-list without comments and blank lines.
allowed=$(sed -e 's/[[:space:]]*#.*$//' -e '/^[[:space:]]*$/d' "$allow_list" | without_position)
unexplained=()
while IFS= read -r mutant; do
  [ -n "$mutant" ] || continue
  if ! grep -qxF -- "$mutant" <<<"$allowed"; then
    unexplained+=("$mutant")
  fi
done < <(without_position "$out/mutants.out/missed.txt")

count() { if [ -f "$1" ]; then grep -c . "$1" || true; else echo 0; fi; }
echo
echo "mutants: caught $(count "$out/mutants.out/caught.txt"), missed $(count "$out/mutants.out/missed.txt")" \
  "($(( $(count "$out/mutants.out/missed.txt") - ${#unexplained[@]} )) listed as equivalent)," \
  "timed out $(count "$out/mutants.out/timeout.txt"), unviable $(count "$out/mutants.out/unviable.txt")" \
  "in $((SECONDS - started)) s"
if [ -s "$out/mutants.out/timeout.txt" ]; then
  echo "timed out (a hang counts as caught; check these are real hangs):"
  sed 's/^/  /' "$out/mutants.out/timeout.txt"
fi
if [ "${#unexplained[@]}" -gt 0 ]; then
  echo "surviving mutants that no test catches and $allow_list does not explain:" >&2
  printf '  %s\n' "${unexplained[@]}" >&2
  echo "Kill each with a test, or list it in $allow_list with the reason it is equivalent." >&2
  exit 1
fi
echo "every surviving mutant is listed as equivalent"
