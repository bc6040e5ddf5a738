"""Snapshots that need upstream calls (CHANNEL_LIVE, CHANNEL_RECONCILIATIONS), made with the
subscriber's own token. A part the service cannot serve yet is left empty, not fatal."""

from __future__ import annotations

import asyncio
import logging
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


async def live_snapshot(upstreams: Upstreams, token: str | None, recent: int) -> Json:
    """LiveSnapshot: open orders, positions, portfolios, recent fills/blocks, trading state."""
    orders, positions, fills, blocks, state, accounts = await asyncio.gather(
        _call(
            upstreams,
            "execution",
            "ListOrders",
            execution_pb2.ListOrdersRequest(statuses=_OPEN_STATUSES, page_size=500),
            token,
        ),
        _call(
            upstreams,
            "execution",
            "ListPositions",
            execution_pb2.ListPositionsRequest(page_size=500),
            token,
        ),
        _call(
            upstreams,
            "execution",
            "ListFills",
            execution_pb2.ListFillsRequest(page_size=recent),
            token,
        ),
        _call(
            upstreams,
            "execution",
            "ListBlocks",
            execution_pb2.ListBlocksRequest(page_size=recent),
            token,
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
    portfolios = []
    if accounts is not None:
        results = await asyncio.gather(
            *(
                _call(
                    upstreams,
                    "execution",
                    "GetPortfolio",
                    execution_pb2.GetPortfolioRequest(account_id=a.account_id),
                    token,
                )
                for a in accounts.accounts
            )
        )
        portfolios = [r.portfolio for r in results if r is not None]
    return _live_snapshot(orders, positions, fills, blocks, state, portfolios)


def _live_snapshot(
    orders: Any, positions: Any, fills: Any, blocks: Any, state: Any, portfolios: list[Any]
) -> Json:
    message = gateway_pb2.LiveSnapshot(
        trading_state=(
            state.effective_state if state is not None else execution_pb2.TRADING_STATE_UNSPECIFIED
        ),
        open_orders=orders.orders if orders is not None else [],
        positions=positions.positions if positions is not None else [],
        portfolios=portfolios,
        recent_fills=fills.fills if fills is not None else [],
        recent_blocks=blocks.blocks if blocks is not None else [],
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
