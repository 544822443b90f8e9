"""The custom resources' validation bites: objects broken on purpose (a
wrong type, a misspelt field at any depth, a kind with no schema) fail, and
the rendered ones pass with a registry schema each.

Runs the validator scripts/k8s-check.sh installed (K8S_NODE,
K8S_NODE_MODULES; by default the machine's node and
.ci/tools/k8s-node/node_modules): run the script rather than this file.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import validate
from topology import ROOT, load, named

NODE = os.environ.get("K8S_NODE", "node")
NODE_MODULES = Path(os.environ.get("K8S_NODE_MODULES", ROOT / ".ci" / "tools" / "k8s-node" / "node_modules"))
EXAMPLES = ROOT / "k8s" / "examples" / "external-secret.yaml"


@pytest.fixture(scope="module")
def node_modules() -> Path:
    if not NODE_MODULES.is_dir():
        pytest.fail(f"{NODE_MODULES} is missing: install the CRD schemas first (scripts/k8s-check.sh)")
    return NODE_MODULES


CUSTOM_GROUPS = {"postgresql.cnpg.io", "barmancloud.cnpg.io", "gateway.networking.k8s.io", "external-secrets.io"}


def custom_resources() -> list[dict]:
    docs = load("ofunato") + [d for d in yaml.safe_load_all(EXAMPLES.read_text()) if d]
    return [d for d in docs if d["apiVersion"].split("/")[0] in CUSTOM_GROUPS]


def verdicts(node_modules: Path, docs: list[dict]) -> dict:
    _, results = validate.registry_validate(NODE, node_modules, [(str(i), d) for i, d in enumerate(docs)])
    return {i: results[str(i)] for i in range(len(docs))}


def test_every_rendered_custom_resource_has_a_registry_schema_and_passes(node_modules):
    docs = custom_resources()
    kinds = {(d["apiVersion"], d["kind"]) for d in docs}
    assert kinds >= {
        ("postgresql.cnpg.io/v1", "Cluster"),
        ("postgresql.cnpg.io/v1", "Database"),
        ("postgresql.cnpg.io/v1", "ScheduledBackup"),
        ("barmancloud.cnpg.io/v1", "ObjectStore"),
        ("gateway.networking.k8s.io/v1", "Gateway"),
        ("gateway.networking.k8s.io/v1", "GRPCRoute"),
        ("gateway.networking.k8s.io/v1", "HTTPRoute"),
        ("external-secrets.io/v1", "ExternalSecret"),
    }
    for i, (source, errors) in verdicts(node_modules, docs).items():
        where = f"{docs[i]['kind']} {docs[i]['metadata']['name']}"
        assert source, f"{where}: no registry schema"
        assert errors == [], f"{where}: {errors}"


def broken(kind: str, name: str, path: list, value) -> dict:
    """A copy of a rendered (or example) object with `value` set at `path`."""
    if kind == "ExternalSecret":
        doc = next(d for d in yaml.safe_load_all(EXAMPLES.read_text()) if d and d["metadata"]["name"] == name)
    else:
        doc = named(load("ofunato"), kind, name)
    doc = copy.deepcopy(doc)
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


# case: (kind, name, where, the value put there, the error it must draw)
BROKEN = {
    "Cluster instances as a word": (
        "Cluster", "madoguchi-db", ["spec", "instances"], "three",
        "/spec/instances: must be integer",
    ),
    "Cluster misspelt field deep down": (
        "Cluster", "madoguchi-db", ["spec", "bootstrap", "initdb", "ownr"], "madoguchi",
        "/spec/bootstrap/initdb/ownr: unknown field",
    ),
    "Cluster managed role misspelt": (
        "Cluster", "madoguchi-db", ["spec", "managed", "roles", 0, "connectionLimt"], 5,
        "/spec/managed/roles/0/connectionLimt: unknown field",
    ),
    "Cluster metadata misspelt": (
        "Cluster", "madoguchi-db", ["metadata", "label"], {"a": "b"},
        "/metadata/label: unknown field",
    ),
    "GRPCRoute rule with an unknown field": (
        "GRPCRoute", "floor", ["spec", "rules", 0, "timeouts"], {"request": "5s"},
        "/spec/rules/0/timeouts: unknown field",
    ),
    "GRPCRoute port as a string": (
        "GRPCRoute", "floor", ["spec", "rules", 0, "backendRefs", 0, "port"], "50051",
        "/spec/rules/0/backendRefs/0/port: must be integer",
    ),
    "Gateway listener protocol misspelt": (
        "Gateway", "floor", ["spec", "listeners", 0, "protocl"], "HTTPS",
        "/spec/listeners/0/protocl: unknown field",
    ),
    "ScheduledBackup method not in the enum": (
        "ScheduledBackup", "madoguchi-db-nightly", ["spec", "method"], "plugins",
        "/spec/method: must be equal to one of the allowed values",
    ),
    "ObjectStore retention not in the plugin's form": (
        "ObjectStore", "madoguchi-backups", ["spec", "retentionPolicy"], "30 days",
        "/spec/retentionPolicy: must match pattern",
    ),
    "ObjectStore configuration misspelt": (
        "ObjectStore", "madoguchi-backups", ["spec", "configuration", "destinationPth"], "s3://x",
        "/spec/configuration/destinationPth: unknown field",
    ),
    "ObjectStore spec misspelt": (
        "ObjectStore", "madoguchi-backups", ["spec", "retention"], "30d",
        "/spec/retention: unknown field",
    ),
    "ExternalSecret template misspelt": (
        "ExternalSecret", "madoguchi-db-queue", ["spec", "target", "template", "dataa"], {},
        "/spec/target/template/dataa: unknown field",
    ),
}


@pytest.fixture(scope="module")
def broken_verdicts(node_modules) -> dict:
    """Every case in one run of the validator (each run loads the schemas)."""
    cases = sorted(BROKEN)
    found = verdicts(node_modules, [broken(*BROKEN[case][:4]) for case in cases])
    return {case: found[i] for i, case in enumerate(cases)}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_custom_resource_fails(broken_verdicts, case):
    expected = BROKEN[case][4]
    source, errors = broken_verdicts[case]
    assert source, case
    assert any(error.startswith(expected) for error in errors), f"{case}: {errors}"


def test_a_kind_without_a_schema_fails_the_check(node_modules, tmp_path):
    """End to end through validate.py, as scripts/k8s-check.sh runs it: a
    DatabaseRole (CloudNativePG 1.30; no registry package has it) and a
    broken Cluster make it exit non-zero, saying why."""
    role = {
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "DatabaseRole",
        "metadata": {"name": "madoguchi-db-queue", "namespace": "madoguchi"},
        "spec": {"cluster": {"name": "madoguchi-db"}, "name": "queue", "login": True},
    }
    cluster = broken("Cluster", "madoguchi-db", ["spec", "instances"], "three")
    manifest = tmp_path / "broken.yaml"
    manifest.write_text(yaml.safe_dump_all([role, cluster]))
    run = subprocess.run(
        [sys.executable, str(Path(validate.__file__)), "--kubernetes-version", "1.35",
         "--node", NODE, "--node-modules", str(node_modules), str(manifest)],
        capture_output=True, text=True, check=False,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "INVALID broken.yaml: DatabaseRole madoguchi/madoguchi-db-queue: no schema for postgresql.cnpg.io/v1 DatabaseRole" in run.stdout
    assert "INVALID broken.yaml: Cluster madoguchi/madoguchi-db: /spec/instances: must be integer" in run.stdout
    assert "SKIPPED" not in run.stdout
