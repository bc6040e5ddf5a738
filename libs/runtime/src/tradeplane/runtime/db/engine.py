"""Async engine and session factories for Postgres (psycopg 3) and SQLite (aiosqlite)."""

from __future__ import annotations

import asyncio
import pathlib
from typing import Any, Protocol

from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    DisconnectionError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from tradeplane.runtime.errors import Unavailable
from tradeplane.runtime.tracing import instrument_engine

# Postgres connect timeout (seconds) so a dead server fails fast instead of hanging.
DEFAULT_CONNECT_TIMEOUT_SECONDS = 5
# How long SQLite waits on a locked database before "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 5000

_POSTGRES_SCHEMES = {"postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2"}
_POSTGRES_SCHEMES |= {"postgresql+asyncpg", "postgresql+pg8000", "postgresql+psycopg_async"}
_SQLITE_SCHEMES = {"sqlite", "sqlite+pysqlite", "sqlite+aiosqlite"}


class PoolSettings(Protocol):
    """The part of ServiceSettings the engine factory reads (any object with these works)."""

    @property
    def db_pool_size(self) -> int: ...
    @property
    def db_max_overflow(self) -> int: ...
    @property
    def db_pool_recycle_seconds(self) -> int: ...
    @property
    def db_pool_pre_ping(self) -> bool: ...


def _parse(url: str) -> URL:
    # "postgres://" is what Heroku-style providers hand out; SQLAlchemy has no dialect by that name.
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    return make_url(url)


def _render(url: URL) -> str:
    return url.render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    return _parse(url).get_backend_name() == "sqlite"


def normalize_database_url(url: str) -> str:
    """The async driver URL: postgres(ql)[+driver]:// -> postgresql+psycopg://,
    sqlite[+driver]:// -> sqlite+aiosqlite://. Anything else is rejected."""
    parsed = _parse(url)
    if parsed.drivername in _POSTGRES_SCHEMES:
        return _render(parsed.set(drivername="postgresql+psycopg"))
    if parsed.drivername in _SQLITE_SCHEMES:
        return _render(parsed.set(drivername="sqlite+aiosqlite"))
    raise ValueError(
        f"unsupported database URL scheme {parsed.drivername!r}: use postgresql://... or sqlite:///path"
    )


def sync_database_url(url: str) -> str:
    """The blocking-driver URL Alembic uses: psycopg 3 works sync too; SQLite uses pysqlite."""
    parsed = make_url(normalize_database_url(url))
    if parsed.get_backend_name() == "sqlite":
        return _render(parsed.set(drivername="sqlite"))
    return _render(parsed)


def sqlite_file_path(url: str) -> pathlib.Path | None:
    """The database file of a SQLite URL, or None for an in-memory database."""
    database = _parse(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return pathlib.Path(database)


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets readers run while one writer writes; foreign keys are off by default in SQLite.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL, much faster than FULL
    finally:
        cursor.close()


def create_engine(url: str, settings: PoolSettings | None = None) -> AsyncEngine:
    """An AsyncEngine for `url` (no I/O happens until first use).

    Postgres: pool size/overflow/recycle/pre-ping from `settings` (ServiceSettings or any object
    with the db_pool_* attributes); a connect timeout so a dead server fails fast.
    SQLite: WAL, foreign keys, busy timeout on every connection; creates the file's directory.
    """
    async_url = normalize_database_url(url)
    if make_url(async_url).get_backend_name() == "sqlite":
        path = sqlite_file_path(async_url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(async_url)
        event.listen(engine.sync_engine, "connect", _set_sqlite_pragmas)
        instrument_engine(engine)
        return engine

    kwargs: dict[str, Any] = {
        "connect_args": {"connect_timeout": DEFAULT_CONNECT_TIMEOUT_SECONDS},
        "pool_pre_ping": True,
    }
    if settings is not None:
        kwargs["pool_size"] = settings.db_pool_size
        kwargs["max_overflow"] = settings.db_max_overflow
        kwargs["pool_recycle"] = settings.db_pool_recycle_seconds
        kwargs["pool_pre_ping"] = settings.db_pool_pre_ping
        service_name = getattr(settings, "service_name", None)
        if service_name:  # shows up in pg_stat_activity
            kwargs["connect_args"]["application_name"] = str(service_name)
    engine = create_async_engine(async_url, **kwargs)
    instrument_engine(engine)
    return engine


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: objects stay readable after commit without a lazy reload,
    # which async sessions cannot do implicitly.
    return async_sessionmaker(engine, expire_on_commit=False)


def is_unavailable_error(exc: BaseException) -> bool:
    """True for a database that cannot be reached or dropped the connection (refused, reset,
    timed out, server shut down, SQLite busy): retryable, so callers get UNAVAILABLE."""
    return isinstance(exc, OperationalError | InterfaceError | DisconnectionError)


async def ping(engine: AsyncEngine, *, timeout_seconds: float = 5.0) -> None:
    """SELECT 1; raises errors.Unavailable when the database does not answer in time."""
    try:
        async with asyncio.timeout(timeout_seconds), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        backend = engine.url.get_backend_name()
        raise Unavailable(f"database ({backend}) unavailable: {type(exc).__name__}") from exc
