"""Coinbase Advanced Trade client pieces shared by market, execution and wallets.

- jwt: CDP API key JWTs (ES256 / EdDSA), one per request or subscribe message
- rest: CoinbaseRest, an httpx client that signs each request, honours 429 Retry-After and
  retries 5xx / lost responses (callers make the request idempotent, e.g. client_order_id)
"""
