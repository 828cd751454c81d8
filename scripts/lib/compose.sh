# shellcheck shell=bash
# The checks of docker-compose.yml and its profile `observability` (issue 16): the compose file
# against the Compose Specification, and what holds the profile together: Prometheus scrapes
# admin listeners that other containers can reach and its configuration passes promtool, the
# OpenTelemetry collector's pipelines name components that exist and listen where Billhook sends
# spans, Grafana's provisioning points at services that exist and at the dashboard mounted for it.
# Sourced by scripts/test.sh; run from the repository root.
#
# `docker compose config` needs only the client, but the compose plugin is not on every machine
# (this project's have the docker client without it). The checks therefore do not depend on it:
# python3 resolves the file as compose does (YAML merge keys, ${VAR:-default} interpolation with
# BILLHOOK_WEBHOOK_SECRETS set) and validates it against the Compose Specification's JSON schema,
# deploy/observability/compose-spec.json (from compose-spec/compose-spec, schema/compose-spec.json
# at commit a08f8d51631b7127ddac3d2c65537db429d0f1d0, Apache-2.0). Where Compose v2 is installed
# (`docker compose`, a `docker-compose` v2, or the binary named by BILLHOOK_DOCKER_COMPOSE),
# `config -q` with the profile runs as well.

COMPOSE_SPEC_SCHEMA=deploy/observability/compose-spec.json

_compose_fail() { echo "compose_check: $*" >&2; }

# A python3 with PyYAML and jsonschema: kubernetes.sh's virtual environment when it is there
# (pinned versions), else the system's; exports BILLHOOK_COMPOSE_PYTHON. Fails saying what is
# missing.
compose_python_ensure() {
  local python
  for python in "${BILLHOOK_KUBERNETES_PYTHON:-}" "$(command -v python3 || true)"; do
    if [ -n "$python" ] && "$python" -c 'import yaml, jsonschema' 2>/dev/null; then
      export BILLHOOK_COMPOSE_PYTHON=$python
      return 0
    fi
  done
  if declare -F kubernetes_validate_ensure >/dev/null && kubernetes_validate_ensure >/dev/null; then
    export BILLHOOK_COMPOSE_PYTHON=$BILLHOOK_KUBERNETES_PYTHON
    return 0
  fi
  echo "compose_check needs python3 with PyYAML and jsonschema (pip install PyYAML jsonschema, or source scripts/lib/kubernetes.sh for its environment)." >&2
  return 1
}

# Checks ROOT/docker-compose.yml (default ROOT: .) and the files of its profile `observability`
# under ROOT/deploy. Fails naming each file and what is wrong with it (every problem the python3
# checks find, then promtool and compose config in turn).
check_compose_config() {
  local root=${1:-.} out prometheus_config status=0
  compose_python_ensure || return 1
  if [ -z "${BILLHOOK_PROMTOOL:-}" ]; then
    if declare -F promtool_ensure >/dev/null; then
      promtool_ensure >/dev/null || return 1
    elif command -v promtool >/dev/null 2>&1; then
      BILLHOOK_PROMTOOL=$(command -v promtool)
    else
      _compose_fail "promtool not found: source scripts/lib/prometheus.sh and run promtool_ensure, or set BILLHOOK_PROMTOOL"
      return 1
    fi
  fi

  # Prints the host path of the Prometheus configuration the compose file mounts, for promtool.
  out=$("$BILLHOOK_COMPOSE_PYTHON" - "$root" "$COMPOSE_SPEC_SCHEMA" <<'PY'
import json, os, re, sys
from urllib.parse import urlsplit

import jsonschema
import yaml

root, schema_path = sys.argv[1], sys.argv[2]
compose_path = os.path.join(root, "docker-compose.yml")
problems = []


def fail(msg):
    """Stops at a problem the later checks cannot go past, with those found so far."""
    sys.exit("\n".join(dict.fromkeys(problems + [msg])))


def load_yaml(path):
    try:
        with open(path) as f:
            return yaml.safe_load(f)
    except OSError as e:
        fail(f"{path}: cannot be read ({e.strerror})")
    except yaml.YAMLError as e:
        fail(f"{path}: not YAML: {e}")


# Interpolation as compose does it, with only the variable the file insists on set: every other
# one takes its default. `$$` is a literal dollar sign.
ENV = {"BILLHOOK_WEBHOOK_SECRETS": "whsec_compose_check"}
VAR = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])((?:[^{}]|\{[^{}]*\})*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def interpolate(value, where):
    def one(m):
        if m.group(1):
            return "$"
        name = m.group(2) or m.group(5)
        op, arg = m.group(3), m.group(4) or ""
        val = ENV.get(name)
        empty = val is None or (op or "").startswith(":") and val == ""
        if op in (":-", "-"):
            return interpolate(arg, where) if empty else val
        if op in (":?", "?"):
            if empty:
                fail(f"{compose_path}: {where}: ${{{name}}} must be set ({arg})")
            return val
        if op in (":+", "+"):
            return "" if empty else interpolate(arg, where)
        return val or ""
    return VAR.sub(one, value)


def resolve(node, where="services"):
    if isinstance(node, dict):
        return {k: resolve(v, f"{where}.{k}") for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(v, f"{where}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, str):
        return interpolate(node, where)
    return node


compose = load_yaml(compose_path)
if not isinstance(compose, dict) or not isinstance(compose.get("services"), dict):
    fail(f"{compose_path}: no services")
compose = resolve(compose, "")

with open(schema_path) as f:
    schema = json.load(f)
errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose), key=lambda e: list(e.path))
if errors:
    fail("\n".join(f"{compose_path}: {e.json_path}: {e.message} (does not match the Compose Specification)" for e in errors[:10]))

services = compose["services"]
declared_volumes = set((compose.get("volumes") or {}).keys())


def environment(svc):
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict((item.split("=", 1) + [None])[:2] for item in env)
    return env


def mounts(name, svc):
    """(host path or None, volume name or None, container path) per volume of a service."""
    out = []
    for v in svc.get("volumes") or []:
        if isinstance(v, str):
            parts = v.split(":")
            source, target = (parts[0], parts[1]) if len(parts) > 1 else (None, parts[0])
        else:
            source, target = v.get("source"), v.get("target")
        if source and (source.startswith((".", "/", "~"))):
            host = os.path.normpath(os.path.join(root, os.path.expanduser(source)))
            if not os.path.exists(host):
                problems.append(f"{compose_path}: service {name} mounts {source}, which does not exist")
            out.append((host, None, target))
        elif source:
            if source not in declared_volumes:
                problems.append(f"{compose_path}: service {name} uses the volume {source}, which is not declared under volumes:")
            out.append((None, source, target))
    return out


def host_path(name, svc, container_path):
    """The host file or directory behind a container path, through the service's bind mounts."""
    best = None
    for host, _, target in mounts(name, svc):
        if host is None:
            continue
        target = target.rstrip("/")
        if container_path == target or container_path.startswith(target + "/"):
            if best is None or len(target) > len(best[1]):
                best = (host, target)
    if best is None:
        return None
    return os.path.join(best[0], os.path.relpath(container_path, best[1])) if container_path != best[1] else best[0]


def profiles(svc):
    return set(svc.get("profiles") or [])


# Images: pinned, never `latest` (a built image's tag is ours to name).
for name, svc in services.items():
    image = svc.get("image")
    if not image or "build" in svc or "@sha256:" in image:
        continue
    tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else None
    if tag in (None, "latest"):
        problems.append(f"{compose_path}: service {name}: image {image} is not pinned to a version")

# depends_on: services that exist, and none that only a profile starts for a service without it.
for name, svc in services.items():
    deps = svc.get("depends_on") or []
    for dep in (deps.keys() if isinstance(deps, dict) else deps):
        if dep not in services:
            problems.append(f"{compose_path}: service {name} depends on {dep}, which is no service")
        elif not profiles(svc) and profiles(services[dep]):
            problems.append(f"{compose_path}: service {name} depends on {dep}, which only runs with a profile")

# Published ports: no host address and port twice.
published = {}
for name, svc in services.items():
    mounts(name, svc)
    for p in svc.get("ports") or []:
        if isinstance(p, dict):
            ip, port = p.get("host_ip") or "0.0.0.0", str(p.get("published") or "")
        else:
            parts = str(p).split("/")[0].rsplit(":", 2)
            if len(parts) < 2:
                continue
            ip, port = (parts[0], parts[1]) if len(parts) == 3 else ("0.0.0.0", parts[0])
        if not port:
            continue
        for (other_ip, other_port), other in published.items():
            if other_port == port and (ip == other_ip or "0.0.0.0" in (ip, other_ip)):
                problems.append(f"{compose_path}: host port {ip}:{port} is published twice ({other} and {name})")
        published[(ip, port)] = name

# The trace endpoint: set (a URL) or left out (no value), never empty: an empty value is a value
# to the binaries, an exporter to nowhere.
for name, svc in services.items():
    env = environment(svc)
    if "OTEL_EXPORTER_OTLP_ENDPOINT" in env and env["OTEL_EXPORTER_OTLP_ENDPOINT"] is not None:
        value = str(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
        if not value.strip():
            problems.append(f"{compose_path}: service {name}: OTEL_EXPORTER_OTLP_ENDPOINT is empty, which Billhook reads as set; leave it without a value to pass the shell's through")


def by_image(prefix):
    found = [(n, s) for n, s in services.items() if str(s.get("image", "")).startswith(prefix)]
    if len(found) != 1:
        fail(f"{compose_path}: expected one service with the image {prefix}*, found {len(found)}")
    name, svc = found[0]
    if "observability" not in profiles(svc):
        problems.append(f"{compose_path}: service {name} runs without the profile observability")
    return name, svc


prom_name, prom = by_image("prom/prometheus:")
graf_name, graf = by_image("grafana/grafana:")
otel_name, otel = by_image("otel/opentelemetry-collector:")
jaeger_name, jaeger = by_image("jaegertracing/all-in-one:")

# The ports each service listens on inside the compose network, to check the addresses the
# others use: Billhook's from its *_LISTEN settings on all interfaces (127.0.0.1 cannot be
# reached from another container), the others' from their images' defaults.
listening = {name: set() for name in services}
for name, svc in services.items():
    for key, value in environment(svc).items():
        if key.endswith("_LISTEN") and isinstance(value, str) and value.rsplit(":", 1)[0] in ("0.0.0.0", "[::]"):
            listening[name].add(value.rsplit(":", 1)[1])
listening[prom_name].add("9090")
listening[graf_name].add("3000")
listening[jaeger_name].update({"16686", "4317", "4318"})

# Prometheus: the configuration it is started with, through its mounts; its targets.
command = prom.get("command") or []
command = command.split() if isinstance(command, str) else command
config = next((c.split("=", 1)[1] for c in command if c.startswith("--config.file=")), "/etc/prometheus/prometheus.yml")
prom_config = host_path(prom_name, prom, config)
if prom_config is None or not os.path.isfile(prom_config):
    fail(f"{compose_path}: service {prom_name} reads {config}, which no mount provides")
prom_cfg = load_yaml(prom_config) or {}
for job in prom_cfg.get("scrape_configs") or []:
    for static in job.get("static_configs") or []:
        for target in static.get("targets") or []:
            host, _, port = target.rpartition(":")
            if host not in services:
                problems.append(f"{prom_config}: job {job.get('job_name')} scrapes {target}, and {host} is no service of {compose_path}")
            elif port not in listening[host]:
                problems.append(f"{prom_config}: job {job.get('job_name')} scrapes {target}, but the service {host} listens on no 0.0.0.0:{port} (a *_ADMIN_LISTEN setting on 127.0.0.1 cannot be reached from Prometheus's container)")

# The OpenTelemetry collector (its core distribution's components).
CORE = {
    "receivers": {"otlp", "nop", "hostmetrics", "jaeger", "kafka", "prometheus", "zipkin"},
    "processors": {"batch", "memory_limiter", "attributes", "resource", "span", "probabilistic_sampler", "filter"},
    "exporters": {"debug", "nop", "otlp_grpc", "otlp", "otlp_http", "otlphttp", "file", "kafka", "prometheus", "prometheusremotewrite", "zipkin"},
    "extensions": {"zpages", "health_check", "pprof"},
    "connectors": {"forward"},
}
otel_command = otel.get("command") or []
otel_command = otel_command.split() if isinstance(otel_command, str) else otel_command
otel_config_in = next((c.split("=", 1)[1] for c in otel_command if c.startswith("--config=")), "/etc/otelcol/config.yaml")
otel_config = host_path(otel_name, otel, otel_config_in)
if otel_config is None or not os.path.isfile(otel_config):
    fail(f"{compose_path}: service {otel_name} reads {otel_config_in}, which no mount provides")
col = load_yaml(otel_config)
if not isinstance(col, dict):
    fail(f"{otel_config}: not a collector configuration (a mapping)")
for key in col:
    if key not in CORE and key != "service":
        problems.append(f"{otel_config}: unknown top-level key {key}")
for kind, known in CORE.items():
    for cid in (col.get(kind) or {}):
        if cid.split("/", 1)[0] not in known:
            problems.append(f"{otel_config}: {kind}: {cid} is not a component of the core collector (otel/opentelemetry-collector)")
pipelines = ((col.get("service") or {}).get("pipelines")) or {}
if not any(p.split("/", 1)[0] == "traces" for p in pipelines):
    problems.append(f"{otel_config}: no traces pipeline")
for pname, pipe in pipelines.items():
    if pname.split("/", 1)[0] not in ("traces", "metrics", "logs", "profiles"):
        problems.append(f"{otel_config}: pipeline {pname}: not a signal (traces, metrics, logs, profiles)")
    pipe = pipe or {}
    for kind in ("receivers", "processors", "exporters"):
        ids = pipe.get(kind) or []
        if kind != "processors" and not ids:
            problems.append(f"{otel_config}: pipeline {pname} has no {kind}")
        for cid in ids:
            if cid not in (col.get(kind) or {}) and cid not in (col.get("connectors") or {}):
                problems.append(f"{otel_config}: pipeline {pname} names {kind[:-1]} {cid}, which is not defined under {kind}:")
for ext in ((col.get("service") or {}).get("extensions")) or []:
    if ext not in (col.get("extensions") or {}):
        problems.append(f"{otel_config}: service.extensions names {ext}, which is not defined under extensions:")
# Where Billhook's spans arrive: OTLP over HTTP on 4318, on all interfaces.
otlp = ((col.get("receivers") or {}).get("otlp")) or {}
protocols = otlp.get("protocols") or {}
if "http" not in protocols:
    problems.append(f"{otel_config}: the otlp receiver has no http protocol, which Billhook's exporter speaks")
for proto, default_port in (("grpc", "4317"), ("http", "4318")):
    if proto in protocols:
        endpoint = (protocols[proto] or {}).get("endpoint") or f"localhost:{default_port}"
        host, _, port = endpoint.rpartition(":")
        if host not in ("0.0.0.0", "[::]", ""):
            problems.append(f"{otel_config}: the otlp receiver's {proto} endpoint {endpoint} listens on {host}, which other containers cannot reach (0.0.0.0:{port})")
        listening[otel_name].add(port)
# Exporters to services of the compose file go to a port that service listens on.
for eid, exp in (col.get("exporters") or {}).items():
    endpoint = (exp or {}).get("endpoint") if isinstance(exp, dict) else None
    if not endpoint:
        continue
    parts = urlsplit(endpoint if "//" in endpoint else f"//{endpoint}")
    if parts.hostname in services and str(parts.port) not in listening[parts.hostname]:
        problems.append(f"{otel_config}: exporter {eid} sends to {endpoint}, but {parts.hostname} listens on no port {parts.port}")
    elif parts.hostname not in services and parts.hostname not in ("localhost", "127.0.0.1"):
        problems.append(f"{otel_config}: exporter {eid} sends to {endpoint}, and {parts.hostname} is no service of {compose_path}")
if str(environment(jaeger).get("COLLECTOR_OTLP_ENABLED", "true")).lower() == "false":
    problems.append(f"{compose_path}: service {jaeger_name}: COLLECTOR_OTLP_ENABLED is false, so it takes no spans from the collector")

# Billhook's endpoint, when it names a service of this file, reaches the collector's OTLP/HTTP.
for name, svc in services.items():
    value = environment(svc).get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if value:
        parts = urlsplit(value)
        if parts.hostname in services and str(parts.port or 80) not in listening[parts.hostname]:
            problems.append(f"{compose_path}: service {name} exports spans to {value}, where nothing listens")

# Grafana's provisioning: data sources and dashboard providers, through its mounts.
def provisioning(kind):
    directory = host_path(graf_name, graf, f"/etc/grafana/provisioning/{kind}")
    if directory is None or not os.path.isdir(directory):
        fail(f"{compose_path}: service {graf_name} has no provisioning/{kind} directory mounted")
    files = sorted(os.path.join(directory, f) for f in os.listdir(directory) if f.endswith((".yml", ".yaml")))
    if not files:
        fail(f"{directory}: no provisioning file")
    docs = []
    for path in files:
        doc = load_yaml(path)
        if not isinstance(doc, dict) or doc.get("apiVersion") != 1:
            problems.append(f"{path}: not a Grafana provisioning file (apiVersion: 1)")
            continue
        docs.append((path, doc))
    return docs


defaults, uids = [], set()
datasource_files = provisioning("datasources")
for path, doc in datasource_files:
    sources = doc.get("datasources")
    if not isinstance(sources, list) or not sources:
        problems.append(f"{path}: no datasources")
        continue
    for ds in sources:
        if not isinstance(ds, dict) or not all(isinstance(ds.get(k), str) and ds[k] for k in ("name", "type", "url")):
            problems.append(f"{path}: a data source lacks its name, type or url: {ds}")
            continue
        if ds.get("uid") in uids:
            problems.append(f"{path}: data source uid {ds['uid']} given twice")
        uids.add(ds.get("uid"))
        if ds.get("isDefault"):
            defaults.append(ds["name"])
        url = urlsplit(ds["url"])
        if url.hostname in services and str(url.port or 80) not in listening[url.hostname]:
            problems.append(f"{path}: data source {ds['name']} is {ds['url']}, but {url.hostname} listens on no port {url.port or 80} inside the compose network")
        elif url.hostname not in services:
            problems.append(f"{path}: data source {ds['name']} is {ds['url']}, and {url.hostname} is no service of {compose_path}")
if len(defaults) != 1:
    problems.append(f"{os.path.dirname(datasource_files[0][0]) if datasource_files else compose_path}: Grafana needs exactly one default data source (the dashboard's `datasource` variable starts there), found {defaults}")

for path, doc in provisioning("dashboards"):
    providers = doc.get("providers")
    if not isinstance(providers, list) or not providers:
        problems.append(f"{path}: no providers")
        continue
    for provider in providers:
        folder = ((provider or {}).get("options") or {}).get("path")
        if (provider or {}).get("type", "file") != "file" or not folder:
            problems.append(f"{path}: provider {provider}: not a file provider with options.path")
            continue
        host = host_path(graf_name, graf, folder)
        boards = []
        if host and os.path.isdir(host):
            boards = [os.path.join(host, f) for f in os.listdir(host) if f.endswith(".json")]
        for h, _, target in mounts(graf_name, graf):
            if h and target.startswith(folder.rstrip("/") + "/") and h.endswith(".json") and os.path.isfile(h):
                boards.append(h)
        if not boards:
            problems.append(f"{path}: provider {provider.get('name')} reads {folder}, where no dashboard is mounted")
        for board in boards:
            try:
                json.load(open(board))
            except ValueError as e:
                problems.append(f"{board}: not JSON ({e})")

if problems:
    sys.exit("\n".join(dict.fromkeys(problems)))
print(prom_config)
PY
  ) || status=1
  if [ "$status" != 0 ]; then
    _compose_fail "$root/docker-compose.yml or the files of its profile observability are broken (above)"
    return 1
  fi
  prometheus_config=$out
  if ! out=$("$BILLHOOK_PROMTOOL" check config "$prometheus_config" 2>&1); then
    printf '%s\n' "$out" >&2
    _compose_fail "$prometheus_config: promtool check config failed"
    return 1
  fi

  local compose=()
  if [ -n "${BILLHOOK_DOCKER_COMPOSE:-}" ]; then
    compose=("$BILLHOOK_DOCKER_COMPOSE")
  elif docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
  elif docker-compose version 2>/dev/null | grep -q 'version v[2-9]'; then
    compose=(docker-compose)
  fi
  if [ "${#compose[@]}" -gt 0 ]; then
    if ! out=$(BILLHOOK_WEBHOOK_SECRETS=${BILLHOOK_WEBHOOK_SECRETS:-whsec_compose_check} \
      "${compose[@]}" --project-directory "$root" -f "$root/docker-compose.yml" \
      --profile observability config -q 2>&1); then
      printf '%s\n' "$out" >&2
      _compose_fail "$root/docker-compose.yml: ${compose[*]} config failed"
      return 1
    fi
    echo "$root/docker-compose.yml: ${compose[*]} --profile observability config passes ($("${compose[@]}" version --short 2>/dev/null))"
  else
    echo "docker compose is not installed here (set BILLHOOK_DOCKER_COMPOSE to a Compose v2 binary to run it too): docker-compose.yml was checked against the Compose Specification's schema (python3) instead"
  fi
  echo "$root/docker-compose.yml and its profile observability (Prometheus, Grafana, the OpenTelemetry collector, Jaeger) check"
}

# Each check catches what it is for: a copy of the compose file and deploy/ broken one way at a
# time must fail check_compose_config, at that check.
compose_check_catches_breakage() {
  local tmp missed=0 file edit expect out
  tmp=$(mktemp -d)
  while IFS='|' read -r file edit expect; do
    rm -rf "${tmp:?}/copy" && mkdir -p "$tmp/copy/deploy"
    cp docker-compose.yml "$tmp/copy/"
    cp -r deploy/prometheus deploy/grafana deploy/observability "$tmp/copy/deploy/"
    sed -i "$edit" "$tmp/copy/$file"
    if cmp -s "$file" "$tmp/copy/$file"; then
      echo "the breakage '$edit' did not change $file" >&2
      missed=1
      continue
    fi
    if out=$(check_compose_config "$tmp/copy" 2>&1); then
      echo "$file with '$edit' passed the check" >&2
      missed=1
    elif ! grep -qF -- "$expect" <<<"$out"; then
      echo "$file with '$edit' failed, but not at '$expect':" >&2
      printf '%s\n' "$out" >&2
      missed=1
    fi
  done <<'CASES'
docker-compose.yml|0,/^    profiles: \[observability\]$/s//    profile: [observability]/|does not match the Compose Specification
docker-compose.yml|/BILLHOOK_WORKER_ADMIN_LISTEN: 0.0.0.0:9081/d|scrapes worker:9081, but the service worker listens on no 0.0.0.0:9081
docker-compose.yml|s#jaegertracing/all-in-one:1.76.0#jaegertracing/all-in-one:latest#|is not pinned to a version
docker-compose.yml|s/^      - jaeger$/      - jaegr/|depends on jaegr, which is no service
docker-compose.yml|s#/deploy/observability/otel-collector.yml:#/deploy/observability/otel-colector.yml:#|which does not exist
docker-compose.yml|s/^    OTEL_EXPORTER_OTLP_ENDPOINT:$/    OTEL_EXPORTER_OTLP_ENDPOINT: ""/|OTEL_EXPORTER_OTLP_ENDPOINT is empty
docker-compose.yml|s/"127.0.0.1:9091:9090"/"127.0.0.1:9080:9090"/|is published twice
docker-compose.yml|0,/^    profiles: \[observability\]$/{/^    profiles: \[observability\]$/d}|runs without the profile observability
deploy/prometheus/prometheus.yml|s/scrape_interval: 15s/scrape_interval: 15 seconds/|promtool check config failed
deploy/observability/otel-collector.yml|s/^receivers:$/receivers: [/|not YAML
deploy/observability/otel-collector.yml|s/exporters: \[otlp_grpc\/jaeger, debug\]/exporters: [otlp_grpc\/jaegr, debug]/|which is not defined under exporters:
deploy/observability/otel-collector.yml|s/otlp_grpc\/jaeger/otlpgrpc\/jaeger/g|is not a component of the core collector
deploy/observability/otel-collector.yml|s/endpoint: 0.0.0.0:4318/endpoint: localhost:4318/|which other containers cannot reach
deploy/observability/otel-collector.yml|s/endpoint: jaeger:4317/endpoint: jaeger:14250/|listens on no port 14250
deploy/observability/grafana/provisioning/datasources/billhook.yml|s#http://prometheus:9090#http://prometheus:9091#|listens on no port 9091 inside the compose network
deploy/observability/grafana/provisioning/datasources/billhook.yml|s/^    isDefault: true$/    isDefault: false/|exactly one default data source
deploy/observability/grafana/provisioning/datasources/billhook.yml|s/^apiVersion: 1$/apiVersion: [/|not YAML
deploy/observability/grafana/provisioning/dashboards/billhook.yml|s#path: /etc/grafana/dashboards#path: /var/lib/grafana/dashboards#|where no dashboard is mounted
CASES
  rm -rf "$tmp"
  [ "$missed" = 0 ] && echo "a compose file off the specification, an unreachable scrape target, an unpinned image, a missing service or file, an empty trace endpoint, a doubly published port, a service outside the profile, a broken Prometheus or collector configuration, a collector pipeline or component that does not exist, a receiver on localhost, an exporter to a closed port, and Grafana data sources and dashboards that point nowhere each fail the check"
}

# Everything scripts/test.sh checks of docker-compose.yml and its profile observability.
compose_checks() {
  check_compose_config . && compose_check_catches_breakage
}
