"""tradeplane.execution: the order management system (orders, risk, venues, fills, events)."""
