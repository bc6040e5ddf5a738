"""Storage (SQLAlchemy) and the market-data client of the backtest service."""
