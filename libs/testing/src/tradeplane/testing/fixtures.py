"""The pytest plugin: real PostgreSQL and Redis servers, an isolated database per test.

Load it with `pytest_plugins = ["tradeplane.testing.fixtures"]` in the root conftest.py.

Fixtures
- postgres_url (session): admin URL (postgresql://, superuser, maintenance db) of a real server.
- postgres_database_url: a fresh, empty PostgreSQL database for this test, dropped afterwards.
- database_url: parametrized ["sqlite", "postgres"]: the same test runs against a fresh SQLite
  file under tmp_path and against a fresh PostgreSQL database. URLs are plain (postgresql://,
  sqlite:///); tradeplane.runtime.db normalises them to the async drivers.
- redis_server_url (session): URL of a real Redis server, database 0 (do not flush it).
- redis_url: redis://host:port/<n>, a Redis DATABASE NUMBER leased for this test alone (empty at
  start, flushed afterwards), so FLUSHDB is safe; FLUSHALL is not.
- free_port (a plain function, also importable from tradeplane.testing); pytest-asyncio already
  provides the unused_tcp_port fixture.

Tests using Postgres/Redis are marked `postgres` / `redis` (deselect with -m "not postgres").
When no server can be found or started, they are skipped with a reason saying what to install.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tradeplane.testing.isolation import postgres_database, redis_database
from tradeplane.testing.ports import free_port
from tradeplane.testing.servers import Server, ServerUnavailable, find_postgres, find_redis

__all__ = ["free_port"]

_POSTGRES_FIXTURES = {"postgres_url", "postgres_database_url"}
_REDIS_FIXTURES = {"redis_server_url", "redis_url"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgres: needs a real PostgreSQL server")
    config.addinivalue_line("markers", "redis: needs a real Redis server")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & _POSTGRES_FIXTURES:
            item.add_marker(pytest.mark.postgres)
        if names & _REDIS_FIXTURES:
            item.add_marker(pytest.mark.redis)


def _server(find: Callable[[], Server]) -> Iterator[Server]:
    try:
        server = find()
    except ServerUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def _postgres_server() -> Iterator[Server]:
    yield from _server(find_postgres)


@pytest.fixture(scope="session")
def _redis_server() -> Iterator[Server]:
    yield from _server(find_redis)


@pytest.fixture(scope="session")
def postgres_url(_postgres_server: Server) -> str:
    return _postgres_server.url


@pytest.fixture
def postgres_database_url(postgres_url: str) -> Iterator[str]:
    with postgres_database(postgres_url) as url:
        yield url


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    # Looked up lazily so SQLite-only runs (-m "not postgres") never need a server.
    admin_url: str = request.getfixturevalue("postgres_url")
    with postgres_database(admin_url) as url:
        yield url


@pytest.fixture(scope="session")
def redis_server_url(_redis_server: Server) -> str:
    return _redis_server.url


@pytest.fixture
def redis_url(redis_server_url: str) -> Iterator[str]:
    with redis_database(redis_server_url) as url:
        yield url
