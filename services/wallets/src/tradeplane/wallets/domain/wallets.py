"""Wallets: a venue account (ledger updated from fills and transfers) or a read-only
on-chain address (monitored; only adjustments are posted to it)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from tradeplane.runtime.errors import FailedPrecondition, InvalidArgument

# No "/" because wallet ids are embedded in ledger account codes ("wallet/<id>/available").
_WALLET_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class WalletKind(StrEnum):
    VENUE_ACCOUNT = "venue_account"
    ONCHAIN_ADDRESS = "onchain_address"


class Venue(StrEnum):
    """Mirrors trading.common.v1.Venue."""

    PAPER = "paper"
    COINBASE = "coinbase"
    SOLANA = "solana"
    EVM = "evm"

    @property
    def is_chain(self) -> bool:
        return self in (Venue.SOLANA, Venue.EVM)


def check_wallet_id(wallet_id: str, field: str = "wallet_id") -> str:
    if not _WALLET_ID.match(wallet_id):
        raise InvalidArgument(field, f"{wallet_id!r} is not a wallet id (A-Za-z0-9_.:-, 1-64)")
    return wallet_id


def require_aware(value: datetime, field: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidArgument(field, "must be a timezone-aware time")
    return value


@dataclass(frozen=True, slots=True)
class Wallet:
    """Field names follow trading.wallets.v1.Wallet (balances live in `balances`)."""

    wallet_id: str
    display_name: str
    kind: WalletKind
    venue: Venue
    create_time: datetime
    account_id: str = ""
    address: str = ""
    chain: str = ""
    read_only: bool = False

    def __post_init__(self) -> None:
        check_wallet_id(self.wallet_id, "wallet.wallet_id")
        require_aware(self.create_time, "wallet.create_time")
        if self.kind is WalletKind.VENUE_ACCOUNT:
            if self.venue.is_chain:
                raise InvalidArgument("wallet.venue", f"{self.venue} is not a trading venue")
            if not self.account_id:
                raise InvalidArgument("wallet.account_id", "required for a venue account")
            if self.address or self.chain:
                raise InvalidArgument("wallet.address", "only on-chain wallets have an address")
        else:
            if not self.venue.is_chain:
                raise InvalidArgument("wallet.venue", f"{self.venue} is not a chain")
            if not self.address:
                raise InvalidArgument("wallet.address", "required for an on-chain wallet")
            if not self.chain:
                raise InvalidArgument("wallet.chain", "required for an on-chain wallet")
            if self.account_id:
                raise InvalidArgument("wallet.account_id", "on-chain wallets have no account")
            if not self.read_only:
                raise InvalidArgument("wallet.read_only", "on-chain wallets are read-only")

    def ensure_writable(self) -> None:
        """Transfers and fills need a wallet the platform controls (adjustments do not)."""
        if self.read_only:
            raise FailedPrecondition(
                f"wallet {self.wallet_id} is read-only: only adjustments can be posted to it"
            )
