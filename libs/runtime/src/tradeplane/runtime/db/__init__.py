"""Storage: async SQLAlchemy engines (Postgres via psycopg 3, SQLite via aiosqlite) and Alembic.

engine = create_engine(settings.database_url, settings)
await asyncio.to_thread(run_migrations, settings.database_url, MIGRATIONS_DIR)
sessions = create_session_factory(engine)
await ping(engine)  # raises errors.Unavailable when the database is down
"""

from tradeplane.runtime.db.engine import (
    PoolSettings,
    create_engine,
    create_session_factory,
    is_sqlite,
    is_unavailable_error,
    normalize_database_url,
    ping,
    sqlite_file_path,
    sync_database_url,
)
from tradeplane.runtime.db.migrations import alembic_config, run_migrations

__all__ = [
    "PoolSettings",
    "alembic_config",
    "create_engine",
    "create_session_factory",
    "is_sqlite",
    "is_unavailable_error",
    "normalize_database_url",
    "ping",
    "run_migrations",
    "sqlite_file_path",
    "sync_database_url",
]
