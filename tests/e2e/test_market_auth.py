"""A market process with AUTH_MODE=jwt, called with grpcurl: reflection and health need no
token; MarketService calls without one are UNAUTHENTICATED, with a `read` token they work,
with a token lacking the scope they are PERMISSION_DENIED."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable

import pytest
from e2e_support import ServiceProcess, grpcurl

from tradeplane.runtime.auth import issue_token

MARKET = "trading.market.v1.MarketService"

pytestmark = pytest.mark.slow


def test_jwt_auth_over_grpcurl(start_market: Callable[..., ServiceProcess]) -> None:
    secret = secrets.token_hex(32)
    svc = start_market(AUTH_MODE="jwt", JWT_SECRET=secret, MARKET_BACKFILL_DAYS="0.1")
    addr = svc.address

    listing = grpcurl("-plaintext", addr, "list")
    assert listing.returncode == 0 and MARKET in listing.stdout, listing.stderr
    health = grpcurl("-plaintext", addr, "grpc.health.v1.Health/Check")
    assert health.returncode == 0 and '"SERVING"' in health.stdout, health.stderr

    anonymous = grpcurl("-plaintext", addr, f"{MARKET}/ListProducts")
    assert anonymous.returncode != 0
    assert "Code: Unauthenticated" in anonymous.stderr

    forged = issue_token("e2e", ["read"], secret="not-the-secret-" + secrets.token_hex(16))
    rejected = grpcurl(
        "-plaintext", "-H", f"authorization: Bearer {forged}", addr, f"{MARKET}/ListProducts"
    )
    assert "Code: Unauthenticated" in rejected.stderr

    read = issue_token("e2e", ["read"], secret=secret)
    ok = grpcurl(
        "-plaintext", "-H", f"authorization: Bearer {read}", addr, f"{MARKET}/ListProducts"
    )
    assert ok.returncode == 0, ok.stderr
    assert "BTC-USD" in [p["product_id"] for p in json.loads(ok.stdout)["products"]]

    no_scope = issue_token("e2e", [], secret=secret)
    denied = grpcurl(
        "-plaintext", "-H", f"authorization: Bearer {no_scope}", addr, f"{MARKET}/ListProducts"
    )
    assert "Code: PermissionDenied" in denied.stderr
