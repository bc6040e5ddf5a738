"""The web UI in headless Chromium against the real platform: live fills over the WebSocket,
fallback to polling and back, the market chart's live updates, backtest playback and wallets.
Screenshots of every view land in test-output/ui/."""

from __future__ import annotations

import re
import threading
import time
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import pytest
from ui_support import (
    BROWSER_TIME_ZONE,
    http_json,
    screenshot,
    submit_market_order,
    wait_for_fill,
)

pytestmark = pytest.mark.slow

LIVE_WS = re.compile(r".*/ws/live.*")


def _expect() -> Any:
    return pytest.importorskip("playwright.sync_api").expect


def test_live_view_shows_a_fill_made_through_the_api_without_reload(
    page: Any, base_url: str
) -> None:
    expect = _expect()
    page.goto("/")
    expect(page.get_by_test_id("connection")).to_have_text("Live (WebSocket)")
    expect(page.get_by_test_id("portfolio")).to_contain_text("paper-main")

    client_id = f"ui-ws-{uuid.uuid4().hex[:8]}"
    order = submit_market_order(base_url, client_id)
    fill = wait_for_fill(base_url, client_id)

    # Arrives over /ws/live: the page is never reloaded, and polling is not running.
    row = page.locator(f'[data-testid="fills"] tr[data-key="{fill["fillId"]}"]')
    expect(row).to_contain_text(client_id)
    # Shown in the browser's time zone (Asia/Tokyo), not the gateway's (UTC).
    local = datetime.fromisoformat(fill["time"]).astimezone(ZoneInfo(BROWSER_TIME_ZONE))
    expect(row).to_contain_text(local.strftime("%I:%M:%S %p"))
    expect(page.locator(".tz")).to_have_text(BROWSER_TIME_ZONE)
    expect(
        page.locator(f'[data-testid="orders"] tr[data-key="{order["orderId"]}"]')
    ).to_contain_text("filled")
    expect(page.get_by_test_id("positions")).to_contain_text("BTC-USD")
    expect(page.get_by_test_id("connection")).to_have_text("Live (WebSocket)")
    screenshot(page, "live")


def test_a_trade_blocked_by_risk_appears_live(page: Any, base_url: str) -> None:
    expect = _expect()
    page.goto("/#/live")
    expect(page.get_by_test_id("connection")).to_have_text("Live (WebSocket)")
    limits = f"{base_url}/api/live/risk-limits"
    http_json("PUT", limits, {"limits": {"accountId": "paper-main", "maxOrderNotional": "1000"}})
    try:
        client_id = f"ui-block-{uuid.uuid4().hex[:8]}"
        with pytest.raises(AssertionError, match="FAILED_PRECONDITION"):
            submit_market_order(base_url, client_id, size="1")  # ~60,000 USD > 1,000
        row = page.get_by_test_id("blocks").locator("tbody tr", has_text=client_id)
        expect(row).to_contain_text("max order notional")
        expect(row).to_contain_text("above the maximum 1000")
    finally:
        http_json("PUT", limits, {"limits": {"accountId": "paper-main"}})


def test_killing_the_websocket_falls_back_to_polling_and_recovers(page: Any, base_url: str) -> None:
    expect = _expect()
    blocked = threading.Event()
    routes: list[Any] = []

    # Every /ws/live socket goes through this route: forwarded to the gateway normally, refused
    # (closed at once) while `blocked` is set, the way a dropped proxy or network would.
    def handle(ws: Any) -> None:
        if blocked.is_set():
            ws.close(code=1011, reason="test: network down")
            return
        ws.connect_to_server()
        routes.append(ws)

    page.route_web_socket(LIVE_WS, handle)
    page.goto("/#/live")
    expect(page.get_by_test_id("connection")).to_have_text("Live (WebSocket)")

    blocked.set()
    for ws in routes:
        ws.close(code=1011, reason="test: socket killed")
    expect(page.get_by_test_id("connection")).to_have_text("Live (polling)")

    # Data keeps updating while polling: a new fill shows up, exactly once.
    client_id = f"ui-poll-{uuid.uuid4().hex[:8]}"
    submit_market_order(base_url, client_id)
    fill = wait_for_fill(base_url, client_id)
    rows = page.locator(f'[data-testid="fills"] tr[data-key="{fill["fillId"]}"]')
    expect(rows).to_contain_text(client_id)
    screenshot(page, "live-polling")

    # The socket comes back: the indicator returns to the WebSocket, the fill is not duplicated.
    blocked.clear()
    expect(page.get_by_test_id("connection")).to_have_text("Live (WebSocket)", timeout=20_000)
    expect(rows).to_have_count(1)
    client_id2 = f"ui-back-{uuid.uuid4().hex[:8]}"
    submit_market_order(base_url, client_id2)
    fill2 = wait_for_fill(base_url, client_id2)
    expect(page.locator(f'[data-testid="fills"] tr[data-key="{fill2["fillId"]}"]')).to_have_count(1)


def test_indicator_says_offline_when_neither_socket_nor_api_answers(page: Any) -> None:
    expect = _expect()
    down = threading.Event()
    routes: list[Any] = []

    def handle(ws: Any) -> None:
        if down.is_set():
            ws.close(code=1011, reason="test: network down")
        else:
            ws.connect_to_server()
            routes.append(ws)

    page.route_web_socket(LIVE_WS, handle)
    page.goto("/#/live")
    expect(page.get_by_test_id("connection")).to_have_text("Live (WebSocket)")

    # The gateway becomes unreachable: the socket drops and every API request fails.
    down.set()
    page.route("**/api/**", lambda route: route.abort("connectionrefused"))
    for ws in routes:
        ws.close(code=1011, reason="test: gateway unreachable")
    expect(page.get_by_test_id("connection")).to_have_text("Offline")
    expect(page.get_by_test_id("fills").or_(page.locator(".state.error")).first).to_be_visible()
    page.unroute("**/api/**")
    down.clear()
    expect(page.get_by_test_id("connection")).to_have_text("Live (WebSocket)", timeout=20_000)


def test_market_view_draws_candles_and_updates_live(page: Any) -> None:
    expect = _expect()
    page.goto("/#/market")
    chart = page.get_by_test_id("chart")
    expect(chart.locator("canvas").first).to_be_visible()
    expect(page.get_by_test_id("last-price")).not_to_have_text("—")
    expect(page.get_by_test_id("spread")).not_to_have_text("—")
    assert int(page.get_by_test_id("candle-count").inner_text()) > 10

    # Live ticks and candles keep arriving over /ws/market.
    updates = page.get_by_test_id("live-updates")
    first = int(updates.inner_text())
    expect(updates).not_to_have_text(str(first))
    expect(page.get_by_test_id("trades").locator("tbody tr").first).to_be_visible()

    # Another product and an oscillator: the chart reloads with the new selection.
    page.get_by_test_id("product").select_option("ETH-USD")
    page.get_by_label("RSI 14").check()
    expect(page.get_by_test_id("trades")).to_be_visible()
    time.sleep(1.0)  # let the chart paint the new series before the screenshot
    screenshot(page, "market")


def _run_backtest(base_url: str, product_id: str, hours: float = 4) -> str:
    end = time.time() - 120
    run = http_json(
        "POST",
        f"{base_url}/api/backtests",
        {
            "config": {
                "strategy": "bollinger_breakout",
                "productId": product_id,
                "interval": "CANDLE_INTERVAL_ONE_MINUTE",
                "timeRange": {"start": _iso(end - hours * 3600), "end": _iso(end)},
                "initialCash": "10000",
            }
        },
    )
    backtest_id: str = run["backtestId"]
    deadline = time.monotonic() + 60
    while (
        http_json("GET", f"{base_url}/api/backtests/{backtest_id}")["backtest"].get("status")
        != "RUN_STATUS_COMPLETED"
    ):
        assert time.monotonic() < deadline, "backtest did not complete in 60s"
        time.sleep(0.2)
    return backtest_id


def _run_sweep(base_url: str) -> str:
    end = time.time() - 120
    reply = http_json(
        "POST",
        f"{base_url}/api/sweeps",
        {
            "config": {
                "base": {
                    "strategy": "bollinger_breakout",
                    "productId": "BTC-USD",
                    "interval": "CANDLE_INTERVAL_ONE_MINUTE",
                    "timeRange": {"start": _iso(end - 3 * 3600), "end": _iso(end)},
                    "initialCash": "10000",
                },
                "grid": {"axes": [{"name": "period", "values": ["10", "20"]}]},
            }
        },
    )
    sweep_id: str = reply["sweepId"]
    deadline = time.monotonic() + 30
    while (
        http_json("GET", f"{base_url}/api/sweeps/{sweep_id}")["sweep"].get("status")
        != "RUN_STATUS_COMPLETED"
    ):
        assert time.monotonic() < deadline, "sweep did not complete in 30s"
        time.sleep(0.2)
    return sweep_id


def test_backtest_playback_scrubber_changes_the_shown_state(page: Any, base_url: str) -> None:
    expect = _expect()
    other_id = _run_backtest(base_url, "ETH-USD")
    backtest_id = _run_backtest(base_url, "BTC-USD")
    sweep_id = _run_sweep(base_url)

    page.goto(f"/#/backtests/{backtest_id}")
    expect(page.get_by_test_id("backtests")).to_contain_text("bollinger_breakout")
    expect(page.get_by_test_id("statistics")).to_contain_text("total return")
    expect(page.get_by_test_id("equity-chart").locator("canvas").first).to_be_visible()
    last_bar = page.get_by_test_id("state-bar")
    expect(last_bar).not_to_have_text("0")
    end_state = last_bar.inner_text()
    screenshot(page, "backtests")

    # Scrub to the first bar: the state shown is the run's start (initial cash, flat).
    scrubber = page.get_by_test_id("scrubber")
    scrubber.focus()
    scrubber.press("Home")
    expect(last_bar).to_have_text("0")
    expect(page.get_by_test_id("state-cash")).to_contain_text("10,000")
    expect(page.get_by_test_id("state-positions")).to_have_text("flat")
    assert end_state != "0"
    screenshot(page, "backtests-scrubbed")

    # A/B: tick both runs; their statistics sit side by side over one equity chart.
    page.get_by_label(f"Compare {backtest_id}").check()
    page.get_by_label(f"Compare {other_id}").check()
    stats = page.get_by_test_id("compare-stats")
    expect(stats).to_contain_text("BTC-USD")
    expect(stats).to_contain_text("ETH-USD")
    expect(stats).to_contain_text("total return")
    expect(page.get_by_test_id("compare-chart").locator("canvas").first).to_be_visible()
    page.get_by_test_id("compare").scroll_into_view_if_needed()
    screenshot(page, "backtests-compare")

    # Sweep results, best first; "Play back" opens the run of one parameter set.
    page.get_by_test_id("sweeps").locator(f'tr[data-key="{sweep_id}"]').get_by_role(
        "button", name="Results"
    ).click()
    results = page.get_by_test_id("sweep-results")
    expect(results.locator("tbody tr")).to_have_count(2)
    expect(results).to_contain_text("period=10")
    expect(results).to_contain_text("period=20")
    results.locator("tbody tr").first.get_by_role("button", name="Play back").click()
    expect(page.get_by_test_id("playback")).to_be_visible()
    screenshot(page, "backtests-sweep")


def test_launch_form_runs_a_backtest_and_opens_its_playback(page: Any) -> None:
    expect = _expect()
    page.goto("/#/backtests")
    form = page.get_by_test_id("launch-form")
    form.get_by_label("Strategy").select_option(label="Bollinger breakout")
    form.get_by_label("period").fill("15")
    form.get_by_label("Last hours").fill("2")
    form.get_by_role("button", name="Run backtest").click()
    # Progress arrives over /ws/live; at completion the run's playback opens.
    expect(page.get_by_test_id("progress")).to_contain_text("100% completed")
    expect(page.get_by_test_id("playback")).to_contain_text("bollinger_breakout")
    expect(page.get_by_test_id("state-bar")).not_to_have_text("0")


def test_wallets_view_shows_balances_and_reconciles(page: Any) -> None:
    expect = _expect()
    page.goto("/#/wallets")
    expect(page.get_by_test_id("balances")).to_contain_text("USD")
    page.get_by_role("button", name="Reconcile").click()
    page.get_by_role("dialog").get_by_role("button", name="Reconcile").click()
    expect(page.get_by_test_id("reconciliations").locator("tbody tr").first).to_be_visible()
    expect(page.get_by_test_id("reconciliations")).to_contain_text("matched")
    # The paper wallet's own ledger: its initial deposit (and the fills of earlier tests).
    page.get_by_label("Ledger wallet").select_option("paper")
    expect(page.get_by_test_id("ledger")).to_contain_text("initial paper deposit")
    screenshot(page, "wallets")


def test_a_failing_service_shows_its_error_and_retry_recovers(page: Any) -> None:
    expect = _expect()
    # What the gateway answers when the wallets service is down (docs/api/gateway.md, Errors).
    body = (
        '{"code":"UNAVAILABLE","message":"the wallets service is unavailable; retry later",'
        '"httpStatus":503}'
    )
    page.route(
        re.compile(r".*/api/wallets(\?.*)?$"),
        lambda route: route.fulfill(status=503, content_type="application/json", body=body),
    )
    page.goto("/#/wallets")
    alert = page.get_by_role("alert").first
    expect(alert).to_contain_text("the wallets service is unavailable; retry later")
    screenshot(page, "wallets-error")

    page.unroute(re.compile(r".*/api/wallets(\?.*)?$"))
    alert.get_by_role("button", name="Retry").click()
    expect(page.get_by_test_id("balances")).to_contain_text("USD")
    expect(page.get_by_role("alert")).to_have_count(0)


def test_agents_view_shows_a_decision_with_its_fields_and_totals(page: Any, base_url: str) -> None:
    expect = _expect()
    agent = f"ui-agent-{uuid.uuid4().hex[:6]}"
    trace_id = uuid.uuid4().hex
    submit_market_order(
        base_url,
        f"ui-agent-{uuid.uuid4().hex[:8]}",
        decision={
            "strategy": agent,
            "reason": "breakout above the range, momentum confirmed",
            "model": "test-model-1",
            "promptTokens": "1200",
            "completionTokens": "85",
            "cost": {"currency": "USD", "amount": "0.0042"},
            "traceId": trace_id,
            "inputs": {"close": 62000.5, "signal": "long"},
        },
    )
    page.goto("/#/agents")
    decisions = page.get_by_test_id("decisions")
    row = decisions.locator("tbody tr", has_text=agent)
    expect(row).to_contain_text("breakout above the range")
    expect(row).to_contain_text("test-model-1")
    expect(row).to_contain_text("1200 / 85")
    expect(row).to_contain_text(trace_id[:16])
    expect(page.get_by_test_id("agent-totals").locator("tbody tr", has_text=agent)).to_contain_text(
        "1,200"
    )
    row.get_by_role("button", name="Inputs").click()
    expect(page.get_by_test_id("decision-detail")).to_contain_text('"signal": "long"')
    screenshot(page, "agents")


BOUNDED = {"page_size": 500, "max_points": 400, "depth": 50}


def _check_bounded(urls: list[str]) -> int:
    """Every list request the page made names a page size (or point count / depth) within
    bounds; returns how many list requests there were."""
    lists = 0
    for url in urls:
        parts = urlsplit(url)
        if not parts.path.startswith("/api/") or not LIST_PATHS.search(parts.path):
            continue
        lists += 1
        query = dict(parse_qsl(parts.query))
        limits = {k: int(query[k]) for k in BOUNDED if k in query}
        assert limits, f"unbounded request: {url}"
        for key, value in limits.items():
            assert 0 < value <= BOUNDED[key], f"{key}={value} in {url}"
    return lists


LIST_PATHS = re.compile(
    r"/(candles|trades|equity|backtests|sweeps|results|ledger|orders|fills|blocks|positions|"
    r"wallets|reconciliations|decisions|products|accounts|book)$"
)


def test_playback_of_a_long_run_pages_its_candles_and_reaches_the_end(
    page: Any, base_url: str
) -> None:
    expect = _expect()
    backtest_id = _run_backtest(base_url, "BTC-USD", hours=50)  # 3,000 one-minute bars
    api = f"{base_url}/api/backtests/{backtest_id}/playback/candles"
    everything = http_json("GET", f"{api}?page_size=5000")["candles"]
    assert len(everything) > 2_000
    urls: list[str] = []
    page.on("request", lambda req: urls.append(req.url))

    page.goto(f"/#/backtests/{backtest_id}")
    loaded = page.get_by_test_id("bars-loaded")
    expect(loaded).to_have_text("500 bars loaded, more on scroll")
    # Scrolling the chart towards the last loaded bar fetches the next page.
    chart = page.get_by_test_id("playback").get_by_test_id("chart")
    box = chart.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for _ in range(60):
        page.mouse.wheel(150, 0)
        page.wait_for_timeout(100)
        if loaded.inner_text().startswith("1,000"):
            break
    expect(loaded).to_contain_text("1,000 bars loaded")
    page.wait_for_timeout(500)
    expect(loaded).to_contain_text("1,000 bars loaded")  # one page per approach, no cascade
    screenshot(page, "backtests-paged")

    # The scrubber pushed to its end keeps loading pages until the run's last bar.
    scrubber = page.get_by_test_id("scrubber")
    scrubber.focus()
    deadline = time.monotonic() + 60
    while "(the whole run)" not in loaded.inner_text():
        assert time.monotonic() < deadline, f"stuck at {loaded.inner_text()}"
        scrubber.press("End")
        page.wait_for_timeout(150)
    expect(loaded).to_have_text(f"{len(everything):,} bars loaded (the whole run)")
    scrubber.press("End")
    # The last bar's time, in the browser's time zone (Asia/Tokyo), and its state.
    last = datetime.fromisoformat(everything[-1]["start"]).astimezone(ZoneInfo(BROWSER_TIME_ZONE))
    expect(page.get_by_test_id("scrub-time")).to_have_text(last.strftime("%b %d, %Y, %I:%M:%S %p"))
    expect(page.get_by_test_id("state-bar")).to_have_text(str(len(everything) - 1))

    # Trades are paged too (50 a page).
    expect(page.get_by_test_id("trades-page")).to_have_text("page 1 (50 per page)")
    candle_requests = [u for u in urls if "/playback/candles" in u]
    assert len(candle_requests) == -(-len(everything) // 500), candle_requests
    assert _check_bounded(urls) >= len(candle_requests) + 2
    screenshot(page, "backtests-paged-end")


def test_sweep_form_launches_a_grid_and_shows_its_ranked_results(page: Any) -> None:
    expect = _expect()
    page.goto("/#/backtests")
    form = page.get_by_test_id("sweep-form")
    form.get_by_label("Sweep strategy").select_option(label="Bollinger breakout")
    form.get_by_label("period values").fill("12, 24")
    form.get_by_label("Sweep last hours").fill("2")
    form.get_by_label("Rank by").select_option(label="total return")
    form.get_by_role("button", name="Run sweep (2 backtests)").click()
    # Progress (backtests done / total) arrives over /ws/live; then the results open.
    expect(page.get_by_test_id("sweep-progress")).to_contain_text("2/2 completed")
    results = page.get_by_test_id("sweep-results")
    expect(results.locator("tbody tr")).to_have_count(2)
    expect(results).to_contain_text("period=12")
    expect(results).to_contain_text("period=24")
    heading = page.get_by_role("heading", name=re.compile("best first by total return"))
    expect(heading).to_be_visible()
    ranks = results.locator("tbody tr td:first-child").all_inner_texts()
    assert ranks == ["1", "2"]
    returns = [
        float(t.rstrip("%")) for t in results.locator("tbody tr td:nth-child(3)").all_inner_texts()
    ]
    assert returns == sorted(returns, reverse=True)
    results.scroll_into_view_if_needed()
    screenshot(page, "backtests-sweep-form")


def test_market_view_shows_the_top_of_the_order_book(page: Any) -> None:
    expect = _expect()
    # First the market service fails: the panel says so and offers Retry.
    body = '{"code":"UNAVAILABLE","message":"the market service is unavailable","httpStatus":503}'
    book_route = re.compile(r".*/api/market/products/[^/]+/book(\?.*)?$")
    page.route(
        book_route,
        lambda route: route.fulfill(status=503, content_type="application/json", body=body),
    )
    page.goto("/#/market")
    alert = page.get_by_role("alert").filter(has_text="market service is unavailable")
    expect(alert).to_be_visible()
    page.unroute(book_route)
    alert.get_by_role("button", name="Retry").click()

    book = page.get_by_test_id("order-book")
    expect(book.locator("tbody tr")).to_have_count(10)
    first = book.locator("tbody tr").first.locator("td").all_inner_texts()
    bid, ask = (float(x.replace(",", "")) for x in first[1:3])
    assert 0 < bid < ask
    expect(page.get_by_test_id("book-time")).to_contain_text("as of")
    # It follows the market: the book's sequence number moves.
    seq = page.get_by_test_id("book-time").inner_text()
    expect(page.get_by_test_id("book-time")).not_to_have_text(seq, timeout=20_000)
    time.sleep(0.5)
    screenshot(page, "market-book")


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def test_cancel_and_kill_switch_ask_for_confirmation(page: Any, base_url: str) -> None:
    """Last in the module: it halts trading (and resumes it from the UI)."""
    expect = _expect()
    client_id = f"ui-cancel-{uuid.uuid4().hex[:8]}"
    # A limit far below the market stays open on the paper venue.
    order = http_json(
        "POST",
        f"{base_url}/api/live/orders",
        {
            "accountId": "paper-main",
            "clientOrderId": client_id,
            "productId": "BTC-USD",
            "side": "SIDE_BUY",
            "type": "ORDER_TYPE_LIMIT",
            "baseSize": "0.001",
            "limitPrice": "1000",
        },
    )["order"]
    page.goto("/#/live")
    row = page.locator(f'[data-testid="orders"] tr[data-key="{order["orderId"]}"]')
    expect(row).to_contain_text("open")

    row.get_by_role("button", name="Cancel").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(client_id)
    dialog.get_by_role("button", name="Keep").click()  # changing one's mind does nothing
    expect(dialog).to_have_count(0)
    expect(row).to_contain_text("open")
    row.get_by_role("button", name="Cancel").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel order").click()
    expect(row).to_contain_text("canceled")
    got = http_json("GET", f"{base_url}/api/live/orders/{order['orderId']}")["order"]
    assert got["status"] == "ORDER_STATUS_CANCELED"

    page.get_by_role("button", name="Kill switch").click()
    page.get_by_role("dialog").get_by_role("button", name="Halt trading").click()
    expect(page.get_by_test_id("trading-state")).to_have_text("Trading: halted")
    state = http_json("GET", f"{base_url}/api/live/trading-state")
    assert state["globalState"] == "TRADING_STATE_HALTED"
    screenshot(page, "live-halted")

    page.get_by_role("button", name="Resume trading").click()
    page.get_by_role("dialog").get_by_role("button", name="Resume trading").click()
    expect(page.get_by_test_id("trading-state")).to_have_text("Trading: active")
