# shellcheck shell=bash
# The checks of deploy/systemd/ (issue 16): `systemd-analyze verify` on the three units as
# they would be installed, `systemd-analyze security` on their sandboxing, and the
# environment file's example against docs/configuration.md. systemd-analyze comes from
# Debian's systemd package; none of this needs systemd running as PID 1. Sourced by
# scripts/test.sh, from the repository root.

# The units checked, and the binaries their ExecStart= lines name.
SYSTEMD_UNITS=(billhook-migrate.service billhook-receiver.service billhook-worker.service)
SYSTEMD_BINARIES=(/usr/local/bin/billhook-receiver /usr/local/bin/billhook-worker)
# Highest overall exposure `systemd-analyze security` may give a unit, on its 0-100 scale. It
# prints a tenth of it: 1.8 for these units with systemd 252, 6.8 for one stripped of the
# sandboxing issue 16 asks for (dynamic user, read-only system, private tmp and devices, no new
# privileges, empty capability set, system call and address family filters).
SYSTEMD_EXPOSURE_THRESHOLD=30

# Makes sure systemd-analyze is installed, installing Debian's systemd package when it is
# missing (that does not make systemd PID 1); exports BILLHOOK_SYSTEMD_ANALYZE. Fails saying
# what is missing.
systemd_ensure() {
  local analyze sudo=()
  analyze=${BILLHOOK_SYSTEMD_ANALYZE:-$(command -v systemd-analyze || true)}
  if [ -z "$analyze" ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
      echo "systemd-analyze not found, and this machine has no apt-get: install systemd's systemd-analyze and set BILLHOOK_SYSTEMD_ANALYZE to its path." >&2
      return 1
    fi
    if [ "$(id -u)" -ne 0 ]; then
      if command -v sudo >/dev/null 2>&1; then
        sudo=(sudo -n)
      else
        echo "systemd-analyze not found: run 'apt-get install systemd' as root (scripts/test.sh checks deploy/systemd/ with it)." >&2
        return 1
      fi
    fi
    echo "installing Debian's systemd package for systemd-analyze"
    local ok=0
    for attempt in 1 2; do
      if "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends systemd >/dev/null; then
        ok=1
        break
      fi
      [ "$attempt" = 1 ] && { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null || true; }
    done
    if [ "$ok" != 1 ]; then
      echo "installing the systemd package failed: install it (apt-get install systemd) and run scripts/test.sh again." >&2
      return 1
    fi
    analyze=$(command -v systemd-analyze || true)
  fi
  if [ ! -x "$analyze" ]; then
    echo "systemd-analyze ($analyze) is not an executable." >&2
    return 1
  fi
  export BILLHOOK_SYSTEMD_ANALYZE=$analyze
}

# Lays out in directory $2 the file system the units from directory $1 expect: the units in
# /etc/systemd/system, systemd's own units (network-online.target, multi-user.target…) from
# this machine, and an executable at each binary's path. The binaries are stand-ins (the
# check builds nothing): systemd-analyze verify only needs ExecStart= to name an executable.
systemd_make_root() {
  local units=$1 root=$2 system_units bin
  for system_units in /usr/lib/systemd/system /lib/systemd/system ""; do
    [ -n "$system_units" ] && [ -e "$system_units/multi-user.target" ] && break
  done
  if [ -z "$system_units" ]; then
    echo "systemd's own units (multi-user.target) are not installed here: is the systemd package complete?" >&2
    return 1
  fi
  mkdir -p "$root/etc/systemd/system" "$root/usr/lib/systemd" "$root/usr/local/bin"
  cp -a "$system_units" "$root/usr/lib/systemd/system"
  cp "$units"/*.service "$root/etc/systemd/system/"
  for bin in "${SYSTEMD_BINARIES[@]}"; do
    printf '#!/bin/sh\n# stand-in for %s in the systemd units check\nexit 0\n' "$bin" >"$root$bin"
    chmod 0755 "$root$bin"
  done
}

# Checks deploy/systemd/ (or the directory given) and fails on any broken file:
# - systemd-analyze verify on the three units, installed as systemd_make_root lays them out.
#   verify exits 0 on an unknown directive or a value it cannot parse (it ignores the line), so
#   any message it prints is a failure too;
# - every billhook unit that one of them names exists (verify accepts a Wants= on a missing
#   unit);
# - systemd-analyze security: each unit's exposure stays under SYSTEMD_EXPOSURE_THRESHOLD;
# - the environment file's example: every variable is one of docs/configuration.md; every
#   value is bare letters, digits and . _ - : / @ , = + or single-quoted (the forms systemd
#   and sh read alike); sh can source it; and systemd's own parser (the environment.d
#   generator) and sh read the same value for each variable it sets.
systemd_check() {
  local dir=${1:-deploy/systemd} config=${2:-docs/configuration.md}
  local root out unit name ok=1
  systemd_ensure || return 1
  for unit in "${SYSTEMD_UNITS[@]}"; do
    if [ ! -f "$dir/$unit" ]; then
      echo "$dir/$unit: missing" >&2
      return 1
    fi
  done
  root=$(mktemp -d)
  if ! systemd_make_root "$dir" "$root"; then
    rm -rf "$root"
    return 1
  fi

  if ! out=$("$BILLHOOK_SYSTEMD_ANALYZE" --root="$root" --man=no verify "${SYSTEMD_UNITS[@]}" 2>&1) || [ -n "$out" ]; then
    echo "systemd-analyze verify failed on $dir:" >&2
    printf '%s\n' "${out:-(no message, non-zero exit)}" | sed "s|$root/etc/systemd/system|$dir|g" >&2
    ok=0
  else
    echo "systemd-analyze verify: ${SYSTEMD_UNITS[*]} ok"
  fi

  while read -r name; do
    if [ ! -f "$dir/$name" ]; then
      echo "$dir: a unit names $name, which does not exist" >&2
      ok=0
    fi
  done < <(grep -ho 'billhook-[a-z-]*\.service' "$dir"/*.service | sort -u)

  for unit in "${SYSTEMD_UNITS[@]}"; do
    if out=$("$BILLHOOK_SYSTEMD_ANALYZE" --root="$root" security --offline=yes --no-pager \
      --threshold="$SYSTEMD_EXPOSURE_THRESHOLD" "$unit" 2>&1); then
      echo "systemd-analyze security: $(grep -o 'exposure level for .*' <<<"$out")"
    else
      echo "systemd-analyze security failed on $unit (its exposure must stay at most $SYSTEMD_EXPOSURE_THRESHOLD/100):" >&2
      { grep -E '^✗|Overall' <<<"$out" || printf '%s\n' "$out"; } | sed "s|$root/etc/systemd/system|$dir|g" >&2
      ok=0
    fi
  done
  rm -rf "$root"

  systemd_check_env "$dir/billhook.env.example" "$config" || ok=0
  [ "$ok" = 1 ]
}

# Where Debian's systemd package keeps the environment.d generator, whose parser is the one
# EnvironmentFile= uses (it adds ${VAR} expansion: the example holds no `$`).
systemd_env_generator() {
  local dir
  for dir in /usr/lib/systemd/user-environment-generators /lib/systemd/user-environment-generators; do
    if [ -x "$dir/30-systemd-environment-d-generator" ]; then
      echo "$dir/30-systemd-environment-d-generator"
      return 0
    fi
  done
  echo "systemd's environment.d generator (30-systemd-environment-d-generator) is not installed: is the systemd package complete?" >&2
  return 1
}

# The environment file's example: see systemd_check.
systemd_check_env() {
  local env=$1 config=$2 ok=1 line n=0 name value count=0 names=() out generator tmp
  local by_sh by_systemd documented
  if [ ! -f "$env" ]; then
    echo "$env: missing" >&2
    return 1
  fi
  # The first cells of the rows of its tables: each names a setting (or several).
  documented=$(grep -E '^\| `' "$config" | cut -d'|' -f2)
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    # Settings, and settings left commented out (`#NAME=`; prose comments are `# …`).
    [[ $line =~ ^(#?)([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || continue
    name=${BASH_REMATCH[2]} value=${BASH_REMATCH[3]}
    count=$((count + 1))
    [ -z "${BASH_REMATCH[1]}" ] && names+=("$name")
    if ! grep -qF "\`$name\`" <<<"$documented"; then
      echo "$env:$n: $name is not a setting in $config" >&2
      ok=0
    fi
    if ! [[ $value =~ ^[A-Za-z0-9._:/@,=+-]*$ || $value =~ ^\'[^\'$]*\'$ ]]; then
      echo "$env:$n: the value of $name needs single quotes (and no \$) for systemd and sh to read it alike" >&2
      ok=0
    fi
  done <"$env"
  # shellcheck disable=SC2016 # $1 is the inner shell's.
  if ! by_sh=$(env -i /bin/sh -ec 'set -a; . "$1"; env' sh "$env" 2>&1); then
    echo "$env: sh cannot source it: $by_sh" >&2
    return 1
  fi
  # systemd's own reading, through the environment.d generator; it prints the variables as sh
  # assignments.
  generator=$(systemd_env_generator) || return 1
  tmp=$(mktemp -d)
  mkdir "$tmp/environment.d"
  cp "$env" "$tmp/environment.d/50-billhook.conf"
  out=$(env -i XDG_CONFIG_HOME="$tmp" "$generator" 2>&1)
  rm -rf "$tmp"
  # shellcheck disable=SC2016 # $1 is the inner shell's.
  by_systemd=$(env -i /bin/sh -ec 'set -a; eval "$1"; env' sh "$out" 2>&1)
  for name in "${names[@]}"; do
    if [ "$(grep -E "^$name=" <<<"$by_sh")" != "$(grep -E "^$name=" <<<"$by_systemd")" ]; then
      echo "$env: systemd and sh read $name differently: sh: $(grep -E "^$name=" <<<"$by_sh"), systemd: $(grep -E "^$name=" <<<"$by_systemd")" >&2
      ok=0
    fi
  done
  [ "$ok" = 1 ] && echo "$env: $count settings, all in $config; systemd and sh read the ${#names[@]} set ones alike"
}

# The check catches what it is for: in a copy of deploy/systemd/, each of these breaks of each
# unit must fail it: an unknown directive, a misspelt section, a misspelt binary, the
# sandboxing removed, and a dependency on a unit that does not exist; so must a misspelt
# variable and a comment after a value (sh drops it, systemd keeps it in the value) in the
# environment file's example.
systemd_check_catches_breakage() {
  local tmp unit kind file missed=0 caught=0
  tmp=$(mktemp -d)
  for unit in "${SYSTEMD_UNITS[@]}" billhook.env.example; do
    if [ "$unit" = billhook.env.example ]; then
      set -- variable comment
    else
      set -- directive section binary sandboxing dependency
    fi
    for kind in "$@"; do
      rm -rf "$tmp/units" && cp -r deploy/systemd "$tmp/units"
      file=$tmp/units/$unit
      case $kind in
        directive) sed -i 's/^\[Service\]$/[Service]\nProtectSytem=strict/' "$file" ;;
        section) sed -i 's/^\[Service\]$/[Servce]/' "$file" ;;
        binary) sed -i 's|^ExecStart=/usr/local/bin/billhook-|ExecStart=/usr/local/bin/bilhook-|' "$file" ;;
        sandboxing) sed -i -E '/^(DynamicUser|ProtectSystem|ProtectHome|PrivateTmp|PrivateDevices|NoNewPrivileges|CapabilityBoundingSet|SystemCallFilter|RestrictAddressFamilies)=/d' "$file" ;;
        dependency) sed -i 's/^After=/Wants=billhook-migrations.service\nAfter=/' "$file" ;;
        variable) sed -i 's/^BILLHOOK_EMAIL_DIR=/BILLHOOK_MAIL_DIR=/' "$file" ;;
        comment) sed -i 's/^BILLHOOK_RECEIVER_LISTEN=.*/& # loopback only/' "$file" ;;
      esac
      if cmp -s "deploy/systemd/$unit" "$file"; then
        echo "breaking $unit ($kind) changed nothing: the breakage check is out of date" >&2
        missed=1
      elif systemd_check "$tmp/units" >/dev/null 2>&1; then
        echo "$unit with a broken $kind passed the check" >&2
        missed=1
      else
        caught=$((caught + 1))
      fi
    done
  done
  rm -rf "$tmp"
  [ "$missed" = 0 ] && echo "each of $caught broken copies of deploy/systemd/ fails the check"
}

# Everything scripts/test.sh checks of deploy/systemd/.
systemd_checks() {
  systemd_check deploy/systemd && systemd_check_catches_breakage
}
