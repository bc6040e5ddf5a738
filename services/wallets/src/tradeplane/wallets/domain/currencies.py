"""Currencies, their ledger precision and reconciliation tolerance, and exact amount handling.

The ledger stores amounts as NUMERIC(38, 18): at most 20 integer digits and 18 decimal places,
so a currency's precision is 0..18 and every amount's magnitude stays below 10**20. All sums
run in LEDGER_CONTEXT, whose 60 significant digits make them exact for such amounts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal, DivisionByZero, InvalidOperation, Overflow
from decimal import localcontext as _localcontext

from tradeplane.runtime.errors import InvalidArgument

MAX_PRECISION = 18
AMOUNT_LIMIT = Decimal(10) ** 20  # exclusive bound on |amount|

LEDGER_CONTEXT = Context(
    prec=60, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow]
)

_CODE = re.compile(r"^[A-Z0-9]{1,16}$")


def ledger_context() -> AbstractContextManager[Context]:
    """`with ledger_context():` — exact arithmetic for ledger sums."""
    return _localcontext(LEDGER_CONTEXT)


def check_currency_code(code: str, field: str = "currency") -> str:
    if not _CODE.match(code):
        raise InvalidArgument(field, f"{code!r} is not a currency code (A-Z, 0-9, 1-16 chars)")
    return code


def decimal_places(amount: Decimal) -> int:
    """Decimal places `amount` really needs (trailing zeros ignored), computed exactly."""
    _, digits, exponent = amount.as_tuple()
    if not isinstance(exponent, int):  # NaN / Infinity
        raise ValueError("not a finite amount")
    if not any(digits):
        return 0
    trailing = 0
    for d in reversed(digits):
        if d != 0:
            break
        trailing += 1
    return max(0, -(exponent + trailing))


def format_amount(amount: Decimal) -> str:
    """Plain decimal string without exponent or trailing zeros: "1.5", "100", "0.00000001"."""
    with ledger_context():
        text = format(amount.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def amount_text(value: Decimal) -> str:
    """format_amount without a decimal context: plain notation, no trailing zeros (hot path:
    three per balance, thousands per ListWallets page)."""
    if not value:
        return "0"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def parse_amount(text: str, field: str) -> Decimal:
    """A decimal string from the API -> Decimal; InvalidArgument naming `field` otherwise."""
    try:
        amount = Decimal(text.strip())
    except (InvalidOperation, AttributeError):
        raise InvalidArgument(field, f"{text!r} is not a decimal number") from None
    if not amount.is_finite():
        raise InvalidArgument(field, f"{text!r} is not a finite decimal number")
    return amount


def split_product(product_id: str, field: str = "product_id") -> tuple[str, str]:
    """'BTC-USD' -> ('BTC', 'USD')."""
    parts = product_id.split("-")
    if len(parts) != 2 or not all(_CODE.match(p) for p in parts) or parts[0] == parts[1]:
        raise InvalidArgument(field, f"{product_id!r} is not a BASE-QUOTE product id")
    return parts[0], parts[1]


@dataclass(frozen=True, slots=True)
class Currency:
    """A currency as the ledger keeps it.

    `precision` is the number of decimal places the ledger stores (every posting must fit);
    `tolerance` is the largest |venue - ledger| difference reconciliation accepts.
    """

    code: str
    precision: int
    tolerance: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        check_currency_code(self.code, "currency.code")
        if not 0 <= self.precision <= MAX_PRECISION:
            raise InvalidArgument("currency.precision", f"must be 0..{MAX_PRECISION}")
        if not self.tolerance.is_finite() or self.tolerance < 0:
            raise InvalidArgument("currency.tolerance", "must be a non-negative decimal")

    @property
    def quantum(self) -> Decimal:
        """The smallest amount: Decimal('0.01') for precision 2."""
        return Decimal(1).scaleb(-self.precision)

    def fits(self, amount: Decimal) -> bool:
        return amount.is_finite() and decimal_places(amount) <= self.precision

    def check(self, amount: Decimal, field: str) -> Decimal:
        """Raise InvalidArgument(field) unless `amount` is finite, below the limit and fits."""
        if not amount.is_finite():
            raise InvalidArgument(field, "must be a finite decimal")
        if abs(amount) >= AMOUNT_LIMIT:
            raise InvalidArgument(field, f"{format_amount(amount)} is too large")
        if decimal_places(amount) > self.precision:
            raise InvalidArgument(
                field,
                f"{format_amount(amount)} {self.code} has more than the currency's "
                f"{self.precision} decimal places",
            )
        return amount

    def round(self, amount: Decimal) -> Decimal:
        """Round half-even to the currency's precision (for computed amounts, e.g. notional)."""
        with ledger_context():
            return amount.quantize(self.quantum, rounding=ROUND_HALF_EVEN)


class CurrencyCatalog:
    """The currencies the ledger accepts. Unknown codes are refused unless a default
    precision is configured (e.g. for on-chain tokens discovered at run time)."""

    def __init__(
        self,
        currencies: Iterable[Currency],
        *,
        default_precision: int | None = None,
        default_tolerance: Decimal = Decimal(0),
    ) -> None:
        self._by_code: dict[str, Currency] = {}
        for c in currencies:
            if c.code in self._by_code:
                raise ValueError(f"currency {c.code} listed twice")
            self._by_code[c.code] = c
        self._default_precision = default_precision
        self._default_tolerance = default_tolerance

    def get(self, code: str, field: str = "currency") -> Currency:
        known = self._by_code.get(code)
        if known is not None:
            return known
        check_currency_code(code, field)
        if self._default_precision is None:
            raise InvalidArgument(field, f"unknown currency {code!r}")
        return Currency(code, self._default_precision, self._default_tolerance)

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    def tolerance(self, code: str) -> Decimal:
        known = self._by_code.get(code)
        return known.tolerance if known is not None else self._default_tolerance

    def tolerances(self) -> Mapping[str, Decimal]:
        return {code: c.tolerance for code, c in self._by_code.items()}

    def __iter__(self) -> Iterator[Currency]:
        return iter(self._by_code.values())


# Fiat keeps 8 places because venues charge fees in fractions of a cent; tokens use their
# on-chain decimals (ETH 18, SOL 9 lamports, USDC/USDT 6). Tolerances: one cent for
# fiat-like currencies, one smallest on-venue unit for crypto.
DEFAULT_CURRENCIES: tuple[Currency, ...] = (
    Currency("USD", 8, Decimal("0.01")),
    Currency("EUR", 8, Decimal("0.01")),
    Currency("GBP", 8, Decimal("0.01")),
    Currency("USDC", 6, Decimal("0.01")),
    Currency("USDT", 6, Decimal("0.01")),
    Currency("BTC", 8, Decimal("0.00000001")),
    Currency("ETH", 18, Decimal("0.00000001")),
    Currency("SOL", 9, Decimal("0.000000001")),
    Currency("LTC", 8, Decimal("0.00000001")),
    Currency("DOGE", 8, Decimal("0.00000001")),
)


def default_catalog() -> CurrencyCatalog:
    return CurrencyCatalog(DEFAULT_CURRENCIES)
