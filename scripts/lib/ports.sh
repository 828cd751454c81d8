# shellcheck shell=bash
# free_port: a TCP port on this machine that no socket uses, for a process about to listen on it.
# Chosen below the kernel's ephemeral range (ip_local_port_range), from which outgoing
# connections take their local ports: a port picked inside it could be taken by a client's
# connection (to PostgreSQL, say) before the process binds it ("Address already in use").
free_port() {
  local low port
  low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  [ "$low" -gt 21024 ] 2>/dev/null || low=32768
  for _ in $(seq 1 50); do
    port=$((20000 + RANDOM % (low - 20000)))
    if [ -z "$(ss -Htan "sport = :$port")" ]; then
      echo "$port"
      return 0
    fi
  done
  return 1
}
