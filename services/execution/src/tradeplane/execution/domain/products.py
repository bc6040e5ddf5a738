"""What the execution domain needs to know about a product: its currencies and increments."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tradeplane.execution.domain.decimals import ZERO


@dataclass(frozen=True, slots=True)
class ProductRules:
    """Trading rules of one product, as the venue publishes them (e.g. Coinbase's
    ``base_increment``, ``quote_increment``, ``base_min_size``, ``base_max_size``)."""

    product_id: str
    base_currency: str
    quote_currency: str
    base_increment: Decimal
    quote_increment: Decimal
    min_size: Decimal = ZERO
    max_size: Decimal | None = None

    @classmethod
    def simple(
        cls,
        product_id: str,
        base_increment: str = "0.00000001",
        quote_increment: str = "0.01",
        min_size: str = "0",
        max_size: str | None = None,
    ) -> ProductRules:
        """Rules for a ``BASE-QUOTE`` product id (handy for tests and the paper venue)."""
        base, quote = split_product_id(product_id)
        return cls(
            product_id=product_id,
            base_currency=base,
            quote_currency=quote,
            base_increment=Decimal(base_increment),
            quote_increment=Decimal(quote_increment),
            min_size=Decimal(min_size),
            max_size=None if max_size is None else Decimal(max_size),
        )


def split_product_id(product_id: str) -> tuple[str, str]:
    """``"BTC-USD"`` -> ``("BTC", "USD")``; ValueError when it has no single dash."""
    base, sep, quote = product_id.partition("-")
    if not sep or not base or not quote or "-" in quote:
        raise ValueError(f"product id {product_id!r} is not BASE-QUOTE")
    return base, quote
