"""Adapters of the execution service: repositories, venues, market-data client."""
