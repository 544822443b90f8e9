"""Schema validation of rendered manifests, strict.

Built-in kinds are checked against the Kubernetes OpenAPI schema of the
target version that `kubernetes-validate` ships (strict: unknown fields are
errors). Custom resources are checked against the openAPIV3Schema of their
published CRD, pinned by sha256 in k8s/schemas/crds.lock; strictness is
added the way the API server's strict field validation behaves: an object
schema that lists its properties and neither allows additional ones nor
preserves unknown fields rejects any other field. CEL rules
(`x-kubernetes-validations`) are not evaluated.

Usage: validate.py --kubernetes-version 1.35 [--kubernetes-version 1.37]
                   --crd-dir DIR FILE...
Exit status 0 when every object is valid, 1 otherwise; every problem is
printed with its file, kind and name.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import os
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
# libyaml's parser when PyYAML has it: the CRD files are large.
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
LOCK = ROOT / "k8s" / "schemas" / "crds.lock"


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


def load_crd_validators(crd_dir: Path) -> tuple[dict, list[str]]:
    """Validators keyed by (apiVersion, kind), and the problems found with
    the CRD files (a missing file, a digest that does not match the lock)."""
    validators: dict[tuple[str, str], jsonschema.protocols.Validator] = {}
    problems = []
    for digest, rel in read_lock():
        path = crd_dir / rel
        if not path.is_file():
            problems.append(f"missing CRD schema {path}")
            continue
        data = path.read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            problems.append(f"{path}: sha256 {actual}, the lock says {digest}")
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
    return validators, problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubernetes-version", action="append", required=True)
    parser.add_argument("--crd-dir", type=Path, required=True)
    parser.add_argument(
        "--allow-missing-crds",
        action="store_true",
        help="skip custom resources whose CRD schema is absent, saying so, instead of failing",
    )
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()

    validators, crd_problems = load_crd_validators(args.crd_dir)
    failures = []
    skipped = []
    for problem in crd_problems:
        if args.allow_missing_crds and problem.startswith("missing"):
            skipped.append(problem)
        else:
            failures.append(problem)

    counts = {"kubernetes": 0, "crd": 0}
    crd_groups = {api.split("/")[0] for api, _ in validators} | {
        rel.split("/")[1].split("_")[0] for _, rel in read_lock()
    }
    for path in args.files:
        for doc in yaml.load_all(path.read_text(), Loader=LOADER):
            if not doc:
                continue
            api, kind = doc.get("apiVersion", ""), doc.get("kind", "")
            name = f"{path.name}: {kind} {doc.get('metadata', {}).get('namespace', '')}/{doc.get('metadata', {}).get('name', '')}"
            group = api.split("/")[0] if "/" in api else ""
            if (api, kind) in validators:
                errors = sorted(validators[(api, kind)].iter_errors(doc), key=lambda e: list(e.path))
                for error in errors:
                    where = "/".join(str(p) for p in error.path)
                    failures.append(f"{name}: {where}: {error.message}")
                counts["crd"] += 1
            elif group in crd_groups:
                message = f"{name}: no CRD schema for {api} {kind}"
                (skipped if args.allow_missing_crds and crd_problems else failures).append(message)
            else:
                for version in args.kubernetes_version:
                    try:
                        kubernetes_validate.validate(doc, version, strict=True)
                    except kubernetes_validate.ValidationError as error:
                        # kubernetes-validate stops at an object's first error.
                        where = "/".join(str(p) for p in error.path)
                        failures.append(f"{name}: Kubernetes {version}: {where}: {error.message}")
                    except kubernetes_validate.SchemaNotFoundError:
                        failures.append(f"{name}: no schema for {api} {kind} in Kubernetes {version}")
                counts["kubernetes"] += 1

    for message in skipped:
        print(f"SKIPPED {message}")
    for message in failures:
        print(f"INVALID {message}")
    print(
        f"schema validation: {counts['kubernetes']} objects against Kubernetes "
        f"{' and '.join(args.kubernetes_version)} (strict), {counts['crd']} against CRD schemas; "
        f"{len(failures)} problems, {len(skipped)} skipped"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
