"""The Coinbase Advanced Trade market-data feed (`MARKET_FEED=coinbase`).

- config: CoinbaseConfig, the feed's knobs (built from MarketSettings in bootstrap)
- websocket: CoinbaseFeed (implements TickFeed): connect, subscribe, reconnect with jittered
  backoff, heartbeat timeout, sequence-gap detection
- refill: GapRefiller, rewrites the candles of a gap from the REST candles endpoint
- http: CoinbaseRestClient, the public REST candles endpoint
- parsing, symbols: the documented JSON shapes -> domain values; product/granularity names
- auth.jwt: JWTs for authenticated subscriptions and REST calls (CDP API keys)
"""
