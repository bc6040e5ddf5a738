"""Root conftest: loads the shared fixtures (real Postgres/Redis, free ports) for every test dir."""

pytest_plugins = ["tradeplane.testing.fixtures"]
