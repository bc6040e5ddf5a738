"""`python -m tradeplane.execution.entrypoints` (same as `python -m tradeplane.execution`)."""

from tradeplane.execution.entrypoints.bootstrap import main

if __name__ == "__main__":
    main()
