"""Security gate, second half (issue 11, item 11): a canary Coinbase secret never shows up in
any log line, trace attribute, error message or metric label during a run.

Real processes hold the canary as COINBASE_API_SECRET: execution trading on the coinbase
venue (orders placed, cancelled, a bad one refused) and wallets reconciling a Coinbase
wallet, plus a second wallets process whose canary key Coinbase does not know (every call
fails authentication: the error paths). Spans go to the console exporter, logs at DEBUG.
Then every log file, every /metrics page and every error message the callers saw is searched
for any 16-character piece of the canary key."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import grpc.aio
import pytest
import pytest_asyncio

from tradeplane.testing.fakes.coinbase import FakeCoinbase
from tradeplane.testing.fakes.coinbase_keys import CoinbaseKeys, make_keys
from tradeplane.testing.processes import ServiceFactory, service_processes
from trading.common.v1 import common_pb2
from trading.execution.v1 import execution_pb2 as xpb
from trading.execution.v1 import execution_pb2_grpc
from trading.wallets.v1 import wallets_pb2 as wpb
from trading.wallets.v1 import wallets_pb2_grpc

pytestmark = pytest.mark.slow

WINDOW = 16


def _pieces(pem: str) -> set[str]:
    body = "".join(line for line in pem.splitlines() if line and not line.startswith("-----"))
    return {body[i : i + WINDOW] for i in range(0, len(body) - WINDOW + 1)}


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as reply:
        return str(reply.read().decode())


@pytest.fixture
def keys(tmp_path: Path) -> CoinbaseKeys:
    return make_keys(tmp_path)


@pytest.fixture
def unknown_keys(tmp_path: Path) -> CoinbaseKeys:
    return make_keys(tmp_path / "unknown", name="organizations/nobody/apiKeys/unknown")


@pytest_asyncio.fixture
async def fake(keys: CoinbaseKeys) -> AsyncIterator[FakeCoinbase]:
    server = FakeCoinbase(
        heartbeat_interval=0.5,
        ssl_context=keys.server_tls,
        jwt_public_key=keys.public_pem,
        jwt_key_name=keys.name,
    )
    await server.start()
    server.accounts.set_balance("USD", "1000")
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def services(tmp_path: Path) -> Iterator[ServiceFactory]:
    (tmp_path / "unknown").mkdir(exist_ok=True)
    with service_processes(tmp_path) as factory:
        yield factory


async def test_the_canary_secret_never_leaks(
    services: ServiceFactory, fake: FakeCoinbase, keys: CoinbaseKeys, unknown_keys: CoinbaseKeys
) -> None:
    observe = {"OTEL_TRACES_EXPORTER": "console", "LOG_LEVEL": "DEBUG"}
    market = services.create("market", "tradeplane.market", {"MARKET_BACKFILL_DAYS": "0"})
    await asyncio.to_thread(market.start)
    execution = services.create(
        "execution",
        "tradeplane.execution",
        {
            **observe,
            "MARKET_ADDR": market.address,
            "EXECUTION_VENUE": "coinbase",
            "COINBASE_API_KEY": keys.name,
            "COINBASE_API_SECRET": keys.private_pem,
            "EXECUTION_COINBASE_REST_URL": fake.rest_url,
            "EXECUTION_COINBASE_WS_URL": fake.ws_url,
            "EXECUTION_COINBASE_CA_FILE": keys.ca_file,
        },
    )
    wallets_env = {
        **observe,
        "WALLETS_COINBASE_REST_URL": fake.rest_url,
        "SSL_CERT_FILE": keys.ca_file,  # httpx trusts the fake's test CA
        "WALLETS_DEFAULT_WALLET": "false",
    }
    wallets = services.create(
        "wallets",
        "tradeplane.wallets",
        {**wallets_env, "COINBASE_API_KEY": keys.name, "COINBASE_API_SECRET": keys.private_pem},
    )
    rejected = services.create(
        "wallets-unknown-key",
        "tradeplane.wallets",
        {
            **wallets_env,
            "COINBASE_API_KEY": unknown_keys.name,
            "COINBASE_API_SECRET": unknown_keys.private_pem,
        },
    )
    for svc in (execution, wallets, rejected):
        await asyncio.to_thread(svc.start)

    seen_errors: list[str] = []
    async with grpc.aio.insecure_channel(execution.address) as channel:
        stub = execution_pb2_grpc.ExecutionServiceStub(channel)
        placed = await stub.SubmitOrder(
            xpb.SubmitOrderRequest(
                client_order_id="canary-1",
                product_id="BTC-USD",
                side=common_pb2.SIDE_BUY,
                type=xpb.ORDER_TYPE_LIMIT,
                base_size="0.001",
                limit_price="1000",
            ),
            timeout=20,
        )
        await stub.CancelOrder(xpb.CancelOrderRequest(order_id=placed.order.order_id), timeout=20)
        try:
            await stub.SubmitOrder(xpb.SubmitOrderRequest(client_order_id="x"), timeout=10)
        except grpc.aio.AioRpcError as error:
            seen_errors.append(error.details() or "")
    for svc in (wallets, rejected):
        async with grpc.aio.insecure_channel(svc.address) as channel:
            stub_w = wallets_pb2_grpc.WalletsServiceStub(channel)
            await stub_w.CreateWallet(
                wpb.CreateWalletRequest(
                    wallet=wpb.Wallet(
                        wallet_id="cb",
                        display_name="Coinbase",
                        kind=wpb.WALLET_KIND_VENUE_ACCOUNT,
                        venue=common_pb2.VENUE_COINBASE,
                        account_id="cb-main",
                    )
                )
            )
            try:
                run = (await stub_w.Reconcile(wpb.ReconcileRequest(all=True), timeout=20)).run
                seen_errors.append(run.error)
            except grpc.aio.AioRpcError as error:
                seen_errors.append(error.details() or "")
    assert fake.auth_failures > 0, "the unknown key never reached Coinbase"
    assert fake.accounts.calls > 0, "the known key never listed the accounts"

    texts = {svc.log_path.name: svc.log() for svc in (execution, wallets, rejected)}
    for svc in (execution, wallets, rejected):
        texts[f"{svc.log_path.stem} /metrics"] = await asyncio.to_thread(_metrics, svc.metrics_port)
    texts["error messages"] = "\n".join(seen_errors)
    assert "Span" in texts["execution.log"] or '"trace_id"' in texts["execution.log"]
    for name, secret in (
        ("canary", keys.private_pem),
        ("unknown canary", unknown_keys.private_pem),
    ):
        pieces = _pieces(secret)
        leaks = [
            (where, piece) for where, text in texts.items() for piece in pieces if piece in text
        ]
        assert not leaks, f"the {name} secret leaked: {leaks[:3]}"
    print(f"searched {sum(len(t) for t in texts.values()):,} characters in {len(texts)} places")
