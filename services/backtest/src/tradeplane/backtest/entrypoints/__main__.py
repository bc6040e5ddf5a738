"""`python -m tradeplane.backtest.entrypoints` (same as `python -m tradeplane.backtest`)."""

from tradeplane.backtest.entrypoints.bootstrap import main

if __name__ == "__main__":
    main()
