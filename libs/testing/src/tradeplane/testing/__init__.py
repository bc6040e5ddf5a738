"""Shared test support: real PostgreSQL/Redis servers, isolated databases, free ports.

The pytest plugin is tradeplane.testing.fixtures (see its docstring for the fixtures).
"""

from tradeplane.testing.isolation import postgres_database, redis_database
from tradeplane.testing.ports import free_port, port_is_open, wait_for_port
from tradeplane.testing.servers import (
    Server,
    ServerUnavailable,
    find_postgres,
    find_redis,
    libpq_url,
    postgres_bindir,
    start_throwaway_postgres,
    start_throwaway_redis,
)

__all__ = [
    "Server",
    "ServerUnavailable",
    "find_postgres",
    "find_redis",
    "free_port",
    "libpq_url",
    "port_is_open",
    "postgres_bindir",
    "postgres_database",
    "redis_database",
    "start_throwaway_postgres",
    "start_throwaway_redis",
    "wait_for_port",
]
