from tradeplane.backtest.adapters.orm import metadata
from tradeplane.backtest.migrations import VERSION_TABLE
from tradeplane.runtime.db import alembic_env

alembic_env.run(metadata, version_table=VERSION_TABLE)
