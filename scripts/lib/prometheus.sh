# shellcheck shell=bash
# The checks of deploy/prometheus/ and deploy/grafana/ (issue 15): promtool, from Debian's
# prometheus package, checks the alerting rules and the Prometheus configuration and runs the
# rules' unit tests; the Grafana dashboard must be JSON whose queries parse; every metric they
# name must be one the code defines, and every alert must have a test where it fires and one
# where it stays quiet. Sourced by scripts/test.sh; run from the repository root.

# Makes sure promtool is installed, installing Debian's prometheus package without starting its
# service when it is missing; exports BILLHOOK_PROMTOOL (set it to use another promtool). Fails
# saying what is missing.
promtool_ensure() {
  local promtool sudo=() attempt
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
        echo "promtool not found: run 'apt-get install --no-install-recommends prometheus' as root (scripts/test.sh checks deploy/prometheus/ with it)." >&2
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
      echo "installing the prometheus package failed: install promtool (apt-get install --no-install-recommends prometheus) and run scripts/test.sh again." >&2
      return 1
    fi
    promtool=$(command -v promtool || true)
  fi
  if [ ! -x "$promtool" ]; then
    echo "promtool ($promtool) is not an executable." >&2
    return 1
  fi
  export BILLHOOK_PROMTOOL=$promtool
  echo "promtool: $("$promtool" --version 2>&1 | head -n 1)"
}

_prometheus_fail() { echo "check_prometheus_config: $*" >&2; }

# Runs a check quietly; on failure shows its output and WHAT failed.
_prometheus_run() {
  local what=$1 out
  shift
  if ! out=$("$@" 2>&1); then
    printf '%s\n' "$out" >&2
    _prometheus_fail "$what"
    return 1
  fi
}

# Checks the rules, the Prometheus configuration and the dashboard under DEPLOY (default:
# deploy); the metrics they name are checked against crates/*/src. Fails at the first broken
# check, naming it.
check_prometheus_config() {
  local deploy=${1:-deploy} tmp status=0
  local rules=$deploy/prometheus/billhook-alerts.yml
  local tests=$deploy/prometheus/billhook-alerts.test.yml
  local config=$deploy/prometheus/prometheus.yml
  local dashboard=$deploy/grafana/billhook-dashboard.json
  promtool_ensure >/dev/null || return 1

  _prometheus_run "$rules: promtool check rules failed" "$BILLHOOK_PROMTOOL" check rules "$rules" || return 1
  _prometheus_run "$config: promtool check config failed" "$BILLHOOK_PROMTOOL" check config "$config" || return 1
  _prometheus_run "$dashboard: not valid JSON (python3 -m json.tool)" python3 -m json.tool "$dashboard" || return 1

  # The dashboard's layout, and its queries as recording rules for promtool to parse (Grafana's
  # interval variables replaced by durations).
  tmp=$(mktemp -d)
  python3 - "$dashboard" "$tmp/dashboard-queries.yml" <<'PY' || status=1
import json, sys
path, out = sys.argv[1], sys.argv[2]
board = json.load(open(path))
def fail(msg):
    sys.exit(f"{path}: {msg}")
panels = board.get("panels") or []
if not panels:
    fail("no panels")
ids = [p.get("id") for p in panels]
if None in ids or len(set(ids)) != len(ids):
    fail("panel ids missing or not unique")
if not any(v.get("type") == "datasource" for v in board.get("templating", {}).get("list", [])):
    fail("no datasource template variable")
boxes, rules = [], []
for p in panels:
    g = p.get("gridPos") or {}
    if not all(isinstance(g.get(k), int) for k in ("x", "y", "w", "h")) or g["x"] + g["w"] > 24:
        fail(f"panel {p['id']} ({p.get('title')!r}): gridPos missing or wider than 24 columns")
    for q in boxes:
        if g["x"] < q["x"] + q["w"] and q["x"] < g["x"] + g["w"] and g["y"] < q["y"] + q["h"] and q["y"] < g["y"] + g["h"]:
            fail(f"panel {p['id']} ({p.get('title')!r}) overlaps another")
    boxes.append(g)
    if p.get("type") == "row":
        continue
    exprs = [t.get("expr", "") for t in p.get("targets", [])]
    if not exprs or not all("billhook_" in e or "up{" in e for e in exprs):
        fail(f"panel {p['id']} ({p.get('title')!r}) has a query on no Billhook metric")
    for i, e in enumerate(exprs):
        for var, value in (("$__rate_interval", "5m"), ("$__interval", "1m"), ("$__range", "1h")):
            e = e.replace(var, value)
        rules.append(f"      - record: dashboard_panel_{p['id']}_{i}\n        expr: {json.dumps(e)}\n")
with open(out, "w") as f:
    f.write("groups:\n  - name: dashboard\n    rules:\n" + "".join(rules))
PY
  if [ "$status" != 0 ]; then
    _prometheus_fail "$dashboard: its layout is broken (above)"
  elif ! _prometheus_run "$dashboard: a query does not parse" "$BILLHOOK_PROMTOOL" check rules "$tmp/dashboard-queries.yml"; then
    status=1
  fi
  rm -rf "$tmp"
  [ "$status" = 0 ] || return 1

  # Only metrics the code defines, and every alert both firing and quiet in the tests.
  python3 - "$rules" "$tests" "$dashboard" <<'PY' || { _prometheus_fail "the rules, their tests or the dashboard name a metric the code lacks, or an alert is untested (above)"; return 1; }
import glob, re, sys
rules_path, tests_path, dashboard_path = sys.argv[1:4]
defined = set()
for src in glob.glob("crates/*/src/**/*.rs", recursive=True):
    defined |= set(re.findall(r'"(billhook_[a-z0-9_]+)"', open(src).read()))
problems = []
for path in (rules_path, tests_path, dashboard_path):
    for name in sorted(set(re.findall(r"\bbillhook_[a-z0-9_]+", open(path).read()))):
        base = re.sub(r"_(bucket|count|sum)$", "", name)
        if name not in defined and base not in defined:
            problems.append(f"{path}: {name} is not a metric defined in crates/*/src")
alerts = re.findall(r"^\s*- alert:\s*(\S+)", open(rules_path).read(), re.M)
fires, quiet = set(), set()
lines = open(tests_path).read().splitlines()
for i, line in enumerate(lines):
    m = re.match(r"\s*alertname:\s*(\S+)", line)
    if not m:
        continue
    name = m.group(1)
    if name not in alerts:
        problems.append(f"{tests_path}: alertname {name} is no rule of {rules_path}")
    after = next((l for l in lines[i + 1:] if "exp_alerts:" in l), "exp_alerts: []")
    (quiet if after.split("exp_alerts:", 1)[1].strip() == "[]" else fires).add(name)
for name in alerts:
    if name not in fires:
        problems.append(f"{tests_path}: no test where {name} fires")
    if name not in quiet:
        problems.append(f"{tests_path}: no test where {name} stays quiet")
if problems:
    sys.exit("\n".join(problems))
PY

  # promtool resolves the tests' rule_files from the current directory.
  (cd "$deploy/prometheus" && _prometheus_run "$tests: promtool test rules failed" \
    "$BILLHOOK_PROMTOOL" test rules billhook-alerts.test.yml) || return 1
  echo "$deploy/prometheus and $deploy/grafana: rules, configuration, unit tests, dashboard and metric names check"
}

# Each check catches what it is for: a copy of deploy/ broken one way at a time must fail
# check_prometheus_config, at that check.
prometheus_check_catches_breakage() {
  local tmp missed=0 file edit expect out
  tmp=$(mktemp -d)
  while IFS='|' read -r file edit expect; do
    rm -rf "${tmp:?}/deploy" && mkdir -p "$tmp/deploy" && cp -r deploy/prometheus deploy/grafana "$tmp/deploy/"
    sed -i "$edit" "$tmp/deploy/$file"
    if cmp -s "deploy/$file" "$tmp/deploy/$file"; then
      echo "the breakage '$edit' did not change $file" >&2
      missed=1
      continue
    fi
    if out=$(check_prometheus_config "$tmp/deploy" 2>&1); then
      echo "$file with '$edit' passed the check" >&2
      missed=1
    elif ! grep -qF -- "$expect" <<<"$out"; then
      echo "$file with '$edit' failed, but not at '$expect':" >&2
      printf '%s\n' "$out" >&2
      missed=1
    fi
  done <<'CASES'
prometheus/billhook-alerts.yml|0,/expr: /s/expr: /expr: sum(( /|promtool check rules failed
prometheus/prometheus.yml|s/scrape_interval: 15s/scrape_interval: 15 seconds/|promtool check config failed
prometheus/billhook-alerts.yml|s/\[1h\]))) > 5$/[1h]))) > 50/|promtool test rules failed
prometheus/billhook-alerts.yml|s/billhook_worker_dead_letters_total\[1h\]/billhook_worker_dead_letter_total[1h]/|is not a metric defined
prometheus/billhook-alerts.yml|s/alert: BillhookDeadLetterWaiting/alert: BillhookDeadLetterWaitingLong/|no test where BillhookDeadLetterWaitingLong fires
grafana/billhook-dashboard.json|0,/"panels": \[/s/"panels": \[/"panels": [[/|not valid JSON
grafana/billhook-dashboard.json|0,/(rate(billhook_receiver_requests_total/s/(rate(billhook_receiver_requests_total/((rate(billhook_receiver_requests_total/|a query does not parse
CASES
  rm -rf "$tmp"
  [ "$missed" = 0 ] && echo "a broken rule, configuration, threshold, metric name, untested alert, dashboard JSON and dashboard query each fail the check"
}

# Everything scripts/test.sh checks of deploy/ for Prometheus and Grafana.
prometheus_checks() {
  check_prometheus_config deploy && prometheus_check_catches_breakage
}
