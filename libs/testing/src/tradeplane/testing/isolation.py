"""One isolated database per test: a fresh PostgreSQL database, or a leased Redis database number.

Redis isolation is by database NUMBER, not by key prefix, so a test may FLUSHDB (or anything
else database-wide) safely. Numbers 1..N-1 are leased with `SET NX` on a key in database 0, so
concurrent test runs against the same server (several developers, pytest-xdist workers) never
get the same number; a lease expires by itself if a run dies. Each leased database is flushed
before it is handed out and when it is given back. Database 0 is never handed out.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import psycopg
import redis
from psycopg import sql
from sqlalchemy.engine import make_url

from tradeplane.testing.servers import libpq_url

LEASE_KEY_PREFIX = "tradeplane:testing:redis-db-lease:"
LEASE_SECONDS = 900


def _database_url(admin_url: str, name: str) -> str:
    return make_url(libpq_url(admin_url)).set(database=name).render_as_string(hide_password=False)


@contextlib.contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """CREATE DATABASE tp_<random>; yield its postgresql:// URL; DROP ... WITH (FORCE) after."""
    name = f"tp_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(libpq_url(admin_url), autocommit=True, connect_timeout=5) as conn:
        # template0: nobody can be connected to it, unlike template1 (CREATE would fail then).
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    try:
        yield _database_url(admin_url, name)
    finally:
        with psycopg.connect(libpq_url(admin_url), autocommit=True, connect_timeout=5) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _redis_database_count(client: redis.Redis) -> int:
    try:
        return int(str(client.config_get("databases")["databases"]))
    except (redis.RedisError, KeyError, ValueError):
        return 16  # CONFIG may be disabled on managed servers; 16 is Redis' default


@contextlib.contextmanager
def redis_database(server_url: str, timeout: float = 60.0) -> Iterator[str]:
    """Lease a Redis database number on the server; yield redis://host:port/<n>; flush it after."""
    admin = redis.Redis.from_url(server_url, db=0, socket_timeout=5, socket_connect_timeout=5)
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    numbers = list(range(1, _redis_database_count(admin)))
    deadline = time.monotonic() + timeout
    number = None
    try:
        while number is None:
            random.shuffle(numbers)
            for candidate in numbers:
                if admin.set(f"{LEASE_KEY_PREFIX}{candidate}", owner, nx=True, ex=LEASE_SECONDS):
                    number = candidate
                    break
            else:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no free Redis database on the test server in {timeout}s")
                time.sleep(0.1)
        url = urlsplit(server_url)._replace(path=f"/{number}").geturl()
        database = redis.Redis.from_url(url, socket_timeout=5)
        try:
            database.flushdb()
            yield url
        finally:
            with contextlib.suppress(redis.RedisError):
                database.flushdb()
            database.close()
    finally:
        if number is not None:
            with contextlib.suppress(redis.RedisError):
                # Release only our own lease (it may have expired and been taken by another).
                if admin.get(f"{LEASE_KEY_PREFIX}{number}") == owner.encode():
                    admin.delete(f"{LEASE_KEY_PREFIX}{number}")
        admin.close()
