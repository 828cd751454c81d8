# shellcheck shell=bash
# The PG_* globals are read by the scripts that source this file:
# shellcheck disable=SC2034
# Finding or starting a PostgreSQL server, for scripts/dev.sh and scripts/test.sh (sourced).
#
#   pg_select_server DIR [URL...]
#       Picks a server and sets PG_SERVER_URL (a URL of its `postgres` database, or the given
#       URL) and PG_SOURCE (`url`, `local` or `private`). In order: each non-empty URL given
#       that answers; postgres://postgres@127.0.0.1:5432/postgres if it answers; else a private
#       cluster under DIR (initdb + pg_ctl, trust auth, user postgres, 127.0.0.1 on a free port,
#       its unix socket inside DIR), created once and started now. With none of these possible
#       it explains how to install PostgreSQL and exits 1.
#       BILLHOOK_PG_FORCE_PRIVATE=1 skips the URLs and 127.0.0.1:5432.
#   pg_stop_private
#       Stops the private cluster, if this shell started it. Meant for an EXIT trap.
#
# PG_PRIVATE_SERVER_OPTIONS (set before pg_select_server) adds postgres options for a private
# cluster, e.g. "-c fsync=off" for throwaway test data. When the script runs as root, the
# private cluster runs as the OS user BILLHOOK_PG_OS_USER (default postgres), since initdb and
# postgres refuse to run as root; DIR is then owned by that user.

PG_DEFAULT_URL="postgres://postgres@127.0.0.1:5432/postgres"
PG_SERVER_URL=""
PG_SOURCE=""
PG_PRIVATE_SERVER_OPTIONS=${PG_PRIVATE_SERVER_OPTIONS:-}
# Set only while a cluster this shell started is running.
_pg_started_data=""
_pg_started_ctl=""

pg_say() { printf '%s\n' "$*" >&2; }

# A URL with its password (if any) masked, for messages.
pg_redact() {
  printf '%s\n' "$1" | sed -E 's#^([a-z]+://[^:/@]*):[^@/]*@#\1:***@#'
}

# Path of a PostgreSQL program: on PATH, else in the newest /usr/lib/postgresql/*/bin.
pg_find_bin() {
  local name=$1 dir
  if command -v "$name" >/dev/null 2>&1; then
    command -v "$name"
    return 0
  fi
  while IFS= read -r dir; do
    if [ -x "$dir/$name" ]; then
      printf '%s\n' "$dir/$name"
      return 0
    fi
  done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k5,5 -rn)
  return 1
}

# Whether a server answers at URL (and, with psql, accepts the URL's user and database).
pg_reachable() {
  local url=$1 bin rest host port
  if bin=$(pg_find_bin psql); then
    PGCONNECT_TIMEOUT=3 "$bin" -X -w -q -tA -d "$url" -c 'select 1' >/dev/null 2>&1 </dev/null
  elif bin=$(pg_find_bin pg_isready); then
    "$bin" -q -t 3 -d "$url" </dev/null
  else
    # No client at all: settle for an open TCP port.
    rest=${url#*://}
    rest=${rest##*@}
    rest=${rest%%/*}
    rest=${rest%%\?*}
    host=${rest%:*}
    port=${rest##*:}
    [ "$port" != "$rest" ] || port=5432
    [ -n "$host" ] || host=127.0.0.1
    # shellcheck disable=SC2016 # $0 and $1 belong to the inner shell
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null
  fi
}

pg_missing() {
  cat >&2 <<'EOF'
PostgreSQL is missing: no server answered (DATABASE_URL, 127.0.0.1:5432), and initdb/pg_ctl
were not found (on PATH or under /usr/lib/postgresql/*/bin) to start a private one.
Install PostgreSQL 15 or newer:
  Debian/Ubuntu:  sudo apt-get install postgresql
  macOS:          brew install postgresql@15   (and put "$(brew --prefix postgresql@15)/bin" on PATH)
or run it in Docker (docker-compose.yml) and point DATABASE_URL at it:
  BILLHOOK_WEBHOOK_SECRETS=unused docker compose up -d postgres
  export DATABASE_URL=postgres://postgres:postgres@127.0.0.1:5432/postgres
EOF
  exit 1
}

# The OS user a private cluster runs as when this script runs as root.
_pg_os_user() { printf '%s\n' "${BILLHOOK_PG_OS_USER:-postgres}"; }

# Runs a command as the private cluster's owner: ourselves, or that user when we are root.
_pg_as_owner() {
  if [ "$(id -u)" -ne 0 ]; then
    "$@"
  elif command -v runuser >/dev/null 2>&1; then
    runuser -u "$(_pg_os_user)" -- "$@"
  else
    # shellcheck disable=SC2016 # "$0" "$@" belong to the inner shell
    su -s /bin/sh -c 'exec "$0" "$@"' "$(_pg_os_user)" -- "$@"
  fi
}

# A TCP port on 127.0.0.1 that nothing listens on, preferring $1.
_pg_free_port() {
  local port=${1:-} tries=0
  if [ -n "$port" ] && ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    printf '%s\n' "$port"
    return 0
  fi
  while [ "$tries" -lt 200 ]; do
    port=$((55000 + RANDOM % 5000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      printf '%s\n' "$port"
      return 0
    fi
    tries=$((tries + 1))
  done
  pg_say "no free TCP port found on 127.0.0.1"
  return 1
}

# Creates (once) and starts a private cluster under DIR; sets PG_SERVER_URL.
pg_start_private() {
  local dir=$1 initdb pg_ctl data sock log port user
  initdb=$(pg_find_bin initdb) || pg_missing
  pg_ctl=$(pg_find_bin pg_ctl) || pg_missing
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  data=$dir/data
  sock=$dir/sock
  log=$dir/postgres.log
  mkdir -p "$sock"

  if [ "$(id -u)" -eq 0 ]; then
    user=$(_pg_os_user)
    if ! id "$user" >/dev/null 2>&1; then
      pg_say "Running as root, and PostgreSQL refuses to run as root: it needs an OS user to run"
      pg_say "the private cluster as. Create one (useradd --system --create-home $user), set"
      pg_say "BILLHOOK_PG_OS_USER to an existing user, or run this script as a normal user."
      exit 1
    fi
    chown -R "$user:" "$dir"
    if ! _pg_as_owner test -w "$dir"; then
      pg_say "The OS user $user cannot write to $dir (a parent folder is closed to it)."
      pg_say "Run this script as a normal user, or set DATABASE_URL to a running server."
      exit 1
    fi
  fi

  if [ ! -f "$data/PG_VERSION" ]; then
    # A folder without PG_VERSION is an initdb that did not finish: start over.
    rm -rf "$data"
    pg_say "creating a private PostgreSQL cluster in $data"
    if ! _pg_as_owner "$initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C --no-sync \
      >"$dir/initdb.log" 2>&1; then
      pg_say "initdb failed; its output ($dir/initdb.log):"
      tail -n 20 "$dir/initdb.log" >&2
      exit 1
    fi
  fi

  # Already running (another dev.sh, or one left behind): use it, and leave it running.
  if _pg_as_owner "$pg_ctl" -D "$data" status >/dev/null 2>&1; then
    port=$(sed -n 4p "$data/postmaster.pid")
    PG_SERVER_URL="postgres://postgres@127.0.0.1:$port/postgres"
    PG_SOURCE=private
    pg_say "private PostgreSQL already running in $data (port $port); it is left running"
    return 0
  fi

  port=$(_pg_free_port "$(cat "$dir/port" 2>/dev/null || true)") || exit 1
  printf '%s\n' "$port" >"$dir/port"
  # pg_ctl hands -o to a shell: the socket path is quoted for it.
  if ! _pg_as_owner "$pg_ctl" -D "$data" -l "$log" -w -t 60 -s \
    -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories='$sock' $PG_PRIVATE_SERVER_OPTIONS" \
    start; then
    pg_say "the private PostgreSQL did not start; the end of $log:"
    tail -n 20 "$log" >&2
    exit 1
  fi
  _pg_started_data=$data
  _pg_started_ctl=$pg_ctl
  PG_SERVER_URL="postgres://postgres@127.0.0.1:$port/postgres"
  PG_SOURCE=private
  pg_say "started a private PostgreSQL on 127.0.0.1:$port (data $data, log $log)"
}

pg_stop_private() {
  [ -n "$_pg_started_data" ] || return 0
  if _pg_as_owner "$_pg_started_ctl" -D "$_pg_started_data" -m fast -w -t 60 -s stop; then
    pg_say "stopped the private PostgreSQL ($_pg_started_data)"
  else
    pg_say "could not stop the private PostgreSQL in $_pg_started_data"
  fi
  _pg_started_data=""
}

pg_select_server() {
  local dir=$1 url
  shift
  if [ "${BILLHOOK_PG_FORCE_PRIVATE:-}" = 1 ]; then
    pg_say "BILLHOOK_PG_FORCE_PRIVATE=1: not looking for a running server"
  else
    for url in "$@"; do
      [ -n "$url" ] || continue
      if pg_reachable "$url"; then
        PG_SERVER_URL=$url
        PG_SOURCE=url
        return 0
      fi
      pg_say "no PostgreSQL answers at $(pg_redact "$url")"
    done
    if pg_reachable "$PG_DEFAULT_URL"; then
      PG_SERVER_URL=$PG_DEFAULT_URL
      PG_SOURCE=local
      return 0
    fi
  fi
  pg_start_private "$dir"
}
