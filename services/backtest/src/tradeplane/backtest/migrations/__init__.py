"""Alembic migrations of the backtest service (shipped inside the package)."""

import pathlib

MIGRATIONS_DIR = pathlib.Path(__file__).resolve().parent
VERSION_TABLE = "alembic_version_backtest"
