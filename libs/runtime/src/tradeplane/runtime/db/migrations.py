"""Run a service's Alembic migrations programmatically (the same code path as `alembic upgrade`)."""

from __future__ import annotations

import pathlib
import threading

from alembic import command
from alembic.config import Config

from tradeplane.runtime.db.engine import sync_database_url

# Alembic installs its `context` proxy as module-global state, so two upgrades in one process
# must not overlap (e.g. two services' startups run via asyncio.to_thread at the same time).
_ALEMBIC_LOCK = threading.Lock()


def alembic_config(
    url: str, script_location: str | pathlib.Path, *, version_table: str | None = None
) -> Config:
    """An in-memory Alembic config: no alembic.ini needed. env.py reads the URL and the optional
    version-table override through tradeplane.runtime.db.alembic_env.run()."""
    config = Config()
    config.set_main_option("script_location", str(script_location))
    # ConfigParser interpolates "%", which percent-encoded passwords contain.
    config.set_main_option("sqlalchemy.url", sync_database_url(url).replace("%", "%%"))
    if version_table is not None:
        config.attributes["version_table"] = version_table
    return config


def run_migrations(
    url: str, script_location: str | pathlib.Path, *, version_table: str | None = None
) -> None:
    """`alembic upgrade head` for the migrations in `script_location` against `url`.

    Blocking: call it with `await asyncio.to_thread(run_migrations, ...)`. The version table is
    the one the service's env.py names (alembic_version_<service>) unless `version_table` is given.
    """
    config = alembic_config(url, script_location, version_table=version_table)
    with _ALEMBIC_LOCK:
        command.upgrade(config, "head")
