"""gRPC servicer, settings and composition root of the backtest service."""
