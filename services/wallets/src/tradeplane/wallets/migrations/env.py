from tradeplane.runtime.db import alembic_env
from tradeplane.wallets.adapters.orm import metadata
from tradeplane.wallets.migrations import VERSION_TABLE

alembic_env.run(metadata, version_table=VERSION_TABLE)
