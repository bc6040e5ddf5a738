"""The shared Coinbase client pieces: the CDP JWT (documented claims and headers, verifiable
with the public key) and the REST client's pacing. Retries on 429/5xx/lost answers are
tested through the execution venue against the fake (services/execution/tests)."""

from __future__ import annotations

import time

import jwt as pyjwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import SecretStr

from tradeplane.coinbase.jwt import rest_jwt
from tradeplane.coinbase.rest import CoinbaseRest


def test_rest_jwt_is_es256_bound_to_method_and_path() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    token = rest_jwt(
        SecretStr("keys/k1"),
        SecretStr(pem.replace("\n", "\\n")),  # as .env files carry it
        "post",
        "https://api.coinbase.com/api/v3/brokerage/orders?x=1",
    )
    header = pyjwt.get_unverified_header(token)
    claims = pyjwt.decode(token, key.public_key(), algorithms=["ES256"], issuer="cdp")
    assert header["alg"] == "ES256" and header["kid"] == "keys/k1" and header["nonce"]
    assert claims["sub"] == "keys/k1"
    assert claims["uri"] == "POST api.coinbase.com/api/v3/brokerage/orders"
    assert claims["exp"] - claims["nbf"] == 120


async def test_requests_are_paced_to_the_rate_limit() -> None:
    rest = CoinbaseRest("http://127.0.0.1:9", api_key=None, api_secret=None, max_rate=50)
    began = time.monotonic()
    for _ in range(11):
        await rest._pace()
    assert time.monotonic() - began >= 10 / 50 - 0.01  # 11 starts, 10 gaps of 20 ms
    await rest.aclose()
