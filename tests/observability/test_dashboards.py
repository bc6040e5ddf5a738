"""Grafana dashboards: their structure, and every panel's PromQL run against a real Prometheus
that scraped a real market service (started by `make observe`'s code)."""

from __future__ import annotations

import importlib.util
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from observability_support import (
    GRAFANA_DIR,
    MarketProcess,
    Observe,
    all_rules,
    dashboards,
    expand,
    panel_queries,
    panels,
)

from trading.market.v1 import market_pb2, market_pb2_grpc

DASHBOARDS = dashboards()
DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}
# Dashboards whose metrics the market service (and the shared runtime) export today: every one
# of their panels must return data. The others are checked for valid PromQL only until their
# services exist (their metric names are the contract in docs/observability.md).
LIVE_DASHBOARDS = ("platform-overview.json", "market-data.json")
EXPECTED = {
    "platform-overview.json",
    "market-data.json",
    "trading.json",
    "wallets.json",
    "backtests.json",
    "gateway.json",
}


def test_every_dashboard_the_issue_names_exists() -> None:
    assert set(DASHBOARDS) == EXPECTED


def test_dashboard_uids_and_titles_are_unique() -> None:
    uids = [d["uid"] for d in DASHBOARDS.values()]
    titles = [d["title"] for d in DASHBOARDS.values()]
    assert len(set(uids)) == len(uids)
    assert len(set(titles)) == len(titles)


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_structure(name: str) -> None:
    d = DASHBOARDS[name]
    assert d["schemaVersion"] >= 39
    variables = {v["name"]: v for v in d["templating"]["list"]}
    ds = variables.get("datasource")
    assert ds is not None, "no `datasource` variable"
    assert (ds["type"], ds["query"]) == ("datasource", "prometheus")
    for v in variables.values():
        if v["type"] == "query":
            assert v["datasource"] == DATASOURCE_REF, f"variable {v['name']}"
    ids = [p["id"] for p in panels(d)]
    assert len(set(ids)) == len(ids), f"duplicate panel ids: {sorted(ids)}"
    for panel in panels(d):
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE_REF, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        for t in panel["targets"]:
            assert t["datasource"] == DATASOURCE_REF, panel["title"]
            assert t["expr"].strip(), panel["title"]


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_no_hard_coded_datasource_uid(name: str) -> None:
    """The only uids in a dashboard are its own and the `${datasource}` variable."""

    def uids(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [str(node["uid"])] if "uid" in node else []
            return found + [u for value in node.values() for u in uids(value)]
        if isinstance(node, list):
            return [u for item in node for u in uids(item)]
        return []

    d = DASHBOARDS[name]
    assert set(uids(d)) - {d["uid"]} <= {"${datasource}"}


def test_committed_dashboards_are_what_the_generator_writes() -> None:
    spec = importlib.util.spec_from_file_location("generate", GRAFANA_DIR / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rendered: dict[str, str] = module.render()
    assert set(rendered) == set(DASHBOARDS)
    for file_name, text in rendered.items():
        on_disk = (GRAFANA_DIR / "dashboards" / file_name).read_text()
        assert on_disk == text, f"{file_name} is stale: run `python deploy/grafana/generate.py`"


# --- live: a real market service scraped by a real Prometheus --------------------------------


def _candles(product_id: str) -> market_pb2.GetCandlesRequest:
    # Closed candles only (the range ends 10 minutes ago), so indicators go through the cache.
    end = int(time.time()) // 60 * 60 - 600
    return market_pb2.GetCandlesRequest(
        product_id=product_id,
        interval=market_pb2.CANDLE_INTERVAL_ONE_MINUTE,
        start=Timestamp(seconds=end - 3600),
        end=Timestamp(seconds=end),
        indicators=[market_pb2.IndicatorSpec(name="sma", params={"period": 10})],
    )


def _traffic(address: str) -> None:
    """Successful unary calls (indicator cache miss then hits), a failing call (NotFound) and
    a short stream."""
    with grpc.insecure_channel(address) as channel:
        stub = market_pb2_grpc.MarketServiceStub(channel)
        assert stub.ListProducts(market_pb2.ListProductsRequest(), timeout=10).products
        for _ in range(3):
            assert stub.GetCandles(_candles("BTC-USD"), timeout=10).candles
        with pytest.raises(grpc.RpcError) as failure:
            stub.GetCandles(_candles("NOPE-USD"), timeout=10)
        assert failure.value.code() is grpc.StatusCode.NOT_FOUND
        ticks = stub.StreamTicks(market_pb2.StreamTicksRequest(product_ids=["BTC-USD"]))
        assert next(ticks).ticks
        ticks.cancel()


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.25)


@pytest.fixture(scope="module")
def scraped(market: MarketProcess, observe: Observe) -> Iterator[Observe]:
    """Two rounds of traffic, each seen by Prometheus, so every counter has moved between two
    scrapes (rate() > 0) and every series the dashboards use exists; plus one StreamTicks
    call left open for the in-flight and subscriber panels."""
    api = observe.api
    _wait_for(lambda: bool(api.result('up{job="market"} == 1')), "Prometheus to scrape the market")
    with grpc.insecure_channel(market.grpc_address) as channel:
        stub = market_pb2_grpc.MarketServiceStub(channel)
        open_stream = stub.StreamTicks(market_pb2.StreamTicksRequest(product_ids=["ETH-USD"]))
        assert next(open_stream).ticks
        for round_ in (1, 2):
            _traffic(market.grpc_address)
            expr = (
                f'sum(grpc_server_handled_total{{job="market", grpc_code="NotFound"}}) >= {round_}'
            )
            _wait_for(lambda expr=expr: bool(api.result(expr)), f"round {round_} to be scraped")
        time.sleep(2.5)  # a couple more scrapes after the last increment
        yield observe
        open_stream.cancel()


@pytest.mark.parametrize("name", LIVE_DASHBOARDS)
def test_every_panel_query_returns_data(scraped: Observe, name: str) -> None:
    problems = []
    for where, expr in panel_queries(DASHBOARDS[name]):
        reply = scraped.api.query(expand(expr))
        if reply["status"] != "success":
            problems.append(f"{where}: {reply.get('error')}\n  {expr}")
        elif not reply["data"]["result"]:
            problems.append(f"{where}: no data\n  {expr}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", sorted(set(DASHBOARDS) - set(LIVE_DASHBOARDS)))
def test_every_panel_query_is_valid_promql(scraped: Observe, name: str) -> None:
    problems = []
    for where, expr in panel_queries(DASHBOARDS[name]):
        reply = scraped.api.query(expand(expr))
        if reply["status"] != "success":
            problems.append(f"{where}: {reply.get('error')}\n  {expr}")
    assert not problems, "\n".join(problems)


def _values(api: Any, expr: str) -> dict[str, float]:
    return {
        ",".join(f"{k}={v}" for k, v in sorted(s["metric"].items())): float(s["value"][1])
        for s in api.result(expand(expr))
    }


def _query(name: str, title: str) -> str:
    exprs = [e for where, e in panel_queries(DASHBOARDS[name]) if where.startswith(f"{title} /")]
    assert exprs, f"no panel {title!r} in {name}"
    return exprs[0]


def test_core_overview_panels_show_the_traffic_made(scraped: Observe) -> None:
    api = scraped.api
    by_method = _values(api, _query("platform-overview.json", "Request rate by method"))
    for method in ("ListProducts", "GetCandles"):
        (rate,) = [v for k, v in by_method.items() if f"grpc_method={method}" in k]
        assert rate > 0, by_method
    codes = _values(api, _query("platform-overview.json", "Responses by code"))
    assert {"grpc_code=OK", "grpc_code=NotFound", "grpc_code=Canceled"} <= set(codes), codes
    p99 = _values(api, _query("platform-overview.json", "p99 by method"))
    assert any("grpc_method=GetCandles" in k and math.isfinite(v) and v > 0 for k, v in p99.items())
    errors = _values(api, _query("platform-overview.json", "Server error ratio by service"))
    assert errors == {"job=market": 0.0}, "NotFound is the caller's error, not the server's"
    non_ok = _values(api, _query("platform-overview.json", "Non-OK ratio by method"))
    assert any("GetCandles" in k and v > 0 for k, v in non_ok.items()), non_ok
    in_flight = _values(api, _query("platform-overview.json", "In-flight calls and open streams"))
    assert in_flight["grpc_method=StreamTicks,job=market"] == 1, in_flight


def test_core_market_panels_show_the_feed_and_the_cache(scraped: Observe) -> None:
    api = scraped.api
    ticks = _values(api, _query("market-data.json", "Ticks/s by product"))
    assert ticks and all(v > 0 for v in ticks.values()), ticks
    assert _values(api, _query("market-data.json", "Feed status")) == {"": 1.0}
    subscribers = _values(api, _query("market-data.json", "Stream subscribers"))
    assert subscribers == {"": 1.0}, "the one open StreamTicks call"
    cache = _values(api, _query("market-data.json", "Indicator cache requests"))
    assert {"result=hit", "result=miss"} <= set(cache), cache


def test_every_rule_expression_is_valid_and_evaluates(scraped: Observe) -> None:
    problems = []
    for rule in all_rules():
        reply = scraped.api.query(rule.body["expr"])
        if reply["status"] != "success":
            problems.append(f"{rule.file} {rule.name}: {reply.get('error')}")
    groups = scraped.api.get("/api/v1/rules")["data"]["groups"]
    loaded = {r["name"]: r for g in groups for r in g["rules"]}
    assert set(loaded) == {r.name for r in all_rules()}, "Prometheus did not load every rule"
    problems += [f"{n}: {r.get('lastError')}" for n, r in loaded.items() if r["health"] == "err"]
    assert not problems, "\n".join(problems)


def test_no_alert_is_pending_or_firing_on_a_healthy_market(scraped: Observe) -> None:
    """The rules are evaluated every second here: a healthy market trips none of them, not
    even into `pending` (so MarketFeedStale, ServiceDown etc. see the live series as fine)."""
    alerts = scraped.api.get("/api/v1/alerts")["data"]["alerts"]
    assert [(a["labels"]["alertname"], a["state"]) for a in alerts] == []
