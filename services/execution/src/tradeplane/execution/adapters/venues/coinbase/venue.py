"""CoinbaseVenue: orders on Coinbase Advanced Trade (implements ExecutionVenue and
ReconcilableVenue).

- submit: POST orders with client_order_id = our order id. A lost answer, a 5xx or a 429 is
  retried with the same id (Coinbase answers a repeated id with the order it already has), so
  a retry - or the resend after a crash - never places a second order. A refusal
  (success=false, or a 400) becomes VenueRejected; anything else leaves the intent NEW.
- cancel: POST orders/batch_cancel; a failed cancel asks for the order's state before saying
  anything (an order the venue does not show is never taken as canceled).
- fills: the `user` channel reports cumulative order state; a growing filled size makes the
  venue list the order's fills (REST) for their trade ids, and each is reported once (the
  service's unique (venue, trade id) row is the final word). Done statuses are reported after
  the fills that reach the cumulative size.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from prometheus_client import Counter

from tradeplane.coinbase.rest import CoinbaseHttpError, CoinbaseRest, RetryPolicy
from tradeplane.execution.adapters.venues.coinbase import orders as cb
from tradeplane.execution.adapters.venues.coinbase.config import CoinbaseVenueConfig
from tradeplane.execution.adapters.venues.coinbase.user_channel import UserChannel
from tradeplane.execution.domain.orders import Order
from tradeplane.execution.domain.values import OrderStatus, Venue
from tradeplane.execution.service_layer.ports import VenueRejected, VenueReports
from tradeplane.execution.service_layer.venue_reconciliation import VenueOrderState, VenueTrade

log = logging.getLogger(__name__)

API = "/api/v3/brokerage"
ORDERS = f"{API}/orders"
BATCH_CANCEL = f"{API}/orders/batch_cancel"
EDIT = f"{API}/orders/edit"
ORDER = f"{API}/orders/historical/{{order_id}}"
LIST_ORDERS = f"{API}/orders/historical/batch"
LIST_FILLS = f"{API}/orders/historical/fills"
MAX_PAGES = 50  # a safety stop for cursor paging

RETRIES = Counter(
    "execution_venue_retries",
    "Coinbase requests retried, by reason (429, 5xx, transport).",
    ["reason"],
)


class CoinbaseVenue:
    def __init__(self, config: CoinbaseVenueConfig, *, rest: CoinbaseRest | None = None) -> None:
        self._config = config
        self._rest = rest or CoinbaseRest(
            config.rest_url,
            api_key=config.api_key,
            api_secret=config.api_secret,
            timeout_seconds=config.timeout_seconds,
            ca_file=config.ca_file,
            retry=RetryPolicy(
                max_attempts=config.max_attempts,
                backoff_min_seconds=config.backoff_min_seconds,
                backoff_max_seconds=config.backoff_max_seconds,
            ),
            on_retry=lambda reason: RETRIES.labels(reason).inc(),
        )
        self._reports: VenueReports | None = None
        self._local: dict[str, str] = {}  # venue order id -> local order id
        self._reported: dict[str, set[str]] = {}  # venue order id -> trade ids reported
        self._cumulative: dict[str, Decimal] = {}  # venue order id -> filled size applied
        self._locks: dict[str, asyncio.Lock] = {}
        self._cancel_on_ack: set[str] = set()  # order ids cancelled before their ack came
        self.on_resync: Callable[[], Awaitable[Any]] | None = None  # after a reconnect
        self._user = (
            UserChannel(config, self.on_user_orders, self._resync) if config.ws_url else None
        )
        self._task: asyncio.Task[None] | None = None

    @property
    def venue(self) -> Venue:
        return Venue.COINBASE

    @property
    def user_channel(self) -> UserChannel | None:
        return self._user

    def bind(self, reports: VenueReports) -> None:
        self._reports = reports

    async def start(self) -> None:
        if self._user is not None:
            self._task = asyncio.create_task(self._user.run(), name="coinbase-user-channel")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._rest.aclose()

    def track(self, order_id: str, venue_order_id: str) -> None:
        self._local[venue_order_id] = order_id

    # -- ExecutionVenue ----------------------------------------------------------------------

    async def submit(self, order: Order) -> str:
        try:
            answer = await self._rest.request("POST", ORDERS, json=cb.create_body(order))
        except CoinbaseHttpError as exc:
            if exc.status in (400, 422):
                raise VenueRejected(str(exc)) from None
            raise
        if isinstance(answer, dict) and answer.get("success"):
            venue_order_id = str((answer.get("success_response") or {}).get("order_id") or "")
            if not venue_order_id:
                raise cb.CoinbaseShapeError(f"create answer without order_id: {answer}")
            self.track(order.order_id, venue_order_id)
            await self._cancel_if_requested(order.order_id, venue_order_id)
            return venue_order_id
        error = (answer or {}).get("error_response") or {} if isinstance(answer, dict) else {}
        reason = str(
            error.get("new_order_failure_reason")
            or error.get("preview_failure_reason")
            or error.get("message")
            or error.get("error")
            or "refused by Coinbase"
        )
        if "DUPLICATE" in reason.upper():
            # Our id is already placed (an earlier attempt got through): that order is ours,
            # never a rejection. Not found -> unknown outcome; the intent stays NEW.
            return await self._placed_with_client_id(order)
        raise VenueRejected(reason)

    async def _placed_with_client_id(self, order: Order) -> str:
        since = order.create_time.astimezone(UTC).replace(microsecond=0)
        start = since.strftime("%Y-%m-%dT%H:%M:%SZ")
        rows = await self._paged(LIST_ORDERS, "orders", {"start_date": start})
        for row in rows:
            if row.get("client_order_id") == order.order_id and row.get("order_id"):
                venue_order_id = str(row["order_id"])
                self.track(order.order_id, venue_order_id)
                await self._cancel_if_requested(order.order_id, venue_order_id)
                return venue_order_id
        raise cb.CoinbaseShapeError(
            f"Coinbase says client_order_id {order.order_id} is used but lists no such order"
        )

    async def _cancel_if_requested(self, order_id: str, venue_order_id: str) -> None:
        if order_id in self._cancel_on_ack:
            self._cancel_on_ack.discard(order_id)
            with contextlib.suppress(Exception):  # the user channel / reconciliation report
                await self._rest.request("POST", BATCH_CANCEL, json={"order_ids": [venue_order_id]})

    async def cancel(self, order: Order) -> bool:
        venue_order_id = order.venue_order_id or next(
            (v for v, o in self._local.items() if o == order.order_id), ""
        )
        if not venue_order_id:
            # Still on its way: cancelled as soon as Coinbase acknowledges it; the outcome
            # comes as a report (user channel or reconciliation).
            self._cancel_on_ack.add(order.order_id)
            return False
        answer = await self._rest.request(
            "POST", BATCH_CANCEL, json={"order_ids": [venue_order_id]}
        )
        results = answer.get("results") if isinstance(answer, dict) else None
        result = results[0] if results else {}
        if result.get("success"):
            return True
        # Refused (e.g. already done): say only what the venue's state shows.
        state = await self.get_order(venue_order_id)
        if state is None:
            return False
        if state.status is OrderStatus.CANCELED or state.status is OrderStatus.EXPIRED:
            await self._sync_fills(order.order_id, venue_order_id, state.filled_size)
            return True
        if state.status.is_final:
            await self._sync(order.order_id, venue_order_id, state.filled_size, state.status, "")
        return False

    async def resume(self, orders: Sequence[Order]) -> None:
        for order in orders:
            if order.venue_order_id:
                self.track(order.order_id, order.venue_order_id)
                self._reported[order.venue_order_id] = set(order.fill_trade_ids)
                self._cumulative[order.venue_order_id] = order.filled_size

    async def edit(self, order: Order, price: Decimal, size: Decimal) -> None:
        """Change a working limit order's price and size (POST orders/edit)."""
        answer = await self._rest.request(
            "POST",
            EDIT,
            json={"order_id": order.venue_order_id, "price": str(price), "size": str(size)},
        )
        if not (isinstance(answer, dict) and answer.get("success")):
            errors = answer.get("errors") if isinstance(answer, dict) else answer
            raise VenueRejected(f"edit refused: {errors}")

    # -- ReconcilableVenue -------------------------------------------------------------------

    async def open_orders(self) -> list[VenueOrderState]:
        rows = await self._paged(LIST_ORDERS, "orders", {"order_status": "OPEN"})
        return [cb.order_state(o) for o in rows]

    async def get_order(self, venue_order_id: str) -> VenueOrderState | None:
        try:
            answer = await self._rest.request("GET", ORDER.format(order_id=venue_order_id))
        except CoinbaseHttpError as exc:
            if exc.not_found:
                return None
            raise
        order = answer.get("order") if isinstance(answer, dict) else None
        if not isinstance(order, dict):
            raise cb.CoinbaseShapeError(f"GET order without `order`: {answer}")
        return cb.order_state(order)

    async def order_trades(self, venue_order_id: str) -> list[VenueTrade]:
        rows = await self._paged(LIST_FILLS, "fills", {"order_ids": venue_order_id})
        return [cb.trade(f) for f in rows]

    async def recent_trades(self, since: datetime) -> list[VenueTrade]:
        start = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        rows = await self._paged(LIST_FILLS, "fills", {"start_sequence_timestamp": start})
        return [cb.trade(f) for f in rows]

    async def _paged(self, path: str, key: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        cursor = ""
        for _ in range(MAX_PAGES):
            query = {**params, "limit": 250, **({"cursor": cursor} if cursor else {})}
            answer = await self._rest.request("GET", path, params=query)
            if not isinstance(answer, dict) or not isinstance(answer.get(key), list):
                raise cb.CoinbaseShapeError(f"{path} answer without `{key}`: {answer}")
            out.extend(x for x in answer[key] if isinstance(x, dict))
            cursor = str(answer.get("cursor") or "")
            if not cursor or (key == "orders" and not answer.get("has_next", True)):
                break
        return out

    # -- user channel ------------------------------------------------------------------------

    async def on_user_orders(self, orders: list[dict[str, Any]]) -> None:
        for raw in orders:
            venue_order_id, client_id, cumulative, done, reason = cb.user_update(raw)
            local = self._local.get(venue_order_id) or client_id
            if not local:
                continue  # placed outside: reconciliation adopts it
            try:
                await self._sync(local, venue_order_id, cumulative, done, reason)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "could not apply a user-channel update; reconciliation will",
                    extra={"venue_order_id": venue_order_id},
                )

    async def _resync(self) -> None:
        if self.on_resync is not None:
            await self.on_resync()

    async def _sync(
        self,
        order_id: str,
        venue_order_id: str,
        cumulative: Decimal,
        done: OrderStatus | None,
        reason: str,
    ) -> None:
        lock = self._locks.setdefault(venue_order_id, asyncio.Lock())
        async with lock:
            seen = self._cumulative.get(venue_order_id, Decimal(0))
            # Cumulative state repeats (snapshots after reconnects): only growth needs REST.
            complete = cumulative <= seen or await self._sync_fills(
                order_id, venue_order_id, cumulative
            )
            if complete:
                self._cumulative[venue_order_id] = max(seen, cumulative)
            if done is not None and complete and self._reports is not None:
                await self._reports.on_order_done(order_id, done, reason)
                self._local.pop(venue_order_id, None)
                self._reported.pop(venue_order_id, None)
                self._cumulative.pop(venue_order_id, None)

    async def _sync_fills(self, order_id: str, venue_order_id: str, cumulative: Decimal) -> bool:
        """Report the fills behind `cumulative`; True once those listed reach it."""
        reported = self._reported.setdefault(venue_order_id, set())
        if cumulative <= 0:
            return True
        for attempt in range(3):
            trades = await self.order_trades(venue_order_id)
            new = [t for t in trades if t.venue_trade_id not in reported]
            if new and self._reports is not None:
                # One listing's new fills in one go (batched transactions, not one per fill).
                await self._reports.on_fills([t.for_order(order_id) for t in new])
                reported.update(t.venue_trade_id for t in new)
            if sum((t.size for t in trades), Decimal(0)) >= cumulative:
                return True
            await asyncio.sleep(0.2 * (attempt + 1))  # fills may be listed a moment later
        return False
