"""tradeplane gateway: browser WebSockets (`/ws/market`, `/ws/live`) and the JSON API (`/api`)
over the gRPC services. Entry point: `python -m tradeplane.gateway`."""
