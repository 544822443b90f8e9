"""Kubernetes NetworkPolicy semantics, evaluated over a rendered manifest.

The model follows the `networking.k8s.io/v1` rules:

- A policy selects the pods of its own namespace that its `podSelector`
  matches (`{}` selects all). `policyTypes` defaults to `Ingress`, plus
  `Egress` when the policy has an `egress` section.
- A pod that no policy selects for a direction is not isolated in that
  direction: everything is allowed. A pod selected for a direction accepts
  exactly the union of what the rules of those policies allow.
- A rule with no `from`/`to` allows every peer; with no `ports`, every port.
  A peer with only `podSelector` means pods of the policy's namespace; with
  only `namespaceSelector`, every pod of the matching namespaces; with both,
  the matching pods of the matching namespaces; `ipBlock` matches addresses
  in its CIDR outside its `except` list.
- A port is a number (with an optional `endPort` range) or a container port
  name of the destination pod, for a protocol (TCP by default).
- A connection needs both sides: the source's egress and the destination's
  ingress must allow it. An endpoint outside the cluster has no policies.

`ipBlock` is applied to pod addresses too, as several network plugins do:
pods get addresses in POD_CIDR, so a wide block (0.0.0.0/0) admits pods,
and the table in docs/deploy.md shows it. Traffic from a pod's own node (the
kubelet's probes) is always allowed by Kubernetes and not modelled.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

POD_CIDR = ipaddress.ip_network("10.244.0.0/16")


@dataclass(frozen=True)
class Port:
    protocol: str
    number: int
    name: str | None = None


@dataclass
class Endpoint:
    """A workload that sends or receives traffic: pods of one kind, or a
    place outside the cluster (namespace None)."""

    name: str
    namespace: str | None
    labels: dict[str, str]
    ip: str
    ports: list[Port] = field(default_factory=list)

    @property
    def in_cluster(self) -> bool:
        return self.namespace is not None


def matches_selector(selector: dict | None, labels: dict[str, str]) -> bool:
    """A LabelSelector; an empty selector matches everything."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise ValueError(f"unknown selector operator {operator}")
    return True


def policy_types(policy: dict) -> set[str]:
    spec = policy.get("spec") or {}
    if "policyTypes" in spec and spec["policyTypes"]:
        return set(spec["policyTypes"])
    types = {"Ingress"}
    if "egress" in spec:
        types.add("Egress")
    return types


class Network:
    """The policies and namespaces of one render, with the endpoints."""

    def __init__(self, policies: list[dict], namespaces: dict[str, dict[str, str]], endpoints: list[Endpoint]):
        self.policies = policies
        # Every namespace carries its name as a label (set by the API server).
        self.namespaces = {
            name: {**labels, "kubernetes.io/metadata.name": name} for name, labels in namespaces.items()
        }
        for endpoint in endpoints:
            if endpoint.namespace and endpoint.namespace not in self.namespaces:
                self.namespaces[endpoint.namespace] = {"kubernetes.io/metadata.name": endpoint.namespace}
        self.endpoints = {endpoint.name: endpoint for endpoint in endpoints}

    def selecting(self, endpoint: Endpoint, direction: str) -> list[dict]:
        """The policies that isolate `endpoint` in `direction`."""
        if not endpoint.in_cluster:
            return []
        return [
            policy
            for policy in self.policies
            if policy["metadata"].get("namespace") == endpoint.namespace
            and direction in policy_types(policy)
            and matches_selector((policy.get("spec") or {}).get("podSelector"), endpoint.labels)
        ]

    def peer_matches(self, peer: dict, policy_namespace: str, other: Endpoint) -> bool:
        if "ipBlock" in peer:
            block = peer["ipBlock"]
            address = ipaddress.ip_address(other.ip)
            if address not in ipaddress.ip_network(block["cidr"]):
                return False
            return not any(address in ipaddress.ip_network(cidr) for cidr in block.get("except") or [])
        if not other.in_cluster:
            return False
        if "namespaceSelector" in peer:
            if not matches_selector(peer["namespaceSelector"], self.namespaces[other.namespace]):
                return False
        elif other.namespace != policy_namespace:
            return False
        if "podSelector" in peer:
            return matches_selector(peer["podSelector"], other.labels)
        return True

    @staticmethod
    def port_matches(rule_ports: list[dict] | None, port: Port) -> bool:
        if not rule_ports:
            return True
        for rule_port in rule_ports:
            if rule_port.get("protocol", "TCP") != port.protocol:
                continue
            number = rule_port.get("port")
            if number is None:
                return True
            if isinstance(number, str):
                if number == port.name:
                    return True
                continue
            end = rule_port.get("endPort", number)
            if number <= port.number <= end:
                return True
        return False

    def _allowed(self, subject: Endpoint, other: Endpoint, port: Port, direction: str) -> bool:
        policies = self.selecting(subject, direction)
        if not policies:
            return True
        key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
        for policy in policies:
            namespace = policy["metadata"]["namespace"]
            for rule in (policy.get("spec") or {}).get(key) or []:
                peers = rule.get(peers_key)
                if peers and not any(self.peer_matches(peer, namespace, other) for peer in peers):
                    continue
                if self.port_matches(rule.get("ports"), port):
                    return True
        return False

    def allows(self, source: Endpoint, destination: Endpoint, port: Port) -> bool:
        return self._allowed(source, destination, port, "Egress") and self._allowed(
            destination, source, port, "Ingress"
        )

    def reaches(self, source: str, destination: str) -> bool:
        """Whether `source` can open a connection to any listening port of
        `destination`."""
        src, dst = self.endpoints[source], self.endpoints[destination]
        return any(self.allows(src, dst, port) for port in dst.ports)

    def matrix(self, sources: list[str], destinations: list[str]) -> dict[tuple[str, str], bool]:
        return {(s, d): self.reaches(s, d) for s in sources for d in destinations}


def pod_ip(index: int) -> str:
    return str(POD_CIDR.network_address + 10 + index)
