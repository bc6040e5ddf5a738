"""`python -m tradeplane.backtest [serve|migrate|worker]` (configuration from the environment)."""

from tradeplane.backtest.entrypoints.bootstrap import main

if __name__ == "__main__":
    main()
