"""Authentication for the Coinbase Advanced Trade APIs (CDP API keys, JWT)."""
