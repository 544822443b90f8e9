"""The rendered overlays as data: objects, the workloads that talk to each
other (with the places outside the application the policies mention), the
reachability table of docs/deploy.md, and the list of hand-made Secrets."""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

import yaml

from netpol import Endpoint, Network, Port, pod_ip

ROOT = Path(__file__).resolve().parents[2]
RENDER_DIR = Path(os.environ.get("K8S_RENDER_DIR", ROOT / ".ci" / "tools" / "k8s-check" / "render"))
DEPLOY_MD = ROOT / "docs" / "deploy.md"
SECRETS_TXT = ROOT / "k8s" / "secrets.txt"
OVERLAYS = ("small-town", "cluster", "ofunato", "kesen")
ZONES_HEADING = "## Zones (三層の対策) and reachability"

# Workloads outside the rendered objects that the policies name. The
# addresses of the places outside the cluster are in the documentation
# ranges the example policies use (docs/deploy.md, "Zones").
SYSTEM_PODS = [
    Endpoint("dns", "kube-system", {"k8s-app": "kube-dns"}, "", [Port("UDP", 53), Port("TCP", 53)]),
    Endpoint("cnpg-operator", "cnpg-system", {"app.kubernetes.io/name": "cloudnative-pg"}, "", [Port("TCP", 9443)]),
    # The monitoring namespace (docs/operations.md): Prometheus, which
    # scrapes the admin ports, and the OpenTelemetry Collector of
    # k8s/observability, which receives OTLP (rendered separately).
    Endpoint("prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"}, "", [Port("TCP", 9090)]),
    Endpoint("otel-collector", "monitoring", {"app.kubernetes.io/name": "otel-collector"}, "", [Port("TCP", 4317)]),
    Endpoint(
        "gateway-controller",
        "envoy-gateway-system",
        {"app.kubernetes.io/name": "envoy-gateway"},
        "",
        [Port("TCP", 18000)],
    ),
]
OUTSIDE = [
    Endpoint("floor-lan", None, {}, "198.51.100.10"),
    Endpoint("staff-lan", None, {}, "198.51.100.200"),
    Endpoint("internet", None, {}, "192.0.2.200"),
    Endpoint("kube-api", None, {}, "192.0.2.1", [Port("TCP", 443), Port("TCP", 6443)]),
    Endpoint("object-store", None, {}, "203.0.113.10", [Port("TCP", 443)]),
]


@functools.cache
def _parse(overlay: str) -> tuple[dict, ...]:
    path = RENDER_DIR / f"{overlay}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: render the overlays first (scripts/k8s-check.sh)")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return tuple(doc for doc in yaml.load_all(path.read_text(), Loader=loader) if doc)


def load(overlay: str) -> list[dict]:
    """The objects of a render, parsed once; callers that change them work
    on a copy (test_manifests.mutated)."""
    return list(_parse(overlay))


def of_kind(docs: list[dict], kind: str) -> list[dict]:
    return [doc for doc in docs if doc["kind"] == kind]


def named(docs: list[dict], kind: str, name: str) -> dict:
    found = [doc for doc in of_kind(docs, kind) if doc["metadata"]["name"] == name]
    if len(found) != 1:
        raise KeyError(f"{len(found)} {kind} named {name}")
    return found[0]


def container_ports(pod_spec: dict) -> list[Port]:
    return [
        Port(port.get("protocol", "TCP"), port["containerPort"], port.get("name"))
        for container in pod_spec["containers"]
        for port in container.get("ports") or []
    ]


def endpoints(docs: list[dict]) -> list[Endpoint]:
    """Every workload of the render plus the system pods and the outside."""
    found = []
    for deployment in of_kind(docs, "Deployment"):
        template = deployment["spec"]["template"]
        found.append(
            Endpoint(
                deployment["metadata"]["name"],
                deployment["metadata"]["namespace"],
                template["metadata"]["labels"],
                "",
                container_ports(template["spec"]),
            )
        )
    for cluster in of_kind(docs, "Cluster"):
        found.append(
            Endpoint(
                "postgres",
                cluster["metadata"]["namespace"],
                {"cnpg.io/cluster": cluster["metadata"]["name"], "cnpg.io/podRole": "instance"},
                "",
                [Port("TCP", 5432, "postgresql"), Port("TCP", 8000, "status")],
            )
        )
    for gateway in of_kind(docs, "Gateway"):
        # The proxy pods the Gateway's implementation creates: the labels of
        # spec.infrastructure plus the standard gateway-name label.
        labels = dict((gateway["spec"].get("infrastructure") or {}).get("labels") or {})
        labels["gateway.networking.k8s.io/gateway-name"] = gateway["metadata"]["name"]
        ports = sorted({listener["port"] for listener in gateway["spec"]["listeners"]})
        found.append(
            Endpoint(
                f"edge-{gateway['metadata']['name']}",
                gateway["metadata"]["namespace"],
                labels,
                "",
                [Port("TCP", port) for port in ports],
            )
        )
    # A system pod the render itself defines (the collector, when the
    # observability render is included) is modelled from the render.
    rendered = {e.name for e in found}
    found += [Endpoint(e.name, e.namespace, dict(e.labels), "", list(e.ports)) for e in SYSTEM_PODS if e.name not in rendered]
    for index, endpoint in enumerate(found):
        endpoint.ip = pod_ip(index)
    return found + OUTSIDE


def network(docs: list[dict]) -> Network:
    namespaces = {
        ns["metadata"]["name"]: ns["metadata"].get("labels") or {} for ns in of_kind(docs, "Namespace")
    }
    return Network(of_kind(docs, "NetworkPolicy"), namespaces, endpoints(docs))


def section(markdown: str, heading: str) -> str:
    """The text under `heading` up to the next heading of the same level."""
    start = markdown.index(heading)
    level = heading.split(" ")[0]
    rest = markdown[start + len(heading) :]
    following = re.search(rf"^{level} ", rest, flags=re.MULTILINE)
    return rest[: following.start()] if following else rest


def reachability_table(markdown: str | None = None) -> tuple[list[str], list[str], dict[tuple[str, str], bool]]:
    """Rows, columns and cells of the table headed `from \\ to` in the zones
    section. A
    cell is `yes`, `no`, or `-` where neither side lives in a namespace the
    manifests define (nothing here decides it); `-` cells are left out."""
    markdown = DEPLOY_MD.read_text() if markdown is None else markdown
    lines = [line.strip() for line in section(markdown, ZONES_HEADING).splitlines()]
    table = []
    for line in lines:
        if line.startswith("| from \\ to |") or (table and line.startswith("|")):
            table.append([cell.strip().strip("`") for cell in line.strip("|").split("|")])
        elif table:
            break
    if not table:
        raise ValueError(f"no table headed `from \\ to` under {ZONES_HEADING!r} in docs/deploy.md")
    header, _separator, *body = table
    columns = header[1:]
    rows, cells = [], {}
    for row in body:
        rows.append(row[0])
        if len(row) != len(header):
            raise ValueError(f"row {row[0]} has {len(row)} cells, the header {len(header)}")
        for column, cell in zip(columns, row[1:]):
            if cell not in ("yes", "no", "-"):
                raise ValueError(f"cell {row[0]} → {column} is {cell!r}, not yes, no or -")
            cells[(row[0], column)] = None if cell == "-" else cell == "yes"
    return rows, columns, cells


def secrets_list() -> dict[tuple[str, str, str], set[str]]:
    """(kind, namespace, name) → keys, from k8s/secrets.txt."""
    listed = {}
    for line in SECRETS_TXT.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        kind, namespace, name, keys = line.split()[:4]
        listed[(kind, namespace, name)] = set(keys.split(","))
    return listed


def documented_creations(markdown: str | None = None) -> dict[tuple[str, str, str], set[str]]:
    """(kind, namespace, name) → keys of every `kubectl create secret|configmap`
    command in the Kubernetes section of docs/deploy.md."""
    markdown = DEPLOY_MD.read_text() if markdown is None else markdown
    text = section(markdown, "## Kubernetes manifests").replace("\\\n", " ")
    created = {}
    for match in re.finditer(r"kubectl\s+(?:-n\s+(\S+)\s+)?create\s+(secret\s+\S+|configmap)\s+([^\n]*)", text):
        what, rest = match.group(2).split(), match.group(3).split()
        name = rest[0]
        if "$" in name:
            continue  # a shell loop; its Secrets are spelled out beside it
        namespace, keys = match.group(1), set()
        for index, arg in enumerate(rest):
            if arg in ("-n", "--namespace"):
                namespace = rest[index + 1]
            elif arg.startswith("--namespace="):
                namespace = arg.split("=", 1)[1]
            elif arg.startswith(("--from-literal=", "--from-file=")):
                value = arg.split("=", 1)[1]
                key = value.split("=", 1)[0] if "=" in value else Path(value).name
                keys.add(key)
        if what[0] == "secret" and what[1] == "tls":
            keys |= {"tls.crt", "tls.key"}
        kind = "secret" if what[0] == "secret" else "configmap"
        created[(kind, namespace or "default", name)] = keys
    return created
