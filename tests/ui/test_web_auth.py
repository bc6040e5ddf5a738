"""The web UI against a platform with AUTH_MODE=jwt: the sign-in prompt, a `read` token that
sees data but no trading buttons, a `trade` token that gets Cancel and the kill switch, and a
refused token (401) that brings the prompt back with the gateway's message."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ui_support import BROWSER_TIME_ZONE, OUTPUT_DIR, http_json, running_platform, screenshot

from tradeplane.runtime.auth import issue_token

pytestmark = pytest.mark.slow

SECRET = secrets.token_hex(32)


def _token(subject: str, scope: str, secret: str = SECRET) -> str:
    return issue_token(subject, [scope], secret=secret, ttl_seconds=3600)


@pytest.fixture(scope="module")
def jwt_url(web_dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The platform with JWT auth on everywhere; services reach each other with tokens."""
    env = {
        "AUTH_MODE": "jwt",
        "JWT_SECRET": SECRET,
        "EXECUTION_MARKET_TOKEN": _token("execution", "read"),
        "WALLETS_EXECUTION_TOKEN": _token("wallets", "read"),
        "GATEWAY_SERVICE_TOKEN": _token("gateway", "read"),
    }
    with running_platform(tmp_path_factory.mktemp("ui-jwt"), web_dist, env) as url:
        yield url


@pytest.fixture
def jwt_page(browser: Any, jwt_url: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(
        base_url=jwt_url,
        viewport={"width": 1400, "height": 1000},
        timezone_id=BROWSER_TIME_ZONE,
        locale="en-US",
    )
    context.set_default_timeout(15_000)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield pg
    finally:
        OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(OUTPUT_DIR / f"{request.node.name}-final.png"), full_page=True)
        context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


def _sign_in(page: Any, token: str) -> None:
    panel = page.get_by_test_id("sign-in")
    if not panel.is_visible():
        page.get_by_test_id("sign-in-open").click()
    panel.get_by_label("Access token (JWT)").fill(token)
    panel.get_by_role("button", name="Sign in").click()


def test_scope_decides_which_buttons_are_shown(jwt_page: Any, jwt_url: str) -> None:
    expect = pytest.importorskip("playwright.sync_api").expect
    page = jwt_page
    trader = _token("trader", "trade")
    # A resting limit order (far below the market) so the orders table has a cancellable row.
    order = http_json(
        "POST",
        f"{jwt_url}/api/live/orders",
        {
            "accountId": "paper-main",
            "clientOrderId": f"ui-auth-{uuid.uuid4().hex[:8]}",
            "productId": "BTC-USD",
            "side": "SIDE_BUY",
            "type": "ORDER_TYPE_LIMIT",
            "baseSize": "0.001",
            "limitPrice": "1000",
        },
        token=trader,
    )["order"]
    row = page.locator(f'[data-testid="orders"] tr[data-key="{order["orderId"]}"]')

    # No token: the gateway answers 401 and the UI asks for one, saying why.
    page.goto("/#/live")
    expect(page.get_by_test_id("sign-in-reason")).to_contain_text("a bearer token is required")
    expect(page.get_by_role("button", name="Kill switch")).to_have_count(0)
    screenshot(page, "auth-sign-in")

    # A read token: the data is there (live over the socket), the trading buttons are not.
    _sign_in(page, _token("viewer", "read"))
    expect(page.get_by_test_id("sign-in")).to_have_count(0)
    expect(page.get_by_test_id("auth-badge")).to_contain_text("viewer")
    expect(page.get_by_test_id("auth-badge")).to_contain_text("read")
    expect(page.get_by_test_id("connection")).to_have_text("Live (WebSocket)")
    expect(page.get_by_test_id("portfolio")).to_contain_text("paper-main")
    expect(row).to_contain_text("open")
    expect(row.get_by_role("button", name="Cancel")).to_have_count(0)
    expect(page.get_by_role("button", name="Kill switch")).to_have_count(0)
    screenshot(page, "auth-read-scope")
    page.goto("/#/wallets")
    expect(page.get_by_test_id("balances")).to_contain_text("USD")
    expect(page.get_by_role("button", name="Reconcile")).to_have_count(0)
    page.goto("/#/live")

    # Sign out, then in with a trade token: Cancel and the kill switch appear and work.
    page.get_by_role("button", name="Sign out").click()
    _sign_in(page, trader)
    expect(page.get_by_test_id("auth-badge")).to_contain_text("trade")
    expect(page.get_by_test_id("connection")).to_have_text("Live (WebSocket)")
    expect(page.get_by_role("button", name="Kill switch")).to_be_visible()
    row.get_by_role("button", name="Cancel").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel order").click()
    expect(row).to_contain_text("canceled")
    screenshot(page, "auth-trade-scope")


def test_a_refused_token_brings_back_the_sign_in_prompt(jwt_page: Any) -> None:
    expect = pytest.importorskip("playwright.sync_api").expect
    page = jwt_page
    page.goto("/#/wallets")
    # Well-formed but signed with another key: the gateway refuses it (HTTP 401).
    _sign_in(page, _token("mallory", "admin", secret=secrets.token_hex(32)))
    reason = page.get_by_test_id("sign-in-reason")
    expect(reason).to_contain_text("The gateway requires a valid token")
    expect(reason).to_contain_text("invalid token")
    # A refused token grants nothing: no trading button, and the header says so.
    expect(page.get_by_test_id("auth-badge")).to_contain_text("refused")
    expect(page.get_by_role("button", name="Reconcile")).to_have_count(0)
    screenshot(page, "auth-refused")
