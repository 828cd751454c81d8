# shellcheck shell=bash
# The checks of deploy/prometheus/ (issue 15): promtool from Debian's prometheus package checks
# the alerting rules and the Prometheus configuration and runs the rules' unit tests; the Grafana
# dashboard must be valid JSON with the panels it names. Sourced by scripts/test.sh.

# Makes sure promtool is installed, installing Debian's prometheus package without starting its
# service when it is missing; exports BILLHOOK_PROMTOOL. Fails saying what is missing.
promtool_ensure() {
  local promtool sudo=()
  promtool=${BILLHOOK_PROMTOOL:-$(command -v promtool || true)}
  if [ -z "$promtool" ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
      echo "promtool not found, and this machine has no apt-get: install Prometheus's promtool and set BILLHOOK_PROMTOOL to its path." >&2
      return 1
    fi
    if [ "$(id -u)" -ne 0 ]; then
      if command -v sudo >/dev/null 2>&1; then
        sudo=(sudo -n)
      else
        echo "promtool not found: run 'apt-get install prometheus' as root (scripts/test.sh checks deploy/prometheus/ with it)." >&2
        return 1
      fi
    fi
    echo "installing Debian's prometheus package for promtool (its service is not started)"
    # policy-rc.d forbids starting services during the install: a Prometheus left running
    # would hold port 9090, the console's default.
    local policy=/usr/sbin/policy-rc.d created=0
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null && "${sudo[@]}" chmod +x "$policy" && created=1
    fi
    local ok=0
    for attempt in 1 2; do
      if "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null; then
        ok=1
        break
      fi
      [ "$attempt" = 1 ] && { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null || true; }
    done
    [ "$created" = 1 ] && "${sudo[@]}" rm -f "$policy"
    if [ "$ok" != 1 ]; then
      echo "installing the prometheus package failed: install promtool (apt-get install prometheus) and run scripts/test.sh again." >&2
      return 1
    fi
    promtool=$(command -v promtool || true)
  fi
  if [ ! -x "$promtool" ]; then
    echo "promtool ($promtool) is not an executable." >&2
    return 1
  fi
  export BILLHOOK_PROMTOOL=$promtool
}

# Checks deploy/prometheus/ and deploy/grafana/ from the repository root; fails on any broken file.
prometheus_check() {
  local dir=${1:-deploy}
  promtool_ensure || return 1
  "$BILLHOOK_PROMTOOL" check rules "$dir/prometheus/billhook-alerts.yml" || return 1
  "$BILLHOOK_PROMTOOL" check config "$dir/prometheus/prometheus.yml" || return 1
  (cd "$dir/prometheus" && "$BILLHOOK_PROMTOOL" test rules billhook-alerts.test.yml) || return 1
  python3 - "$dir/grafana/billhook-dashboard.json" <<'PY' || return 1
import json, sys
path = sys.argv[1]
with open(path) as f:
    board = json.load(f)
panels = board.get("panels") or []
if not panels:
    sys.exit(f"{path}: no panels")
ids = [p.get("id") for p in panels]
if len(set(ids)) != len(ids):
    sys.exit(f"{path}: panel ids are not unique")
for p in panels:
    for t in p.get("targets", []):
        if "billhook_" not in t.get("expr", ""):
            sys.exit(f"{path}: panel {p.get('title')!r} queries no billhook metric")
print(f"{path}: {len(panels)} panels")
PY
}

# The checks catch what they are for: a copy of deploy/ with a rule whose expression does not
# parse, and one whose unit test no longer holds (a threshold changed), must each fail.
prometheus_check_catches_breakage() {
  local tmp broken=0
  tmp=$(mktemp -d)
  cp -r deploy/prometheus deploy/grafana "$tmp/"
  sed -i '0,/expr: /s/expr: /expr: sum(( /' "$tmp/prometheus/billhook-alerts.yml"
  if prometheus_check "$tmp" >/dev/null 2>&1; then
    echo "a rule that does not parse passed the check" >&2
    broken=1
  fi
  cp deploy/prometheus/billhook-alerts.yml "$tmp/prometheus/"
  sed -i 's/\[1h\])) > 5$/[1h])) > 50/' "$tmp/prometheus/billhook-alerts.yml"
  if prometheus_check "$tmp" >/dev/null 2>&1; then
    echo "a rule that no longer fires in its unit test passed the check" >&2
    broken=1
  fi
  rm -rf "$tmp"
  [ "$broken" = 0 ] && echo "a broken rule and a changed threshold both fail the check"
}

# Everything scripts/test.sh checks of deploy/ for Prometheus and Grafana.
prometheus_checks() {
  prometheus_check deploy && prometheus_check_catches_breakage
}
