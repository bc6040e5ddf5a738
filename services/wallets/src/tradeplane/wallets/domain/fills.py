"""Fills from execution as ledger entries: trade, settlement and fee.

For a fill of `size` BASE at `price` on venue V into wallet W (s = +1 for a buy, -1 for a sell;
notional = size * price rounded half-even to the quote currency's precision):

  TRADE       counterparty/V  BASE  -s*size       clearing/V  BASE  +s*size
              clearing/V      QUOTE -s*notional   counterparty/V QUOTE +s*notional
  SETTLEMENT  wallet/W/available BASE +s*size     clearing/V  BASE  -s*size
              wallet/W/available QUOTE -s*notional  clearing/V QUOTE +s*notional
  FEE         fees/V          FEE   +fee          wallet/W/available FEE -fee   (only if fee > 0)

so clearing/V is back to zero once the settlement is posted. Fees default to the quote
currency and are rounded half-even to its precision (venues report fees below the ledger's
precision; reconciliation tolerances absorb the residue).

Idempotency keys derive from the venue's trade id ("fill:<venue>:<trade id>:<part>") and the
fingerprint from the whole fill, so a redelivered fill replays and a different fill claiming
the same trade id is refused. Fills are facts reported by the venue: they are posted even if a
wallet balance goes negative (reconciliation will show why).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from tradeplane.runtime.errors import InvalidArgument
from tradeplane.wallets.domain import accounts
from tradeplane.wallets.domain.currencies import (
    CurrencyCatalog,
    format_amount,
    ledger_context,
    split_product,
)
from tradeplane.wallets.domain.ledger import EntryKind, JournalEntry, Posting, fingerprint
from tradeplane.wallets.domain.wallets import Venue, Wallet, WalletKind, require_aware

MAX_TRADE_ID_LENGTH = 96  # keeps "fill:<venue>:<trade id>:settlement" within 128 characters


class Side(StrEnum):
    """Mirrors trading.common.v1.Side."""

    BUY = "buy"
    SELL = "sell"


class FillPart(StrEnum):
    TRADE = "trade"
    SETTLEMENT = "settlement"
    FEE = "fee"


@dataclass(frozen=True, slots=True)
class Fill:
    """An execution fill as wallets needs it (names follow trading.execution.v1.Fill).
    `fee_currency` empty means the quote currency."""

    fill_id: str
    venue_trade_id: str
    order_id: str
    account_id: str
    venue: Venue
    product_id: str
    side: Side
    size: Decimal
    price: Decimal
    fee: Decimal
    time: datetime
    fee_currency: str = ""

    def __post_init__(self) -> None:
        if not 1 <= len(self.venue_trade_id) <= MAX_TRADE_ID_LENGTH:
            raise InvalidArgument(
                "fill.venue_trade_id", f"must be 1-{MAX_TRADE_ID_LENGTH} characters"
            )
        if not self.account_id:
            raise InvalidArgument("fill.account_id", "required")
        if self.venue.is_chain:
            raise InvalidArgument("fill.venue", f"{self.venue} is not a trading venue")
        split_product(self.product_id, "fill.product_id")
        if not self.size.is_finite() or self.size <= 0:
            raise InvalidArgument("fill.size", "must be a positive decimal")
        if not self.price.is_finite() or self.price <= 0:
            raise InvalidArgument("fill.price", "must be a positive decimal")
        if not self.fee.is_finite() or self.fee < 0:
            raise InvalidArgument("fill.fee", "must be a non-negative decimal")
        require_aware(self.time, "fill.time")

    @property
    def base_currency(self) -> str:
        return split_product(self.product_id)[0]

    @property
    def quote_currency(self) -> str:
        return split_product(self.product_id)[1]

    @property
    def fee_currency_code(self) -> str:
        return self.fee_currency or self.quote_currency

    def payload(self) -> dict[str, object]:
        return {
            "fill_id": self.fill_id,
            "venue_trade_id": self.venue_trade_id,
            "order_id": self.order_id,
            "account_id": self.account_id,
            "venue": self.venue,
            "product_id": self.product_id,
            "side": self.side,
            "size": self.size,
            "price": self.price,
            "fee": self.fee,
            "fee_currency": self.fee_currency_code,
            "time": self.time,
        }


def fill_idempotency_key(venue: Venue, venue_trade_id: str, part: FillPart) -> str:
    return f"fill:{venue}:{venue_trade_id}:{part}"


def fill_idempotency_keys(fill: Fill) -> tuple[str, ...]:
    """Every key `fill_entries` may use for this fill (look them up in one query)."""
    return tuple(fill_idempotency_key(fill.venue, fill.venue_trade_id, p) for p in FillPart)


def fill_entries(
    fill: Fill, *, wallet: Wallet, currencies: CurrencyCatalog, now: datetime
) -> tuple[JournalEntry, ...]:
    """TRADE, SETTLEMENT and (when the fee is non-zero) FEE entries for one fill."""
    if wallet.kind is not WalletKind.VENUE_ACCOUNT or wallet.venue is not fill.venue:
        raise InvalidArgument("fill.venue", f"wallet {wallet.wallet_id} is not on {fill.venue}")
    if wallet.account_id != fill.account_id:
        raise InvalidArgument(
            "fill.account_id", f"wallet {wallet.wallet_id} belongs to another account"
        )
    wallet.ensure_writable()
    base = currencies.get(fill.base_currency, "fill.product_id")
    quote = currencies.get(fill.quote_currency, "fill.product_id")
    fee_currency = currencies.get(fill.fee_currency_code, "fill.fee_currency")
    size = base.check(fill.size, "fill.size")
    with ledger_context():
        notional = quote.round(size * fill.price)
    if notional == 0:
        raise InvalidArgument("fill.price", "the fill's notional rounds to zero")
    fee = fee_currency.round(fill.fee)
    s = 1 if fill.side is Side.BUY else -1
    venue = fill.venue
    wallet_account = accounts.available(wallet.wallet_id)
    clearing = accounts.clearing(venue)
    market = accounts.counterparty(venue)
    legs: dict[FillPart, tuple[EntryKind, list[Posting]]] = {
        FillPart.TRADE: (
            EntryKind.TRADE,
            [
                Posting(market, base.code, -s * size),
                Posting(clearing, base.code, s * size),
                Posting(clearing, quote.code, -s * notional),
                Posting(market, quote.code, s * notional),
            ],
        ),
        FillPart.SETTLEMENT: (
            EntryKind.SETTLEMENT,
            [
                Posting(wallet_account, base.code, s * size),
                Posting(clearing, base.code, -s * size),
                Posting(wallet_account, quote.code, -s * notional),
                Posting(clearing, quote.code, s * notional),
            ],
        ),
    }
    if fee > 0:
        legs[FillPart.FEE] = (
            EntryKind.FEE,
            [
                Posting(accounts.fees(venue), fee_currency.code, fee),
                Posting(wallet_account, fee_currency.code, -fee),
            ],
        )
    what = f"{fill.side} {format_amount(size)} {fill.product_id} @ {format_amount(fill.price)}"
    payload = fill.payload()
    return tuple(
        JournalEntry.create(
            kind=kind,
            idempotency_key=fill_idempotency_key(venue, fill.venue_trade_id, part),
            postings=postings,
            effective_time=fill.time,
            record_time=require_aware(now, "now"),
            currencies=currencies,
            request_fingerprint=fingerprint({"fill": payload, "part": part}),
            description=f"{part} of fill {fill.fill_id}: {what}",
            fill_id=fill.fill_id,
            order_id=fill.order_id,
            external_ref=fill.venue_trade_id,
        )
        for part, (kind, postings) in legs.items()
    )
