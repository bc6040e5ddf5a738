"""A second service's env.py: its own version table, so it can share a database with the first."""

from tradeplane.runtime.db import alembic_env

alembic_env.run(target_metadata=None, version_table="alembic_version_other")
