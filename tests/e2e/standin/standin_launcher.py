"""Runs the real launcher CLI with a registry of stand-in processes (see standin_service)."""

import sys

from tradeplane.platform.cli import main
from tradeplane.platform.registry import ServiceSpec

REGISTRY = (
    ServiceSpec("alpha", "standin_service", "grpc", 50951, 9951),
    ServiceSpec("beta", "standin_service", "grpc", 50952, 9952, depends_on=("alpha",)),
    ServiceSpec("ghost", "tradeplane_no_such_service", "grpc", 50953, 9953),
)

if __name__ == "__main__":
    sys.exit(main(registry=REGISTRY))
