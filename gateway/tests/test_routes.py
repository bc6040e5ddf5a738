"""The route table is consistent with the protos (no network)."""

from __future__ import annotations

from tradeplane.gateway.api import ROUTES, openapi_document
from tradeplane.gateway.upstreams import method


def test_every_route_names_a_real_rpc_and_its_fields() -> None:
    seen = set()
    for route in ROUTES:
        assert (route.http_method, route.path) not in seen, route.path
        seen.add((route.http_method, route.path))
        m = method(route.service, route.rpc)  # raises KeyError for an unknown RPC
        fields = m.request_cls.DESCRIPTOR.fields_by_name
        for part in route.path.split("/"):
            if part.startswith("{"):
                assert part[1:-1] in fields, f"{route.path}: {part} is not a field of {m.full_name}"
        for name in [*route.defaults, *route.defaults_unless]:
            assert name in fields, f"{route.path}: default {name} is not a field"


def test_openapi_lists_every_route_with_its_query_parameters() -> None:
    spec = openapi_document()
    for route in ROUTES:
        assert route.http_method.lower() in spec["paths"][route.path]
    candles = spec["paths"]["/api/market/products/{product_id}/candles"]["get"]
    names = {p["name"]: p for p in candles["parameters"]}
    assert names["product_id"]["in"] == "path"
    assert names["interval"]["schema"]["enum"][1] == "CANDLE_INTERVAL_ONE_MINUTE"
    assert names["start"]["schema"]["format"] == "date-time"
    assert names["indicators"]["schema"]["type"] == "array"
    orders = spec["paths"]["/api/live/orders"]["get"]
    assert {"time_range.start", "time_range.end", "statuses"} <= {
        p["name"] for p in orders["parameters"]
    }
