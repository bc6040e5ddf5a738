"""The wallets service's domain metrics (Prometheus default registry)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge

if TYPE_CHECKING:
    from tradeplane.wallets.domain.reconciliation import ReconciliationRun

FILL_CONSUMER_CONNECTED = Gauge(
    "wallets_fill_consumer_connected",
    "1 while the fill consumer has an open StreamEvents stream to execution, else 0.",
)
FILL_CONSUMER_CURSOR = Gauge(
    "wallets_fill_consumer_cursor", "Last execution event seq whose fills are in the ledger."
)
FILL_CONSUMER_RECONNECTS = Counter(
    "wallets_fill_consumer_reconnects", "Times the fill consumer (re)connected to execution."
)
FILLS_POSTED = Counter("wallets_fills_posted", "Fills newly posted to the ledger.")
FILLS_REPLAYED = Counter(
    "wallets_fills_replayed", "Fills received again and recognised as already posted."
)
FILLS_REJECTED = Counter(
    "wallets_fills_rejected",
    "Fills that could not be posted (logged and skipped), by reason.",
    ["reason"],
)
FILL_STREAM_RESETS = Counter(
    "wallets_fill_stream_resets",
    "Times execution said the cursor was older than its retained outbox (events missed).",
)
FILLS_RECOVERED = Counter(
    "wallets_fills_recovered",
    "Fills missing from the ledger posted from ListFills after a stream reset.",
)
RECONCILIATION_RUNS = Counter(
    "wallets_reconciliation_runs",
    "Finished reconciliation runs per venue checked, by result (matched, discrepancies, failed).",
    ["venue", "result"],
)
RECONCILIATION_DISCREPANCIES = Gauge(
    "wallets_reconciliation_discrepancies",
    "Discrepancies beyond tolerance found by the latest run that checked the venue.",
    ["venue"],
)
RECONCILIATION_LAST_RUN = Gauge(
    "wallets_reconciliation_last_run_timestamp_seconds",
    "Unix time of the latest finished reconciliation run that checked the venue.",
    ["venue"],
)
LEDGER_ENTRIES = Counter(
    "wallets_ledger_entries", "Journal entries posted (replays not counted), by kind.", ["kind"]
)

_VENUES = ("paper", "coinbase", "solana", "evm")
_RESULTS = ("matched", "discrepancies", "failed")
_ENTRY_KINDS = (
    "deposit",
    "withdrawal",
    "internal_transfer",
    "trade",
    "fee",
    "settlement",
    "adjustment",
)
# Known label sets at 0 from the start, so panels and alerts see 0 rather than nothing.
for _venue in _VENUES:
    RECONCILIATION_DISCREPANCIES.labels(_venue)
    for _result in _RESULTS:
        RECONCILIATION_RUNS.labels(_venue, _result)
for _kind in _ENTRY_KINDS:
    LEDGER_ENTRIES.labels(_kind)
for _reason in ("unreadable", "conflict", "invalid"):
    FILLS_REJECTED.labels(_reason)


def record_run(run: ReconciliationRun, venue_of: Mapping[str, str]) -> None:
    """A finished run: one count per venue it checked, and that venue's discrepancy gauge."""
    now = time.time()
    found: dict[str, int] = dict.fromkeys(set(venue_of.values()), 0)
    for d in run.discrepancies:
        venue = venue_of.get(d.wallet_id)
        if venue is not None:
            found[venue] += 1
    for venue, count in found.items():
        RECONCILIATION_RUNS.labels(venue, run.status.value).inc()
        if run.status.value != "failed":  # a failed run found nothing out; keep the last figure
            RECONCILIATION_DISCREPANCIES.labels(venue).set(count)
        RECONCILIATION_LAST_RUN.labels(venue).set(now)


def count_entries(kinds: Iterable[str]) -> None:
    for kind in kinds:
        LEDGER_ENTRIES.labels(kind).inc()
