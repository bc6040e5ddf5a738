"""Envoy's configuration (deploy/envoy/envoy.yaml, rendered by the chart), checked without Envoy.

No Envoy binary exists here, so the rendered config is loaded into Envoy's own v3 API types
(PyPI envoy-data-plane: unknown fields, bad enums and bad durations fail as they would in Envoy)
and its routing is checked against the chart's Services and the protos' packages.
"""

from __future__ import annotations

import importlib
import pathlib
import re
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
ENVOY_SOURCE = REPO / "deploy" / "envoy" / "envoy.yaml"
CHART_COPY = REPO / "deploy" / "helm" / "tradeplane" / "files" / "envoy.yaml"
GRPC_CLUSTERS = {"market": 50051, "execution": 50052, "wallets": 50053, "backtest": 50054}
Rendered = Any  # conftest.Rendered


def envoy_config(rendered: Rendered) -> dict[str, Any]:
    configmap = rendered.get("ConfigMap", "tp-tradeplane-envoy")
    config: dict[str, Any] = yaml.safe_load(configmap["data"]["envoy.yaml"])
    return config


def type_urls(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "@type":
                yield value
            else:
                yield from type_urls(value)
    elif isinstance(node, list):
        for item in node:
            yield from type_urls(item)


def http_managers(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        listener["name"]: listener["filter_chains"][0]["filters"][0]["typed_config"]
        for listener in config["static_resources"]["listeners"]
    }


def routes(config: dict[str, Any], listener: str = "ingress") -> list[dict[str, Any]]:
    hcm = http_managers(config)[listener]
    return [r for vh in hcm["route_config"]["virtual_hosts"] for r in vh["routes"]]


def clusters(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in config["static_resources"]["clusters"]}


def test_source_is_yaml_and_is_what_the_chart_ships() -> None:
    source = ENVOY_SOURCE.read_text()
    # Helm template actions sit inside quoted scalars, so the source itself stays YAML.
    parsed = yaml.safe_load(source)
    assert set(parsed) == {"admin", "static_resources"}
    assert CHART_COPY.resolve() == ENVOY_SOURCE.resolve() or CHART_COPY.read_text() == source


# envoy-data-plane's own classes trip pydantic's deprecation warnings on import.
@pytest.mark.filterwarnings("ignore::pydantic.PydanticDeprecatedSince212")
def test_rendered_config_loads_into_envoys_api_types(rendered: Rendered) -> None:
    pytest.importorskip(
        "envoy_data_plane", reason="envoy-data-plane is not installed (requirements-dev.txt)"
    )
    from envoy_data_plane.envoy.config.bootstrap.v3 import Bootstrap

    config = envoy_config(rendered)
    # Importing a type's module registers it for the `@type` of typed_config.
    for url in set(type_urls(config)):
        importlib.import_module("envoy_data_plane." + url.split("/", 1)[1].rsplit(".", 1)[0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecationWarning)
        bootstrap = Bootstrap.from_dict(config)  # raises on unknown fields, enums, durations
    deprecated = [str(w.message) for w in caught if "is deprecated" in str(w.message)]
    assert deprecated == [], "deprecated Envoy fields in use"

    ingress = bootstrap.static_resources.listeners[0].filter_chains[0].filters[0]
    manager = ingress.typed_config.unpack()
    assert type(manager).__name__ == "HttpConnectionManager"
    assert [u.upgrade_type for u in manager.upgrade_configs] == ["websocket"]
    idle = rendered.values.get("envoy", {}).get("streamIdleTimeout", "3600s")
    assert manager.stream_idle_timeout.total_seconds() == float(idle.rstrip("s"))


def test_every_route_targets_a_defined_cluster(rendered: Rendered) -> None:
    config = envoy_config(rendered)
    defined = set(clusters(config))
    used = set()
    for listener in http_managers(config):
        for route in routes(config, listener):
            if "direct_response" in route:
                continue
            assert route["route"]["cluster"] in defined, route
            used.add(route["route"]["cluster"])
    assert used == defined


def test_clusters_point_at_the_charts_services(rendered: Rendered) -> None:
    services = {s["metadata"]["name"]: s for s in rendered.of_kind("Service")}
    for name, cluster in clusters(config := envoy_config(rendered)).items():
        (endpoint,) = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
        address = endpoint["endpoint"]["address"]["socket_address"]
        if name == "envoy_admin":
            assert address["address"] == "127.0.0.1"
            assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
            continue
        service = services[address["address"]]
        # Headless, so Envoy balances calls over every pod.
        assert service["spec"]["clusterIP"] == "None", name
        assert address["port_value"] in {p["port"] for p in service["spec"]["ports"]}, name
        assert service["spec"]["selector"]["app.kubernetes.io/component"] == name
        http2 = "typed_extension_protocol_options" in cluster
        assert http2 == (name in GRPC_CLUSTERS), f"{name}: gRPC upstreams (only) speak HTTP/2"
        if name in GRPC_CLUSTERS:
            assert address["port_value"] == GRPC_CLUSTERS[name]
            assert cluster["health_checks"][0]["grpc_health_check"] == {}


def test_every_grpc_service_in_the_protos_is_routed_to_its_service() -> None:
    config = yaml.safe_load(ENVOY_SOURCE.read_text())
    prefixes = {
        r["match"]["prefix"]: r["route"]["cluster"]
        for r in routes(config)
        if r["match"].get("prefix", "").startswith("/trading.")
    }
    found = 0
    for proto in (REPO / "protos").rglob("*.proto"):
        text = proto.read_text()
        package = re.search(r"^package\s+([\w.]+);", text, re.M)
        if package is None or not re.search(r"^service\s+\w+", text, re.M):
            continue
        name = package.group(1)  # trading.market.v1
        service = name.split(".")[1]
        assert prefixes.get(f"/{name}.") == service, f"{proto}: no route for /{name}.*"
        found += 1
    assert found >= 4


def test_browser_paths_go_to_the_gateway() -> None:
    config = yaml.safe_load(ENVOY_SOURCE.read_text())
    by_path = {
        r["match"].get("path_separated_prefix") or r["match"].get("prefix"): r.get("route")
        for r in routes(config)
    }
    # gRPC health/reflection without the service header is answered by Envoy, not the gateway.
    assert by_path["/grpc."] is None
    order = [
        r["match"].get("prefix") or r["match"].get("safe_regex", {}).get("regex")
        for r in routes(config)
    ]
    header_routes = [i for i, r in enumerate(routes(config)) if "headers" in r["match"]]
    assert len(header_routes) == 4 and max(header_routes) < order.index("/grpc.")
    for path in ("/ws", "/api", "/"):
        assert by_path[path]["cluster"] == "gateway", path
    assert by_path["/ws"]["timeout"] == "0s"
    assert by_path["/ws"]["upgrade_configs"] == [{"upgrade_type": "websocket"}]
    # The catch-all comes last, after every gRPC and /ws, /api route.
    assert routes(config)[-1]["match"] == {"prefix": "/"}
