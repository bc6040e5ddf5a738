"""Use cases and ports of the market service."""
