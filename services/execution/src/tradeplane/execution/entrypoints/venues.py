"""ListVenues: the configured venue's health and its last reconciliation, as protos."""

from __future__ import annotations

from tradeplane.execution.domain.values import Venue
from tradeplane.execution.service_layer.venue_reconciliation import VenueReconciler
from trading.common.v1 import common_pb2
from trading.execution.v1 import execution_pb2 as pb


def venue_statuses(venue: Venue, reconciler: VenueReconciler | None) -> pb.ListVenuesResponse:
    status = pb.VenueStatus(venue=common_pb2.Venue.Value(f"VENUE_{venue.value}"))
    if reconciler is None:  # the paper venue keeps no state of its own to reconcile
        status.health = pb.VENUE_HEALTH_OK
        return pb.ListVenuesResponse(venues=[status])
    last = reconciler.last
    if last is not None:
        status.last_reconcile_time.FromDatetime(last.time)
        status.unresolved_mismatches.extend(
            f"{m.order_id or m.venue_order_id}: {m.problem}" for m in last.mismatches
        )
    if reconciler.trading_ok:
        status.health = pb.VENUE_HEALTH_OK
    elif last is None or (reconciler.running and not last.mismatches):
        status.health = pb.VENUE_HEALTH_RECONCILING
    elif last.mismatches:
        status.health = pb.VENUE_HEALTH_UNRECONCILED
    else:
        status.health = pb.VENUE_HEALTH_UNAVAILABLE
    return pb.ListVenuesResponse(venues=[status])
