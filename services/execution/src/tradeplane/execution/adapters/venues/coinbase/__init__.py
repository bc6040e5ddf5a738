"""The Coinbase Advanced Trade venue (`EXECUTION_VENUE=coinbase`).

- config: CoinbaseVenueConfig (built from ExecutionSettings in bootstrap)
- orders: domain orders <-> the documented JSON (order_configuration, orders, fills)
- venue: CoinbaseVenue (implements ExecutionVenue and ReconcilableVenue) over the shared
  tradeplane.coinbase REST client (JWT per request, 429/5xx/lost-response retries)
- user_channel: the `user` WebSocket channel (cumulative order state -> fills via REST)
"""
