"""The one-machine launcher behind ``make up``.

``python -m tradeplane.platform up`` starts every installed service (and the gateway) as its own
process on the embedded default (SQLite under ``var/``, the in-process cache, the simulated feed,
the paper venue, auth disabled), waits until each reports SERVING, prints the addresses and
writes them to ``var/endpoints.json``. ``status`` health-checks a running platform.
"""

from tradeplane.platform.registry import SERVICES, ServiceSpec

__all__ = ["SERVICES", "ServiceSpec"]
