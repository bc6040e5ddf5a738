"""Shared pieces of the Coinbase venue tests: a test CA (trustme) and CDP key, a FakeCoinbase
over HTTPS/WSS that checks JWTs, and the execution settings that point at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tradeplane.testing.fakes.coinbase import FakeCoinbase
from tradeplane.testing.fakes.coinbase_keys import KEY_NAME, CoinbaseKeys, make_keys

__all__ = ["KEY_NAME", "CoinbaseKeys", "make_keys"]


@pytest.fixture(scope="module")
def coinbase_keys(tmp_path_factory: pytest.TempPathFactory) -> CoinbaseKeys:
    return make_keys(tmp_path_factory.mktemp("coinbase"))


@pytest_asyncio.fixture(loop_scope="module")
async def fake_coinbase(coinbase_keys: CoinbaseKeys) -> AsyncIterator[FakeCoinbase]:
    fake = FakeCoinbase(
        heartbeat_interval=0.5,
        ssl_context=coinbase_keys.server_tls,
        jwt_public_key=coinbase_keys.public_pem,
        jwt_key_name=coinbase_keys.name,
    )
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


def coinbase_overrides(fake: FakeCoinbase, keys: CoinbaseKeys, **extra: Any) -> dict[str, Any]:
    """ExecutionSettings fields (lower case) for the coinbase venue against `fake`."""
    values: dict[str, Any] = {
        "execution_venue": "coinbase",
        "coinbase_api_key": keys.name,
        "coinbase_api_secret": keys.private_pem,
        "execution_coinbase_rest_url": fake.rest_url,
        "execution_coinbase_ws_url": fake.ws_url,
        "execution_coinbase_ca_file": keys.ca_file,
        "execution_coinbase_timeout_seconds": 1.0,
        "execution_coinbase_max_attempts": 4,
        "execution_coinbase_heartbeat_timeout_seconds": 3.0,
        "execution_reconcile_interval_seconds": 3600,
        "execution_reconcile_confirm_seconds": 0.2,
    }
    values.update(extra)
    return values
