"""Execution metrics (Prometheus, default registry; served on METRICS_PORT with the shared
grpc_server_* series). Names, labels and label values: the metrics contract in
docs/observability.md."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram

from tradeplane.execution.domain.risk import RiskRule

if TYPE_CHECKING:
    from tradeplane.execution.service_layer.queries import ExecutionQueries

ORDERS_SUBMITTED = Counter(
    "execution_orders_submitted_total",
    "Order intents committed (new orders; idempotent retries not counted)",
    ["venue", "order_type", "side"],
)
ORDER_UPDATES = Counter(
    "execution_order_updates_total", "Order transitions into a status", ["venue", "status"]
)
FILLS = Counter(
    "execution_fills_total", "Fills applied (exactly once)", ["venue", "product", "side"]
)
FILLS_DUPLICATE = Counter(
    "execution_fills_duplicate_total", "Fill reports ignored because already applied", ["venue"]
)
TRADE_BLOCKED = Counter("execution_risk_blocks_total", "Orders refused by risk", ["rule"])
SUBMIT_TO_ACK = Histogram(
    "execution_order_ack_seconds",
    "From the committed intent to the recorded venue acknowledgement",
    ["venue"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
VENUE_REQUEST_SECONDS = Histogram(
    "execution_venue_request_seconds",
    "Venue API call duration, by operation (submit, cancel)",
    ["venue", "operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
MARKET_DATA_UP = Gauge("execution_market_data_up", "1 while market data flows, else 0")
EVENTS_LAST_SEQ = Gauge("execution_events_last_seq", "Last outbox seq committed by this process")

# State gauges, refreshed from the database by the service's metrics loop.
OPEN_ORDERS = Gauge("execution_open_orders", "Orders in OPEN or PARTIALLY_FILLED", ["venue"])
OPEN_POSITIONS = Gauge(
    "execution_open_positions", "Positions with a non-zero quantity", ["account"]
)
REALIZED_PNL = Gauge("execution_realized_pnl", "Realised P&L in the quote currency", ["account"])
UNREALIZED_PNL = Gauge("execution_unrealized_pnl", "Unrealised P&L marked to market", ["account"])
TRADING_STATE = Gauge(
    "execution_trading_state",
    "1 for the account's current trading state, 0 for the others (account=global: service-wide)",
    ["account", "state"],
)
TRADING_STATES = ("ACTIVE", "REDUCING", "HALTED")


def init_venue(venue: str) -> None:
    """Every label set of the configured venue at 0, so panels show 0 rather than nothing."""
    OPEN_ORDERS.labels(venue)
    FILLS_DUPLICATE.labels(venue)
    SUBMIT_TO_ACK.labels(venue)
    for operation in ("submit", "cancel"):
        VENUE_REQUEST_SECONDS.labels(venue, operation)
    for order_type in ("MARKET", "LIMIT", "STOP_LIMIT", "BRACKET"):
        for side in ("BUY", "SELL"):
            ORDERS_SUBMITTED.labels(venue, order_type, side)
    for status in ("OPEN", "PARTIALLY_FILLED", "FILLED", "CANCELED", "REJECTED", "EXPIRED"):
        ORDER_UPDATES.labels(venue, status)


def set_trading_state(account: str, state: str) -> None:
    for s in TRADING_STATES:
        TRADING_STATE.labels(account, s).set(1 if s == state else 0)


for _rule in RiskRule:  # every rule at 0 from the start
    TRADE_BLOCKED.labels(_rule.value)


# Series per account are bounded: the gauges cover at most this many accounts.
MAX_ACCOUNTS = 1000


async def refresh_state(queries: ExecutionQueries, venue: str) -> None:
    """Set the state gauges from the database (accounts, positions, P&L, kill switch)."""
    now = datetime.now(UTC)
    accounts, token = [], ""
    while True:
        page, token = await queries.accounts(500, token)
        accounts += page
        if not token or len(accounts) >= MAX_ACCOUNTS:
            break
    open_orders = 0
    global_state = (await queries.trading_state("")).global_state
    set_trading_state("global", global_state.value)
    for account in accounts:
        snapshot, _ = await queries.portfolio(account.account_id, now)
        view = await queries.trading_state(account.account_id)
        open_orders += snapshot.open_order_count
        OPEN_POSITIONS.labels(account.account_id).set(snapshot.open_position_count)
        REALIZED_PNL.labels(account.account_id).set(float(snapshot.realized_pnl))
        UNREALIZED_PNL.labels(account.account_id).set(float(snapshot.unrealized_pnl))
        state = view.account_state or view.global_state
        set_trading_state(account.account_id, state.value)
    OPEN_ORDERS.labels(venue).set(open_orders)
