"""`python -m tradeplane.wallets [serve|migrate]` (configuration from the environment)."""

from tradeplane.wallets.entrypoints.bootstrap import main

if __name__ == "__main__":
    main()
