"""Tradable products and the catalog the simulated feed offers."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal


@dataclass(frozen=True, slots=True)
class Product:
    product_id: str
    base_currency: str
    quote_currency: str
    base_increment: Decimal
    quote_increment: Decimal
    min_size: Decimal
    online: bool = True

    def round_price(self, price: Decimal) -> Decimal:
        return price.quantize(self.quote_increment, rounding=ROUND_HALF_EVEN)

    def round_size(self, size: Decimal) -> Decimal:
        return max(size.quantize(self.base_increment, rounding=ROUND_DOWN), self.min_size)


@dataclass(frozen=True, slots=True)
class SimulationProfile:
    """How the simulated feed moves a product: start price and annualised volatility."""

    start_price: float
    annual_volatility: float
    mean_trade_size: float  # in base currency
    spread_bps: float


def _product(base: str, quote: str, base_inc: str, quote_inc: str, min_size: str) -> Product:
    return Product(
        product_id=f"{base}-{quote}",
        base_currency=base,
        quote_currency=quote,
        base_increment=Decimal(base_inc),
        quote_increment=Decimal(quote_inc),
        min_size=Decimal(min_size),
    )


# Increments follow Coinbase's published values for these pairs.
CATALOG: dict[str, tuple[Product, SimulationProfile]] = {
    p.product_id: (p, prof)
    for p, prof in [
        (
            _product("BTC", "USD", "0.00000001", "0.01", "0.00001"),
            SimulationProfile(65_000.0, 0.55, 0.02, 0.5),
        ),
        (
            _product("ETH", "USD", "0.00000001", "0.01", "0.0001"),
            SimulationProfile(3_400.0, 0.70, 0.3, 0.8),
        ),
        (
            _product("SOL", "USD", "0.00000001", "0.01", "0.001"),
            SimulationProfile(150.0, 0.95, 5.0, 1.5),
        ),
        (
            _product("DOGE", "USD", "0.1", "0.00001", "1"),
            SimulationProfile(0.15, 1.10, 3_000.0, 3.0),
        ),
        (
            _product("LTC", "USD", "0.00000001", "0.01", "0.001"),
            SimulationProfile(85.0, 0.80, 4.0, 2.0),
        ),
        (
            _product("ETH", "BTC", "0.00000001", "0.00001", "0.0001"),
            SimulationProfile(0.052, 0.45, 0.3, 2.0),
        ),
    ]
}

DEFAULT_PRODUCT_IDS: tuple[str, ...] = ("BTC-USD", "ETH-USD", "SOL-USD")


def catalog_products(product_ids: list[str] | tuple[str, ...]) -> list[Product]:
    """The catalog entries for `product_ids`; raises ValueError naming unknown ids."""
    unknown = [p for p in product_ids if p not in CATALOG]
    if unknown:
        raise ValueError(f"unknown products {unknown}; known: {sorted(CATALOG)}")
    return [CATALOG[p][0] for p in product_ids]
