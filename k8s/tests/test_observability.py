"""k8s/observability and the admin port: the dashboard and the alert rules
use only the metrics of k8s/observability/metrics.txt (every expression is
parsed as PromQL), every alert has a runbook section in docs/operations.md,
the rules validate against the PrometheusRule schema, the collector's
configuration holds together with its Deployment, and the admin port is
reached from the monitoring namespace only.

Reads the renders of scripts/k8s-check.sh (K8S_RENDER_DIR); run it rather
than this file directly.
"""

from __future__ import annotations

import copy
import json
import os
import re
import tomllib
import unicodedata
from pathlib import Path

import promql_parser
import pytest
import yaml

import topology
import validate
from netpol import Port
from test_manifests import matrix_mismatches, namespaces_defined
from topology import OVERLAYS, ROOT, load, named, of_kind

OBSERVABILITY = ROOT / "k8s" / "observability"
METRICS_TXT = OBSERVABILITY / "metrics.txt"
DASHBOARD = OBSERVABILITY / "dashboards" / "madoguchi-floor.json"
COLLECTOR_CONFIG = OBSERVABILITY / "collector" / "config.yaml"
OPERATIONS_MD = ROOT / "docs" / "operations.md"
ADMIN = Port("TCP", 9464, "admin")
NODE = os.environ.get("K8S_NODE", "node")
NODE_MODULES = Path(os.environ.get("K8S_NODE_MODULES", ROOT / ".ci" / "tools" / "k8s-node" / "node_modules"))
# Labels Prometheus adds to every scraped series (the PodMonitor's and the
# ScrapeConfig's target labels), besides a metric's own.
TARGET_LABELS = {"job", "instance", "namespace", "pod", "container", "endpoint", "service", "floor"}
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "counter": ("",), "gauge": ("",)}


# --- the metric list -------------------------------------------------------


def metric_list() -> dict[str, dict]:
    """name → {type, source, labels} from metrics.txt."""
    found = {}
    for line in METRICS_TXT.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, kind, source, labels = line.split()
        assert kind in SUFFIXES, f"{name}: type {kind}"
        assert name not in found, f"{name} listed twice"
        if kind == "counter":
            assert name.endswith("_total"), f"{name}: a counter's exposition name ends in _total"
        found[name] = {"type": kind, "source": source, "labels": set() if labels == "-" else set(labels.split(","))}
    return found


def series_names() -> dict[str, set[str]]:
    """Every series name Prometheus stores for the listed metrics → its labels."""
    names = {}
    for name, metric in metric_list().items():
        for suffix in SUFFIXES[metric["type"]]:
            labels = set(metric["labels"])
            if suffix == "_bucket":
                labels.add("le")
            names[name + suffix] = labels
    return names


def test_metric_list_has_what_the_issue_names():
    metrics = metric_list()
    assert metrics["rpc_server_call_duration_seconds"]["labels"] == {"rpc_system_name", "rpc_method", "rpc_status_code"}
    assert metrics["madoguchi_gateway_call_to_board_seconds"]["type"] == "histogram"
    assert {m["source"] for m in metrics.values()} == {"every", "sqlite", "queue", "forms", "pos", "signage", "gateway"}


# --- PromQL ---------------------------------------------------------------

GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "12h"}


def promql(expr: str) -> promql_parser.Expr:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return promql_parser.parse(expr)


def used(expr: str) -> tuple[list[tuple[str, set[str]]], set[str], set[str]]:
    """(selected series with the labels their matchers name, labels named in
    by/without/on/ignoring, labels created by label_replace) of `expr`."""
    selectors, grouping, created = [], set(), set()

    def walk(node):
        if isinstance(node, promql_parser.VectorSelector):
            matchers = {m.name for m in node.matchers.matchers} - {"__name__"}
            name = node.name or next((m.value for m in node.matchers.matchers if m.name == "__name__"), None)
            selectors.append((name, matchers))
        elif isinstance(node, promql_parser.MatrixSelector):
            walk(node.vector_selector)
        elif isinstance(node, promql_parser.AggregateExpr):
            if node.modifier is not None:
                grouping.update(node.modifier.labels)
            walk(node.expr)
            if node.param is not None:
                walk(node.param)
        elif isinstance(node, promql_parser.BinaryExpr):
            if node.modifier is not None:
                if node.modifier.matching is not None:
                    grouping.update(node.modifier.matching.labels)
                grouping.update(node.modifier.group_labels or [])
            walk(node.lhs)
            walk(node.rhs)
        elif isinstance(node, promql_parser.Call):
            if node.func.name in ("label_replace", "label_join"):
                created.add(node.args[1].val)
            for arg in node.args:
                walk(arg)
        elif isinstance(node, (promql_parser.ParenExpr, promql_parser.UnaryExpr, promql_parser.SubqueryExpr)):
            walk(node.expr)

    walk(promql(expr))
    return selectors, grouping, created


def problems_of(expr: str, recorded: set[str]) -> list[str]:
    """What `expr` uses that metrics.txt (or a recording rule) does not have."""
    series = series_names()
    selectors, grouping, created = used(expr)
    problems, known_labels = [], set(TARGET_LABELS) | created
    for name, matchers in selectors:
        if name is None:
            problems.append("a selector without a metric name")
            continue
        if name in recorded:
            continue
        if name not in series:
            problems.append(f"{name} is not in metrics.txt")
            continue
        known_labels |= series[name]
        unknown = matchers - series[name] - TARGET_LABELS
        if unknown:
            problems.append(f"{name} has no label {sorted(unknown)}")
    if any(name in recorded for name, _ in selectors):
        known_labels |= {label for labels in series.values() for label in labels}
    unknown = grouping - known_labels
    if unknown:
        problems.append(f"grouped by {sorted(unknown)}, which no series here has")
    return problems


def test_the_checker_bites():
    assert problems_of("rate(madoguchi_queue_tickets_issued_total[5m])", set()) == []
    assert problems_of("rate(madoguchi_queue_tickets_issued[5m])", set()) == ["madoguchi_queue_tickets_issued is not in metrics.txt"]
    assert problems_of('madoguchi_pos_payments_total{result="approved"}', set()) == ["madoguchi_pos_payments_total has no label ['result']"]
    assert problems_of("sum by (counter) (madoguchi_queue_tickets_waiting)", set()) == [
        "grouped by ['counter'], which no series here has"
    ]
    assert problems_of("histogram_quantile(0.5, sum by (le) (rate(rpc_server_call_duration_seconds_bucket[5m])))", set()) == []
    assert problems_of("rpc_server_call_duration_seconds", set()) == ["rpc_server_call_duration_seconds is not in metrics.txt"]
    with pytest.raises(ValueError):
        promql("sum(rate(madoguchi_queue_calls_total[5m])")


# --- rules ----------------------------------------------------------------


def observability() -> list[dict]:
    return load("observability")


def rules() -> list[dict]:
    (rule,) = of_kind(observability(), "PrometheusRule")
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def recorded() -> set[str]:
    return {r["record"] for r in rules() if "record" in r}


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = heading.strip().lower()
    text = "".join(c for c in text if c in "-_ " or unicodedata.category(c)[0] in "LN")
    return text.replace(" ", "-")


def anchors() -> set[str]:
    found = set()
    for line in OPERATIONS_MD.read_text().splitlines():
        match = re.match(r"^#{1,6} (.+)$", line)
        if match:
            found.add(github_anchor(match.group(1)))
    return found


def runbook_base() -> str:
    repository = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["package"]["repository"]
    return f"{repository}/blob/main/docs/operations.md#"


def test_every_rule_parses_and_uses_listed_metrics_only():
    names = recorded()
    for rule in rules():
        what = rule.get("alert") or rule.get("record")
        assert problems_of(rule["expr"], names) == [], what


def test_every_alert_has_a_severity_a_summary_and_a_runbook_section():
    documented = anchors()
    alerts = [r for r in rules() if "alert" in r]
    assert len({a["alert"] for a in alerts}) == len(alerts), "two alerts of one name"
    for alert in alerts:
        name = alert["alert"]
        assert alert["labels"]["severity"] in ("critical", "warning", "info"), name
        assert alert["annotations"]["summary"], name
        url = alert["annotations"]["runbook_url"]
        assert url.startswith(runbook_base()), f"{name}: {url}"
        anchor = url.removeprefix(runbook_base())
        assert anchor == name.lower(), f"{name}: the section is headed by the alert's name"
        assert anchor in documented, f"{name}: no section #{anchor} in docs/operations.md"


def test_the_alerts_the_issue_asks_for_exist():
    names = {r["alert"] for r in rules() if "alert" in r}
    assert {
        "MadoguchiBoardLineDown",
        "MadoguchiPrinterPaperOut",
        "MadoguchiEventLogLag",
        "MadoguchiPaymentUnresolved",
        "MadoguchiRpcErrorRate",
        "MadoguchiCallToBoardBudgetBurnFast",
        "MadoguchiCallToBoardBudgetBurnSlow",
    } <= names


def test_the_burn_rate_alerts_read_the_slo():
    """99 % within 1 s: the slow ratio reads the 1 s bucket, and each window
    pair compares with a multiple of the 1 % budget."""
    by_name = {r.get("alert") or r.get("record"): r for r in rules()}
    for window in ("5m", "30m", "1h", "2h", "6h", "1d", "3d"):
        expr = by_name[f"madoguchi:call_to_board_slow:ratio_rate{window}"]["expr"]
        assert f"[{window}]" in expr and 'le=~"1|1\\\\.0"' in expr, window
    fast = by_name["MadoguchiCallToBoardBudgetBurnFast"]["expr"]
    assert "ratio_rate1h > (14.4 * 0.01)" in fast and "ratio_rate5m > (14.4 * 0.01)" in fast
    assert "ratio_rate6h > (6 * 0.01)" in fast and "ratio_rate30m > (6 * 0.01)" in fast
    assert "99 %" in OPERATIONS_MD.read_text() and "1 s" in OPERATIONS_MD.read_text()


@pytest.fixture(scope="module")
def node_modules() -> Path:
    if not NODE_MODULES.is_dir():
        pytest.fail(f"{NODE_MODULES} is missing: install the CRD schemas first (scripts/k8s-check.sh)")
    return NODE_MODULES


def test_monitoring_resources_validate_and_broken_ones_fail(node_modules):
    docs = [d for d in observability() if d["apiVersion"].startswith("monitoring.coreos.com/")]
    assert {d["kind"] for d in docs} == {"PrometheusRule", "PodMonitor", "ScrapeConfig"}
    rule = named(docs, "PrometheusRule", "madoguchi")
    no_expr = copy.deepcopy(rule)
    del no_expr["spec"]["groups"][0]["rules"][0]["expr"]
    misspelt = copy.deepcopy(rule)
    misspelt["spec"]["groups"][1]["rules"][0]["annotation"] = {"summary": "x"}
    bad_for = copy.deepcopy(rule)
    bad_for["spec"]["groups"][1]["rules"][0]["for"] = "five minutes"
    monitor = copy.deepcopy(named(docs, "PodMonitor", "madoguchi"))
    monitor["spec"]["podMetricsEndpoints"][0]["prot"] = "admin"
    cases = docs + [no_expr, misspelt, bad_for, monitor]
    _, results = validate.registry_validate(NODE, node_modules, [(str(i), d) for i, d in enumerate(cases)])
    for i, doc in enumerate(docs):
        source, errors = results[str(i)]
        assert source and source.startswith("@kubernetes-models/prometheus-operator@"), doc["kind"]
        assert errors == [], f"{doc['kind']} {doc['metadata']['name']}: {errors}"
    expected = [
        "/spec/groups/0/rules/0: must have required property expr",
        "/spec/groups/1/rules/0/annotation: unknown field",
        "/spec/groups/1/rules/0/for: must match pattern",
        "/spec/podMetricsEndpoints/0/prot: unknown field",
    ]
    for offset, prefix in enumerate(expected):
        _, errors = results[str(len(docs) + offset)]
        assert any(error.startswith(prefix) for error in errors), f"{prefix}: {errors}"


# --- the dashboard ----------------------------------------------------------


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels(dash: dict) -> list[dict]:
    found = []
    for panel in dash["panels"]:
        found.append(panel)
        found += panel.get("panels", [])
    return found


def test_dashboard_expressions_use_listed_metrics_only():
    dash = dashboard()
    names = recorded()
    ids = [panel["id"] for panel in panels(dash)]
    assert len(ids) == len(set(ids)), "two panels share an id"
    exprs = []
    for panel in panels(dash):
        for target in panel.get("targets", []):
            exprs.append((panel["title"], target["expr"]))
    for variable in dash["templating"]["list"]:
        if variable["type"] == "query":
            match = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable["query"]["query"])
            assert match, variable["name"]
            exprs.append((f"${variable['name']}", f'{match.group(1)}{{{match.group(2)}!=""}}'))
    assert exprs
    for title, expr in exprs:
        assert problems_of(expr, names) == [], f"{title}: {expr}"


def test_dashboard_has_the_panels_the_issue_asks_for():
    text = " ".join(target["expr"] for panel in panels(dashboard()) for target in panel.get("targets", []))
    for metric in (
        "madoguchi_gateway_call_to_board_seconds_bucket",
        "rpc_server_call_duration_seconds_count",
        "madoguchi_queue_tickets_waiting",
        "madoguchi_queue_wait_estimate_seconds",
        "madoguchi_gateway_device_up",
        "madoguchi_gateway_printer_condition",
        "madoguchi_queue_tickets_issued_total",
        "madoguchi_forms_signatures_total",
        "madoguchi_forms_onestop_visits_total",
        "madoguchi_pos_payments_total",
        "madoguchi_queue_event_log_lag_events",
        "db_client_connection_count",
    ):
        assert metric in text, metric
    quantiles = re.findall(r"histogram_quantile\((0\.\d+), sum by \(le\) \(rate\(madoguchi_gateway_call_to_board", text)
    assert sorted(quantiles) == ["0.5", "0.95", "0.99"]


def test_dashboard_configmap_is_the_file_for_the_grafana_sidecar():
    configmap = named(observability(), "ConfigMap", "madoguchi-dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(configmap["data"]["madoguchi-floor.json"]) == dashboard()


# --- the collector ------------------------------------------------------------


def test_collector_configuration_holds_together():
    config = yaml.safe_load(COLLECTOR_CONFIG.read_text())
    service = config["service"]
    assert set(service["extensions"]) <= set(config["extensions"])
    for name, pipeline in service["pipelines"].items():
        for kind in ("receivers", "processors", "exporters"):
            assert set(pipeline[kind]) <= set(config[kind]), f"{name}: {kind}"
        # memory_limiter refuses first; batch sends last.
        assert pipeline["processors"][0] == "memory_limiter", name
        assert pipeline["processors"][-1] == "batch", name
    assert set(service["pipelines"]) == {"traces", "metrics"}

    docs = observability()
    deployment = named(docs, "Deployment", "otel-collector")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] == f"0.0.0.0:{ports['otlp-grpc']}"
    assert config["exporters"]["prometheus"]["endpoint"] == f"0.0.0.0:{ports['metrics']}"
    reader = service["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]["prometheus"]
    assert reader["port"] == ports["telemetry"]
    assert config["extensions"]["health_check"]["endpoint"] == f"0.0.0.0:{ports['health']}"
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == "health"
    # Every ${env:VAR} of the configuration is set on the container.
    env = {e["name"] for e in container["env"]}
    assert set(re.findall(r"\$\{env:(\w+)\}", COLLECTOR_CONFIG.read_text())) <= env
    # The configuration the pod mounts is this file.
    volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "config")
    configmap = named(docs, "ConfigMap", volume["configMap"]["name"])
    assert yaml.safe_load(configmap["data"]["config.yaml"]) == config
    assert "--config=/etc/otelcol/config.yaml" in container["args"]
    assert re.fullmatch(r"docker\.io/otel/opentelemetry-collector-contrib:\d+\.\d+\.\d+", container["image"])


def test_podmonitors_name_ports_the_pods_have():
    docs = observability()
    collector = named(docs, "Deployment", "otel-collector")["spec"]["template"]["spec"]["containers"][0]
    madoguchi = named(load("cluster"), "Deployment", "queue")["spec"]["template"]["spec"]["containers"][0]
    ports = {
        "madoguchi": {p["name"] for p in madoguchi["ports"]},
        "otel-collector": {p["name"] for p in collector["ports"]},
    }
    for monitor in of_kind(docs, "PodMonitor"):
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            assert endpoint["port"] in ports[monitor["metadata"]["name"]], monitor["metadata"]["name"]


@pytest.mark.parametrize("overlay_name", ["cluster", "ofunato", "kesen"])
def test_services_send_traces_to_the_collector(overlay_name):
    docs = observability()
    service = named(docs, "Service", "otel-collector")
    (port,) = service["spec"]["ports"]
    address = f"http://{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local:{port['port']}"
    for deployment in of_kind(load(overlay_name), "Deployment"):
        env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        values = {e["name"]: e.get("value") for e in env}
        names = [e["name"] for e in env]
        where = deployment["metadata"]["name"]
        assert values["OTEL_EXPORTER_OTLP_ENDPOINT"] == address, where
        assert values["MADOGUCHI_LOG_FORMAT"] == "json", where
        assert values["OTEL_TRACES_SAMPLER"].startswith("parentbased_"), where
        assert 0 < float(values["OTEL_TRACES_SAMPLER_ARG"]) <= 1, where
        assert "OTEL_SERVICE_NAME" in names, where
        # `$(VAR)` expands only variables defined earlier in the list.
        for variable in re.findall(r"\$\((\w+)\)", values["OTEL_RESOURCE_ATTRIBUTES"]):
            assert names.index(variable) < names.index("OTEL_RESOURCE_ATTRIBUTES"), f"{where}: {variable}"
        net = topology.network(load(overlay_name) + docs)
        assert net.allows(net.endpoints[where], net.endpoints["otel-collector"], Port("TCP", 4317, "otlp-grpc")), where


# --- the admin port ---------------------------------------------------------


def madoguchi_deployments(docs):
    return [d for d in of_kind(docs, "Deployment") if d["metadata"]["labels"].get("app.kubernetes.io/name") == "madoguchi"]


@pytest.mark.parametrize("overlay_name", OVERLAYS)
def test_every_pod_serves_the_admin_port(overlay_name):
    docs = load(overlay_name)
    for deployment in madoguchi_deployments(docs):
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        env = {e["name"]: e.get("value") for e in container["env"]}
        where = deployment["metadata"]["name"]
        assert ports["admin"] == 9464, where
        assert env["MADOGUCHI_ADMIN_LISTEN"] == "0.0.0.0:9464", where
    for service in of_kind(docs, "Service"):
        for port in service["spec"]["ports"]:
            assert port["targetPort"] != "admin" and port.get("port") != 9464, (
                f"Service {service['metadata']['name']} exposes the admin port"
            )


@pytest.mark.parametrize("overlay_name", OVERLAYS)
def test_only_the_monitoring_namespace_reaches_the_admin_port(overlay_name):
    net = topology.network(load(overlay_name))
    targets = [e for e in net.endpoints.values() if ADMIN in e.ports]
    assert targets, "no pod listens on the admin port"
    for target in targets:
        for source in net.endpoints.values():
            if source is target:
                continue
            allowed = net.allows(source, target, ADMIN)
            assert allowed == (source.namespace == "monitoring"), (
                f"{source.name} → {target.name}:9464 {'allowed' if allowed else 'denied'}"
            )


def test_the_documented_reachability_holds_with_the_collector_rendered():
    """The collector's own policy (k8s/observability) changes nothing the
    table of docs/deploy.md says."""
    docs = load("ofunato") + observability()
    _, _, cells = topology.reachability_table()
    problems = matrix_mismatches(topology.network(docs), cells, namespaces_defined(load("ofunato")))
    assert not problems, "\n".join(problems)
