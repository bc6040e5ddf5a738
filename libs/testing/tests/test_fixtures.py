"""The test-support plugin itself: isolation of the per-test databases, server discovery and the
throwaway servers started from local binaries."""

from __future__ import annotations

import shutil
import socket
from urllib.parse import urlsplit

import psycopg
import pytest
import redis

from tradeplane.testing import (
    ServerUnavailable,
    find_postgres,
    find_redis,
    free_port,
    port_is_open,
    postgres_bindir,
    postgres_database,
    redis_database,
    servers,
    start_throwaway_postgres,
    start_throwaway_redis,
)
from tradeplane.testing.isolation import LEASE_KEY_PREFIX
from tradeplane.testing.servers import libpq_url


def _tables(url: str) -> list[str]:
    if url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return [r[0] for r in rows]


def _create_probe_table(url: str) -> None:
    if url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute("CREATE TABLE probe (id INTEGER PRIMARY KEY)")
        return
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE probe (id INTEGER PRIMARY KEY)")


@pytest.mark.parametrize("attempt", [1, 2])
def test_each_test_gets_a_fresh_empty_database(database_url: str, attempt: int) -> None:
    assert _tables(database_url) == []
    _create_probe_table(database_url)  # would fail on attempt 2 if the database were reused
    assert _tables(database_url) == ["probe"]


def test_database_url_is_plain_sqlite_or_libpq(database_url: str) -> None:
    assert database_url.startswith(("sqlite:///", "postgresql://"))


def test_a_postgres_database_is_dropped_after_use(postgres_url: str) -> None:
    with postgres_database(postgres_url) as url:
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(url) as held:  # a leftover connection must not block the DROP
            held.execute("SELECT 1")
    with psycopg.connect(postgres_url) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    assert found is None


def test_redis_url_is_a_leased_empty_database(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.connection_pool.connection_kwargs["db"] != 0
        assert client.dbsize() == 0
        client.set("x", "1")
        client.flushdb()  # allowed: the database is ours alone
    finally:
        client.close()


def test_concurrent_redis_leases_are_isolated_and_released(redis_server_url: str) -> None:
    admin = redis.Redis.from_url(redis_server_url)
    try:
        with redis_database(redis_server_url) as a, redis_database(redis_server_url) as b:
            assert a != b
            ra, rb = redis.Redis.from_url(a), redis.Redis.from_url(b)
            ra.set("only-in-a", "1")
            assert rb.get("only-in-a") is None
            number = ra.connection_pool.connection_kwargs["db"]
            assert admin.exists(f"{LEASE_KEY_PREFIX}{number}") == 1
            ra.close()
            rb.close()
        assert admin.exists(f"{LEASE_KEY_PREFIX}{number}") == 0
        leftover = redis.Redis.from_url(a)
        assert leftover.dbsize() == 0  # flushed when given back
        leftover.close()
    finally:
        admin.close()


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
    assert not port_is_open("127.0.0.1", port)


def test_an_env_url_that_does_not_answer_is_an_error_not_a_skip(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_DATABASE_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    monkeypatch.setenv("TEST_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(RuntimeError, match="TEST_DATABASE_URL"):
        find_postgres()
    with pytest.raises(RuntimeError, match="TEST_REDIS_URL"):
        find_redis()


@pytest.mark.slow
def test_without_env_or_local_servers_throwaway_servers_are_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TEST_DATABASE_URL", raising=False)
    monkeypatch.delenv("TEST_REDIS_URL", raising=False)
    monkeypatch.setattr(
        servers, "LOCAL_POSTGRES_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/p"
    )
    monkeypatch.setattr(servers, "LOCAL_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    monkeypatch.setattr(servers, "docker_reachable", lambda: False)
    if postgres_bindir() is None or shutil.which("redis-server") is None:
        pytest.skip("needs the PostgreSQL and Redis server binaries")
    for server in (find_postgres(), find_redis()):
        try:
            assert server.source == "throwaway"
        finally:
            server.stop()


def test_without_any_server_the_reason_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TEST_DATABASE_URL", raising=False)
    monkeypatch.delenv("TEST_REDIS_URL", raising=False)
    monkeypatch.setattr(
        servers, "LOCAL_POSTGRES_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/p"
    )
    monkeypatch.setattr(servers, "LOCAL_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    monkeypatch.setattr(servers, "docker_reachable", lambda: False)
    monkeypatch.setattr(servers, "postgres_bindir", lambda: None)  # as if not installed
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ServerUnavailable, match="apt-get install postgresql"):
        find_postgres()
    with pytest.raises(ServerUnavailable, match="apt-get install redis-server"):
        find_redis()


def test_libpq_url_drops_the_sqlalchemy_driver() -> None:
    assert libpq_url("postgresql+psycopg://u:p@h:5/d") == "postgresql://u:p@h:5/d"
    assert libpq_url("postgres://u@h/d") == "postgresql://u@h/d"


@pytest.mark.slow
def test_throwaway_postgres_starts_from_local_binaries_and_is_removed() -> None:
    if postgres_bindir() is None:
        pytest.skip("no PostgreSQL server binaries (apt-get install postgresql)")
    server = start_throwaway_postgres()
    try:
        assert server.source == "throwaway"
        with postgres_database(server.url) as url, psycopg.connect(url) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
        assert server.workdir is not None and (server.workdir / "data" / "PG_VERSION").exists()
    finally:
        server.stop()
    assert not port_is_open("127.0.0.1", _port(server.url))
    assert not server.workdir.exists()


@pytest.mark.slow
def test_throwaway_redis_starts_from_local_binaries_and_stops() -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server binary (apt-get install redis-server)")
    server = start_throwaway_redis()
    try:
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        client.close()
    finally:
        server.stop()
    assert not port_is_open("127.0.0.1", _port(server.url))
    assert server.workdir is not None and not server.workdir.exists()


def _port(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port
