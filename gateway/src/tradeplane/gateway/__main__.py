"""`python -m tradeplane.gateway [serve]`: the gateway (configuration: docs/configuration.md)."""

from __future__ import annotations

from tradeplane.gateway.server import serve
from tradeplane.gateway.settings import GatewaySettings
from tradeplane.runtime.cli import service_main


def main() -> None:
    service_main(settings_cls=GatewaySettings, serve=serve, migrations_dir=None)


if __name__ == "__main__":
    main()
