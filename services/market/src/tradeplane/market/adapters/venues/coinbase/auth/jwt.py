"""JWTs for Coinbase Advanced Trade: moved to the shared tradeplane.coinbase.jwt (execution
and wallets sign the same way); re-exported here for the feed's imports."""

from tradeplane.coinbase.jwt import LIFETIME_SECONDS, build_jwt, rest_jwt, ws_jwt

__all__ = ["LIFETIME_SECONDS", "build_jwt", "rest_jwt", "ws_jwt"]
