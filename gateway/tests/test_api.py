"""The JSON API: market routes against the real market service, live routes against a fake
ExecutionService, and the gRPC status -> HTTP status + JSON body mapping."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_market_products_and_candles_with_indicators(
    market: Any, gateway_factory: Any
) -> None:
    gw = await gateway_factory(market_addr=market.target)
    async with httpx.AsyncClient(base_url=gw.http) as http:
        products = (await http.get("/api/market/products")).json()["products"]
        assert {p["productId"] for p in products} >= {"BTC-USD", "ETH-USD", "SOL-USD"}
        end = int(time.time())
        response = await http.get(
            "/api/market/products/BTC-USD/candles",
            params={
                "interval": "one_hour",
                "start": str(end - 12 * 3600),
                "end": str(end),
                "indicators": "sma:period=3,rsi:period=5",
            },
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["candles"]) >= 10
        assert body["candles"][0]["interval"] == "CANDLE_INTERVAL_ONE_HOUR"
        names = {series["spec"]["name"] for series in body["indicators"]}
        assert names == {"sma", "rsi"}
        assert all(len(s["values"]) == len(body["candles"]) for s in body["indicators"])


async def test_bad_input_is_400_naming_the_field(market: Any, gateway_factory: Any) -> None:
    gw = await gateway_factory(market_addr=market.target)
    async with httpx.AsyncClient(base_url=gw.http) as http:
        response = await http.get("/api/market/products/BTC-USD/candles?interval=fortnight")
        assert response.status_code == 400
        body = response.json()
        assert body["code"] == "INVALID_ARGUMENT" and body["httpStatus"] == 400
        assert body["message"].startswith("interval: unknown value 'fortnight'")

        response = await http.get("/api/market/products?color=blue")
        assert response.status_code == 400
        assert response.json()["message"] == "color: unknown parameter"

        # The service's own validation error travels through with its status.
        response = await http.get("/api/market/products/NOPE-USD/candles?interval=one_minute")
        assert response.status_code in (400, 404)
        assert response.json()["code"] in ("INVALID_ARGUMENT", "NOT_FOUND")
        assert "NOPE-USD" in response.json()["message"] or "product" in response.json()["message"]


async def test_live_routes_and_status_mapping(execution: Any, gateway_factory: Any) -> None:
    gw = await gateway_factory(execution_addr=execution.target)
    async with httpx.AsyncClient(base_url=gw.http) as http:
        response = await http.get(
            "/api/live/orders", params={"account_id": "acct-9", "statuses": "open,filled"}
        )
        assert response.status_code == 200
        order = response.json()["orders"][0]
        assert order == {
            "orderId": "order-1",
            "accountId": "acct-9",
            "productId": "BTC-USD",
            "side": "SIDE_BUY",
            "status": "ORDER_STATUS_OPEN",
            "baseSize": "0.5",
            "limitPrice": "101.25",
        }

        response = await http.get("/api/live/orders/order-404")
        assert response.status_code == 404
        assert response.json() == {
            "code": "NOT_FOUND",
            "message": "order order-404 not found",
            "httpStatus": 404,
        }

        response = await http.post(
            "/api/live/orders",
            json={"accountId": "acct-1", "productId": "BTC-USD", "side": "SIDE_BUY"},
        )
        assert response.status_code == 400
        assert response.json()["code"] == "FAILED_PRECONDITION"

        response = await http.get("/api/live/orders", params={"page_size": "-1"})
        assert response.status_code == 400
        assert response.json()["message"] == "page_size: must be >= 0"

        response = await http.post("/api/live/orders", content=b"{not json")
        assert response.status_code == 400
        assert response.json()["message"].startswith("body: invalid JSON")

        response = await http.get("/api/live/fills")  # not implemented by the fake
        assert response.status_code == 501
        assert response.json()["code"] == "UNIMPLEMENTED"


async def test_kill_switch_halts_all_accounts_unless_one_is_named(
    execution: Any, gateway_factory: Any
) -> None:
    gw = await gateway_factory(execution_addr=execution.target)
    async with httpx.AsyncClient(base_url=gw.http) as http:
        response = await http.post("/api/live/kill-switch", json={"reason": "panic"})
        assert response.status_code == 200
        assert response.json()["change"] == {
            "state": "TRADING_STATE_HALTED",
            "reason": "all_accounts: panic",
        }
        response = await http.post(
            "/api/live/kill-switch", json={"accountId": "acct-7", "reason": "one"}
        )
        assert response.json()["change"]["accountId"] == "acct-7"
        assert response.json()["change"]["reason"] == "account_id: one"


async def test_services_not_running_answer_503(gateway_factory: Any) -> None:
    gw = await gateway_factory(execution_addr="127.0.0.1:1")  # nothing listens there
    async with httpx.AsyncClient(base_url=gw.http) as http:
        response = await http.get("/api/wallets")
        assert response.status_code == 503
        assert response.json() == {
            "code": "UNAVAILABLE",
            "message": "the wallets service is not running (WALLETS_ADDR is not set for the "
            "gateway)",
            "httpStatus": 503,
        }
        response = await http.get("/api/live/positions")
        assert response.status_code == 503
        assert response.json()["message"].startswith("the execution service is unavailable")


async def test_health_placeholder_and_openapi(gateway_factory: Any, tmp_path: Any) -> None:
    # No built UI at the configured place: the placeholder page is served.
    gw = await gateway_factory(tradeplane_web_dir=tmp_path / "no-ui")
    async with httpx.AsyncClient(base_url=gw.http) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        page = await http.get("/")
        assert page.status_code == 200 and "tradeplane gateway" in page.text
        spec = (await http.get("/api/openapi.json")).json()
        assert spec["openapi"].startswith("3.")
        assert "get" in spec["paths"]["/api/backtests/{backtest_id}/equity"]
        assert "post" in spec["paths"]["/api/live/kill-switch"]
