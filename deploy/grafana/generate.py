"""Writes deploy/grafana/dashboards/*.json: `python deploy/grafana/generate.py`.

The dashboards are generated so the six of them stay consistent (same variables, units and
query shapes); edit this file, not the JSON. tests/observability checks that the committed
JSON is what this script writes and runs every panel's PromQL against a real Prometheus.
Metric names: docs/observability.md ("metrics contract").
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

# A script beside its helper module, not a package: import it by directory.
from dashboard_kit import (
    Dashboard,
    query_variable,
    stat,
    target,
    targets,
    timeseries,
    value_map,
)

OUT_DIR = Path(__file__).parent / "dashboards"
R = "$__rate_interval"
# Codes a caller cannot cause with a bad request; the same list as the GrpcServerErrorRatioHigh
# alert in deploy/prometheus/rules/platform.yaml.
SERVER_ERROR_CODES = "Unknown|Internal|Unavailable|DataLoss|DeadlineExceeded"
SLO_SECONDS = "0.25"


def ratio(numerator: str, denominator: str) -> str:
    """numerator / denominator, with 0 (not "no data") where the numerator has no series yet."""
    return f"({numerator} or {denominator} * 0) / {denominator}"


def or_zero(expr: str) -> str:
    """`expr`, or 0 while the counter has no labelled series yet (nothing happened): for
    failure-only counters whose label values are only known when they first move."""
    return f"{expr} or vector(0)"


def grpc_panels(sel: str, by: str, legend: str) -> list[dict[str, Any]]:
    """Rate by method and code, p95 latency, for one service's gRPC metrics (`sel`)."""
    return [
        timeseries(
            "gRPC calls by method and code",
            [
                target(
                    f"sum by ({by}, grpc_code) (rate(grpc_server_handled_total{{{sel}}}[{R}]))",
                    f"{legend} {{{{grpc_code}}}}",
                )
            ],
            unit="reqps",
        ),
        timeseries(
            "gRPC p95 latency by method (unary)",
            [
                target(
                    f"histogram_quantile(0.95, sum by ({by}, le) (rate("
                    f'grpc_server_handling_seconds_bucket{{{sel}, grpc_type="unary"}}[{R}])))',
                    legend,
                )
            ],
            unit="s",
        ),
    ]


def overview() -> Dashboard:
    sel = 'job=~"$service", grpc_method=~"$method"'
    unary = f'{sel}, grpc_type="unary"'
    handled = f"rate(grpc_server_handled_total{{{sel}}}[{R}])"
    errors = f'rate(grpc_server_handled_total{{{sel}, grpc_code=~"{SERVER_ERROR_CODES}"}}[{R}])'
    non_ok = f'rate(grpc_server_handled_total{{{sel}, grpc_code!="OK"}}[{R}])'
    bucket = f"rate(grpc_server_handling_seconds_bucket{{{unary}}}[{R}])"
    started = f"sum by (job, grpc_method) (grpc_server_started_total{{{sel}}})"
    finished = f"sum by (job, grpc_method) (grpc_server_handled_total{{{sel}}})"
    d = Dashboard(
        "tradeplane-overview",
        "Tradeplane / Platform overview",
        "Request rates, error ratios and latency of every service and method "
        "(grpc-ecosystem server metrics).",
        [
            query_variable("service", "Service", "label_values(grpc_server_handled_total, job)"),
            query_variable(
                "method",
                "Method",
                'label_values(grpc_server_handled_total{job=~"$service"}, grpc_method)',
            ),
        ],
    )
    d.row("Health").add(
        stat(
            "Targets up",
            'sum(up{job=~"$service"})',
            description="Scrape targets of the selected services that answer.",
        ),
        stat(
            "Targets down",
            'count(up{job=~"$service"} == 0) or vector(0)',
            thresholds=[(None, "green"), (1, "red")],
        ),
        stat("Request rate", f"sum({handled})", unit="reqps"),
        stat(
            "Server error ratio",
            ratio(f"sum({errors})", f"sum({handled})"),
            unit="percentunit",
            thresholds=[(None, "green"), (0.01, "orange"), (0.05, "red")],
            description=f"Share of calls that ended with {SERVER_ERROR_CODES}.",
        ),
        stat(
            "Unary p99",
            f"histogram_quantile(0.99, sum by (le) ({bucket}))",
            unit="s",
            thresholds=[(None, "green"), (0.25, "orange"), (1, "red")],
        ),
        stat(
            "Unary calls within 250 ms (1h)",
            f'sum(rate(grpc_server_handling_seconds_bucket{{{unary}, le="{SLO_SECONDS}"}}[1h]))'
            f" / sum(rate(grpc_server_handling_seconds_count{{{unary}}}[1h]))",
            unit="percentunit",
            thresholds=[(None, "red"), (0.99, "green")],
            description="The latency SLO is 99% of unary calls within 250 ms over 30 days.",
        ),
    )
    d.row("Requests").add(
        timeseries(
            "Request rate by service",
            [target(f"sum by (job) ({handled})", "{{job}}")],
            unit="reqps",
        ),
        timeseries(
            "Request rate by method",
            [
                target(
                    f"sum by (job, grpc_method) (rate(grpc_server_started_total{{{sel}}}[{R}]))",
                    "{{job}} {{grpc_method}}",
                )
            ],
            unit="reqps",
        ),
        timeseries(
            "Responses by code",
            [target(f"sum by (grpc_code) ({handled})", "{{grpc_code}}")],
            unit="reqps",
            stack=True,
        ),
        timeseries(
            "In-flight calls and open streams",
            [
                target(
                    f"{started} - ({finished} or {started} * 0)",
                    "{{job}} {{grpc_method}}",
                )
            ],
            description="Calls started and not yet finished: mostly long-lived streams "
            "(a method whose calls never finished yet has no handled series: counted as 0).",
        ),
        timeseries(
            "Stream messages sent and received",
            targets(
                (
                    f"sum by (job, grpc_method) (rate(grpc_server_msg_sent_total{{{sel}}}[{R}]))",
                    "sent {{job}} {{grpc_method}}",
                ),
                (
                    f"sum by (job, grpc_method) "
                    f"(rate(grpc_server_msg_received_total{{{sel}}}[{R}]))",
                    "received {{job}} {{grpc_method}}",
                ),
            ),
            unit="short",
            width=24,
        ),
    )
    d.row("Errors").add(
        timeseries(
            "Server error ratio by service",
            [
                target(
                    ratio(f"sum by (job) ({errors})", f"sum by (job) ({handled})"),
                    "{{job}}",
                )
            ],
            unit="percentunit",
            description=f"Calls ending with {SERVER_ERROR_CODES}; alert above 5%.",
        ),
        timeseries(
            "Non-OK ratio by method",
            [
                target(
                    ratio(
                        f"sum by (job, grpc_method) ({non_ok})",
                        f"sum by (job, grpc_method) ({handled})",
                    ),
                    "{{job}} {{grpc_method}}",
                )
            ],
            unit="percentunit",
            description="Every code but OK, client errors included.",
        ),
        timeseries(
            "Non-OK responses by service and code",
            [target(f"sum by (job, grpc_code) ({non_ok})", "{{job}} {{grpc_code}}")],
            unit="reqps",
            width=24,
        ),
    )
    d.row("Latency (unary calls)").add(
        timeseries(
            "p50 / p95 / p99 by service",
            targets(
                *(
                    (f"histogram_quantile({q}, sum by (job, le) ({bucket}))", f"p{p} {{{{job}}}}")
                    for q, p in (("0.5", 50), ("0.95", 95), ("0.99", 99))
                )
            ),
            unit="s",
        ),
        timeseries(
            "Share of unary calls within 250 ms",
            [
                target(
                    f"sum by (job) (rate(grpc_server_handling_seconds_bucket"
                    f'{{{unary}, le="{SLO_SECONDS}"}}[{R}]))'
                    f" / sum by (job) (rate(grpc_server_handling_seconds_count{{{unary}}}[{R}]))",
                    "{{job}}",
                )
            ],
            unit="percentunit",
            min_zero=False,
        ),
        timeseries(
            "p95 by method",
            [
                target(
                    f"histogram_quantile(0.95, sum by (job, grpc_method, le) ({bucket}))",
                    "{{job}} {{grpc_method}}",
                )
            ],
            unit="s",
        ),
        timeseries(
            "p99 by method",
            [
                target(
                    f"histogram_quantile(0.99, sum by (job, grpc_method, le) ({bucket}))",
                    "{{job}} {{grpc_method}}",
                )
            ],
            unit="s",
        ),
    )
    cache = 'tradeplane_cache_requests_total{job=~"$service"}'
    cache_hits = 'tradeplane_cache_requests_total{job=~"$service", result="hit"}'
    d.row("Caches").add(
        timeseries(
            "Cache hit ratio",
            [
                target(
                    ratio(
                        f"sum by (job, cache) (rate({cache_hits}[{R}]))",
                        f"sum by (job, cache) (rate({cache}[{R}]))",
                    ),
                    "{{job}} {{cache}}",
                )
            ],
            unit="percentunit",
        ),
        timeseries(
            "Cache loads by result",
            [
                target(
                    f"sum by (job, cache, result) "
                    f'(rate(tradeplane_cache_loads_total{{job=~"$service"}}[{R}]))',
                    "{{job}} {{cache}} {{result}}",
                )
            ],
            unit="ops",
            description="Loader calls on a miss; single-flight makes one per key at a time.",
        ),
        timeseries(
            "Cache fallbacks (Redis down)",
            [
                target(
                    or_zero(
                        f"sum by (job, cache) "
                        f'(rate(tradeplane_cache_fallbacks_total{{job=~"$service"}}[{R}]))'
                    ),
                    "{{job}} {{cache}}",
                )
            ],
            unit="ops",
            description="Cache operations served in-process while the shared Redis was down.",
            width=24,
        ),
    )
    return d


def market() -> Dashboard:
    inst = 'instance=~"$instance"'
    ticks = f'market_ticks_ingested_total{{{inst}, product=~"$product"}}'
    subscribers = f"market_stream_subscribers{{{inst}}}"
    d = Dashboard(
        "tradeplane-market",
        "Tradeplane / Market data",
        "Feed health (ticks, lag, restarts), stream subscribers and the market API.",
        [
            query_variable("instance", "Instance", "label_values(market_feed_up, instance)"),
            query_variable(
                "product",
                "Product",
                'label_values(market_ticks_ingested_total{instance=~"$instance"}, product)',
            ),
        ],
    )
    d.row("Feed").add(
        stat(
            "Feed status",
            f"min(market_feed_up{{{inst}}})",
            mappings=value_map({"1": ("UP", "green"), "0": ("DOWN", "red")}),
            thresholds=[(None, "red"), (1, "green")],
        ),
        stat("Ticks/s", f"sum(rate({ticks}[{R}]))", unit="short"),
        stat(
            "Feed lag",
            f"max(market_feed_lag_seconds{{{inst}}})",
            unit="s",
            thresholds=[(None, "green"), (1, "orange"), (5, "red")],
        ),
        stat(
            "Feed restarts",
            f"sum(increase(market_feed_restarts_total{{{inst}}}[$__range]))",
            thresholds=[(None, "green"), (1, "orange")],
            description="Times the feed task died and was restarted in the time range.",
        ),
        stat("Stream subscribers", f"sum({subscribers})"),
        stat(
            "Indicator cache hit ratio",
            ratio(
                f"sum(rate(market_indicator_cache_requests_total"
                f'{{{inst}, result="hit"}}[$__range]))',
                f"sum(rate(market_indicator_cache_requests_total{{{inst}}}[$__range]))",
            ),
            unit="percentunit",
        ),
        timeseries(
            "Ticks/s by product",
            [target(f"sum by (product) (rate({ticks}[{R}]))", "{{product}}")],
            stack=True,
        ),
        timeseries(
            "Feed lag",
            [target(f"max by (instance) (market_feed_lag_seconds{{{inst}}})", "{{instance}}")],
            unit="s",
            description="Exchange time of a tick to its ingestion; alert above 5 s.",
        ),
        timeseries(
            "Feed restarts and reconnects",
            targets(
                (
                    f"sum by (instance) (increase(market_feed_restarts_total{{{inst}}}[{R}]))",
                    "restarts {{instance}}",
                ),
                (f"min by (instance) (market_feed_up{{{inst}}})", "up {{instance}}"),
            ),
        ),
        timeseries(
            "Late trades and candle write errors",
            targets(
                (
                    f"sum by (instance) (rate(market_trades_too_late_total{{{inst}}}[{R}]))",
                    "late trades {{instance}}",
                ),
                (
                    f"sum by (instance) (rate(market_candle_write_errors_total{{{inst}}}[{R}]))",
                    "candle write errors {{instance}}",
                ),
            ),
            unit="ops",
        ),
    )
    d.row("Venue feed (Coinbase)").add(
        timeseries(
            "Reconnects, heartbeat timeouts, sequence gaps",
            targets(
                (
                    f"sum(increase(market_feed_reconnects_total{{{inst}}}[{R}]))",
                    "reconnects",
                ),
                (
                    f"sum(increase(market_feed_heartbeat_timeouts_total{{{inst}}}[{R}]))",
                    "heartbeat timeouts",
                ),
                (
                    f"sum(increase(market_feed_sequence_gaps_total{{{inst}}}[{R}]))",
                    "sequence gaps",
                ),
                (f"sum(increase(market_book_resyncs_total{{{inst}}}[{R}]))", "book resyncs"),
            ),
            description="The Coinbase WebSocket feed (0 with the simulated feed).",
        ),
        timeseries(
            "Gap refills",
            targets(
                (
                    or_zero(
                        f"sum by (interval) "
                        f"(increase(market_feed_gap_refills_total{{{inst}}}[{R}]))"
                    ),
                    "refills {{interval}}",
                ),
                (
                    f"sum(increase(market_feed_gap_refill_errors_total{{{inst}}}[{R}]))",
                    "refill errors",
                ),
            ),
            description="Candle ranges rewritten from REST candles after a feed gap.",
        ),
    )
    d.row("Streams").add(
        timeseries(
            "Stream subscribers",
            [target(f"sum by (stream) ({subscribers})", "{{stream}}")],
        ),
        timeseries(
            "Dropped subscribers",
            [
                target(
                    f"sum by (stream) (increase(market_subscribers_dropped_total{{{inst}}}[{R}]))"
                    f" or sum by (stream) ({subscribers}) * 0",
                    "{{stream}}",
                )
            ],
            description="Subscribers cut off because they fell behind (they resubscribe).",
        ),
        timeseries(
            "Stream messages sent",
            [
                target(
                    f"sum by (grpc_method) (rate(grpc_server_msg_sent_total{{{inst}, "
                    f'grpc_service="trading.market.v1.MarketService"}}[{R}]))',
                    "{{grpc_method}}",
                )
            ],
            unit="ops",
            width=24,
        ),
    )
    d.row("API").add(
        *grpc_panels(
            f'{inst}, grpc_service="trading.market.v1.MarketService"',
            "grpc_method",
            "{{grpc_method}}",
        ),
        timeseries(
            "Indicator cache requests",
            [
                target(
                    f"sum by (result) (rate(market_indicator_cache_requests_total{{{inst}}}[{R}]))",
                    "{{result}}",
                )
            ],
            unit="ops",
            stack=True,
        ),
        timeseries(
            "Indicator cache hit ratio",
            [
                target(
                    ratio(
                        f"sum(rate(market_indicator_cache_requests_total"
                        f'{{{inst}, result="hit"}}[{R}]))',
                        f"sum(rate(market_indicator_cache_requests_total{{{inst}}}[{R}]))",
                    ),
                    "hit ratio",
                )
            ],
            unit="percentunit",
        ),
    )
    return d


def trading() -> Dashboard:
    inst = 'instance=~"$instance"'
    acct = f'{inst}, account=~"$account"'
    venue = f'{inst}, venue=~"$venue"'
    d = Dashboard(
        "tradeplane-trading",
        "Tradeplane / Trading",
        "Orders, fills, rejects and risk blocks by rule, positions, P&L and the kill switch "
        "(execution service).",
        [
            query_variable(
                "instance", "Instance", "label_values(execution_trading_state, instance)"
            ),
            query_variable("account", "Account", "label_values(execution_trading_state, account)"),
            query_variable("venue", "Venue", "label_values(execution_open_orders, venue)"),
        ],
    )
    d.row("State").add(
        stat(
            "Trading state",
            f"max by (account, state) (execution_trading_state{{{acct}}} == 1)",
            legend="{{account}}: {{state}}",
            text_mode="name",
            width=8,
            description="Current state per account (global = the service-wide switch).",
        ),
        stat(
            "Accounts halted",
            f'count(execution_trading_state{{{acct}, state="HALTED"}} == 1) or vector(0)',
            thresholds=[(None, "green"), (1, "red")],
        ),
        stat("Open orders", f"sum(execution_open_orders{{{venue}}})"),
        stat("Open positions", f"sum(execution_open_positions{{{acct}}})"),
        stat(
            "Unreconciled orders",
            f"sum(execution_venue_unreconciled_orders{{{venue}}})",
            thresholds=[(None, "green"), (1, "red")],
        ),
        stat(
            "Market data",
            f"min(execution_market_data_up{{{inst}}})",
            mappings=value_map({"1": ("UP", "green"), "0": ("DOWN", "red")}),
            thresholds=[(None, "red"), (1, "green")],
            description="Execution's market data stream (no new orders while DOWN).",
        ),
        stat(
            "Outbox events/s",
            f"sum(rate(execution_events_last_seq{{{inst}}}[{R}]))",
            description="Events committed to the outbox (the last seq's rate of change).",
        ),
    )
    d.row("Orders and fills").add(
        timeseries(
            "Orders submitted by type",
            [
                target(
                    f"sum by (order_type) (rate(execution_orders_submitted_total{{{venue}}}[{R}]))",
                    "{{order_type}}",
                )
            ],
            unit="ops",
            stack=True,
        ),
        timeseries(
            "Order updates by status",
            [
                target(
                    f"sum by (status) (rate(execution_order_updates_total{{{venue}}}[{R}]))",
                    "{{status}}",
                )
            ],
            unit="ops",
        ),
        timeseries(
            "Fills by product",
            [
                target(
                    f"sum by (product) (rate(execution_fills_total{{{venue}}}[{R}]))",
                    "{{product}}",
                )
            ],
            unit="ops",
            stack=True,
        ),
        timeseries(
            "Rejects by venue",
            [
                target(
                    f"sum by (venue) (rate(execution_order_updates_total"
                    f'{{{venue}, status="REJECTED"}}[{R}]))',
                    "{{venue}}",
                )
            ],
            unit="ops",
            description="Orders the venue refused (risk refusals are blocks, below).",
        ),
        timeseries(
            "Risk blocks by rule",
            [
                target(
                    f"sum by (rule) (rate(execution_risk_blocks_total{{{inst}}}[{R}]))",
                    "{{rule}}",
                )
            ],
            unit="ops",
            stack=True,
            width=24,
        ),
    )
    d.row("Positions and P&L").add(
        timeseries(
            "Open positions by account",
            [target(f"sum by (account) (execution_open_positions{{{acct}}})", "{{account}}")],
        ),
        timeseries(
            "P&L by account",
            targets(
                (f"sum by (account) (execution_realized_pnl{{{acct}}})", "realised {{account}}"),
                (
                    f"sum by (account) (execution_unrealized_pnl{{{acct}}})",
                    "unrealised {{account}}",
                ),
            ),
            unit="currencyUSD",
            min_zero=False,
        ),
    )
    d.row("Venues").add(
        timeseries(
            "Order acknowledgement latency",
            targets(
                *(
                    (
                        f"histogram_quantile({q}, sum by (venue, le) "
                        f"(rate(execution_order_ack_seconds_bucket{{{venue}}}[{R}])))",
                        f"p{p} {{{{venue}}}}",
                    )
                    for q, p in (("0.5", 50), ("0.99", 99))
                )
            ),
            unit="s",
            description="SubmitOrder intent committed to venue acknowledgement.",
        ),
        timeseries(
            "Venue call p99 by operation",
            [
                target(
                    f"histogram_quantile(0.99, sum by (venue, operation, le) "
                    f"(rate(execution_venue_request_seconds_bucket{{{venue}}}[{R}])))",
                    "{{venue}} {{operation}}",
                )
            ],
            unit="s",
        ),
        timeseries(
            "Venue reconciliation",
            targets(
                (
                    or_zero(
                        f"sum by (outcome) "
                        f"(increase(execution_venue_reconciliations_total{{{venue}}}[{R}]))"
                    ),
                    "runs {{outcome}}",
                ),
                (
                    or_zero(
                        f"sum by (kind) (increase(execution_venue_repairs_total{{{venue}}}[{R}]))"
                    ),
                    "repairs {{kind}}",
                ),
            ),
            description="Coinbase only: runs and the differences they repaired.",
        ),
        timeseries(
            "Venue retries and duplicate fills",
            targets(
                (
                    or_zero(
                        f"sum by (reason) (increase(execution_venue_retries_total{{{inst}}}[{R}]))"
                    ),
                    "retries {{reason}}",
                ),
                (
                    f"sum by (venue) (increase(execution_fills_duplicate_total{{{venue}}}[{R}]))",
                    "duplicate fills {{venue}}",
                ),
            ),
            description="Requests retried (429, 5xx, transport) and fill reports seen twice.",
        ),
        *grpc_panels(
            f'{inst}, grpc_service="trading.execution.v1.ExecutionService"',
            "grpc_method",
            "{{grpc_method}}",
        ),
    )
    return d


def wallets() -> Dashboard:
    inst = 'instance=~"$instance"'
    venue = f'{inst}, venue=~"$venue"'
    d = Dashboard(
        "tradeplane-wallets",
        "Tradeplane / Wallets",
        "Ledger entries, the fill consumer, reconciliation runs and discrepancies, and venue "
        "(Coinbase) calls with the Redis cache hit ratio.",
        [
            query_variable(
                "instance",
                "Instance",
                "label_values(wallets_fill_consumer_connected, instance)",
            ),
            query_variable(
                "venue", "Venue", "label_values(wallets_reconciliation_discrepancies, venue)"
            ),
        ],
    )
    d.row("Reconciliation").add(
        stat(
            "Discrepancies (latest runs)",
            f"sum(wallets_reconciliation_discrepancies{{{venue}}})",
            thresholds=[(None, "green"), (1, "red")],
        ),
        stat(
            "Since last reconciliation",
            f"time() - max(wallets_reconciliation_last_run_timestamp_seconds{{{venue}}})",
            unit="s",
        ),
        stat(
            "Fill consumer",
            f"min(wallets_fill_consumer_connected{{{inst}}})",
            mappings=value_map({"1": ("CONNECTED", "green"), "0": ("DISCONNECTED", "red")}),
            thresholds=[(None, "red"), (1, "green")],
        ),
        stat(
            "Venue cache hit ratio",
            ratio(
                f'sum(rate(wallets_venue_cache_requests_total{{{venue}, result="hit"}}[$__range]))',
                f"sum(rate(wallets_venue_cache_requests_total{{{venue}}}[$__range]))",
            ),
            unit="percentunit",
            description="Venue balance lookups answered from the cache (Coinbase, chains).",
        ),
        timeseries(
            "Reconciliation runs by result",
            [
                target(
                    f"sum by (venue, result) "
                    f"(increase(wallets_reconciliation_runs_total{{{venue}}}[{R}]))",
                    "{{venue}} {{result}}",
                )
            ],
            stack=True,
        ),
        timeseries(
            "Discrepancies by venue",
            [
                target(
                    f"sum by (venue) (wallets_reconciliation_discrepancies{{{venue}}})",
                    "{{venue}}",
                )
            ],
        ),
    )
    d.row("Ledger").add(
        timeseries(
            "Ledger entries by kind",
            [
                target(
                    f"sum by (kind) (rate(wallets_ledger_entries_total{{{inst}}}[{R}]))",
                    "{{kind}}",
                )
            ],
            unit="ops",
            stack=True,
        ),
        timeseries(
            "Fills posted",
            targets(
                (f"sum(rate(wallets_fills_posted_total{{{inst}}}[{R}]))", "posted"),
                (f"sum(rate(wallets_fills_replayed_total{{{inst}}}[{R}]))", "replayed"),
                (f"sum(rate(wallets_fills_recovered_total{{{inst}}}[{R}]))", "recovered"),
                (
                    f"sum by (reason) (rate(wallets_fills_rejected_total{{{inst}}}[{R}]))",
                    "rejected {{reason}}",
                ),
            ),
            unit="ops",
        ),
        timeseries(
            "Fill consumer cursor",
            [target(f"max(wallets_fill_consumer_cursor{{{inst}}})", "cursor")],
            description="Last execution event seq whose fills are in the ledger.",
        ),
        timeseries(
            "Fill consumer reconnects and stream resets",
            targets(
                (
                    f"sum(increase(wallets_fill_consumer_reconnects_total{{{inst}}}[{R}]))",
                    "reconnects",
                ),
                (f"sum(increase(wallets_fill_stream_resets_total{{{inst}}}[{R}]))", "resets"),
            ),
            description="A reset: the cursor was older than execution's retained outbox.",
        ),
    )
    d.row("Venue calls (Coinbase, on-chain)").add(
        timeseries(
            "Venue calls by endpoint and result",
            [
                target(
                    f"sum by (venue, endpoint, result) "
                    f"(rate(wallets_venue_requests_total{{{venue}}}[{R}]))",
                    "{{venue}} {{endpoint}} {{result}}",
                )
            ],
            unit="reqps",
            description="Calls that reached the venue (cache misses only).",
        ),
        timeseries(
            "Venue call p95 by endpoint",
            [
                target(
                    f"histogram_quantile(0.95, sum by (venue, endpoint, le) "
                    f"(rate(wallets_venue_request_seconds_bucket{{{venue}}}[{R}])))",
                    "{{venue}} {{endpoint}}",
                )
            ],
            unit="s",
        ),
        timeseries(
            "Cache hit ratio by venue endpoint",
            [
                target(
                    ratio(
                        f"sum by (venue, endpoint) (rate(wallets_venue_cache_requests_total"
                        f'{{{venue}, result="hit"}}[{R}]))',
                        f"sum by (venue, endpoint) "
                        f"(rate(wallets_venue_cache_requests_total{{{venue}}}[{R}]))",
                    ),
                    "{{venue}} {{endpoint}}",
                )
            ],
            unit="percentunit",
        ),
        timeseries(
            "Stale responses served",
            [
                target(
                    or_zero(
                        f"sum by (venue, endpoint) (rate(wallets_venue_cache_requests_total"
                        f'{{{venue}, result="stale"}}[{R}]))'
                    ),
                    "{{venue}} {{endpoint}}",
                )
            ],
            unit="ops",
            description="Cached data served (flagged stale) while the venue was failing.",
        ),
        timeseries(
            "Venue lookups by result",
            [
                target(
                    or_zero(
                        f"sum by (venue, result) "
                        f"(rate(wallets_venue_cache_requests_total{{{venue}}}[{R}]))"
                    ),
                    "{{venue}} {{result}}",
                )
            ],
            unit="ops",
            description="hit, miss (this request called the venue), stale, error.",
        ),
    )
    d.row("API").add(
        *grpc_panels(
            f'{inst}, grpc_service="trading.wallets.v1.WalletsService"',
            "grpc_method",
            "{{grpc_method}}",
        )
    )
    return d


def backtests() -> Dashboard:
    inst = 'instance=~"$instance"'
    d = Dashboard(
        "tradeplane-backtests",
        "Tradeplane / Backtests",
        "Queue depth and wait, workers, runs and bars/s (backtest service and workers).",
        [query_variable("instance", "Instance", "label_values(backtest_workers, instance)")],
    )
    d.row("Queue and workers").add(
        stat("Queued jobs", "max(backtest_queue_depth)"),
        stat(
            "Oldest job waits",
            "max(backtest_queue_oldest_job_age_seconds)",
            unit="s",
            thresholds=[(None, "green"), (60, "orange"), (300, "red")],
        ),
        stat("Workers", f"sum(backtest_workers{{{inst}}})"),
        stat("Busy workers", f"sum(backtest_workers_busy{{{inst}}})"),
        stat("Bars/s", f"sum(rate(backtest_bars_processed_total{{{inst}}}[{R}]))"),
        stat(
            "Failed runs",
            f'sum(increase(backtest_runs_total{{{inst}, status="failed"}}[$__range]))',
            thresholds=[(None, "green"), (1, "orange")],
        ),
        timeseries(
            "Queue depth and oldest job age",
            targets(
                ("max(backtest_queue_depth)", "queued"),
                ("max(backtest_queue_oldest_job_age_seconds)", "oldest wait (s)"),
            ),
        ),
        timeseries(
            "Workers (total and busy)",
            targets(
                (f"sum(backtest_workers{{{inst}}})", "workers"),
                (f"sum(backtest_workers_busy{{{inst}}})", "busy"),
            ),
        ),
    )
    d.row("Runs").add(
        timeseries(
            "Runs finished by status",
            [
                target(
                    f"sum by (status) (increase(backtest_runs_total{{{inst}}}[{R}]))",
                    "{{status}}",
                )
            ],
            stack=True,
        ),
        timeseries(
            "Bars/s by instance",
            [
                target(
                    f"sum by (instance) (rate(backtest_bars_processed_total{{{inst}}}[{R}]))",
                    "{{instance}}",
                )
            ],
        ),
        timeseries(
            "Run duration p50 / p95",
            targets(
                *(
                    (
                        f"histogram_quantile({q}, sum by (le) "
                        f"(rate(backtest_run_duration_seconds_bucket{{{inst}}}[{R}])))",
                        f"p{p}",
                    )
                    for q, p in (("0.5", 50), ("0.95", 95))
                )
            ),
            unit="s",
        ),
        timeseries(
            "Runs released and market retries",
            targets(
                (f"sum(increase(backtest_runs_released_total{{{inst}}}[{R}]))", "released"),
                (
                    f"sum(increase(backtest_market_retries_total{{{inst}}}[{R}]))",
                    "market retries",
                ),
            ),
            description="Runs handed back by a stopping worker; candle reads retried.",
        ),
    )
    d.row("API").add(
        *grpc_panels(
            'grpc_service="trading.backtest.v1.BacktestService"',
            "grpc_method",
            "{{grpc_method}}",
        )
    )
    return d


def gateway() -> Dashboard:
    inst = 'instance=~"$instance"'
    ch = f'{inst}, channel=~"$channel"'
    d = Dashboard(
        "tradeplane-gateway",
        "Tradeplane / Gateway",
        "Browser WebSockets (/ws/live, /ws/market): connections, subscriptions, upstream "
        "streams, messages, drops, slow-consumer closes, resumes; and the JSON API.",
        [
            query_variable(
                "instance", "Instance", "label_values(gateway_ws_connections, instance)"
            ),
            query_variable("channel", "Channel", "label_values(gateway_ws_connections, channel)"),
        ],
    )
    sent = f"sum by (channel) (rate(gateway_ws_messages_sent_total{{{ch}}}[{R}]))"
    dropped = f"sum by (channel) (rate(gateway_ws_messages_dropped_total{{{ch}}}[{R}]))"
    d.row("WebSockets").add(
        stat("Connections", f"sum(gateway_ws_connections{{{ch}}})"),
        stat("Subscriptions", f"sum(gateway_ws_subscriptions{{{ch}}})"),
        stat("Upstream gRPC streams", f"sum(gateway_upstream_streams{{{inst}}})"),
        stat("Frames sent/s", f"sum(rate(gateway_ws_messages_sent_total{{{ch}}}[{R}]))"),
        stat(
            "Slow-consumer closes",
            f"sum(increase(gateway_ws_slow_consumer_closes_total{{{ch}}}[$__range]))",
            thresholds=[(None, "green"), (1, "orange")],
        ),
        stat(
            "Drop ratio",
            ratio(f"sum({dropped})", f"sum({sent} + {dropped})"),
            unit="percentunit",
            thresholds=[(None, "green"), (0.01, "red")],
        ),
        timeseries(
            "Connections by channel",
            [target(f"sum by (channel) (gateway_ws_connections{{{ch}}})", "{{channel}}")],
        ),
        timeseries(
            "Connections opened by channel",
            [
                target(
                    f"sum by (channel) (rate(gateway_ws_connections_opened_total{{{ch}}}[{R}]))",
                    "{{channel}}",
                )
            ],
            unit="ops",
        ),
        timeseries(
            "Subscriptions and upstream streams",
            targets(
                (
                    f"sum by (channel) (gateway_ws_subscriptions{{{ch}}})",
                    "subscriptions {{channel}}",
                ),
                (
                    f"sum by (key) (gateway_upstream_streams{{{inst}}})",
                    "upstream {{key}}",
                ),
            ),
            description="One upstream gRPC stream per subscription key, shared by all browsers.",
        ),
        timeseries(
            "Frames sent, received and dropped",
            targets(
                (sent, "sent {{channel}}"),
                (
                    f"sum by (channel) (rate(gateway_ws_messages_received_total{{{ch}}}[{R}]))",
                    "received {{channel}}",
                ),
                (dropped, "dropped {{channel}}"),
            ),
            unit="ops",
        ),
        timeseries(
            "Drop ratio by channel",
            [target(ratio(dropped, f"({sent} + {dropped})"), "{{channel}}")],
            unit="percentunit",
            description="Market data frames dropped for slow clients; alert above 1%.",
        ),
        timeseries(
            "Slow-consumer closes and resumes",
            targets(
                (
                    f"sum by (channel) "
                    f"(increase(gateway_ws_slow_consumer_closes_total{{{ch}}}[{R}]))",
                    "slow-consumer closes {{channel}}",
                ),
                (
                    f"sum by (result) (increase(gateway_ws_resumes_total{{{inst}}}[{R}]))",
                    "resumes {{result}}",
                ),
            ),
        ),
    )
    http = f"rate(gateway_http_requests_total{{{inst}}}[{R}])"
    d.row("JSON API").add(
        timeseries(
            "HTTP requests by route and code",
            [target(f"sum by (route, code) ({http})", "{{route}} {{code}}")],
            unit="reqps",
        ),
        timeseries(
            "HTTP p95 by route",
            [
                target(
                    f"histogram_quantile(0.95, sum by (route, le) "
                    f"(rate(gateway_http_request_duration_seconds_bucket{{{inst}}}[{R}])))",
                    "{{route}}",
                )
            ],
            unit="s",
        ),
    )
    return d


DASHBOARDS = {
    "platform-overview": overview,
    "market-data": market,
    "trading": trading,
    "wallets": wallets,
    "backtests": backtests,
    "gateway": gateway,
}


def render() -> dict[str, str]:
    """File name -> JSON text, exactly as committed."""
    return {
        f"{name}.json": json.dumps(build().to_json(), indent=2) + "\n"
        for name, build in DASHBOARDS.items()
    }


def main() -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for file_name, text in render().items():
        (OUT_DIR / file_name).write_text(text)
        print(f"wrote {OUT_DIR / file_name}")


if __name__ == "__main__":
    main()
