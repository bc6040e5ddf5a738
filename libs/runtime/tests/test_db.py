"""tradeplane.runtime.db against real servers: every `database_url` test runs twice, on a fresh
SQLite file and on a fresh PostgreSQL database."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from tradeplane.runtime.config import ServiceSettings
from tradeplane.runtime.db import (
    create_engine,
    create_session_factory,
    normalize_database_url,
    ping,
    run_migrations,
    sync_database_url,
)
from tradeplane.runtime.errors import Unavailable
from tradeplane.testing import free_port

MIGRATIONS = Path(__file__).parent / "migrations_fixture"
OTHER_MIGRATIONS = Path(__file__).parent / "migrations_fixture_other"

widgets = sa.table(
    "widgets",
    sa.column("id", sa.Integer),
    sa.column("name", sa.String),
    sa.column("price", sa.Numeric(20, 8)),
    sa.column("color", sa.String),
)
parts = sa.table(
    "parts", sa.column("id", sa.Integer), sa.column("widget_id"), sa.column("label", sa.String)
)


class PoolTestSettings(ServiceSettings):
    service_name: str = "pool-test"
    grpc_port: int = 0
    metrics_port: int = -1
    auth_mode: str = "disabled"  # type: ignore[assignment]


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    await asyncio.to_thread(run_migrations, database_url, MIGRATIONS)
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


async def table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))


# --- URLs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@db:5432/app", "postgresql+psycopg://u:p@db:5432/app"),
        ("postgres://u@db/app", "postgresql+psycopg://u@db/app"),
        ("postgresql+psycopg2://u@db/app", "postgresql+psycopg://u@db/app"),
        ("postgresql+psycopg://u@db/app", "postgresql+psycopg://u@db/app"),
        ("postgresql://u:p%40ss@db/app", "postgresql+psycopg://u:p%40ss@db/app"),
        ("sqlite:///var/market.db", "sqlite+aiosqlite:///var/market.db"),
        ("sqlite:////abs/market.db", "sqlite+aiosqlite:////abs/market.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ],
)
def test_normalize_database_url_picks_the_async_driver(given: str, expected: str) -> None:
    assert normalize_database_url(given) == expected


def test_sync_url_for_alembic_keeps_psycopg_and_plain_sqlite() -> None:
    assert sync_database_url("postgresql://u@db/app") == "postgresql+psycopg://u@db/app"
    assert sync_database_url("sqlite+aiosqlite:///x.db") == "sqlite:///x.db"


def test_unsupported_scheme_is_rejected() -> None:
    with pytest.raises(ValueError, match="mysql"):
        normalize_database_url("mysql://u@db/app")


# --- the same tests on SQLite and PostgreSQL ----------------------------------------------


async def test_migrations_build_the_schema_and_record_head_in_the_service_version_table(
    engine: AsyncEngine,
) -> None:
    assert {"widgets", "parts", "alembic_version_fixture"} <= await table_names(engine)
    assert "alembic_version" not in await table_names(engine)
    async with engine.connect() as conn:
        version = await conn.scalar(sa.text("SELECT version_num FROM alembic_version_fixture"))
    assert version == "0002"


async def test_running_migrations_again_changes_nothing(
    engine: AsyncEngine, database_url: str
) -> None:
    before = await table_names(engine)
    await asyncio.to_thread(run_migrations, database_url, MIGRATIONS)
    assert await table_names(engine) == before


async def test_two_services_share_one_database_with_their_own_version_tables(
    engine: AsyncEngine, database_url: str
) -> None:
    await asyncio.to_thread(run_migrations, database_url, OTHER_MIGRATIONS)
    assert {"widgets", "gadgets", "alembic_version_fixture", "alembic_version_other"} <= (
        await table_names(engine)
    )
    async with engine.connect() as conn:
        assert await conn.scalar(sa.text("SELECT version_num FROM alembic_version_other")) == (
            "other_0001"
        )
        assert await conn.scalar(sa.text("SELECT version_num FROM alembic_version_fixture")) == (
            "0002"
        )


async def test_insert_and_select_through_a_session(engine: AsyncEngine) -> None:
    sessions = create_session_factory(engine)
    async with sessions() as session, session.begin():
        await session.execute(
            sa.insert(widgets).values(id=1, name="sprocket", price=Decimal("12.34567891"))
        )
    async with sessions() as session:
        row = (await session.execute(sa.select(widgets).where(widgets.c.id == 1))).one()
    assert row.name == "sprocket"
    assert Decimal(row.price) == Decimal("12.34567891")
    assert row.color == "red"  # server default added by migration 0002 (batch ALTER on SQLite)


async def test_foreign_keys_are_enforced(engine: AsyncEngine) -> None:
    sessions = create_session_factory(engine)
    with pytest.raises(IntegrityError):
        async with sessions() as session, session.begin():
            await session.execute(sa.insert(parts).values(id=1, widget_id=999, label="orphan"))


async def test_concurrent_writers_all_commit(engine: AsyncEngine) -> None:
    """20 sessions writing at once: on SQLite this needs WAL + busy_timeout, not luck."""
    sessions = create_session_factory(engine)

    async def write(i: int) -> None:
        async with sessions() as session, session.begin():
            await session.execute(sa.insert(widgets).values(id=i, name=f"w{i}", price=i))
            await asyncio.sleep(0.01)  # hold the write transaction open a little

    await asyncio.gather(*(write(i) for i in range(20)))
    async with engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(widgets)) == 20


async def test_ping_answers_when_the_database_is_up(engine: AsyncEngine) -> None:
    await ping(engine)


# --- SQLite specifics ----------------------------------------------------------------------


async def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        async with engine.connect() as conn:
            assert await conn.scalar(sa.text("PRAGMA journal_mode")) == "wal"
            assert await conn.scalar(sa.text("PRAGMA foreign_keys")) == 1
            assert await conn.scalar(sa.text("PRAGMA busy_timeout")) == 5000
    finally:
        await engine.dispose()


async def test_sqlite_file_directories_are_created(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'var' / 'data' / 'svc.db'}"
    await asyncio.to_thread(run_migrations, url, MIGRATIONS)
    engine = create_engine(f"sqlite:///{tmp_path / 'other' / 'dir' / 'svc.db'}")
    try:
        await ping(engine)
    finally:
        await engine.dispose()
    assert (tmp_path / "var" / "data" / "svc.db").is_file()
    assert (tmp_path / "other" / "dir" / "svc.db").is_file()


# --- PostgreSQL specifics ------------------------------------------------------------------


async def test_postgres_pool_settings_are_applied(postgres_database_url: str) -> None:
    settings = PoolTestSettings(
        db_pool_size=1, db_max_overflow=0, db_pool_recycle_seconds=77, db_pool_pre_ping=True
    )
    engine = create_engine(postgres_database_url, settings)
    try:
        pool = engine.sync_engine.pool
        assert pool.size() == 1  # type: ignore[attr-defined]
        assert pool._recycle == 77
        assert pool._pre_ping is True
        async with engine.connect() as held:
            name = await held.scalar(sa.text("SELECT current_setting('application_name')"))
            assert name == "pool-test"
            # pool_size=1 and max_overflow=0: a second checkout must wait for the first.
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.5), engine.connect():
                    pass
        async with engine.connect() as conn:  # released: available again
            assert await conn.scalar(sa.text("SELECT 1")) == 1
    finally:
        await engine.dispose()


async def test_postgres_pre_ping_replaces_a_connection_the_server_killed(
    postgres_database_url: str,
) -> None:
    settings = PoolTestSettings(db_pool_size=1, db_max_overflow=0)
    engine = create_engine(postgres_database_url, settings)
    try:
        async with engine.connect() as conn:
            first_pid = await conn.scalar(sa.text("SELECT pg_backend_pid()"))
        async with create_engine(postgres_database_url).connect() as admin:
            await admin.execute(sa.text(f"SELECT pg_terminate_backend({int(first_pid)})"))
        async with engine.connect() as conn:  # the pooled connection is dead; pre-ping notices
            second_pid = await conn.scalar(sa.text("SELECT pg_backend_pid()"))
        assert second_pid != first_pid
    finally:
        await engine.dispose()


async def test_replicas_migrating_at_once_are_serialised(postgres_database_url: str) -> None:
    """Two processes start together against one database: the advisory lock makes the second
    wait and then find the schema at head, instead of failing on "table already exists"."""
    script = "import sys; from tradeplane.runtime.db import run_migrations; "
    script += "run_migrations(sys.argv[1], sys.argv[2])"
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            script,
            postgres_database_url,
            str(MIGRATIONS),
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    for process in processes:
        _, stderr = await process.communicate()
        assert process.returncode == 0, stderr.decode()[-2000:]
    engine = create_engine(postgres_database_url)
    try:
        async with engine.connect() as conn:
            versions = (
                await conn.scalars(sa.text("SELECT version_num FROM alembic_version_fixture"))
            ).all()
        assert versions == ["0002"]
    finally:
        await engine.dispose()


def test_migrating_a_dead_postgres_fails_instead_of_hanging() -> None:
    started = time.monotonic()
    with pytest.raises(sa.exc.OperationalError):
        run_migrations(f"postgresql://postgres@127.0.0.1:{free_port()}/nothing", MIGRATIONS)
    assert time.monotonic() - started < 3


async def test_ping_raises_unavailable_quickly_when_postgres_is_down() -> None:
    engine = create_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/nothing")
    started = time.monotonic()
    try:
        with pytest.raises(Unavailable):
            await ping(engine)
    finally:
        await engine.dispose()
    assert time.monotonic() - started < 3


async def test_ping_raises_unavailable_when_the_server_does_not_answer_in_time() -> None:
    # A listening socket that never speaks the protocol: the connect timeout must fire.
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    engine = create_engine(f"postgresql://postgres@127.0.0.1:{port}/nothing")
    started = time.monotonic()
    try:
        with pytest.raises(Unavailable):
            await ping(engine, timeout_seconds=1)
    finally:
        await engine.dispose()
        server.close()
    assert time.monotonic() - started < 3
