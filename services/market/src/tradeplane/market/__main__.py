"""`python -m tradeplane.market`: run the market service (configuration from the environment)."""

from tradeplane.market.entrypoints.bootstrap import main

if __name__ == "__main__":
    main()
