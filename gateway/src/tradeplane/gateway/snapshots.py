"""Snapshots that need upstream calls (CHANNEL_LIVE, CHANNEL_RECONCILIATIONS), made with the
subscriber's own token. A part the service cannot serve yet is left empty, not fatal."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from tradeplane.gateway.frames import Json, message_dict
from tradeplane.gateway.upstreams import Upstreams, method
from trading.execution.v1 import execution_pb2
from trading.gateway.v1 import gateway_pb2
from trading.wallets.v1 import wallets_pb2

log = logging.getLogger(__name__)

_OPEN_STATUSES = [
    execution_pb2.ORDER_STATUS_NEW,
    execution_pb2.ORDER_STATUS_OPEN,
    execution_pb2.ORDER_STATUS_PARTIALLY_FILLED,
]


async def _call(
    upstreams: Upstreams, service: str, rpc: str, request: Any, token: str | None
) -> Any:
    try:
        return await upstreams.call(method(service, rpc), request, token)
    except grpc.aio.AioRpcError as exc:
        log.info("snapshot part unavailable", extra={"rpc": rpc, "code": exc.code().name})
        return None


async def live_snapshot(
    upstreams: Upstreams, token: str | None, recent: int, accounts: frozenset[str] | None = None
) -> Json:
    """LiveSnapshot: open orders, positions, portfolios, recent fills/blocks, trading state;
    of `accounts` only (one query per account, merged) unless None (every account)."""
    scopes = [""] if accounts is None else sorted(accounts)

    def each(rpc: str, make: Callable[[str], Any]) -> list[Awaitable[Any]]:
        return [_call(upstreams, "execution", rpc, make(a), token) for a in scopes]

    parts = await asyncio.gather(
        *each(
            "ListOrders",
            lambda a: execution_pb2.ListOrdersRequest(
                account_id=a, statuses=_OPEN_STATUSES, page_size=500
            ),
        ),
        *each(
            "ListPositions",
            lambda a: execution_pb2.ListPositionsRequest(account_id=a, page_size=500),
        ),
        *each(
            "ListFills", lambda a: execution_pb2.ListFillsRequest(account_id=a, page_size=recent)
        ),
        *each(
            "ListBlocks", lambda a: execution_pb2.ListBlocksRequest(account_id=a, page_size=recent)
        ),
        _call(
            upstreams, "execution", "GetTradingState", execution_pb2.GetTradingStateRequest(), token
        ),
        _call(
            upstreams,
            "execution",
            "ListAccounts",
            execution_pb2.ListAccountsRequest(page_size=100),
            token,
        ),
    )
    n = len(scopes)
    orders, positions, fills, blocks = (
        [r for r in parts[i * n : (i + 1) * n] if r is not None] for i in range(4)
    )
    state, listed = parts[4 * n], parts[4 * n + 1]
    portfolios = []
    if listed is not None:
        ids = [a.account_id for a in listed.accounts]
        if accounts is not None:
            ids = [a for a in ids if a in accounts]
        results = await asyncio.gather(
            *(
                _call(
                    upstreams,
                    "execution",
                    "GetPortfolio",
                    execution_pb2.GetPortfolioRequest(account_id=a),
                    token,
                )
                for a in ids
            )
        )
        portfolios = [r.portfolio for r in results if r is not None]
    newest_first = functools.partial(sorted, key=lambda m: m.time.ToNanoseconds(), reverse=True)
    message = gateway_pb2.LiveSnapshot(
        trading_state=(
            state.effective_state if state is not None else execution_pb2.TRADING_STATE_UNSPECIFIED
        ),
        open_orders=[o for r in orders for o in r.orders],
        positions=[p for r in positions for p in r.positions],
        portfolios=portfolios,
        recent_fills=newest_first(f for r in fills for f in r.fills)[:recent],
        recent_blocks=newest_first(b for r in blocks for b in r.blocks)[:recent],
    )
    return message_dict(message)


async def reconciliations_snapshot(upstreams: Upstreams, token: str | None, recent: int) -> Json:
    runs = await _call(
        upstreams,
        "wallets",
        "ListReconciliations",
        wallets_pb2.ListReconciliationsRequest(page_size=recent),
        token,
    )
    return {"runs": [message_dict(r) for r in runs.runs] if runs is not None else []}
