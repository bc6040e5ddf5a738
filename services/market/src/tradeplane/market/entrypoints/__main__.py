"""`python -m tradeplane.market.entrypoints` (same as `python -m tradeplane.market`)."""

from tradeplane.market.entrypoints.bootstrap import main

if __name__ == "__main__":
    main()
