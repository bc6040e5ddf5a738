"""The Advanced Trade order endpoints and `user` channel of FakeCoinbase (`fake.orders`).

    POST /api/v3/brokerage/orders                {client_order_id, product_id, side,
                                      order_configuration, [attached_order_configuration]}
        -> {"success": true, "success_response": {order_id, product_id, side, client_order_id}}
         | {"success": false, "error_response": {error, message, error_details,
                                                 new_order_failure_reason}}
    POST /api/v3/brokerage/orders/batch_cancel   {order_ids} -> {"results": [{success,
                                                  failure_reason, order_id}]}
    POST /api/v3/brokerage/orders/edit           {order_id, price, size} -> {success, errors}
    GET  /api/v3/brokerage/orders/historical/{order_id}  -> {"order": {...}} | 404
    GET  /api/v3/brokerage/orders/historical/batch?order_status=OPEN -> {orders, has_next, cursor}
    GET  /api/v3/brokerage/orders/historical/fills?order_ids=&start_sequence_timestamp=
        -> {"fills": [{entry_id, trade_id, order_id, trade_time, trade_type, price, size,
                       commission, product_id, sequence_timestamp, liquidity_indicator,
                       size_in_quote, user_id, side}], "cursor": ""}
    WebSocket channel `user`: a snapshot of the open orders on subscribe, then an update with
    the cumulative state of an order (cumulative_quantity, leaves_quantity, avg_price,
    total_fees, status, ...) whenever it changes.

Behaviour: client_order_id is required (an empty one is refused and counted) and
idempotent: the same id with the same payload answers with the existing order, with another
payload fails (DUPLICATE_CLIENT_ORDER_ID). Market, IOC and FOK orders fill at once at
`prices[product]` (or their limit); resting orders fill when a test calls `fill()`.

Faults (tests set them): `lose_responses = n` (the next n creates are processed but their
answer is held for `lost_hold_seconds`, longer than the client waits), `fail_after_processing
= n` (processed, then a 500), `fail_next = [status, ...]` (answered without processing, e.g.
503), `rate_limit_next = n` (429 with Retry-After `retry_after`), `create_delay` (seconds the
answer to a processed create is held; `create_pending` is set meanwhile), `delay_before_create`
(seconds before processing), `hide(order_id, n)` (the next n GETs answer 404),
`hold_requests = n` / `hold_answers = n` (the next n creates wait before processing / keep
their processed answer until `release_held()`; `create_held` is set and `held_client_ids`
lists them meanwhile). Outside
changes: `cancel_outside`, `fill`, `fill_many` (bulk: each touched order published once),
`place_outside`, `replay_user_updates` (repeats every order's state on the user channel, as
after a reconnect).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse

if TYPE_CHECKING:
    from tradeplane.testing.fakes.coinbase import FakeCoinbase, RestRequest, _Connection

API = "/api/v3/brokerage"
CONFIGS = {
    "market_market_ioc": ("IMMEDIATE_OR_CANCEL", "MARKET"),
    "limit_limit_gtc": ("GOOD_UNTIL_CANCELLED", "LIMIT"),
    "limit_limit_gtd": ("GOOD_UNTIL_DATE_TIME", "LIMIT"),
    "limit_limit_fok": ("FILL_OR_KILL", "LIMIT"),
    "sor_limit_ioc": ("IMMEDIATE_OR_CANCEL", "LIMIT"),
    "stop_limit_stop_limit_gtc": ("GOOD_UNTIL_CANCELLED", "STOP_LIMIT"),
    "stop_limit_stop_limit_gtd": ("GOOD_UNTIL_DATE_TIME", "STOP_LIMIT"),
    "trigger_bracket_gtc": ("GOOD_UNTIL_CANCELLED", "BRACKET"),
    "trigger_bracket_gtd": ("GOOD_UNTIL_DATE_TIME", "BRACKET"),
}
REQUIRED = {
    "limit_limit_gtc": ("base_size", "limit_price"),
    "limit_limit_gtd": ("base_size", "limit_price", "end_time"),
    "limit_limit_fok": ("base_size", "limit_price"),
    "sor_limit_ioc": ("base_size", "limit_price"),
    "stop_limit_stop_limit_gtc": ("base_size", "limit_price", "stop_price", "stop_direction"),
    "stop_limit_stop_limit_gtd": (
        "base_size",
        "limit_price",
        "stop_price",
        "stop_direction",
        "end_time",
    ),
    "trigger_bracket_gtc": ("base_size", "limit_price", "stop_trigger_price"),
    "trigger_bracket_gtd": ("base_size", "limit_price", "stop_trigger_price", "end_time"),
}
WORKING = ("OPEN", "PENDING", "QUEUED")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class FakeOrder:
    order_id: str
    client_order_id: str
    product_id: str
    side: str
    configuration: dict[str, Any]
    payload: str  # canonical JSON of the create body, for idempotency
    created_time: str
    status: str = "OPEN"
    filled_size: Decimal = Decimal(0)
    filled_value: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    fills: list[dict[str, Any]] = field(default_factory=list)
    external: bool = False
    reject_reason: str = ""
    cancel_message: str = ""

    @property
    def kind(self) -> str:
        return next(iter(self.configuration))

    @property
    def body(self) -> dict[str, Any]:
        return dict(self.configuration[self.kind])

    @property
    def base_size(self) -> Decimal | None:
        size = self.body.get("base_size")
        return Decimal(size) if size else None

    def to_json(self) -> dict[str, Any]:
        tif, order_type = CONFIGS[self.kind]
        size = self.base_size
        avg = self.filled_value / self.filled_size if self.filled_size else Decimal(0)
        return {
            "order_id": self.order_id,
            "product_id": self.product_id,
            "user_id": "fake-user",
            "order_configuration": self.configuration,
            "side": self.side,
            "client_order_id": self.client_order_id,
            "status": self.status,
            "time_in_force": tif,
            "created_time": self.created_time,
            "completion_percentage": str(self.filled_size / size * 100 if size else 0),
            "filled_size": str(self.filled_size),
            "average_filled_price": str(avg),
            "number_of_fills": str(len(self.fills)),
            "filled_value": str(self.filled_value),
            "pending_cancel": False,
            "size_in_quote": "quote_size" in self.body,
            "total_fees": str(self.fees),
            "size_inclusive_of_fees": False,
            "total_value_after_fees": str(self.filled_value + self.fees),
            "trigger_status": "INVALID_ORDER_TYPE",
            "order_type": order_type,
            "reject_reason": self.reject_reason,
            "settled": self.status == "FILLED",
            "product_type": "SPOT",
            "cancel_message": self.cancel_message,
            "order_placement_source": "RETAIL_ADVANCED",
            "outstanding_hold_amount": "0",
        }

    def user_json(self) -> dict[str, Any]:
        size = self.base_size
        avg = self.filled_value / self.filled_size if self.filled_size else Decimal(0)
        return {
            "order_id": self.order_id,
            "client_order_id": self.client_order_id,
            "cumulative_quantity": str(self.filled_size),
            "leaves_quantity": str(size - self.filled_size) if size else "0",
            "avg_price": str(avg),
            "total_fees": str(self.fees),
            "status": self.status,
            "product_id": self.product_id,
            "creation_time": self.created_time,
            "order_side": self.side,
            "order_type": CONFIGS[self.kind][1].title(),
            "cancel_reason": self.cancel_message,
            "reject_reason": self.reject_reason,
            "product_type": "SPOT",
        }


class FakeCoinbaseOrders:
    def __init__(self, *, fee_rate: Decimal = Decimal("0.006")) -> None:
        self.prices: dict[str, Decimal] = {}  # fill price of market orders per product
        self.default_price = Decimal("100")
        self.fee_rate = fee_rate
        self.orders: dict[str, FakeOrder] = {}  # venue order id -> order
        self.by_client_id: dict[str, str] = {}
        self.attached: dict[str, dict[str, Any]] = {}  # attached_order_configuration per order
        self.calls: Counter[str] = Counter()  # requests received per endpoint
        self.creates_processed = 0  # creates that placed a new order
        self.empty_client_ids = 0
        # Fault controls.
        self.lose_responses = 0
        self.lost_hold_seconds = 5.0
        self.fail_after_processing = 0
        self.fail_next: list[int] = []
        self.rate_limit_next = 0
        self.retry_after = 0.2
        self.create_delay = 0.0
        self.delay_before_create = 0.0
        self.create_pending = asyncio.Event()
        # Held creates (chaos tests kill the client meanwhile): released by release_held().
        self.hold_requests = 0
        self.hold_answers = 0
        self.held_client_ids: list[str] = []  # creates held now, in arrival order
        self.create_held = asyncio.Event()  # set while at least one create is held
        self._release = asyncio.Event()
        # Answer a repeated client_order_id (same payload) with a DUPLICATE failure instead of
        # the existing order (the client must then find its order, not call it rejected).
        self.duplicate_as_failure = False
        self._hidden: Counter[str] = Counter()
        self._trade_seq = 0
        self._fake: FakeCoinbase | None = None

    def mount(self, fake: FakeCoinbase) -> None:
        self._fake = fake
        fake.add_route("POST", f"{API}/orders", self._create)
        fake.add_route("POST", f"{API}/orders/batch_cancel", self._cancel)
        fake.add_route("POST", f"{API}/orders/edit", self._edit)
        # Before {order_id}: starlette matches routes in order.
        fake.add_route("GET", f"{API}/orders/historical/batch", self._list)
        fake.add_route("GET", f"{API}/orders/historical/fills", self._fills)
        fake.add_route("GET", f"{API}/orders/historical/{{order_id}}", self._get)
        fake.extra_channels["user"] = self._user_snapshot

    # -- assertions ------------------------------------------------------------------------

    def orders_for(self, client_order_id: str) -> list[FakeOrder]:
        return [o for o in self.orders.values() if o.client_order_id == client_order_id]

    # -- outside changes -------------------------------------------------------------------

    def fill(
        self,
        order_id: str,
        size: Decimal | str,
        price: Decimal | str | None = None,
        *,
        liquidity: str = "MAKER",
        publish: bool = True,
    ) -> str:
        """One fill of `size` (at `price`, default its limit price); FILLED when complete."""
        order = self.orders[order_id]
        size = Decimal(size)
        at = Decimal(price) if price is not None else self._price(order)
        self._trade_seq += 1
        trade_id = f"t-{self._trade_seq}"
        fee = (at * size * self.fee_rate).quantize(Decimal("0.00000001"))
        order.fills.append(
            {
                "entry_id": str(uuid.uuid4()),
                "trade_id": trade_id,
                "order_id": order.order_id,
                "trade_time": _now(),
                "trade_type": "FILL",
                "price": str(at),
                "size": str(size),
                "commission": str(fee),
                "product_id": order.product_id,
                "sequence_timestamp": _now(),
                "liquidity_indicator": liquidity,
                "size_in_quote": False,
                "user_id": "fake-user",
                "side": order.side,
            }
        )
        order.filled_size += size
        order.filled_value += at * size
        order.fees += fee
        if order.base_size is not None and order.filled_size >= order.base_size:
            order.status = "FILLED"
        if publish:
            self.publish(order)
        return trade_id

    def fill_many(
        self,
        fills: Iterable[tuple[str, Decimal | str, Decimal | str | None]],
        *,
        liquidity: str = "MAKER",
        publish: bool = True,
    ) -> list[str]:
        """Several fills (order_id, size, price) at once; each touched order's state is
        published once, after all of them (a cumulative jump). Returns the trade ids."""
        touched: dict[str, FakeOrder] = {}
        trade_ids = []
        for order_id, size, price in fills:
            trade_ids.append(self.fill(order_id, size, price, liquidity=liquidity, publish=False))
            touched[order_id] = self.orders[order_id]
        if publish:
            for order in touched.values():
                self.publish(order)
        return trade_ids

    def release_held(self) -> int:
        """Let every held create go on (a held request is processed now); stop holding.
        Returns how many were held."""
        held = len(self.held_client_ids)
        self.hold_requests = self.hold_answers = 0
        self._release.set()
        self._release = asyncio.Event()
        self.create_held.clear()
        return held

    async def _hold(self, client_id: str) -> None:
        release = self._release
        self.held_client_ids.append(client_id)
        self.create_held.set()
        try:
            await release.wait()
        finally:
            self.held_client_ids.remove(client_id)

    def cancel_outside(self, order_id: str, *, publish: bool = True) -> None:
        order = self.orders[order_id]
        order.status = "CANCELLED"
        order.cancel_message = "User requested cancel"
        if publish:
            self.publish(order)

    def place_outside(
        self, product_id: str, side: str, base_size: str, limit_price: str, *, publish: bool = True
    ) -> FakeOrder:
        """A resting limit order placed by someone else (e.g. the Coinbase app)."""
        config = {
            "limit_limit_gtc": {
                "base_size": base_size,
                "limit_price": limit_price,
                "post_only": False,
            }
        }
        order = self._place(f"app-{uuid.uuid4()}", product_id, side, config, "{}")
        order.external = True
        if publish:
            self.publish(order)
        return order

    def hide(self, order_id: str, times: int = 1) -> None:
        """The next `times` GETs of this order answer 404 (a brief not-found); it is left out
        of order lists meanwhile."""
        self._hidden[order_id] += times

    def publish(self, order: FakeOrder) -> None:
        if self._fake is not None:
            self._fake.broadcast("user", [{"type": "update", "orders": [order.user_json()]}])

    def replay_user_updates(self) -> None:
        for order in self.orders.values():
            self.publish(order)

    # -- endpoints -------------------------------------------------------------------------

    def _fault(self) -> tuple[int, Any] | None:
        if self.rate_limit_next > 0:
            self.rate_limit_next -= 1
            body = {"error": "RATE_LIMIT_EXCEEDED", "message": "Too many requests"}
            headers = {"Retry-After": str(self.retry_after)}
            return 429, JSONResponse(body, status_code=429, headers=headers)
        if self.fail_next:
            status = self.fail_next.pop(0)
            return status, {"error": "INTERNAL", "message": f"injected {status}"}
        return None

    async def _create(self, request: RestRequest) -> tuple[int, Any]:
        self.calls["create"] += 1
        fault = self._fault()
        if fault is not None:
            return fault
        if self.delay_before_create:
            self.create_pending.set()
            await asyncio.sleep(self.delay_before_create)
        body = request.json() or {}
        client_id = str(body.get("client_order_id") or "")
        if self.hold_requests > 0:
            self.hold_requests -= 1
            await self._hold(client_id)  # on its way: processed once released
        if not client_id:
            self.empty_client_ids += 1
            return 400, {"error": "INVALID_ARGUMENT", "message": "client_order_id is required"}
        config = body.get("order_configuration") or {}
        problem = _check(body, config)
        if problem:
            return 200, _failure("INVALID_ARGUMENT", problem, "UNKNOWN_FAILURE_REASON")
        payload = json.dumps(body, sort_keys=True)
        existing_id = self.by_client_id.get(client_id)
        if existing_id is not None:
            order = self.orders[existing_id]
            if order.payload != payload or self.duplicate_as_failure:
                return 200, _failure(
                    "INVALID_ARGUMENT",
                    "client_order_id already used with another order",
                    "DUPLICATE_CLIENT_ORDER_ID",
                )
        else:
            order = self._place(
                client_id, str(body["product_id"]), str(body["side"]), config, payload
            )
            if order.status == "FAILED":
                return 200, _failure("INVALID_ARGUMENT", order.reject_reason, order.reject_reason)
            if isinstance(body.get("attached_order_configuration"), dict):
                self.attached[order.order_id] = body["attached_order_configuration"]
            self.creates_processed += 1
            self._execute(order)
        answer = {
            "success": True,
            "success_response": {
                "order_id": order.order_id,
                "product_id": order.product_id,
                "side": order.side,
                "client_order_id": order.client_order_id,
            },
        }
        if self.fail_after_processing > 0:
            self.fail_after_processing -= 1
            return 500, {"error": "INTERNAL", "message": "injected 500 after processing"}
        if self.lose_responses > 0:
            self.lose_responses -= 1
            await asyncio.sleep(self.lost_hold_seconds)  # the client gave up long ago
        if self.create_delay:
            self.create_pending.set()
            await asyncio.sleep(self.create_delay)
        if self.hold_answers > 0:
            self.hold_answers -= 1
            await self._hold(client_id)  # placed; the answer waits until released
        return 200, answer

    def _place(
        self, client_id: str, product_id: str, side: str, config: dict[str, Any], payload: str
    ) -> FakeOrder:
        order = FakeOrder(
            order_id=str(uuid.uuid4()),
            client_order_id=client_id,
            product_id=product_id,
            side=side,
            configuration=config,
            payload=payload,
            created_time=_now(),
        )
        kind, params = order.kind, order.body
        if kind.startswith("limit_limit_gt") and params.get("post_only"):
            market = self.prices.get(product_id, self.default_price)
            limit = Decimal(params["limit_price"])
            if (side == "BUY" and limit >= market) or (side == "SELL" and limit <= market):
                order.status = "FAILED"
                order.reject_reason = "INVALID_LIMIT_PRICE_POST_ONLY"
        self.orders[order.order_id] = order
        self.by_client_id[client_id] = order.order_id
        return order

    def _price(self, order: FakeOrder) -> Decimal:
        limit = order.body.get("limit_price")
        if limit and order.kind not in ("market_market_ioc",):
            return Decimal(limit)
        return self.prices.get(order.product_id, self.default_price)

    def _execute(self, order: FakeOrder) -> None:
        """Market, IOC and FOK orders trade at once, in full."""
        if order.kind not in ("market_market_ioc", "sor_limit_ioc", "limit_limit_fok"):
            self.publish(order)
            return
        size = order.base_size
        if size is None:  # quote-sized market order
            price = self._price(order)
            quote = Decimal(order.body["quote_size"])
            size = (quote / price).quantize(Decimal("0.00000001"))
            self.fill(order.order_id, size, price, liquidity="TAKER", publish=False)
            order.status = "FILLED"
        else:
            self.fill(order.order_id, size, liquidity="TAKER", publish=False)
        self.publish(order)

    async def _cancel(self, request: RestRequest) -> tuple[int, Any]:
        self.calls["cancel"] += 1
        fault = self._fault()
        if fault is not None:
            return fault
        ids = (request.json() or {}).get("order_ids") or []
        results = []
        for order_id in ids:
            order = self.orders.get(order_id)
            if order is None:
                results.append(
                    {
                        "success": False,
                        "failure_reason": "UNKNOWN_CANCEL_ORDER",
                        "order_id": order_id,
                    }
                )
            elif order.status not in WORKING:
                results.append(
                    {
                        "success": False,
                        "failure_reason": "COMMANDER_REJECTED_CANCEL_ORDER",
                        "order_id": order_id,
                    }
                )
            else:
                order.status = "CANCELLED"
                order.cancel_message = "User requested cancel"
                self.publish(order)
                results.append(
                    {
                        "success": True,
                        "failure_reason": "UNKNOWN_CANCEL_FAILURE_REASON",
                        "order_id": order_id,
                    }
                )
        return 200, {"results": results}

    async def _edit(self, request: RestRequest) -> tuple[int, Any]:
        self.calls["edit"] += 1
        fault = self._fault()
        if fault is not None:
            return fault
        body = request.json() or {}
        order = self.orders.get(str(body.get("order_id")))
        if order is None or order.status not in WORKING or not order.kind.startswith("limit"):
            return 200, {
                "success": False,
                "errors": [{"edit_failure_reason": "ORDER_NOT_FOUND_OR_NOT_EDITABLE"}],
            }
        params = order.body
        params["limit_price"] = str(body.get("price", params["limit_price"]))
        params["base_size"] = str(body.get("size", params["base_size"]))
        order.configuration = {order.kind: params}
        self.publish(order)
        return 200, {"success": True, "errors": []}

    async def _get(self, request: RestRequest) -> tuple[int, Any]:
        self.calls["get"] += 1
        fault = self._fault()
        if fault is not None:
            return fault
        order_id = request.path_params["order_id"]
        order = self.orders.get(order_id)
        if self._hidden[order_id] > 0:
            self._hidden[order_id] -= 1
            order = None
        if order is None:
            return 404, {"error": "NOT_FOUND", "message": "order not found"}
        return 200, {"order": order.to_json()}

    async def _list(self, request: RestRequest) -> tuple[int, Any]:
        self.calls["list"] += 1
        fault = self._fault()
        if fault is not None:
            return fault
        wanted = request.query.get("order_status")
        orders = [
            o
            for o in self.orders.values()
            if (not wanted or o.status == wanted or (wanted == "OPEN" and o.status in WORKING))
            and self._hidden[o.order_id] <= 0
        ]
        return 200, {
            "orders": [o.to_json() for o in orders],
            "sequence": "0",
            "has_next": False,
            "cursor": "",
        }

    async def _fills(self, request: RestRequest) -> tuple[int, Any]:
        self.calls["fills"] += 1
        fault = self._fault()
        if fault is not None:
            return fault
        order_id = request.query.get("order_ids")
        since = request.query.get("start_sequence_timestamp")
        # One order's fills are looked up directly (tests with many thousand fills).
        orders = (
            [self.orders[order_id]]
            if order_id and order_id in self.orders
            else ([] if order_id else self.orders.values())
        )
        fills = [
            f
            for o in orders
            for f in o.fills
            if (not order_id or f["order_id"] == order_id)
            and (not since or f["sequence_timestamp"] >= since)
        ]
        return 200, {"fills": fills, "cursor": ""}

    def _user_snapshot(self, conn: _Connection) -> None:
        assert self._fake is not None
        open_orders = [o.user_json() for o in self.orders.values() if o.status in WORKING]
        self._fake._send(conn, "user", [{"type": "snapshot", "orders": open_orders}])


def _check(body: dict[str, Any], config: Any) -> str:
    if body.get("side") not in ("BUY", "SELL"):
        return "side must be BUY or SELL"
    if not body.get("product_id"):
        return "product_id is required"
    if not isinstance(config, dict) or len(config) != 1:
        return "exactly one order_configuration is required"
    kind, params = next(iter(config.items()))
    if kind not in CONFIGS or not isinstance(params, dict):
        return f"unknown order_configuration {kind!r}"
    if kind == "market_market_ioc":
        if ("base_size" in params) == ("quote_size" in params):
            return "market_market_ioc needs base_size or quote_size"
        return ""
    missing = [k for k in REQUIRED[kind] if not params.get(k)]
    return f"{kind} needs {', '.join(missing)}" if missing else ""


def _failure(error: str, message: str, reason: str) -> dict[str, Any]:
    return {
        "success": False,
        "error_response": {
            "error": error,
            "message": message,
            "error_details": message,
            "new_order_failure_reason": reason,
        },
    }
