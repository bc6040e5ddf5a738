"""`python -m tradeplane.wallets.entrypoints` (same as `python -m tradeplane.wallets`)."""

from tradeplane.wallets.entrypoints.bootstrap import main

if __name__ == "__main__":
    main()
