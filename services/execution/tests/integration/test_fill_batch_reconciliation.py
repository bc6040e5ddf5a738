"""Reconciliation applies the fills missed while away in batches: the missing fills of all
the orders of a pass go to ``on_fills`` together (real service and database, a venue that
lists what it traded), then each order gets its final status."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from tradeplane.execution.adapters.venue_sync import VenueSyncStore
from tradeplane.execution.domain.values import (
    Liquidity,
    OrderStatus,
    OrderType,
    TimeInForce,
    Venue,
)
from tradeplane.execution.service_layer.commands import ExecutionCommands
from tradeplane.execution.service_layer.ports import VenueFill
from tradeplane.execution.service_layer.venue_reconciliation import (
    VenueOrderState,
    VenueReconciler,
    VenueTrade,
)

from .test_fill_batch import NOW, ORDERS, place_orders, service, table
from .test_fill_batch import two_databases as two_databases  # the fixture (both dialects)


class Reports:
    """The service's VenueReports, recording how fills reach it."""

    def __init__(self, commands: ExecutionCommands) -> None:
        self.commands = commands
        self.fill_calls: list[list[str]] = []

    async def on_fill(self, report: VenueFill) -> None:
        self.fill_calls.append([report.venue_trade_id])
        await self.commands.on_fill(report)

    async def on_fills(self, reports: Sequence[VenueFill]) -> None:
        self.fill_calls.append([r.venue_trade_id for r in reports])
        await self.commands.on_fills(reports)

    async def on_order_done(self, order_id: str, status: OrderStatus, reason: str) -> None:
        await self.commands.on_order_done(order_id, status, reason)


class AwayVenue:
    """What the venue traded while the service was down: venue order id -> (status, trades)."""

    venue = Venue.COINBASE

    def __init__(self, traded: dict[str, tuple[OrderStatus | None, list[VenueTrade]]]) -> None:
        self.traded = traded
        self.by_venue_id = {f"v-{n}": o for n, o in enumerate(ORDERS)}

    def _state(self, venue_order_id: str) -> VenueOrderState:
        order = self.by_venue_id[venue_order_id]
        done, trades = self.traded.get(venue_order_id, (None, []))
        filled = sum((t.size for t in trades), Decimal(0))
        status = done or (OrderStatus.PARTIALLY_FILLED if filled else OrderStatus.OPEN)
        return VenueOrderState(
            venue_order_id=venue_order_id,
            client_order_id=order.order_id,
            product_id=order.spec.product_id,
            side=order.spec.side,
            status=status,
            filled_size=filled,
            type=OrderType.LIMIT,
            time_in_force=TimeInForce.GTC,
            create_time=NOW,
        )

    async def open_orders(self) -> list[VenueOrderState]:
        states = [self._state(v) for v in self.by_venue_id]
        return [s for s in states if s.status.is_working]

    async def get_order(self, venue_order_id: str) -> VenueOrderState | None:
        return self._state(venue_order_id) if venue_order_id in self.by_venue_id else None

    async def order_trades(self, venue_order_id: str) -> list[VenueTrade]:
        return list(self.traded.get(venue_order_id, (None, []))[1])

    async def recent_trades(self, since: datetime) -> list[VenueTrade]:
        return [t for _, trades in self.traded.values() for t in trades]

    def track(self, order_id: str, venue_order_id: str) -> None:
        pass


def trade(venue_order_id: str, trade_id: str, size: str, price: str) -> VenueTrade:
    return VenueTrade(
        venue_order_id=venue_order_id,
        venue_trade_id=trade_id,
        price=Decimal(price),
        size=Decimal(size),
        fee=Decimal("0.5"),
        fee_currency="USD",
        liquidity=Liquidity.MAKER,
        time=NOW,
    )


async def test_a_pass_applies_the_missed_fills_of_all_orders_in_one_batch(
    two_databases: tuple[str, str],
) -> None:
    async with service(two_databases[0]) as svc:
        await place_orders(svc)
        venue = AwayVenue(
            {
                "v-0": (
                    OrderStatus.FILLED,
                    [trade("v-0", "t1", "0.03", "49900"), trade("v-0", "t4", "0.07", "49800")],
                ),
                # Partly filled, then canceled at the venue: its fill first, then CANCELED.
                "v-1": (OrderStatus.CANCELED, [trade("v-1", "t2", "0.4", "3010")]),
                "v-2": (OrderStatus.FILLED, [trade("v-2", "t3", "0.05", "50100")]),
            }
        )
        reports = Reports(svc.commands)
        reconciler = VenueReconciler(
            svc.store,
            VenueSyncStore(svc.store.engine),
            venue,
            reports,
            svc.commands.send_to_venue,
            default_account_id="a",
            confirm_delay=0,
        )
        report = await reconciler.run_once()
        # The fills complete o-a-btc and o-b-btc; o-a-eth is finished by its venue status.
        assert report.ok and report.fills_applied == 4 and report.finished == 1
        # One batch for the pass (in the order of the working orders), not one per fill.
        assert len(reports.fill_calls) == 1
        assert sorted(reports.fill_calls[0]) == ["t1", "t2", "t3", "t4"]
        orders = {o["order_id"]: o for o in await table(svc, "orders", (), ("order_id",))}
        assert orders["o-a-btc"]["status"] == "FILLED"
        assert orders["o-a-eth"]["status"] == "CANCELED"
        assert orders["o-a-eth"]["filled_size"] == "0.4"
        assert orders["o-b-btc"]["status"] == "FILLED"
        assert orders["o-b-entry"]["status"] == "OPEN"
        fills = await table(svc, "fills", ("fill_id",), ("venue_trade_id",))
        assert [f["venue_trade_id"] for f in fills] == ["t1", "t2", "t3", "t4"]

        # Nothing missing any more: the next pass applies nothing.
        report = await reconciler.run_once()
        assert report.ok and report.fills_applied == 0 and len(reports.fill_calls) == 1
