"""Names on the Coinbase side: product ids and candle granularities."""

from __future__ import annotations

from tradeplane.market.domain.intervals import Interval

# Our product ids are Coinbase's (BASE-QUOTE), so the mapping is the identity; kept in one
# place so a venue-specific alias (e.g. "-USDC" books served as "-USD") has a home.
GRANULARITY: dict[Interval, str] = {
    Interval.ONE_MINUTE: "ONE_MINUTE",
    Interval.FIVE_MINUTES: "FIVE_MINUTE",
    Interval.FIFTEEN_MINUTES: "FIFTEEN_MINUTE",
    Interval.ONE_HOUR: "ONE_HOUR",
    Interval.SIX_HOURS: "SIX_HOUR",
    Interval.ONE_DAY: "ONE_DAY",
}
INTERVAL_BY_GRANULARITY: dict[str, Interval] = {g: i for i, g in GRANULARITY.items()}
# Documented maximum of candles in one REST candles response.
MAX_CANDLES_PER_REQUEST = 350


def to_venue_product(product_id: str) -> str:
    return product_id


def from_venue_product(venue_product_id: str) -> str:
    return venue_product_id
