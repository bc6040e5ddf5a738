"""Adapters: SQLAlchemy candle repository, feeds, cache codec."""
