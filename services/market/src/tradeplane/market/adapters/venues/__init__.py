"""Adapters for real trading venues (market data from exchanges)."""
