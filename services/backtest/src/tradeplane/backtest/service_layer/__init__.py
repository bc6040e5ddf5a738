"""Use cases of the backtest service: runs, the worker, results queries."""
