"""`python -m tradeplane.execution [serve|migrate]` (configuration from the environment)."""

from tradeplane.execution.entrypoints.bootstrap import main

if __name__ == "__main__":
    main()
