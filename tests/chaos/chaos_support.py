"""Shared pieces of the chaos suite: the whole platform as real processes with JWT auth on."""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from tradeplane.runtime.auth import Scope, issue_token
from tradeplane.testing.processes import ServiceFactory, ServiceProcess


@dataclass
class JwtPlatform:
    secret: str
    tokens: dict[Scope, str]  # one token per scope
    procs: dict[str, ServiceProcess]  # market, execution, wallets, backtest, gateway


def start_jwt_platform(factory: ServiceFactory) -> JwtPlatform:
    """Every service and the gateway as processes (SQLite each, auth on, shared secret)."""
    secret = secrets.token_urlsafe(32)
    tokens = {s: issue_token(f"chaos-{s.label}", [s.label], secret=secret) for s in Scope}
    service_token = issue_token("chaos-service", ["admin"], secret=secret)
    auth = {"AUTH_MODE": "jwt", "JWT_SECRET": secret}
    market = factory.create(
        "market", "tradeplane.market", {**auth, "MARKET_BACKFILL_DAYS": "0.05"}
    ).start()
    others = {
        "execution": factory.create(
            "execution",
            "tradeplane.execution",
            {**auth, "MARKET_ADDR": market.address, "EXECUTION_MARKET_TOKEN": service_token},
        ),
        "wallets": factory.create("wallets", "tradeplane.wallets", auth),
        "backtest": factory.create(
            "backtest", "tradeplane.backtest", {**auth, "MARKET_ADDR": market.address}
        ),
    }
    procs = {"market": market}
    with ThreadPoolExecutor(len(others)) as pool:  # start them side by side
        started = pool.map(ServiceProcess.start, others.values())
        procs.update(zip(others, started, strict=True))
    gateway = factory.create(
        "gateway",
        "tradeplane.gateway",
        {**auth, **{f"{n.upper()}_ADDR": p.address for n, p in procs.items()}},
        http=True,
    )
    procs["gateway"] = gateway.start()
    return JwtPlatform(secret, tokens, procs)
