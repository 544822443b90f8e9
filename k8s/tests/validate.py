"""Schema validation of rendered manifests, strict.

Built-in kinds are checked against the Kubernetes OpenAPI schema of the
target version that `kubernetes-validate` ships (strict: unknown fields are
errors). Custom resources are checked by crd_validate.mjs (Node.js) against
the schemas of registry packages installed by scripts/k8s-check.sh:
@kubernetes-models/cloudnative-pg, -gateway-api and -external-secrets from
npm, and our own ObjectStore schema (k8s/schemas/objectstore.mjs) around
the package's BarmanObjectStoreConfiguration; unknown fields are errors
there too (k8s/schemas/README.md says how). An object of a kind that
neither Kubernetes nor a registry package has a schema for is an error:
nothing is skipped.

Optionally (--crd-dir), custom resources are also checked against the
openAPIV3Schema of the upstream CRD files pinned by sha256 in
k8s/schemas/crds.lock, when they are there (--require-crd-files: they must
be); strictness is added the way the API server's strict field validation
behaves. CEL rules (`x-kubernetes-validations`) are evaluated by neither.

Usage: validate.py --kubernetes-version 1.35 [--kubernetes-version 1.37]
                   --node node --node-modules DIR
                   [--crd-dir DIR [--require-crd-files]] FILE...
Exit status 0 when every object is valid, 1 otherwise; every problem is
printed with its file, kind and name.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
# libyaml's parser when PyYAML has it: the CRD files are large.
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
LOCK = ROOT / "k8s" / "schemas" / "crds.lock"
CRD_VALIDATE = Path(__file__).resolve().parent / "crd_validate.mjs"


def read_lock() -> list[tuple[str, str]]:
    """(sha256, relative path) of every pinned CRD file."""
    entries = []
    for line in LOCK.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        digest, rel = line.split()[:2]
        entries.append((digest, rel))
    return entries


def strict(schema: dict) -> dict:
    """A copy of `schema` in which every object with listed properties
    rejects fields it does not list (unless the schema preserves them)."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if (
                node.get("type") == "object"
                and "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def load_upstream_validators(crd_dir: Path) -> tuple[dict, list[str], list[str]]:
    """Validators keyed by (apiVersion, kind) from the upstream CRD files,
    the files missing, and the files whose digest does not match the lock."""
    validators: dict[tuple[str, str], jsonschema.protocols.Validator] = {}
    missing, mismatched = [], []
    for digest, rel in read_lock():
        path = crd_dir / rel
        if not path.is_file():
            missing.append(str(path))
            continue
        data = path.read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            mismatched.append(f"{path}: sha256 {actual}, the lock says {digest}")
            continue
        crd = yaml.load(data, Loader=LOADER)
        group = crd["spec"]["group"]
        kind = crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if not version.get("served", False):
                continue
            schema = strict(version["schema"]["openAPIV3Schema"])
            # ObjectMeta is checked by the API server, not by the CRD schema.
            schema.setdefault("properties", {})["metadata"] = {"type": "object"}
            validators[(f"{group}/{version['name']}", kind)] = jsonschema.Draft7Validator(schema)
    return validators, missing, mismatched


def registry_validate(node: str, node_modules: Path, objects: list[tuple[str, dict]]) -> tuple[dict, dict]:
    """crd_validate.mjs's verdicts: the kinds it knows (with their source)
    and, per object id, (source or None, errors)."""
    payload = json.dumps([{"id": oid, "doc": doc} for oid, doc in objects])
    run = subprocess.run(
        [node, str(CRD_VALIDATE), str(node_modules)],
        input=payload,
        capture_output=True,
        text=True,
        check=False,
    )
    if run.returncode != 0:
        raise RuntimeError(f"{CRD_VALIDATE.name} exited {run.returncode}: {run.stderr.strip()}")
    answer = json.loads(run.stdout)
    return answer["kinds"], {r["id"]: (r["source"], r["errors"]) for r in answer["results"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubernetes-version", action="append", required=True)
    parser.add_argument("--node", default="node", help="the Node.js executable")
    parser.add_argument("--node-modules", type=Path, required=True, help="where npm installed k8s/tools/package.json")
    parser.add_argument("--crd-dir", type=Path, help="upstream CRD files (optional, in addition)")
    parser.add_argument("--require-crd-files", action="store_true", help="fail when a file of crds.lock is absent")
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()

    failures: list[str] = []
    notes: list[str] = []
    upstream: dict = {}
    if args.crd_dir:
        upstream, missing, mismatched = load_upstream_validators(args.crd_dir)
        failures += [f"upstream CRD file {m}" for m in mismatched]
        if missing and args.require_crd_files:
            failures += [f"missing upstream CRD file {m}" for m in missing]
        elif missing:
            notes.append(
                f"upstream CRD files: {len(missing)} of {len(read_lock())} absent from {args.crd_dir} "
                "(optional; the registry schemas validate every custom resource)"
            )

    custom: list[tuple[str, dict]] = []
    names: dict[str, str] = {}
    counts = {"kubernetes": 0, "registry": 0, "upstream": 0}
    for path in args.files:
        for index, doc in enumerate(yaml.load_all(path.read_text(), Loader=LOADER)):
            if not doc:
                continue
            api, kind = doc.get("apiVersion", ""), doc.get("kind", "")
            meta = doc.get("metadata") or {}
            name = f"{path.name}: {kind} {meta.get('namespace', '')}/{meta.get('name', '')}"
            for version in args.kubernetes_version:
                try:
                    kubernetes_validate.validate(doc, version, strict=True)
                except kubernetes_validate.SchemaNotFoundError:
                    # Not a built-in kind (in this version): a custom resource.
                    break
                except kubernetes_validate.ValidationError as error:
                    # kubernetes-validate stops at an object's first error.
                    where = "/".join(str(p) for p in error.path)
                    failures.append(f"{name}: Kubernetes {version}: {where}: {error.message}")
            else:
                counts["kubernetes"] += 1
                continue
            if version != args.kubernetes_version[0]:
                failures.append(f"{name}: no schema for {api} {kind} in Kubernetes {version}")
                continue
            oid = f"{path}#{index}"
            custom.append((oid, doc))
            names[oid] = name
            if (api, kind) in upstream:
                for error in sorted(upstream[(api, kind)].iter_errors(doc), key=lambda e: list(e.path)):
                    where = "/".join(str(p) for p in error.path)
                    failures.append(f"{name}: upstream CRD: {where}: {error.message}")
                counts["upstream"] += 1

    kinds: dict = {}
    if custom:
        try:
            kinds, verdicts = registry_validate(args.node, args.node_modules, custom)
        except (OSError, RuntimeError, ValueError) as error:
            failures.append(f"the registry schemas could not be run ({args.node_modules}): {error}")
            verdicts = {oid: ("", []) for oid, _ in custom}
        for oid, doc in custom:
            source, errors = verdicts[oid]
            if source is None:
                failures.append(
                    f"{names[oid]}: no schema for {doc.get('apiVersion')} {doc.get('kind')} in the registry "
                    "packages (k8s/schemas/README.md): change the manifest to a kind that has one, or add a schema"
                )
                continue
            failures += [f"{names[oid]}: {error}" for error in errors]
            if source:
                counts["registry"] += 1

    used = sorted({f"{d.get('apiVersion')} {d.get('kind')}" for _, d in custom})
    for kind in used:
        print(f"schema of {kind}: {kinds.get(kind, 'none')}")
    for note in notes:
        print(f"note: {note}")
    for message in failures:
        print(f"INVALID {message}")
    print(
        f"schema validation: {counts['kubernetes']} objects against Kubernetes "
        f"{' and '.join(args.kubernetes_version)} (strict), {counts['registry']} of {len(custom)} custom resources "
        f"against the registry schemas (strict), {counts['upstream']} also against the upstream CRD files; "
        f"{len(failures)} problems"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
