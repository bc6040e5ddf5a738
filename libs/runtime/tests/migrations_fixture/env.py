"""A service's whole Alembic env.py: the shared runtime does the work."""

from tradeplane.runtime.db import alembic_env

alembic_env.run(target_metadata=None, version_table="alembic_version_fixture")
