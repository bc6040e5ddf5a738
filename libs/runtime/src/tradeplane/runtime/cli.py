"""The command line every service shares: `python -m tradeplane.<service> [serve|migrate]`.

`serve` (the default) runs the gRPC server until SIGTERM; `migrate` applies the service's
Alembic migrations and exits (the Helm chart runs it as a pre-install/pre-upgrade Job).
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from tradeplane.runtime.config import ServiceSettings, load_settings
from tradeplane.runtime.db import run_migrations
from tradeplane.runtime.logging import configure_logging
from tradeplane.runtime.server import run_service

S = TypeVar("S", bound=ServiceSettings)

log = logging.getLogger("tradeplane.runtime.cli")


def service_main(
    *,
    settings_cls: type[S],
    serve: Callable[[S], Awaitable[None]],
    migrations_dir: pathlib.Path | str | None,
    argv: Sequence[str] | None = None,
) -> None:
    """Parse the command, load settings once (failing fast), then serve or migrate."""
    name = settings_cls.model_fields["service_name"].default
    parser = argparse.ArgumentParser(
        prog=f"python -m tradeplane.{name}",
        description=f"The tradeplane {name} service; configuration comes from the environment "
        "(docs/configuration.md).",
    )
    parser.add_argument(
        "command",
        nargs="?",
        default="serve",
        choices=["serve", "migrate"],
        help="serve (default): run the gRPC server; migrate: apply database migrations and exit",
    )
    args = parser.parse_args(argv)
    settings = load_settings(settings_cls)
    if args.command == "migrate":
        configure_logging(settings.service_name, settings.log_level)
        if migrations_dir is None:
            log.info("no migrations for this service")
            return
        if not settings.database_url:
            print("DATABASE_URL: is required to migrate", file=sys.stderr)
            raise SystemExit(2)
        run_migrations(settings.database_url, migrations_dir)
        log.info("migrations applied", extra={"migrations": str(migrations_dir)})
        return
    run_service(lambda: serve(settings))
