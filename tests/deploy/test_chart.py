"""The Helm chart (deploy/helm/tradeplane), checked without a cluster.

Lint and render with the Helm SDK for ci/default-values.yaml and ci/all-on-values.yaml, validate
every object against the Kubernetes 1.37 schemas, and check the properties the chart promises:
restricted Pod Security with a read-only root filesystem, native gRPC probes, resources, drain
time, PDB and NetworkPolicy coverage, secrets only by reference, the launcher's commands, and a
values schema that names the bad value.
"""

from __future__ import annotations

import json
import pathlib
import re
import shutil
from collections.abc import Callable
from typing import Any

import pytest
import yaml

helm = pytest.importorskip(
    "helm_python", reason="helm-python-sdk is not installed (requirements-dev.txt)"
)
kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate is not installed (requirements-dev.txt)"
)

RELEASE = "tp"  # the release and namespace conftest renders with
NAMESPACE = "trading"
KUBE_VERSION = "1.37"
# Rendered: conftest.Rendered (not importable by name under --import-mode=importlib).
Rendered = Any
GRPC_SERVICES = ("market", "execution", "wallets", "backtest")
# Components whose containers run the tradeplane image (Envoy, Postgres, Redis are upstream images).
TRADEPLANE_COMPONENTS = (*GRPC_SERVICES, "backtest-worker", "gateway")
# Volume types the restricted Pod Security profile allows.
ALLOWED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


# -- helpers ----------------------------------------------------------------------------------


def pod_template(obj: dict[str, Any]) -> dict[str, Any]:
    template: dict[str, Any] = obj["spec"]["template"]
    return template


def all_containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def component(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["labels"]["app.kubernetes.io/component"])


def full(name: str) -> str:
    return f"{RELEASE}-tradeplane-{name}"


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels + matchExpressions)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def port_allowed(rule: dict[str, Any], port: int) -> bool:
    ports = rule.get("ports")
    if not ports:
        return True
    return any(p.get("port") is None or p["port"] == port for p in ports)


# A pod for the NetworkPolicy checks: (its namespace's labels, its labels); None = outside the
# cluster (a browser, Coinbase, a managed database).
Pod = tuple[dict[str, str], dict[str, str]]
HOME_NS = {"kubernetes.io/metadata.name": NAMESPACE}
MONITORING_NS = {"kubernetes.io/metadata.name": "monitoring"}
STRANGER: Pod = (HOME_NS, {"app": "stranger"})
PROMETHEUS: Pod = (MONITORING_NS, {"app.kubernetes.io/name": "prometheus"})


def peer_matches(peers: list[dict[str, Any]] | None, other: Pod | None) -> bool:
    """Whether a from/to list admits `other`."""
    if not peers:
        return True
    for peer in peers:
        if "ipBlock" in peer:
            if other is None or peer["ipBlock"]["cidr"] == "0.0.0.0/0":
                return True
            continue
        if other is None:
            continue
        ns_labels, labels = other
        if "namespaceSelector" in peer:
            ns_ok = selects(peer["namespaceSelector"], ns_labels)
        else:
            ns_ok = ns_labels == HOME_NS
        if ns_ok and selects(peer.get("podSelector") or {}, labels):
            return True
    return False


def flow_allowed(
    policies: list[dict[str, Any]], src: Pod | None, dst: Pod | None, port: int
) -> bool:
    """Whether the release's NetworkPolicies let `src` connect to `dst`:`port` (both ends)."""

    def allowed(direction: str, pod: Pod, other: Pod | None) -> bool:
        if pod[0] != HOME_NS:
            return True  # the chart's policies only govern its own namespace
        policy_type = "Ingress" if direction == "ingress" else "Egress"
        peers_key = "from" if direction == "ingress" else "to"
        selecting = [
            p
            for p in policies
            if selects(p["spec"]["podSelector"], pod[1])
            and policy_type in p["spec"].get("policyTypes", ["Ingress"])
        ]
        if not selecting:
            return True  # not isolated in this direction
        return any(
            port_allowed(rule, port) and peer_matches(rule.get(peers_key), other)
            for p in selecting
            for rule in p["spec"].get(direction, [])
        )

    egress_ok = src is None or allowed("egress", src, dst)
    ingress_ok = dst is None or allowed("ingress", dst, src)
    return egress_ok and ingress_ok


def pod_of(rendered: Rendered, name: str) -> Pod:
    for obj in rendered.workloads():
        if obj["metadata"]["name"] == full(name):
            return (HOME_NS, pod_template(obj)["metadata"]["labels"])
    raise KeyError(name)


# -- lint, render, schemas --------------------------------------------------------------------


@pytest.mark.parametrize("values_file", ["default", "all-on"])
def test_chart_lints_clean_in_strict_mode(
    values_file: str, chart_dir: pathlib.Path, ci_values: Callable[[str], dict[str, Any]]
) -> None:
    report = helm.lint(
        chart_dir,
        ci_values(values_file),
        strict=True,
        namespace="trading",
        kube_version=f"v{KUBE_VERSION}.0",
    )
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], report


def test_every_rendered_object_is_valid_for_kubernetes(rendered: Rendered) -> None:
    checked = 0
    for obj in rendered.objects:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # CRDs: checked by test_prometheus_operator_objects
        # strict: unknown fields (typos) fail too.
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        checked += 1
    assert checked > 30


def test_all_on_values_render_every_optional_object(rendered_all_on: Rendered) -> None:
    kinds = {(o["kind"], o["metadata"]["name"]) for o in rendered_all_on.objects}
    for expected in [
        ("StatefulSet", full("postgres")),
        ("StatefulSet", full("redis")),
        ("Ingress", full("envoy")),
        ("ServiceMonitor", "tp-tradeplane"),
        ("NetworkPolicy", full("venue")),
        ("HorizontalPodAutoscaler", full("market")),
        ("HorizontalPodAutoscaler", full("backtest-worker")),
    ]:
        assert expected in kinds


def test_prometheus_operator_objects(rendered_all_on: Rendered) -> None:
    (monitor,) = rendered_all_on.of_kind("ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    ports = {e["port"] for e in monitor["spec"]["endpoints"]}
    assert ports == {"metrics", "ops"}
    # Every Service with a metrics port is selected by the monitor.
    metric_services = [
        s
        for s in rendered_all_on.of_kind("Service")
        if any(p["name"] == "metrics" for p in s["spec"]["ports"])
    ]
    assert len(metric_services) == 6
    for svc in metric_services:
        assert selects(monitor["spec"]["selector"], svc["metadata"]["labels"])


# -- pod security, resources, probes ------------------------------------------------------------


def test_every_pod_meets_the_restricted_profile_with_a_read_only_root(rendered: Rendered) -> None:
    workloads = rendered.workloads()
    assert workloads
    for obj in workloads:
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        spec = pod_template(obj)["spec"]
        pod_sc = spec["securityContext"]
        assert pod_sc["runAsNonRoot"] is True, where
        assert pod_sc["runAsUser"] > 0, where
        assert pod_sc["seccompProfile"]["type"] == "RuntimeDefault", where
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(key), where
        for volume in spec.get("volumes", []):
            kinds = set(volume) - {"name"}
            assert kinds <= ALLOWED_VOLUMES, (where, volume)
        for c in all_containers(spec):
            sc = c["securityContext"]
            cwhere = f"{where} container {c['name']}"
            assert sc["allowPrivilegeEscalation"] is False, cwhere
            assert sc["capabilities"]["drop"] == ["ALL"], cwhere
            assert not sc["capabilities"].get("add"), cwhere
            assert sc["readOnlyRootFilesystem"] is True, cwhere
            assert sc.get("runAsNonRoot", pod_sc["runAsNonRoot"]) is True, cwhere
            assert sc.get("runAsUser", pod_sc["runAsUser"]) != 0, cwhere
            assert not sc.get("privileged"), cwhere
            assert not c.get("ports") or all("hostPort" not in p for p in c["ports"]), cwhere
            # Somewhere writable for temporary files.
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            assert "/tmp" in mounts, cwhere
            volume = next(v for v in spec["volumes"] if v["name"] == mounts["/tmp"])
            assert "emptyDir" in volume, cwhere


def test_every_container_has_cpu_and_memory_requests_and_limits(rendered: Rendered) -> None:
    for obj in rendered.workloads():
        for c in all_containers(pod_template(obj)["spec"]):
            for section in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][section]), (
                    obj["metadata"]["name"],
                    c["name"],
                    section,
                )


def test_grpc_services_use_native_grpc_probes_on_their_grpc_port(rendered: Rendered) -> None:
    probed = set()
    for obj in rendered.of_kind("Deployment"):
        if component(obj) not in (*GRPC_SERVICES, "backtest-worker"):
            continue
        (c,) = pod_template(obj)["spec"]["containers"]
        grpc_port = next(p["containerPort"] for p in c["ports"] if p["name"] == "grpc")
        assert env_of(c)["GRPC_PORT"]["value"] == str(grpc_port)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert c[probe]["grpc"] == {"port": grpc_port}, (component(obj), probe)
        probed.add(component(obj))
    assert probed == {*GRPC_SERVICES, "backtest-worker"}


def test_gateway_and_envoy_have_http_readiness_probes(rendered: Rendered) -> None:
    gateway = rendered.get("Deployment", full("gateway"))
    (c,) = pod_template(gateway)["spec"]["containers"]
    assert c["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    envoy = rendered.get("Deployment", full("envoy"))
    (c,) = pod_template(envoy)["spec"]["containers"]
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "ops"}


def test_termination_grace_outlasts_the_drain(rendered: Rendered) -> None:
    checked = 0
    for obj in rendered.of_kind("Deployment"):
        spec = pod_template(obj)["spec"]
        grace = spec["terminationGracePeriodSeconds"]
        for c in spec["containers"]:
            drain = float(rendered.values.get("shutdown", {}).get("graceSeconds", 10))
            env = env_of(c)
            if "SHUTDOWN_GRACE_SECONDS" in env:
                drain = float(env["SHUTDOWN_GRACE_SECONDS"]["value"])
            pre_stop = c["lifecycle"]["preStop"]["sleep"]["seconds"]
            assert grace > pre_stop + drain, (obj["metadata"]["name"], grace, pre_stop, drain)
            checked += 1
    assert checked >= 7


# -- the same commands as the launcher ---------------------------------------------------------


def test_container_commands_and_ports_are_the_launchers(rendered_default: Rendered) -> None:
    registry = pytest.importorskip("tradeplane.platform.registry")
    rendered = rendered_default
    for spec in registry.SERVICES:
        deployment = rendered.get("Deployment", full(spec.name))
        (c,) = pod_template(deployment)["spec"]["containers"]
        assert c["command"] == ["python", "-m", spec.module], spec.name
        env = env_of(c)
        port_env = "GRPC_PORT" if spec.kind == "grpc" else "HTTP_PORT"
        assert env[port_env]["value"] == str(spec.port), spec.name
        assert env["METRICS_PORT"]["value"] == str(spec.metrics_port), spec.name
        # Every service learns every other gRPC service's address, as under `make up`.
        for other in registry.SERVICES:
            if other.kind == "grpc":
                assert env[other.addr_env]["value"] == f"{full(other.name)}:{other.port}"


def test_backtest_workers_and_migrations_run_the_service_module(
    rendered_default: Rendered, rendered_all_on: Rendered
) -> None:
    worker = rendered_default.get("Deployment", full("backtest-worker"))
    (c,) = pod_template(worker)["spec"]["containers"]
    assert c["command"] == ["python", "-m", "tradeplane.backtest", "worker"]

    jobs = {j["metadata"]["name"]: j for j in rendered_default.of_kind("Job")}
    assert set(jobs) == {full(f"migrate-{s}") for s in GRPC_SERVICES}
    for service in GRPC_SERVICES:
        job = jobs[full(f"migrate-{service}")]
        hooks = job["metadata"]["annotations"]["helm.sh/hook"].split(",")
        assert sorted(hooks) == ["pre-install", "pre-upgrade"]
        (c,) = pod_template(job)["spec"]["containers"]
        assert c["command"] == ["python", "-m", f"tradeplane.{service}", "migrate"]
        assert env_of(c)["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == (
            "tradeplane-database"
        )

    # With the bundled PostgreSQL (not there yet when pre-install hooks run): init containers.
    assert rendered_all_on.of_kind("Job") == []
    for service in GRPC_SERVICES:
        deployment = rendered_all_on.get("Deployment", full(service))
        (init,) = pod_template(deployment)["spec"]["initContainers"]
        assert init["command"] == ["python", "-m", f"tradeplane.{service}", "migrate"]


def test_images_follow_values_and_migrations_use_their_services_image(
    rendered_default: Rendered, rendered_all_on: Rendered
) -> None:
    def images(rendered: Rendered, name: str) -> list[str]:
        spec = pod_template(rendered.get("Deployment", full(name)))["spec"]
        return [c["image"] for c in all_containers(spec)]

    assert images(rendered_default, "market") == ["ghcr.io/tradeplane/tradeplane:0.1.0"]
    for job in rendered_default.of_kind("Job"):
        (c,) = pod_template(job)["spec"]["containers"]
        assert c["image"] == "ghcr.io/tradeplane/tradeplane:0.1.0"
    digest = rendered_all_on.values["image"]["digest"]
    repository = rendered_all_on.values["image"]["repository"]
    # The global digest pins every component; a component's own tag wins over it, and its
    # migration init container runs the same image as the service.
    assert images(rendered_all_on, "market") == [f"{repository}@{digest}"] * 2
    assert images(rendered_all_on, "execution") == [f"{repository}:0.1.0-hotfix1"] * 2


# -- secrets -------------------------------------------------------------------------------------

SECRET_ENV = re.compile(r"(SECRET|PASSWORD|TOKEN|_URL$|API_KEY)")


def test_credentials_reach_containers_only_through_secret_refs(rendered: Rendered) -> None:
    for obj in rendered.workloads():
        for c in all_containers(pod_template(obj)["spec"]):
            for name, entry in env_of(c).items():
                if SECRET_ENV.search(name):
                    assert "secretKeyRef" in entry.get("valueFrom", {}), (
                        obj["metadata"]["name"],
                        name,
                    )


SERVICE_TOKENS = (
    "EXECUTION_MARKET_TOKEN",
    "WALLETS_EXECUTION_TOKEN",
    "BACKTEST_MARKET_TOKEN",
    "GATEWAY_SERVICE_TOKEN",
)


def test_with_jwt_every_service_gets_the_service_token_from_its_secret(
    rendered_all_on: Rendered,
) -> None:
    """Background streams (no caller to forward a token from) authenticate with it."""
    checked = 0
    for obj in rendered_all_on.workloads():
        for c in pod_template(obj)["spec"]["containers"]:
            env = env_of(c)
            if "AUTH_MODE" not in env:
                continue  # not ours (Envoy, the bundled PostgreSQL/Redis)
            checked += 1
            for name in SERVICE_TOKENS:
                ref = env[name]["valueFrom"]["secretKeyRef"]
                assert ref == {"name": "tradeplane-service-token", "key": "token"}, (
                    obj["metadata"]["name"],
                    name,
                )
    assert checked >= 5  # market, execution, wallets, backtest (API + workers), gateway


def test_no_secret_value_appears_outside_secrets(rendered_all_on: Rendered) -> None:
    secret_values = [
        v
        for s in rendered_all_on.of_kind("Secret")
        for v in (s.get("stringData") or {}).values()
        if len(v) >= 16
    ]
    assert len(secret_values) >= 6  # generated passwords and the URLs that carry them
    for obj in rendered_all_on.objects:
        if obj["kind"] == "Secret":
            continue
        text = json.dumps(obj)
        for value in secret_values:
            assert value not in text, f"{obj['kind']}/{obj['metadata']['name']} leaks a secret"


@pytest.mark.parametrize(
    "values",
    [
        {"database": {"url": "postgresql://u:hunter2@db/market"}},
        {"auth": {"jwt": {"secret": "hunter2"}}},
        {"coinbase": {"apiSecret": "hunter2"}},
    ],
    ids=["database-url", "jwt-secret", "coinbase-secret"],
)
def test_values_have_no_place_for_a_secret(
    values: dict[str, Any],
    render: Callable[..., Rendered],
    ci_values: Callable[[str], dict[str, Any]],
) -> None:
    merged = _merge(ci_values("default"), values)
    with pytest.raises(helm.HelmValuesError, match="additional propert"):
        render(merged)


# -- PDBs, NetworkPolicies, HPAs -----------------------------------------------------------------


def test_every_deployment_has_a_pdb(rendered: Rendered) -> None:
    pdbs = rendered.of_kind("PodDisruptionBudget")
    for deployment in rendered.of_kind("Deployment"):
        labels = pod_template(deployment)["metadata"]["labels"]
        matching = [p for p in pdbs if selects(p["spec"]["selector"], labels)]
        assert len(matching) == 1, deployment["metadata"]["name"]


def test_every_pod_is_isolated_by_default_deny(rendered: Rendered) -> None:
    policies = rendered.of_kind("NetworkPolicy")
    deny = rendered.get("NetworkPolicy", full("default-deny"))
    assert set(deny["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny["spec"]
    assert all(set(r) == {"ports"} for r in deny["spec"]["egress"])  # DNS only
    metrics_open = peer_matches(
        rendered.values.get("networkPolicy", {}).get("metricsFrom", [{"namespaceSelector": {}}]),
        STRANGER,
    )
    for obj in rendered.workloads():
        labels = pod_template(obj)["metadata"]["labels"]
        assert selects(deny["spec"]["podSelector"], labels), obj["metadata"]["name"]
        pod: Pod = (HOME_NS, labels)
        # A stranger pod reaches Envoy's listener and, when metricsFrom admits everyone, the
        # metrics ports; nothing else. Nothing leaves a pod for an arbitrary port.
        assert not flow_allowed(policies, pod, None, 8443), obj["metadata"]["name"]
        for c in all_containers(pod_template(obj)["spec"]):
            for port in c.get("ports", []):
                reachable = flow_allowed(policies, STRANGER, pod, port["containerPort"])
                public = (component(obj) == "envoy" and port["name"] == "http") or (
                    metrics_open and port["name"] in ("metrics", "ops")
                )
                assert reachable == public, (obj["metadata"]["name"], port)


def test_network_policies_allow_the_platforms_flows(rendered: Rendered) -> None:
    policies = rendered.of_kind("NetworkPolicy")
    pods = {name: pod_of(rendered, name) for name in (*TRADEPLANE_COMPONENTS, "envoy")}
    ports = {"market": 50051, "execution": 50052, "wallets": 50053, "backtest": 50054}

    assert flow_allowed(policies, None, pods["envoy"], 8080)  # the entry point
    assert flow_allowed(policies, pods["envoy"], pods["gateway"], 8080)
    assert not flow_allowed(policies, pods["gateway"], pods["envoy"], 8080)
    assert not flow_allowed(policies, None, pods["gateway"], 8080)  # only through Envoy
    for service, port in ports.items():
        assert flow_allowed(policies, pods["envoy"], pods[service], port), service
        assert flow_allowed(policies, pods["gateway"], pods[service], port), service
        assert not flow_allowed(policies, STRANGER, pods[service], port), service
        for caller in GRPC_SERVICES:
            assert flow_allowed(policies, pods[caller], pods[service], port), (caller, service)
    assert flow_allowed(policies, pods["backtest-worker"], pods["market"], 50051)
    # Prometheus (its own namespace) scrapes every metrics port.
    for name, metrics_port in [
        ("market", 9101),
        ("execution", 9102),
        ("wallets", 9103),
        ("backtest", 9104),
        ("backtest-worker", 9104),
        ("gateway", 9105),
        ("envoy", 9902),
    ]:
        assert flow_allowed(policies, PROMETHEUS, pods[name], metrics_port), name
    # The gateway and Envoy have no database access.
    for name in ("gateway", "envoy"):
        assert not flow_allowed(policies, pods[name], None, 5432), name

    bundled = rendered.values.get("postgres", {}).get("bundled", {}).get("enabled", False)
    database = pod_of(rendered, "postgres") if bundled else None
    for name in (*GRPC_SERVICES, "backtest-worker"):
        assert flow_allowed(policies, pods[name], database, 5432), name
    for job in rendered.of_kind("Job"):
        job_pod: Pod = (HOME_NS, pod_template(job)["metadata"]["labels"])
        assert flow_allowed(policies, job_pod, database, 5432), job["metadata"]["name"]
    if bundled:
        assert not flow_allowed(policies, pods["gateway"], database, 5432)
        assert not flow_allowed(policies, STRANGER, database, 5432)
        redis = pod_of(rendered, "redis")
        assert flow_allowed(policies, pods["market"], redis, 6379)
    coinbase = rendered.values.get("coinbase", {}).get("enabled", False)
    # Coinbase (443, outside) only from the services that trade, read balances or the feed.
    for name in ("market", "execution", "wallets"):
        assert flow_allowed(policies, pods[name], None, 443) == coinbase, name
    for name in ("gateway", "backtest", "backtest-worker", "envoy"):
        assert not flow_allowed(policies, pods[name], None, 443), name


def test_hpas_scale_market_and_backtest_workers(rendered: Rendered) -> None:
    targets = {
        h["spec"]["scaleTargetRef"]["name"] for h in rendered.of_kind("HorizontalPodAutoscaler")
    }
    assert targets == {full("market"), full("backtest-worker")}
    for name in targets:
        # A Deployment with an HPA leaves replicas to it (else each upgrade resets the count).
        assert "replicas" not in rendered.get("Deployment", name)["spec"]


# -- values schema -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"services": {"market": {"replicas": "two"}}}, "/services/market/replicas"),
        ({"auth": {"jwt": {"existingSecret": ""}}}, "/auth/jwt/existingSecret"),
        ({"auth": {"serviceToken": {"existingSecret": ""}}}, "/auth/serviceToken/existingSecret"),
        ({"database": {"existingSecret": ""}}, "/database/existingSecret"),
        ({"coinbase": {"enabled": True}}, "/coinbase/existingSecret"),
        ({"auth": {"mode": "open"}}, "/auth/mode"),
        ({"postgres": {"bundled": {"enabled": True}}}, "/migrations/mode"),
        ({"gateway": {"replicas": 0}}, "/gateway/replicas"),
        ({"envoy": {"service": {"type": "External"}}}, "/envoy/service/type"),
    ],
    ids=lambda v: json.dumps(v) if isinstance(v, dict) else v,
)
def test_schema_rejects_a_bad_value_and_names_it(
    override: dict[str, Any],
    named: str,
    render: Callable[..., Rendered],
    ci_values: Callable[[str], dict[str, Any]],
) -> None:
    values = _merge(ci_values("default"), override)
    with pytest.raises(helm.HelmValuesError) as caught:
        render(values)
    assert named in str(caught.value)


def test_schema_describes_every_value(
    chart: Any, ci_values: Callable[[str], dict[str, Any]]
) -> None:
    schema = chart.schema
    assert schema is not None

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            node = schema["definitions"][node["$ref"].rsplit("/", 1)[1]]
        return node

    def walk(values: Any, node: dict[str, Any], path: str) -> None:
        node = resolve(node)
        if isinstance(values, dict) and "properties" in node:
            for key, value in values.items():
                assert key in node["properties"], f"{path}/{key} is not in values.schema.json"
                walk(value, node["properties"][key], f"{path}/{key}")
        else:
            assert node, f"{path} has an empty schema"

    walk(chart.values, schema, "")
    for name in ("default", "all-on"):
        walk(ci_values(name), schema, f"ci/{name}")


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


# -- dashboards and rules shipped as files inside the chart ---------------------------------------


def test_dashboards_and_rules_in_the_chart_are_shipped(
    tmp_path: pathlib.Path,
    chart_dir: pathlib.Path,
    render: Callable[..., Rendered],
    ci_values: Callable[[str], dict[str, Any]],
) -> None:
    chart_copy = tmp_path / "tradeplane"
    shutil.copytree(chart_dir, chart_copy, symlinks=False)
    dashboards = chart_copy / "files" / "dashboards"
    rules = chart_copy / "files" / "rules"
    for stale in [*dashboards.glob("*.json"), *rules.glob("*.yaml")]:
        stale.unlink()
    board = {"title": "Platform overview", "uid": "tp-overview", "panels": []}
    (dashboards / "platform_overview.json").write_text(json.dumps(board))
    rule_file = {
        "groups": [
            {
                "name": "tradeplane.availability",
                "rules": [{"alert": "ServiceDown", "expr": "up == 0", "for": "2m"}],
            }
        ]
    }
    (rules / "availability.yaml").write_text(yaml.safe_dump(rule_file))
    latency = {"groups": [{"name": "tradeplane.latency", "rules": []}]}
    (rules / "latency.yml").write_text(yaml.safe_dump(latency))
    # A promtool unit-test file beside the rules is not a rule file.
    unit_tests = {"rule_files": ["availability.yaml"], "tests": []}
    (rules / "availability_test.yml").write_text(yaml.safe_dump(unit_tests))

    result = render(ci_values("all-on"), chart_dir=chart_copy)
    board_map = result.get("ConfigMap", "tp-tradeplane-dashboard-platform-overview")
    assert board_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(board_map["data"]["platform_overview.json"]) == board
    (rule,) = result.of_kind("PrometheusRule")
    assert rule["spec"]["groups"] == rule_file["groups"] + latency["groups"]


def test_the_repositorys_rules_and_dashboards_render_through_the_chart(
    tmp_path: pathlib.Path,
    chart_dir: pathlib.Path,
    render: Callable[..., Rendered],
    ci_values: Callable[[str], dict[str, Any]],
) -> None:
    """deploy/prometheus/rules and deploy/grafana/dashboards (the observability work), shipped
    through files/ as docs/deploy.md describes, become a valid PrometheusRule and ConfigMaps."""
    deploy = chart_dir.parents[1]
    rule_files = sorted((deploy / "prometheus" / "rules").glob("*.y*ml"))
    boards = sorted((deploy / "grafana" / "dashboards").glob("*.json"))
    if not rule_files and not boards:
        pytest.skip("no rule files or dashboards in deploy/ yet")
    chart_copy = tmp_path / "tradeplane"
    shutil.copytree(chart_dir, chart_copy, symlinks=False)
    for source in rule_files:
        shutil.copy(source, chart_copy / "files" / "rules" / source.name)
    for source in boards:
        shutil.copy(source, chart_copy / "files" / "dashboards" / source.name)

    result = render(ci_values("all-on"), chart_dir=chart_copy)
    expected_groups = [g for f in rule_files for g in yaml.safe_load(f.read_text())["groups"]]
    if rule_files:
        (rule,) = result.of_kind("PrometheusRule")
        assert rule["spec"]["groups"] == expected_groups
    maps = [
        m for m in result.of_kind("ConfigMap") if "grafana_dashboard" in m["metadata"]["labels"]
    ]
    assert sorted(k for m in maps for k in m["data"]) == sorted(b.name for b in boards)
    for board_map in maps:
        kubernetes_validate.validate(board_map, KUBE_VERSION, strict=True)
        assert len(json.dumps(board_map)) < 1024 * 1024, "a ConfigMap holds at most 1 MiB"
        for name, text in board_map["data"].items():
            assert json.loads(text) == json.loads(
                (deploy / "grafana" / "dashboards" / name).read_text()
            )


# -- NOTES ---------------------------------------------------------------------------------------


def test_notes_tell_how_to_reach_the_ui_and_grpcurl_the_services(rendered: Rendered) -> None:
    notes = rendered.notes
    assert "grpcurl" in notes and "tradeplane-service: market" in notes
    assert "trading.market.v1.MarketService/" in notes
    if rendered.name == "all-on":
        assert "https://trade.example.com/" in notes
    else:
        assert f"port-forward svc/{full('envoy')}" in notes
