# shellcheck shell=bash
# deploy/systemd/ under a real systemd (issue 16): systemd-analyze verify (scripts/lib/systemd.sh)
# reads the units; this runs them. A Debian bookworm root with systemd (debootstrap, made once
# and kept in the cache) is booted with systemd-nspawn on a throwaway overlay, sharing this
# machine's network; the units, the environment file's example and this build's binaries are
# bound into it as an operator installs them (docs/deployment.md). Then, as systemd runs them:
# - starting the receiver and the worker runs the one-shot migrate first, and both come up
#   under their sandbox (a dynamic user, not root);
# - a signed webhook posted to the receiver is stored, and the worker applies it;
# - a worker killed by SIGKILL is restarted by systemd (Restart=);
# - `systemctl stop` drains the worker within TimeoutStopSec and it exits cleanly.
# Needs root (systemd-nspawn), debootstrap and systemd-nspawn (Debian's debootstrap and
# systemd-container, installed when missing). Sourced by scripts/test.sh.

# What the root holds beyond minbase; a cached root made with another list is made again. The
# worker needs CA certificates (it builds its HTTPS clients at start), as docs/deployment.md says.
SYSTEMD_BOOT_PACKAGES=systemd,systemd-sysv,dbus,ca-certificates

# shellcheck source=scripts/lib/ports.sh
source scripts/lib/ports.sh

systemd_boot_cache() {
  printf '%s\n' "${BILLHOOK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/billhook}/systemd-root-bookworm"
}

# Installs debootstrap and systemd-nspawn when missing, and makes the bookworm root once.
systemd_boot_ensure() {
  local root tmp pkgs=()
  if [ "$(id -u)" -ne 0 ]; then
    echo "running deploy/systemd/ under systemd needs root (systemd-nspawn boots a container): run scripts/test.sh as root, or in a container or VM where you are" >&2
    return 1
  fi
  command -v systemd-nspawn >/dev/null 2>&1 || pkgs+=(systemd-container)
  command -v debootstrap >/dev/null 2>&1 || pkgs+=(debootstrap)
  if [ "${#pkgs[@]}" -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
      echo "missing ${pkgs[*]} and no apt-get to install them: install systemd-nspawn and debootstrap" >&2
      return 1
    fi
    echo "installing Debian's ${pkgs[*]}"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null; then
      DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null || true
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null || {
        echo "installing ${pkgs[*]} failed: install them (apt-get install ${pkgs[*]}) and run scripts/test.sh again" >&2
        return 1
      }
    fi
  fi
  root=$(systemd_boot_cache)
  [ "$(cat "$root/.billhook-packages" 2>/dev/null)" = "$SYSTEMD_BOOT_PACKAGES" ] && return 0
  # Under a umask of 077 the root's own files would be closed to the services' dynamic users.
  umask 022
  echo "making a Debian bookworm root with systemd in $root (debootstrap, once; about a minute)"
  mkdir -p "$(dirname "$root")"
  tmp="$root.partial.$$"
  rm -rf "$tmp"
  if ! debootstrap --variant=minbase --include="$SYSTEMD_BOOT_PACKAGES" bookworm "$tmp" \
    "${BILLHOOK_DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$tmp.log" 2>&1; then
    tail -20 "$tmp.log" >&2
    echo "debootstrap failed (log above): is the Debian mirror reachable? BILLHOOK_DEBIAN_MIRROR sets another" >&2
    rm -rf "$tmp" "$tmp.log"
    return 1
  fi
  rm -f "$tmp.log"
  # The units read it, and their directories must exist to be bound over.
  mkdir -p "$tmp/etc/billhook" "$tmp/usr/local/bin"
  : >"$tmp/etc/billhook/billhook.env"
  : >"$tmp/usr/local/bin/billhook-receiver"
  : >"$tmp/usr/local/bin/billhook-worker"
  printf '%s\n' "$SYSTEMD_BOOT_PACKAGES" >"$tmp/.billhook-packages"
  rm -rf "$root"
  mv "$tmp" "$root"
}

# systemd_boot_check BIN_DIR SERVER_URL [UNITS_DIR]: the binaries of BIN_DIR under the units of
# UNITS_DIR (deploy/systemd/),
# on a database of their own on SERVER_URL's PostgreSQL (a postgres://…@127.0.0.1 URL, as
# scripts/test.sh's server is). Fails, saying what went wrong, on any step above.
systemd_boot_check() {
  local bins=$1 server=$2 units=${3:-deploy/systemd} root work db url leader="" nspawn_pid="" ok=1 status=0
  local port admin worker_admin console secret
  case "$server" in
    postgres://*@127.0.0.1:*/* | postgresql://*@127.0.0.1:*/*) ;;
    *) echo "systemd_boot_check: the server must be a postgres://…@127.0.0.1:PORT/DB URL, not '$server'" >&2; return 1 ;;
  esac
  systemd_boot_ensure || return 1
  root=$(systemd_boot_cache)
  for bin in billhook-receiver billhook-worker; do
    [ -x "$bins/$bin" ] || { echo "$bins/$bin is missing: build the binaries first (cargo build --bins)" >&2; return 1; }
  done
  work=$(mktemp -d)
  db="billhook_test_systemd_$$"
  url="${server%/*}/$db"
  if ! { port=$(free_port) && admin=$(free_port) \
    && worker_admin=$(free_port) && console=$(free_port); }; then
    echo "no free port" >&2
    return 1
  fi
  secret="whsec_systemd_$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
  psql -X -q -d "$server" -c "CREATE DATABASE \"$db\"" >/dev/null || { rm -rf "$work"; return 1; }

  # The example as an operator fills it in: its placeholders (REPLACE_…: the database password,
  # the signing secret, the Stripe key, the console tokens) are the operator's to give; here a
  # test database and secret, no Stripe key (no reconciliation) and no tokens (the console on
  # loopback without them). Everything else is the example's own.
  grep -v 'REPLACE' "$units/billhook.env.example" >"$work/billhook.env"
  cat >>"$work/billhook.env" <<EOF
DATABASE_URL='$url'
BILLHOOK_WEBHOOK_SECRETS='test=$secret'
BILLHOOK_RECEIVER_LISTEN=127.0.0.1:$port
BILLHOOK_RECEIVER_ADMIN_LISTEN=127.0.0.1:$admin
BILLHOOK_WORKER_ADMIN_LISTEN=127.0.0.1:$worker_admin
BILLHOOK_CONSOLE_LISTEN=127.0.0.1:$console
EOF

  # Installed as an operator does (mode 0755): the services run as a dynamic user, who cannot
  # execute a build made under a umask of 077 where it lies.
  install -m 0755 "$bins/billhook-receiver" "$bins/billhook-worker" "$work/"
  local binds=(
    "--bind-ro=$work/billhook.env:/etc/billhook/billhook.env"
    "--bind-ro=$work/billhook-receiver:/usr/local/bin/billhook-receiver"
    "--bind-ro=$work/billhook-worker:/usr/local/bin/billhook-worker"
  )
  for unit in "$units"/*.service; do
    binds+=("--bind-ro=$(realpath "$unit"):/etc/systemd/system/$(basename "$unit")")
  done
  systemd-nspawn --quiet --directory="$root" --volatile=overlay --register=no --keep-unit \
    --machine="billhook-test-$$" "${binds[@]}" --boot >"$work/console.log" 2>&1 &
  nspawn_pid=$!

  sc() { nsenter --target "$leader" --all "$@"; }
  fail() { echo "systemd: $*" >&2; ok=0; }
  show() { sc systemctl show --value -p "$2" "$1"; }
  # The worker's and receiver's own log lines, when a step fails.
  journal() { sc journalctl --no-pager -o cat -n 40 -u "$1" >&2 || true; }

  # The container's PID 1: systemd, a child of systemd-nspawn.
  for _ in $(seq 1 300); do
    leader=$(pgrep -P "$(pgrep -P "$nspawn_pid" -x systemd-nspawn || echo "$nspawn_pid")" -x systemd || true)
    [ -n "$leader" ] && break
    kill -0 "$nspawn_pid" 2>/dev/null || break
    sleep 0.2
  done
  if [ -z "$leader" ]; then
    fail "the container did not boot within 60 s:"
    cat "$work/console.log" >&2
  else
    # Billhook's units are not enabled, so nothing of theirs runs at boot: a unit of the
    # container's own that failed (degraded) is this machine's business, not the check's; it is
    # said, and the check goes on.
    # systemd is found as soon as it runs, before its bus is up: until then systemctl fails to
    # connect, and is asked again.
    local deadline=$((SECONDS + 120))
    while :; do
      status=$(timeout 120 nsenter --target "$leader" --all systemctl is-system-running --wait 2>&1 || true)
      case "$status" in
        *"Failed to connect to bus"*) [ "$SECONDS" -lt "$deadline" ] && kill -0 "$nspawn_pid" 2>/dev/null && sleep 0.2 && continue ;;
      esac
      break
    done
    echo "booted systemd $(sc systemctl --version | head -1 | cut -d' ' -f2) in a container: $status"
    case "$status" in
      running) ;;
      degraded) echo "the container's own units that failed: $(sc systemctl --failed --no-legend --plain 2>&1 | tr '\n' ' ')" ;;
      *)
        fail "the container's systemd is '$status' after 120 s: $(sc systemctl --failed --no-legend --plain 2>&1)"
        tail -n 30 "$work/console.log" >&2
        ;;
    esac
  fi

  if [ "$ok" = 1 ]; then
    if ! sc timeout 120 systemctl start billhook-receiver.service billhook-worker.service; then
      fail "starting the receiver and the worker failed"
      journal billhook-migrate.service; journal billhook-receiver.service; journal billhook-worker.service
    fi
  fi
  if [ "$ok" = 1 ]; then
    [ "$(show billhook-migrate.service Result)/$(show billhook-migrate.service ActiveState)" = success/active ] \
      || fail "billhook-migrate.service did not run to success before the others"
    local unit pid uid
    for unit in billhook-receiver.service billhook-worker.service; do
      pid=$(show "$unit" MainPID)
      # shellcheck disable=SC2016 # awk's $2.
      uid=$(sc awk '/^Uid:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
      if [ -z "$uid" ] || [ "$uid" = 0 ]; then
        fail "$unit runs as uid '${uid:-?}', not as its dynamic user"
      else
        echo "$unit: active, main process $pid as dynamic user $uid"
      fi
    done
    for _ in $(seq 1 150); do
      curl -fsS --max-time 1 "http://127.0.0.1:$admin/readyz" >/dev/null 2>&1 \
        && curl -fsS --max-time 1 "http://127.0.0.1:$worker_admin/readyz" >/dev/null 2>&1 && break
      sleep 0.2
    done
    curl -fsS --max-time 2 "http://127.0.0.1:$worker_admin/readyz" >/dev/null 2>&1 \
      || { fail "the worker's /readyz did not answer 200 within 30 s"; journal billhook-worker.service; }
  fi

  if [ "$ok" = 1 ]; then
    # A signed customer.created, as Stripe sends it.
    local now event_id body sig answer applied=""
    now=$(date +%s)
    event_id="evt_systemd_$$"
    body=$(printf '{"id":"%s","object":"event","api_version":"2026-07-29.dahlia","created":%s,"data":{"object":{"id":"cus_systemd_%s","object":"customer","email":"systemd@example.com","name":"Systemd Test","created":%s,"livemode":false,"metadata":{}}},"livemode":false,"pending_webhooks":1,"request":{"id":null,"idempotency_key":null},"type":"customer.created"}' \
      "$event_id" "$now" "$$" "$now")
    sig=$(python3 -c 'import hashlib, hmac, sys; print(hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.sha256).hexdigest())' \
      "$secret" "$now.$body")
    answer=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
      -H "Stripe-Signature: t=$now,v1=$sig" --data-binary "$body" "http://127.0.0.1:$port/api/webhooks/stripe" 2>&1)
    [ "$answer" = 200 ] || { fail "the receiver answered $answer to a signed webhook"; journal billhook-receiver.service; }
    for _ in $(seq 1 150); do
      applied=$(psql -X -qtA -d "$url" -c "SELECT status FROM webhook_events WHERE id = '$event_id'" 2>/dev/null)
      [ "$applied" = applied ] && break
      sleep 0.2
    done
    if [ "$applied" = applied ]; then
      echo "a signed webhook posted to the receiver was applied by the worker"
    else
      fail "the webhook's event is '${applied:-not stored}', not applied, after 30 s"
      journal billhook-worker.service
    fi
  fi

  if [ "$ok" = 1 ]; then
    local before after
    before=$(show billhook-worker.service NRestarts)
    sc systemctl kill --signal=SIGKILL billhook-worker.service
    for _ in $(seq 1 100); do
      after=$(show billhook-worker.service NRestarts)
      [ "$after" -gt "$before" ] && [ "$(show billhook-worker.service SubState)" = running ] && break
      sleep 0.2
    done
    if [ "$after" -gt "$before" ]; then
      echo "a worker killed with SIGKILL was restarted by systemd ($((after - before)) restart)"
    else
      fail "the worker killed with SIGKILL was not restarted within 20 s (NRestarts $after)"
    fi
    for _ in $(seq 1 150); do
      curl -fsS --max-time 1 "http://127.0.0.1:$worker_admin/readyz" >/dev/null 2>&1 && break
      sleep 0.2
    done
    local t0=$SECONDS
    sc timeout 90 systemctl stop billhook-worker.service billhook-receiver.service \
      || fail "systemctl stop failed"
    for unit in billhook-worker.service billhook-receiver.service; do
      if [ "$(show "$unit" Result)" = success ] && [ "$(show "$unit" ExecMainStatus)" = 0 ]; then
        echo "$unit: stopped by SIGTERM, exited 0 ($((SECONDS - t0)) s)"
      else
        fail "$unit did not stop cleanly: Result=$(show "$unit" Result), status $(show "$unit" ExecMainStatus)"
        journal "$unit"
      fi
    done
  fi

  kill -TERM "$nspawn_pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$nspawn_pid" 2>/dev/null || break
    sleep 0.2
  done
  kill -KILL "$nspawn_pid" 2>/dev/null || true
  wait "$nspawn_pid" 2>/dev/null || true
  psql -X -q -d "$server" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null || true
  rm -rf "$work"
  unset -f sc fail show journal
  [ "$ok" = 1 ]
}

# scripts/test.sh's step: this build's debug binaries (cargo build --bins, which cargo test's
# build does not give: its binaries have the dev-dependencies' features) under the units, on the
# test server. As root, or through passwordless sudo.
systemd_boot_step() {
  local server=$1
  # The same build as scripts/chaos.sh's, which comes next and so finds it made: another package
  # selection would unify other features and build everything twice.
  SQLX_OFFLINE=true cargo build --quiet --bins || return 1
  if [ "$(id -u)" -eq 0 ]; then
    systemd_boot_check target/debug "$server"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    # shellcheck disable=SC2016 # $1 and $2 are the inner shell's.
    sudo -n bash -c 'source scripts/lib/systemd_boot.sh && systemd_boot_check "$1" "$2"' _ target/debug "$server"
  else
    echo "running deploy/systemd/ under systemd needs root (systemd-nspawn boots a container): run scripts/test.sh as root or with passwordless sudo" >&2
    return 1
  fi
}
