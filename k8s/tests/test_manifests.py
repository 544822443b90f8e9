"""Rules every rendered overlay keeps (docs/deploy.md says why each holds).

Reads the renders of scripts/k8s-check.sh (K8S_RENDER_DIR); run it rather
than this file directly.
"""

from __future__ import annotations

import copy
import re

import pytest

import topology
from netpol import Endpoint, Network, Port, matches_selector
from topology import OVERLAYS, ROOT, load, named, of_kind

CLUSTER_SERVICES = {
    "queue": "madoguchi.queue.v1.QueueService",
    "identity": "madoguchi.identity.v1.IdentityService",
    "forms": "madoguchi.forms.v1.FormsService",
    "pos": "madoguchi.pos.v1.PosService",
    "signage": "madoguchi.signage.v1.SignageService",
}
DATABASE_SERVICES = {"queue", "identity", "forms", "pos"}
PRESTOP_SLEEP = 5


def drain_deadline_seconds() -> int:
    """The server's default drain deadline, read from the platform crate so
    a change there is seen here."""
    source = (ROOT / "services" / "platform" / "src" / "config.rs").read_text()
    found = re.findall(r"shutdown_grace: Duration::from_secs\((\d+)\)", source)
    assert found, "no `shutdown_grace: Duration::from_secs(N)` default in services/platform/src/config.rs"
    return max(int(seconds) for seconds in found)


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request):
    return request.param, load(request.param)


def pod_specs(docs):
    for deployment in of_kind(docs, "Deployment"):
        yield deployment, deployment["spec"]["template"]["spec"]


# --- pods ---------------------------------------------------------------


def test_every_container_has_three_grpc_probes(overlay):
    _, docs = overlay
    for deployment, spec in pod_specs(docs):
        for container in spec["containers"]:
            where = f"{deployment['metadata']['name']}/{container['name']}"
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                assert "grpc" in container.get(probe, {}), f"{where}: no gRPC {probe}"
                assert container[probe]["grpc"]["port"] == 50051, f"{where}: {probe} port"
            # Liveness must survive the drain; readiness must not.
            assert container["livenessProbe"]["grpc"]["service"] == "liveness", where
            assert container["startupProbe"]["grpc"]["service"] == "liveness", where
            assert container["readinessProbe"]["grpc"].get("service", "") != "liveness", where
            assert container["startupProbe"]["failureThreshold"] * container["startupProbe"]["periodSeconds"] >= 120, (
                f"{where}: the startup probe leaves less than two minutes for migrations"
            )


def test_readiness_asks_the_service_health_name():
    docs = load("cluster")
    for name, health in CLUSTER_SERVICES.items():
        container = named(docs, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]
        assert container["readinessProbe"]["grpc"]["service"] == health


def test_every_container_has_requests_and_a_memory_limit(overlay):
    _, docs = overlay
    for deployment, spec in pod_specs(docs):
        for container in spec["containers"]:
            resources = container.get("resources", {})
            where = deployment["metadata"]["name"]
            assert {"cpu", "memory"} <= set(resources.get("requests", {})), f"{where}: requests"
            assert "memory" in resources.get("limits", {}), f"{where}: memory limit"
            assert "cpu" not in resources.get("limits", {}), f"{where}: CPU limit (see docs/deploy.md)"


def test_every_pod_runs_restricted(overlay):
    _, docs = overlay
    for deployment, spec in pod_specs(docs):
        where = deployment["metadata"]["name"]
        pod = spec.get("securityContext", {})
        assert pod.get("runAsNonRoot") is True, where
        assert pod.get("runAsUser") == 65532 and pod.get("runAsGroup") == 65532, where
        assert pod.get("fsGroup") == 65532, where
        assert pod.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        assert spec.get("automountServiceAccountToken") is False, where
        for container in spec["containers"]:
            context = container.get("securityContext", {})
            assert context.get("readOnlyRootFilesystem") is True, where
            assert context.get("allowPrivilegeEscalation") is False, where
            assert context.get("capabilities", {}).get("drop") == ["ALL"], where
            mounts = {mount["mountPath"] for mount in container.get("volumeMounts", [])}
            assert {"/tmp", "/data"} <= mounts, f"{where}: writable /tmp and /data"


def test_termination_grace_covers_prestop_and_drain(overlay):
    _, docs = overlay
    deadline = drain_deadline_seconds()
    for deployment, spec in pod_specs(docs):
        where = deployment["metadata"]["name"]
        grace = spec.get("terminationGracePeriodSeconds", 30)
        for container in spec["containers"]:
            sleep = container["lifecycle"]["preStop"]["sleep"]["seconds"]
            assert sleep == PRESTOP_SLEEP, where
            # The lame-duck delay after SIGTERM (NOT_SERVING, still serving)
            # comes before the drain deadline starts.
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            delay = int(env.get("MADOGUCHI_DRAIN_DELAY_MS") or 0) / 1000
            assert grace > deadline + sleep + delay, (
                f"{where}: grace {grace}s ≤ drain {deadline}s + preStop {sleep}s + delay {delay}s"
            )


def test_cluster_replicas_drain_with_a_delay_and_recycle_connections(overlay):
    """In the cluster, every replica turns NOT_SERVING before it refuses
    (clients check health every second) and recycles its connections."""
    name, docs = overlay
    if name == "small-town":
        return
    for deployment, spec in pod_specs(docs):
        for container in spec["containers"]:
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            where = deployment["metadata"]["name"]
            assert int(env.get("MADOGUCHI_DRAIN_DELAY_MS") or 0) >= 2000, where
            assert int(env.get("MADOGUCHI_MAX_CONNECTION_AGE_MS") or 0) > 0, where


def test_every_deployment_spreads_and_has_a_disruption_budget(overlay):
    _, docs = overlay
    budgets = of_kind(docs, "PodDisruptionBudget")
    for deployment, spec in pod_specs(docs):
        where = deployment["metadata"]["name"]
        keys = {constraint["topologyKey"] for constraint in spec.get("topologySpreadConstraints", [])}
        assert {"topology.kubernetes.io/zone", "kubernetes.io/hostname"} <= keys, where
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        covering = [pdb for pdb in budgets if matches_selector(pdb["spec"]["selector"], labels)]
        assert len(covering) == 1, f"{where}: {len(covering)} PodDisruptionBudgets"
        assert covering[0]["spec"].get("maxUnavailable") == 1, where


def test_no_secret_values_in_any_render(overlay):
    _, docs = overlay
    assert not of_kind(docs, "Secret"), "a Secret is rendered from git"


# --- topology -------------------------------------------------------------


def test_small_town_is_one_recreated_pod_on_a_volume():
    docs = load("small-town")
    (deployment,) = of_kind(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    spec = deployment["spec"]["template"]["spec"]
    data = next(volume for volume in spec["volumes"] if volume["name"] == "data")
    claim = named(docs, "PersistentVolumeClaim", data["persistentVolumeClaim"]["claimName"])
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert spec["containers"][0]["args"] == ["serve", "--listen", "0.0.0.0:50051"]


@pytest.mark.parametrize("overlay_name", ["cluster", "ofunato", "kesen"])
def test_cluster_runs_one_deployment_per_service_with_two_services(overlay_name):
    docs = load(overlay_name)
    assert {d["metadata"]["name"] for d in of_kind(docs, "Deployment")} == set(CLUSTER_SERVICES)
    services = {s["metadata"]["name"]: s for s in of_kind(docs, "Service")}
    for name in CLUSTER_SERVICES:
        deployment = named(docs, "Deployment", name)
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["args"] == ["serve", "--service", name, "--listen", "0.0.0.0:50051"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        headless = services[f"{name}-headless"]
        assert headless["spec"]["clusterIP"] == "None"
        assert services[name]["spec"].get("clusterIP") != "None"
        for service in (services[name], headless):
            assert all(labels.get(k) == v for k, v in service["spec"]["selector"].items())
            assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(50051, "grpc")]


@pytest.mark.parametrize("overlay_name", ["cluster", "ofunato", "kesen"])
def test_in_cluster_clients_resolve_headless_services(overlay_name):
    docs = load(overlay_name)
    wiring = {
        "forms": {"MADOGUCHI_FORMS_IDENTITY_URL": "identity", "MADOGUCHI_FORMS_QUEUE_URL": "queue"},
        "pos": {"MADOGUCHI_POS_FORMS_URL": "forms"},
        "signage": {"MADOGUCHI_SIGNAGE_QUEUE_URL": "queue"},
    }
    for client, variables in wiring.items():
        env = {e["name"]: e.get("value") for e in named(docs, "Deployment", client)["spec"]["template"]["spec"]["containers"][0]["env"]}
        for variable, peer in variables.items():
            assert env[variable] == f"dns:///{peer}-headless.madoguchi.svc.cluster.local:50051"
            named(docs, "Service", f"{peer}-headless")
        assert int(env["MADOGUCHI_MAX_CONNECTION_AGE_MS"]) > 0


@pytest.mark.parametrize("overlay_name", ["cluster", "ofunato", "kesen"])
def test_each_database_service_connects_as_its_own_role(overlay_name):
    docs = load(overlay_name)
    (cluster,) = of_kind(docs, "Cluster")
    roles = {r["name"]: r for r in cluster["spec"]["managed"]["roles"]}
    assert set(roles) == DATABASE_SERVICES
    for name, role in roles.items():
        assert role["ensure"] == "present" and role["login"], name
        assert not any(role.get(power) for power in ("superuser", "createdb", "createrole", "replication", "bypassrls")), name
        assert role["connectionLimit"] > 0, name
    assert not of_kind(docs, "DatabaseRole"), "roles are the Cluster's managed roles (docs/deploy.md)"
    (database,) = of_kind(docs, "Database")
    schemas = {s["name"]: s["owner"] for s in database["spec"]["schemas"]}
    assert schemas == {name: name for name in DATABASE_SERVICES}, "each role owns exactly its schema"
    assert cluster["spec"]["instances"] == 3
    assert "REVOKE CREATE ON SCHEMA public FROM PUBLIC" in cluster["spec"]["bootstrap"]["initdb"]["postInitApplicationSQL"]
    for name in CLUSTER_SERVICES:
        env = named(docs, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]["env"]
        names = [e["name"] for e in env]
        if name not in DATABASE_SERVICES:
            assert "MADOGUCHI_DATABASE_URL" not in names
            continue
        secret = roles[name]["passwordSecret"]["name"]
        by_name = {e["name"]: e for e in env}
        assert by_name["DB_USER"]["valueFrom"]["secretKeyRef"] == {"name": secret, "key": "username"}
        assert by_name["DB_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": secret, "key": "password"}
        assert by_name["MADOGUCHI_DATABASE_URL"]["value"] == (
            "postgres://$(DB_USER):$(DB_PASSWORD)@madoguchi-db-rw:5432/madoguchi"
        )
        # `$(VAR)` expands only variables defined earlier in the list.
        assert names.index("DB_USER") < names.index("MADOGUCHI_DATABASE_URL")
        assert names.index("DB_PASSWORD") < names.index("MADOGUCHI_DATABASE_URL")


def test_stateless_services_autoscale_and_leave_replicas_to_it():
    docs = load("cluster")
    scaled = {h["spec"]["scaleTargetRef"]["name"]: h for h in of_kind(docs, "HorizontalPodAutoscaler")}
    assert {"signage", "forms"} <= set(scaled)
    assert scaled["queue"]["spec"]["minReplicas"] == 2
    for name in CLUSTER_SERVICES:
        has_replicas = "replicas" in named(docs, "Deployment", name)["spec"]
        assert has_replicas != (name in scaled), f"{name}: replicas and an autoscaler fight"


def test_backups_use_the_barman_cloud_plugin():
    docs = load("cluster")
    (cluster,) = of_kind(docs, "Cluster")
    (plugin,) = cluster["spec"]["plugins"]
    store = named(docs, "ObjectStore", plugin["parameters"]["barmanObjectName"])
    assert plugin["name"] == "barman-cloud.cloudnative-pg.io" and plugin["isWALArchiver"]
    assert "backup" not in cluster["spec"], "the in-tree barmanObjectStore is deprecated"
    (scheduled,) = of_kind(docs, "ScheduledBackup")
    assert scheduled["spec"]["method"] == "plugin"
    assert store["spec"]["configuration"]["destinationPath"]


# --- the edge ------------------------------------------------------------

ENTRIES = {
    "floor": {"queue", "pos", "signage"},
    "staff": set(CLUSTER_SERVICES),
    "integrators": {"queue", "forms", "signage"},
    "public": {"signage"},
}


def routed_backends(docs) -> dict[str, set[str]]:
    routed = {}
    for route in of_kind(docs, "GRPCRoute") + of_kind(docs, "HTTPRoute"):
        for parent in route["spec"]["parentRefs"]:
            backends = routed.setdefault(parent["name"], set())
            for rule in route["spec"]["rules"]:
                backends |= {ref["name"] for ref in rule["backendRefs"]}
    return routed


def test_each_entry_routes_to_its_services_only():
    docs = load("cluster")
    assert routed_backends(docs) == ENTRIES
    for route in of_kind(docs, "GRPCRoute"):
        for rule in route["spec"]["rules"]:
            (match,) = rule["matches"]
            (backend,) = rule["backendRefs"]
            assert match["method"]["service"] == CLUSTER_SERVICES[backend["name"]]


def test_entries_with_client_certificates_terminate_and_verify():
    docs = load("cluster")
    for gateway in of_kind(docs, "Gateway"):
        name = gateway["metadata"]["name"]
        for listener in gateway["spec"]["listeners"]:
            assert listener["protocol"] == "HTTPS" and listener["tls"]["mode"] == "Terminate"
        validation = gateway["spec"].get("tls", {}).get("frontend", {}).get("default", {}).get("validation")
        if name == "public":
            assert validation is None
        else:
            assert validation["caCertificateRefs"] and validation.get("mode", "AllowValidOnly") == "AllowValidOnly", name


def test_routes_stay_within_what_the_policies_allow():
    docs = load("cluster")
    net = topology.network(docs)
    for entry, backends in routed_backends(docs).items():
        for backend in backends:
            assert net.reaches(f"edge-{entry}", backend), f"{entry} routes to {backend}, the policies drop it"


# --- secrets -------------------------------------------------------------


def references(docs) -> set[tuple[str, str, str, str | None]]:
    """(kind, namespace, name, key or None) of every Secret and ConfigMap a
    rendered object refers to."""
    found = set()
    for deployment, spec in pod_specs(docs):
        namespace = deployment["metadata"]["namespace"]
        for container in spec["containers"]:
            for env in container.get("env", []):
                source = env.get("valueFrom", {})
                if "secretKeyRef" in source:
                    found.add(("secret", namespace, source["secretKeyRef"]["name"], source["secretKeyRef"]["key"]))
                if "configMapKeyRef" in source:
                    found.add(("configmap", namespace, source["configMapKeyRef"]["name"], source["configMapKeyRef"]["key"]))
            for env_from in container.get("envFrom", []):
                if "secretRef" in env_from:
                    found.add(("secret", namespace, env_from["secretRef"]["name"], None))
                if "configMapRef" in env_from:
                    found.add(("configmap", namespace, env_from["configMapRef"]["name"], None))
        for volume in spec.get("volumes", []):
            sources = [volume] + volume.get("projected", {}).get("sources", [])
            for source in sources:
                if "secret" in source:
                    name = source["secret"].get("secretName") or source["secret"].get("name")
                    keys = [item["key"] for item in source["secret"].get("items", [])] or [None]
                    found |= {("secret", namespace, name, key) for key in keys}
                if "configMap" in source:
                    keys = [item["key"] for item in source["configMap"].get("items", [])] or [None]
                    found |= {("configmap", namespace, source["configMap"]["name"], key) for key in keys}
    for gateway in of_kind(docs, "Gateway"):
        namespace = gateway["metadata"]["namespace"]
        for listener in gateway["spec"]["listeners"]:
            for ref in listener.get("tls", {}).get("certificateRefs", []):
                found |= {("secret", ref.get("namespace", namespace), ref["name"], key) for key in ("tls.crt", "tls.key")}
        validation = gateway["spec"].get("tls", {}).get("frontend", {}).get("default", {}).get("validation", {})
        for ref in validation.get("caCertificateRefs", []):
            found.add((ref["kind"].lower(), ref.get("namespace", namespace), ref["name"], "ca.crt"))
    for cluster in of_kind(docs, "Cluster"):
        namespace = cluster["metadata"]["namespace"]
        for role in cluster["spec"].get("managed", {}).get("roles", []):
            if "passwordSecret" in role:
                for key in ("username", "password"):
                    found.add(("secret", namespace, role["passwordSecret"]["name"], key))
    for store in of_kind(docs, "ObjectStore"):
        namespace = store["metadata"]["namespace"]
        for ref in store["spec"]["configuration"].get("s3Credentials", {}).values():
            found.add(("secret", namespace, ref["name"], ref["key"]))
    return found


def test_every_referenced_secret_is_rendered_or_listed(overlay):
    name, docs = overlay
    rendered = {
        (doc["kind"].lower(), doc["metadata"].get("namespace"), doc["metadata"]["name"]): set((doc.get("data") or {}))
        for doc in docs
        if doc["kind"] in ("Secret", "ConfigMap")
    }
    listed = topology.secrets_list()
    missing = []
    for kind, namespace, ref, key in sorted(references(docs), key=str):
        keys = rendered.get((kind, namespace, ref), listed.get((kind, namespace, ref)))
        if keys is None:
            missing.append(f"{kind} {namespace}/{ref}")
        elif key is not None and key not in keys:
            missing.append(f"{kind} {namespace}/{ref} key {key}")
    assert not missing, f"{name}: referenced but neither rendered nor in k8s/secrets.txt: {missing}"


def test_secrets_list_is_used_and_matches_the_documented_commands():
    listed = topology.secrets_list()
    used = set()
    for overlay_name in OVERLAYS:
        used |= {(kind, ns, name) for kind, ns, name, _ in references(load(overlay_name))}
    assert set(listed) <= used, f"listed but never referenced: {set(listed) - used}"
    assert topology.documented_creations() == listed


# --- sites -------------------------------------------------------------------

SERVED_SITE_FILES = ("site.toml", "catalog.toml", "identity.toml", "residents.csv", "signage.toml")


def site_code(config_map) -> str:
    found = re.search(r'^code = "(\d{6})"', config_map["data"]["site.toml"], re.MULTILINE)
    assert found, f"{config_map['metadata']['name']}: no municipality code in site.toml"
    return found.group(1)


@pytest.mark.parametrize("overlay_name,cities", [("ofunato", 1), ("kesen", 2)])
def test_every_service_reads_each_city_site_from_its_own_mounted_directory(overlay_name, cities):
    """Each listed site file lies in a mounted ConfigMap holding every file
    a server reads beside it; the cities' codes differ; every service gets
    the same list."""
    docs = load(overlay_name)
    lists = set()
    for deployment, spec in pod_specs(docs):
        where = deployment["metadata"]["name"]
        container = spec["containers"][0]
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        files = [f for f in (env.get("MADOGUCHI_SITES") or env.get("MADOGUCHI_SITE") or "").split(",") if f]
        assert len(files) == cities, f"{where}: site files {files}"
        volumes = {v["name"]: v for v in spec["volumes"]}
        codes = set()
        for file in files:
            directory, _, name = file.rpartition("/")
            assert name == "site.toml", f"{where}: {file}"
            (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == directory]
            assert mount.get("readOnly"), f"{where}: {directory} is writable"
            config_map = named(docs, "ConfigMap", volumes[mount["name"]]["configMap"]["name"])
            missing = [f for f in SERVED_SITE_FILES if f not in config_map["data"]]
            assert not missing, f"{where}: {config_map['metadata']['name']} lacks {missing}"
            assert "gateway.toml" not in config_map["data"], "gateway.toml belongs to the floor PC"
            codes.add(site_code(config_map))
        assert len(codes) == cities, f"{where}: two site files of one municipality"
        lists.add(tuple(files))
    assert len(lists) == 1, f"services read different sites: {lists}"


# --- zones ---------------------------------------------------------------


def namespaces_defined(docs) -> set[str]:
    return {ns["metadata"]["name"] for ns in of_kind(docs, "Namespace")}


def test_every_namespace_denies_by_default_and_allows_dns(overlay):
    _, docs = overlay
    policies = of_kind(docs, "NetworkPolicy")
    for namespace in namespaces_defined(docs):
        here = [p for p in policies if p["metadata"]["namespace"] == namespace]
        deny = [
            p for p in here
            if p["spec"]["podSelector"] == {}
            and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
            and not p["spec"].get("ingress") and not p["spec"].get("egress")
        ]
        assert deny, f"{namespace}: no default-deny policy for ingress and egress"
    net = topology.network(docs)
    for endpoint in net.endpoints.values():
        if endpoint.namespace in namespaces_defined(docs):
            assert net.reaches(endpoint.name, "dns"), f"{endpoint.name} cannot resolve names"


def matrix_mismatches(net: Network, cells: dict, own_namespaces: set[str] | None = None) -> list[str]:
    """What the table says that the policies do not do. With
    `own_namespaces`, a `-` cell must also be one that no namespace of the
    manifests takes part in."""
    problems = []
    for (source, destination), expected in sorted(cells.items()):
        if expected is None:
            sides = {net.endpoints[source].namespace, net.endpoints[destination].namespace}
            if own_namespaces is not None and sides & own_namespaces:
                problems.append(f"{source} → {destination}: the table says -, but a namespace of the manifests is involved")
            continue
        if net.reaches(source, destination) != expected:
            problems.append(
                f"{source} → {destination}: the table says {'yes' if expected else 'no'}, "
                f"the policies {'deny' if expected else 'allow'}"
            )
    return problems


@pytest.mark.parametrize("overlay_name", ["cluster", "ofunato", "kesen"])
def test_policies_give_exactly_the_documented_reachability(overlay_name):
    rows, columns, cells = topology.reachability_table()
    net = topology.network(load(overlay_name))
    modelled = set(net.endpoints)
    assert set(rows) <= modelled and set(columns) <= modelled, f"unknown names: {(set(rows) | set(columns)) - modelled}"
    in_cluster = {e.name for e in net.endpoints.values() if e.in_cluster and e.ports}
    assert in_cluster <= set(columns), f"workloads missing from the table's columns: {in_cluster - set(columns)}"
    problems = matrix_mismatches(net, cells, namespaces_defined(load(overlay_name)))
    assert not problems, "\n".join(problems)


def test_small_town_server_is_reached_from_the_office_lans_only():
    net = topology.network(load("small-town"))
    assert net.reaches("floor-lan", "madoguchi") and net.reaches("staff-lan", "madoguchi")
    assert not net.reaches("internet", "madoguchi")
    for destination in ("kube-api", "object-store", "cnpg-operator"):
        assert not net.reaches("madoguchi", destination)


# --- the checker catches mistakes (mutations of the rendered policies) ----


def mutated(docs, namespace, name, change):
    docs = copy.deepcopy(docs)
    policy = next(
        d for d in of_kind(docs, "NetworkPolicy") if d["metadata"]["namespace"] == namespace and d["metadata"]["name"] == name
    )
    change(policy["spec"])
    return docs


FROM_FLOOR_EDGE = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "madoguchi-edge-floor"}},
    "podSelector": {"matchLabels": {"madoguchi.city/edge": "floor"}},
}
IDENTITY = {"matchLabels": {"app.kubernetes.io/component": "identity"}}


def test_opening_identity_to_the_floor_edge_is_reported():
    _, _, cells = topology.reachability_table()
    docs = load("cluster")
    docs = mutated(docs, "madoguchi", "identity", lambda spec: spec["ingress"][0]["from"].append(FROM_FLOOR_EDGE))
    docs = mutated(
        docs,
        "madoguchi-edge-floor",
        "edge-egress",
        lambda spec: spec["egress"][0]["to"].append({"namespaceSelector": {}, "podSelector": IDENTITY}),
    )
    problems = matrix_mismatches(topology.network(docs), cells)
    assert any(p.startswith("edge-floor → identity") for p in problems), problems


def test_one_side_alone_does_not_open_a_path():
    docs = load("cluster")
    ingress_only = mutated(docs, "madoguchi", "identity", lambda spec: spec["ingress"][0]["from"].append(FROM_FLOOR_EDGE))
    assert not topology.network(ingress_only).reaches("edge-floor", "identity")
    egress_only = mutated(
        docs,
        "madoguchi-edge-floor",
        "edge-egress",
        lambda spec: spec["egress"][0]["to"].append({"namespaceSelector": {}, "podSelector": IDENTITY}),
    )
    assert not topology.network(egress_only).reaches("edge-floor", "identity")


def test_a_namespace_selector_alone_admits_every_pod_of_those_namespaces():
    _, _, cells = topology.reachability_table()
    docs = mutated(load("cluster"), "madoguchi", "madoguchi-db", lambda spec: spec["ingress"][1]["from"].append({"namespaceSelector": {}}))
    problems = matrix_mismatches(topology.network(docs), cells)
    # The gateway controller's namespace has no egress policy of ours, so the
    # opened ingress is enough; the integrators' edge stays out, as its own
    # egress policy still stops it.
    assert any(p.startswith("gateway-controller → postgres") for p in problems), problems
    assert not any(p.startswith("edge-integrators → postgres") for p in problems), problems


def test_dropping_the_default_deny_is_reported():
    docs = load("cluster")
    docs = [d for d in docs if not (d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "default-deny" and d["metadata"]["namespace"] == "madoguchi-edge-public")]
    with pytest.raises(AssertionError, match="madoguchi-edge-public"):
        test_every_namespace_denies_by_default_and_allows_dns(("cluster", docs))


def test_a_wide_ip_block_is_seen_to_admit_pods():
    _, _, cells = topology.reachability_table()
    docs = mutated(
        load("cluster"),
        "madoguchi",
        "identity",
        lambda spec: spec["ingress"].append({"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}),
    )
    problems = matrix_mismatches(topology.network(docs), cells)
    assert any(p.startswith("internet → identity") for p in problems), problems
    assert any(p.startswith("cnpg-operator → identity") for p in problems), problems


def test_a_table_edit_without_a_policy_edit_is_reported():
    markdown = topology.DEPLOY_MD.read_text()
    section = topology.section(markdown, topology.ZONES_HEADING)
    edited_section = re.sub(r"^(\| `?edge-integrators`? \|(?: [a-z]+ \|){5}) no ", r"\1 yes ", section, count=1, flags=re.MULTILINE)
    assert edited_section != section, "the integrators' row was not found in the table"
    _, _, cells = topology.reachability_table(markdown.replace(section, edited_section))
    assert matrix_mismatches(topology.network(load("cluster")), cells) == [
        "edge-integrators → identity: the table says yes, the policies deny"
    ]


# --- the evaluator on small cases -----------------------------------------


def tiny(policies, namespaces=None):
    pods = [
        Endpoint("a", "one", {"app": "a"}, "10.244.0.1", [Port("TCP", 80, "http")]),
        Endpoint("b", "one", {"app": "b"}, "10.244.0.2", [Port("TCP", 80, "http"), Port("UDP", 53)]),
        Endpoint("c", "two", {"app": "c"}, "10.244.0.3", [Port("TCP", 80, "http")]),
        Endpoint("outside", None, {}, "192.0.2.9"),
    ]
    for policy in policies:
        policy.setdefault("metadata", {}).setdefault("namespace", "one")
    return Network(policies, namespaces or {"one": {}, "two": {"team": "x"}}, pods)


def test_no_policy_allows_everything():
    net = tiny([])
    assert net.reaches("a", "b") and net.reaches("c", "a") and net.reaches("outside", "a")


def test_policy_types_default_to_ingress_plus_egress_when_present():
    net = tiny([{"spec": {"podSelector": {"matchLabels": {"app": "b"}}}}])
    assert not net.reaches("a", "b") and net.reaches("b", "a")
    # An `egress` section adds Egress; Ingress is implied all the same.
    net = tiny([{"spec": {"podSelector": {"matchLabels": {"app": "a"}}, "egress": []}}])
    assert not net.reaches("a", "b") and not net.reaches("b", "a") and net.reaches("b", "c")
    net = tiny([{"spec": {"podSelector": {"matchLabels": {"app": "a"}}, "policyTypes": ["Egress"]}}])
    assert not net.reaches("a", "b") and net.reaches("b", "a")


def test_peers_ports_and_selectors():
    allow_c_by_namespace = {
        "spec": {
            "podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["b"]}]},
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "x"}}}], "ports": [{"port": "http"}]}],
        }
    }
    net = tiny([allow_c_by_namespace])
    assert net.reaches("c", "b") and not net.reaches("a", "b")
    # podSelector alone means the policy's own namespace.
    pod_only = {"spec": {"podSelector": {"matchLabels": {"app": "b"}}, "ingress": [{"from": [{"podSelector": {}}]}]}}
    net = tiny([pod_only])
    assert net.reaches("a", "b") and not net.reaches("c", "b")
    # UDP 53 only: TCP 80 is not reachable.
    udp = {"spec": {"podSelector": {"matchLabels": {"app": "b"}}, "ingress": [{"ports": [{"protocol": "UDP", "port": 53}]}]}}
    net = tiny([udp])
    assert net.allows(net.endpoints["a"], net.endpoints["b"], Port("UDP", 53))
    assert not net.allows(net.endpoints["a"], net.endpoints["b"], Port("TCP", 80, "http"))
    # A port range.
    ranged = {"spec": {"podSelector": {"matchLabels": {"app": "b"}}, "ingress": [{"ports": [{"port": 70, "endPort": 90}]}]}}
    assert tiny([ranged]).reaches("a", "b")


def test_ip_blocks_and_their_exceptions():
    block = {
        "spec": {
            "podSelector": {"matchLabels": {"app": "a"}},
            "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.244.0.0/16"]}}]}],
        }
    }
    net = tiny([block])
    assert net.reaches("outside", "a") and not net.reaches("b", "a")
