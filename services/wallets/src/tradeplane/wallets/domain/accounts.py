"""The chart of accounts: every ledger account, its code and what it means.

Sign convention (trading.wallets.v1.Posting): a positive amount is a debit, a negative amount a
credit. For asset accounts a debit increases what we own. Every entry's postings sum to zero
per currency, so the sum over ALL accounts of any currency is always zero: what the wallets
hold is exactly mirrored by the world, the market and fees.

  code                           kind          meaning                              constrained
  wallet/<wallet_id>/available   AVAILABLE     asset: free to trade or withdraw     >= 0
  wallet/<wallet_id>/hold        HOLD          asset: reserved (open orders,        >= 0
                                               pending withdrawals)
  clearing/<venue>               CLEARING      trades executed but not yet settled
                                               into the wallet; zero once every
                                               trade is settled
  counterparty/<venue>           COUNTERPARTY  the market on a venue: the other side
                                               of every trade (its balance is minus
                                               our net purchases per currency)
  fees/<venue>                   FEES          fees paid to the venue (expense;
                                               grows positive)
  external/deposits              EXTERNAL      the outside world funds came from
                                               (grows negative)
  external/withdrawals           EXTERNAL      the outside world funds went to
                                               (grows positive)
  external/adjustments           EXTERNAL      the other side of corrections, e.g.
                                               after reconciliation or on-chain
                                               balance changes

A wallet's balance is available + hold ("total"); reconciliation compares that total with the
venue's. Constrained accounts may not be driven negative by a transfer or reversal (fills are
facts from the venue and are posted regardless).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tradeplane.runtime.errors import InvalidArgument
from tradeplane.wallets.domain.wallets import Venue, check_wallet_id


class AccountKind(StrEnum):
    AVAILABLE = "available"
    HOLD = "hold"
    CLEARING = "clearing"
    COUNTERPARTY = "counterparty"
    FEES = "fees"
    EXTERNAL = "external"

    @property
    def is_wallet(self) -> bool:
        return self in (AccountKind.AVAILABLE, AccountKind.HOLD)


class External(StrEnum):
    DEPOSITS = "deposits"
    WITHDRAWALS = "withdrawals"
    ADJUSTMENTS = "adjustments"


_VENUE_KINDS = (AccountKind.CLEARING, AccountKind.COUNTERPARTY, AccountKind.FEES)


@dataclass(frozen=True, slots=True, order=True)
class Account:
    """A ledger account. `owner` is the wallet id, the venue or the external name."""

    kind: AccountKind
    owner: str

    @property
    def code(self) -> str:
        if self.kind.is_wallet:
            return f"wallet/{self.owner}/{self.kind}"
        return f"{self.kind}/{self.owner}"

    @property
    def wallet_id(self) -> str | None:
        return self.owner if self.kind.is_wallet else None

    @property
    def constrained(self) -> bool:
        """May not go negative through transfers or reversals."""
        return self.kind.is_wallet

    def __str__(self) -> str:
        return self.code

    @classmethod
    def parse(cls, code: str, field: str = "account") -> Account:
        parts = code.split("/")
        try:
            if len(parts) == 3 and parts[0] == "wallet":
                kind = AccountKind(parts[2])
                if kind.is_wallet:
                    return cls(kind, check_wallet_id(parts[1], field))
            elif len(parts) == 2:
                kind = AccountKind(parts[0])
                if kind in _VENUE_KINDS:
                    return cls(kind, Venue(parts[1]).value)
                if kind is AccountKind.EXTERNAL:
                    return cls(kind, External(parts[1]).value)
        except ValueError:
            pass
        raise InvalidArgument(field, f"{code!r} is not a ledger account code")


def available(wallet_id: str) -> Account:
    return Account(AccountKind.AVAILABLE, wallet_id)


def hold(wallet_id: str) -> Account:
    return Account(AccountKind.HOLD, wallet_id)


def clearing(venue: Venue) -> Account:
    return Account(AccountKind.CLEARING, venue.value)


def counterparty(venue: Venue) -> Account:
    return Account(AccountKind.COUNTERPARTY, venue.value)


def fees(venue: Venue) -> Account:
    return Account(AccountKind.FEES, venue.value)


def external(name: External) -> Account:
    return Account(AccountKind.EXTERNAL, name.value)


EXTERNAL_DEPOSITS = external(External.DEPOSITS)
EXTERNAL_WITHDRAWALS = external(External.WITHDRAWALS)
EXTERNAL_ADJUSTMENTS = external(External.ADJUSTMENTS)
