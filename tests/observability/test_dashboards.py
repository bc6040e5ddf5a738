"""Grafana dashboards: their structure, and every panel's PromQL (and every rule's) run against a
real Prometheus (started by `make observe`'s code) that scraped the whole platform (`make up`)
while the test drove traffic through every domain."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import re
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from observability_support import (
    GRAFANA_DIR,
    BackgroundLoop,
    Observe,
    PlatformProcess,
    all_rules,
    contract_metrics,
    dashboards,
    expand,
    panel_queries,
    panels,
)

from tradeplane.gateway.testing import Client
from trading.backtest.v1 import backtest_pb2, backtest_pb2_grpc
from trading.common.v1 import common_pb2
from trading.execution.v1 import execution_pb2, execution_pb2_grpc
from trading.market.v1 import market_pb2, market_pb2_grpc
from trading.wallets.v1 import wallets_pb2, wallets_pb2_grpc

DASHBOARDS = dashboards()
DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}
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


# --- live: the whole platform (`make up`) scraped by a real Prometheus -----------------------

PRODUCT = "BTC-USD"
ACCOUNT = ""  # the default account
RETRYABLE = (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.UNAVAILABLE)


def _coid() -> str:
    return f"obs-{uuid.uuid4().hex[:12]}"


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.25)


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


def _market_traffic(address: str) -> Decimal:
    """Successful unary calls (indicator cache miss then hits), a failing call (NotFound) and
    a short stream; returns BTC-USD's last price."""
    with grpc.insecure_channel(address) as channel:
        stub = market_pb2_grpc.MarketServiceStub(channel)
        products = stub.ListProducts(market_pb2.ListProductsRequest(), timeout=10).products
        for _ in range(3):
            assert stub.GetCandles(_candles(PRODUCT), timeout=10).candles
        with pytest.raises(grpc.RpcError) as failure:
            stub.GetCandles(_candles("NOPE-USD"), timeout=10)
        assert failure.value.code() is grpc.StatusCode.NOT_FOUND
        ticks = stub.StreamTicks(market_pb2.StreamTicksRequest(product_ids=[PRODUCT]))
        assert next(ticks).ticks
        ticks.cancel()
    (btc,) = [p for p in products if p.product_id == PRODUCT]
    return Decimal(btc.last_price)


def _trading_traffic(address: str, price: Decimal) -> None:
    """Market orders that fill on the paper venue, a resting limit order then cancelled, and
    an order blocked by a risk limit (the limits are cleared again afterwards)."""
    with grpc.insecure_channel(address) as channel:
        stub = execution_pb2_grpc.ExecutionServiceStub(channel)

        def submit(**fields: Any) -> execution_pb2.Order:
            request = execution_pb2.SubmitOrderRequest(
                client_order_id=_coid(), product_id=PRODUCT, **fields
            )
            return stub.SubmitOrder(request, timeout=10).order

        deadline = time.monotonic() + 60
        while True:  # the paper venue needs a first tick from the market service
            try:
                submit(
                    side=common_pb2.SIDE_BUY, type=execution_pb2.ORDER_TYPE_MARKET, base_size="0.01"
                )
                break
            except grpc.RpcError as error:
                assert error.code() in RETRYABLE and time.monotonic() < deadline, error
                time.sleep(1)
        # Smaller than what the buy filled (the paper venue fills by tick liquidity): a position
        # stays open.
        submit(side=common_pb2.SIDE_SELL, type=execution_pb2.ORDER_TYPE_MARKET, base_size="0.0005")
        resting = submit(
            side=common_pb2.SIDE_BUY,
            type=execution_pb2.ORDER_TYPE_LIMIT,
            base_size="0.001",
            limit_price=str((price * Decimal("0.8")).quantize(Decimal("0.01"))),
        )
        stub.CancelOrder(execution_pb2.CancelOrderRequest(order_id=resting.order_id), timeout=10)
        stub.SetRiskLimits(
            execution_pb2.SetRiskLimitsRequest(
                limits=execution_pb2.RiskLimits(max_order_notional="10")
            ),
            timeout=10,
        )
        with pytest.raises(grpc.RpcError) as blocked:
            submit(side=common_pb2.SIDE_BUY, type=execution_pb2.ORDER_TYPE_MARKET, base_size="0.01")
        assert blocked.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        stub.SetRiskLimits(
            execution_pb2.SetRiskLimitsRequest(limits=execution_pb2.RiskLimits()), timeout=10
        )


def _buy(address: str) -> None:
    """One more market order (a second round: rate() needs a counter to move after its
    series first appeared)."""
    with grpc.insecure_channel(address) as channel:
        execution_pb2_grpc.ExecutionServiceStub(channel).SubmitOrder(
            execution_pb2.SubmitOrderRequest(
                client_order_id=_coid(),
                product_id=PRODUCT,
                side=common_pb2.SIDE_BUY,
                type=execution_pb2.ORDER_TYPE_MARKET,
                base_size="0.001",
            ),
            timeout=10,
        )


def _coinbase_wallet(address: str) -> None:
    """A wallet on the (fake) Coinbase account whose ledger matches it: USD 1,050."""
    with grpc.insecure_channel(address) as channel:
        stub = wallets_pb2_grpc.WalletsServiceStub(channel)
        stub.CreateWallet(
            wallets_pb2.CreateWalletRequest(
                wallet=wallets_pb2.Wallet(
                    wallet_id="cb",
                    display_name="Coinbase",
                    kind=wallets_pb2.WALLET_KIND_VENUE_ACCOUNT,
                    venue=common_pb2.VENUE_COINBASE,
                    account_id="cb-main",
                )
            ),
            timeout=10,
        )
        stub.RecordTransfer(
            wallets_pb2.RecordTransferRequest(
                idempotency_key="cb-funding",
                kind=wallets_pb2.TRANSFER_KIND_DEPOSIT,
                wallet_id="cb",
                currency="USD",
                amount="1050",
            ),
            timeout=10,
        )


def _wallets_traffic(address: str) -> None:
    """A reconciliation of every wallet: the paper ones and the Coinbase one (a venue call
    the first time, the venue cache the second)."""
    with grpc.insecure_channel(address) as channel:
        stub = wallets_pb2_grpc.WalletsServiceStub(channel)
        run = stub.Reconcile(wallets_pb2.ReconcileRequest(all=True), timeout=30).run
        assert run.status == wallets_pb2.RECONCILIATION_STATUS_MATCHED, run


def _backtest_traffic(address: str) -> None:
    """One backtest over two hours of candles, run to COMPLETED."""
    end = int(time.time()) // 60 * 60 - 600
    config = backtest_pb2.BacktestConfig(
        strategy="sma_crossover",
        params={"fast_period": "5", "slow_period": "20"},
        product_id=PRODUCT,
        interval=market_pb2.CANDLE_INTERVAL_ONE_MINUTE,
        time_range=common_pb2.TimeRange(
            start=Timestamp(seconds=end - 7200), end=Timestamp(seconds=end)
        ),
        initial_cash="10000",
    )
    with grpc.insecure_channel(address) as channel:
        stub = backtest_pb2_grpc.BacktestServiceStub(channel)
        backtest_id = stub.RunBacktest(
            backtest_pb2.RunBacktestRequest(config=config), timeout=30
        ).backtest_id
        final = (
            backtest_pb2.RUN_STATUS_COMPLETED,
            backtest_pb2.RUN_STATUS_FAILED,
            backtest_pb2.RUN_STATUS_CANCELED,
        )
        deadline = time.monotonic() + 60
        while True:
            got = stub.GetBacktest(
                backtest_pb2.GetBacktestRequest(backtest_id=backtest_id), timeout=10
            ).backtest
            if got.status in final:
                break
            assert time.monotonic() < deadline, "the backtest did not finish within 60 s"
            time.sleep(0.25)
        assert got.status == backtest_pb2.RUN_STATUS_COMPLETED, got


def _http_traffic(http: str) -> None:
    """JSON API calls through the gateway (successes and a NotFound)."""
    with httpx.Client(base_url=http, timeout=10) as api:
        for path in (
            "/api/market/products",
            "/api/live/orders",
            "/api/live/positions",
            "/api/wallets",
        ):
            assert api.get(path).status_code == 200, path
        assert api.get("/api/live/orders/no-such-order").status_code == 404


class Browsers:
    """WebSocket clients on /ws/market (ticks) and /ws/live (execution events), kept open
    (reading, answering heartbeats) on the background loop until closed."""

    def __init__(self, loop: BackgroundLoop, http: str) -> None:
        self._loop = loop
        self._ws = http.replace("http://", "ws://")
        self._clients: list[Client] = []
        self._readers: list[asyncio.Task[None]] = []
        loop.run(self._open())

    async def _open(self) -> None:
        market = await Client.open(f"{self._ws}/ws/market")
        self._clients.append(market)
        await market.subscribe(channel="CHANNEL_TICKS", productIds=[PRODUCT])
        await market.recv_kind("data", wait=30)
        live = await Client.open(f"{self._ws}/ws/live")
        self._clients.append(live)
        await live.subscribe(channel="CHANNEL_LIVE")
        await live.recv_kind("snapshot", wait=30)
        self._readers = [asyncio.create_task(self._drain(c)) for c in self._clients]

    @staticmethod
    async def _drain(client: Client) -> None:
        while True:
            await client.recv(wait=3600)

    async def _close(self) -> None:
        for task in self._readers:
            task.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        for client in self._clients:
            await client.close()

    def close(self) -> None:
        self._loop.run(self._close())


# Prometheus has seen every domain's traffic once these hold.
SEEN = (
    'sum(grpc_server_handled_total{job="market", grpc_code="NotFound"}) >= 1',
    "sum(execution_fills_total) >= 2",
    'sum(execution_risk_blocks_total{rule="MAX_ORDER_NOTIONAL"}) >= 1',
    'sum(execution_order_updates_total{status="CANCELED"}) >= 1',
    "sum(execution_open_positions) >= 1",
    'sum(wallets_ledger_entries_total{kind="trade"}) >= 1',
    'sum(wallets_reconciliation_runs_total{venue="coinbase"}) >= 1',
    'sum(wallets_venue_requests_total{venue="coinbase"}) >= 1',
    'sum(backtest_runs_total{status="completed"}) >= 1',
    "sum(gateway_http_requests_total) >= 5",
    "sum(gateway_ws_connections) >= 2",
    "sum(gateway_upstream_streams) >= 1",
)


SEEN_AGAIN = (
    'sum(grpc_server_handled_total{job="market", grpc_code="NotFound"}) >= 2',
    "sum(execution_fills_total) >= 3",
    'sum(wallets_reconciliation_runs_total{venue="coinbase"}) >= 2',
    'sum(wallets_venue_cache_requests_total{venue="coinbase", result="hit"}) >= 1',
    'sum(backtest_runs_total{status="completed"}) >= 2',
)


@pytest.fixture(scope="module")
def scraped(
    platform: PlatformProcess, platform_observe: Observe, background_loop: BackgroundLoop
) -> Iterator[Observe]:
    """Traffic in every domain, seen by Prometheus (scraping every second), with a market
    StreamTicks call and two WebSocket clients left open for the in-flight, subscriber and
    connection panels."""
    api = platform_observe.api
    jobs = ("market", "execution", "wallets", "backtest", "gateway")
    _wait_for(
        lambda: {s["metric"]["job"] for s in api.result("up == 1")} >= set(jobs),
        "Prometheus to scrape every process",
    )
    market = platform.service("market")["grpc"]
    http = platform.service("gateway")["http"].rstrip("/")
    browsers = Browsers(background_loop, http)
    with grpc.insecure_channel(market) as channel:
        open_stream = market_pb2_grpc.MarketServiceStub(channel).StreamTicks(
            market_pb2.StreamTicksRequest(product_ids=["ETH-USD"])
        )
        assert next(open_stream).ticks
        try:
            price = _market_traffic(market)
            _trading_traffic(platform.service("execution")["grpc"], price)
            _coinbase_wallet(platform.service("wallets")["grpc"])
            _wallets_traffic(platform.service("wallets")["grpc"])
            _backtest_traffic(platform.service("backtest")["grpc"])
            _http_traffic(http)
            for expr in SEEN:
                _wait_for(lambda expr=expr: bool(api.result(expr)), f"Prometheus to see {expr}")
            # Second round, once the first is scraped: the counters move after their series
            # exist, so every rate() panel has a non-zero value to show.
            _market_traffic(market)
            _buy(platform.service("execution")["grpc"])
            _wallets_traffic(platform.service("wallets")["grpc"])
            _backtest_traffic(platform.service("backtest")["grpc"])
            for expr in SEEN_AGAIN:
                _wait_for(lambda expr=expr: bool(api.result(expr)), f"Prometheus to see {expr}")
            time.sleep(2.5)  # a couple more scrapes after the last increment
            yield platform_observe
        finally:
            open_stream.cancel()
            browsers.close()


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_panel_query_returns_data(scraped: Observe, name: str) -> None:
    problems = []
    for where, expr in panel_queries(DASHBOARDS[name]):
        reply = scraped.api.query(expand(expr))
        if reply["status"] != "success":
            problems.append(f"{where}: {reply.get('error')}\n  {expr}")
        elif not reply["data"]["result"]:
            problems.append(f"{where}: no data\n  {expr}")
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
    for method in ("ListProducts", "GetCandles", "SubmitOrder", "Reconcile", "RunBacktest"):
        (rate,) = [v for k, v in by_method.items() if f"grpc_method={method}," in k]
        assert rate > 0, (method, by_method)
    codes = _values(api, _query("platform-overview.json", "Responses by code"))
    expected = {"grpc_code=OK", "grpc_code=NotFound", "grpc_code=Canceled"}
    assert expected <= {k.split(",")[0] for k in codes} | set(codes), codes
    p99 = _values(api, _query("platform-overview.json", "p99 by method"))
    assert any("grpc_method=GetCandles" in k and math.isfinite(v) and v > 0 for k, v in p99.items())
    errors = _values(api, _query("platform-overview.json", "Server error ratio by service"))
    assert {k.removeprefix("job=") for k in errors} >= {
        "market",
        "execution",
        "wallets",
        "backtest",
    }
    assert set(errors.values()) == {0.0}, "NotFound, FailedPrecondition are the callers' errors"
    non_ok = _values(api, _query("platform-overview.json", "Non-OK ratio by method"))
    assert any("GetCandles" in k and v > 0 for k, v in non_ok.items()), non_ok
    in_flight = _values(api, _query("platform-overview.json", "In-flight calls and open streams"))
    assert in_flight["grpc_method=StreamTicks,job=market"] >= 1, in_flight


def test_core_market_panels_show_the_feed_and_the_cache(scraped: Observe) -> None:
    api = scraped.api
    ticks = _values(api, _query("market-data.json", "Ticks/s by product"))
    assert ticks and all(v > 0 for v in ticks.values()), ticks
    assert _values(api, _query("market-data.json", "Feed status")) == {"": 1.0}
    (subscribers,) = _values(api, _query("market-data.json", "Stream subscribers")).values()
    assert subscribers >= 2, "the open StreamTicks call and execution's market data stream"
    cache = _values(api, _query("market-data.json", "Indicator cache requests"))
    assert {"result=hit", "result=miss"} <= set(cache), cache


def test_trading_panels_show_orders_fills_blocks_and_state(scraped: Observe) -> None:
    api = scraped.api
    blocks = _values(api, _query("trading.json", "Risk blocks by rule"))
    assert blocks["rule=MAX_ORDER_NOTIONAL"] > 0, blocks
    assert blocks["rule=DAILY_LOSS"] == 0, "every rule's series exists from the start"
    updates = _values(api, _query("trading.json", "Order updates by status"))
    assert updates["status=FILLED"] > 0 and updates["status=CANCELED"] > 0, updates
    submitted = _values(api, _query("trading.json", "Orders submitted by type"))
    assert submitted["order_type=MARKET"] > 0 and submitted["order_type=LIMIT"] > 0, submitted
    assert _values(api, _query("trading.json", "Open positions")) == {"": 1.0}
    state = _values(api, _query("trading.json", "Trading state"))
    assert state == {"account=global,state=ACTIVE": 1.0} | {
        k: 1.0 for k in state if k.startswith("account=") and k.endswith("state=ACTIVE")
    }, state
    assert _values(api, _query("trading.json", "Accounts halted")) == {"": 0.0}


def test_wallets_backtest_and_gateway_panels_show_the_traffic(scraped: Observe) -> None:
    api = scraped.api
    entries = _values(api, _query("wallets.json", "Ledger entries by kind"))
    assert entries["kind=trade"] > 0, entries
    runs = _values(api, _query("wallets.json", "Reconciliation runs by result"))
    assert runs["result=matched,venue=paper"] > 0 and runs["result=matched,venue=coinbase"] > 0
    calls = _values(api, _query("wallets.json", "Venue calls by endpoint and result"))
    assert "endpoint=accounts,result=ok,venue=coinbase" in calls, calls  # one call, then cached
    assert _values(api, _query("wallets.json", "Discrepancies (latest runs)")) == {"": 0.0}
    assert _values(api, _query("wallets.json", "Fill consumer")) == {"": 1.0}
    finished = _values(api, _query("backtests.json", "Runs finished by status"))
    assert finished["status=completed"] > 0, finished
    (workers,) = _values(api, _query("backtests.json", "Workers")).values()
    assert workers >= 1
    connections = _values(api, _query("gateway.json", "Connections by channel"))
    assert connections == {"channel=live": 1.0, "channel=market": 1.0}, connections
    sent = _values(api, _query("gateway.json", "Frames sent, received and dropped"))
    assert sent["channel=market"] > 0, sent
    http = _values(api, _query("gateway.json", "HTTP requests by route and code"))
    assert any("code=200" in k and "/api/market/products" in k for k in http), http
    assert any("code=404" in k for k in http), http


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


def test_no_alert_is_pending_or_firing_on_a_healthy_platform(scraped: Observe) -> None:
    """The rules are evaluated every second here: a healthy platform trips none of them, not
    even into `pending` (so ServiceDown, MarketFeedStale, WalletsFillConsumerDisconnected,
    KillSwitchEngaged etc. see the live series as fine)."""
    alerts = scraped.api.get("/api/v1/alerts")["data"]["alerts"]
    assert [(a["labels"]["alertname"], a["state"]) for a in alerts] == []


def _exported(metrics_url: str) -> set[str]:
    """The metric names a /metrics endpoint declares (`# TYPE` lines: also the labelled ones
    with no series yet), as exposed (counters with `_total`)."""
    with urllib.request.urlopen(metrics_url, timeout=10) as reply:
        text = reply.read().decode()
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        if kind == "counter" and not name.endswith("_total"):
            name += "_total"
        names.add(name)
    return {n for n in names if OUR_METRIC.match(n) and not n.endswith("_created")}


OUR_METRIC = re.compile(r"(grpc_server|tradeplane|market|execution|wallets|backtest|gateway)_")


def test_the_platform_exports_exactly_the_metrics_contract(scraped: Observe) -> None:
    """docs/observability.md's tables are what the five processes export, both ways."""
    exported: set[str] = set()
    for name, service in json.loads((scraped.var_dir / "endpoints.json").read_text())[
        "services"
    ].items():
        assert service.get("metrics"), f"{name} has no metrics endpoint"
        exported |= _exported(service["metrics"])
    contract = contract_metrics()
    assert sorted(exported - contract) == [], "exported but not in the contract"
    assert sorted(contract - exported) == [], "in the contract but not exported"
