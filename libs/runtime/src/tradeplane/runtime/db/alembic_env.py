"""The body of every service's Alembic env.py, kept once here. A service's env.py is:

    from tradeplane.market.adapters.orm import metadata
    from tradeplane.runtime.db import alembic_env

    alembic_env.run(metadata, version_table="alembic_version_market")

The URL comes from the Alembic config's sqlalchemy.url (set by run_migrations), else from the
DATABASE_URL environment variable (so the plain `alembic` CLI works too).
"""

from __future__ import annotations

import os
import zlib
from typing import Any

import sqlalchemy as sa
from alembic import context
from sqlalchemy.pool import NullPool

from tradeplane.runtime.db.engine import (
    DEFAULT_CONNECT_TIMEOUT_SECONDS,
    sqlite_file_path,
    sync_database_url,
)


def _database_url() -> str:
    url = context.config.get_main_option("sqlalchemy.url") or os.environ.get("DATABASE_URL")
    if not url:
        raise RuntimeError(
            "no database URL: set sqlalchemy.url in the Alembic config or DATABASE_URL"
        )
    return sync_database_url(url)


def run(target_metadata: sa.MetaData | None, version_table: str) -> None:
    """Run the migrations Alembic asked for (online, or offline to print SQL)."""
    version_table = context.config.attributes.get("version_table", version_table)
    url = _database_url()
    is_sqlite = sa.make_url(url).get_backend_name() == "sqlite"
    options: dict[str, Any] = {
        "target_metadata": target_metadata,
        "version_table": version_table,
        # SQLite cannot ALTER most things; batch mode recreates the table instead.
        "render_as_batch": is_sqlite,
        "compare_type": True,
    }
    if context.is_offline_mode():
        context.configure(url=url, literal_binds=True, **options)
        with context.begin_transaction():
            context.run_migrations()
        return

    path = sqlite_file_path(url) if is_sqlite else None
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    # A dead Postgres must fail the startup, not hang it (libpq waits forever by default).
    connect_args = {} if is_sqlite else {"connect_timeout": DEFAULT_CONNECT_TIMEOUT_SECONDS}
    engine = sa.create_engine(url, poolclass=NullPool, connect_args=connect_args)
    try:
        with engine.connect() as connection:
            lock_key = None
            if not is_sqlite:
                # Replicas starting together must not migrate concurrently: a session-level
                # advisory lock, keyed by the version table, serialises them.
                lock_key = zlib.crc32(version_table.encode())
                connection.execute(sa.select(sa.func.pg_advisory_lock(lock_key)))
                connection.commit()
            try:
                context.configure(connection=connection, **options)
                with context.begin_transaction():
                    context.run_migrations()
                connection.commit()  # SQLite DDL is not wrapped by begin_transaction()
            finally:
                if lock_key is not None:
                    connection.rollback()
                    connection.execute(sa.select(sa.func.pg_advisory_unlock(lock_key)))
                    connection.commit()
    finally:
        engine.dispose()
