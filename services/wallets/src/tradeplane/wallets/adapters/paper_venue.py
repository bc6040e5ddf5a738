"""The paper venue's balances, for reconciling paper wallets in the embedded default.

The paper venue is simulated inside the platform and keeps no books of its own, so its balance
of a wallet is derived from the movements the venue itself would have seen: every deposit,
withdrawal, internal move, trade, settlement and fee posted to that wallet — that is, the ledger
WITHOUT its adjustment entries (book-only corrections a real venue never sees). The initial
paper funding (WALLETS_INITIAL_DEPOSITS) is an ordinary deposit, so it is included.

Consequently a paper reconciliation matches unless the ledger was changed behind the venue's
back (an adjustment) or a fill's trade was never settled into the wallet. It exercises the whole
path (runs, discrepancies, the stream, the schedule); the Coinbase and on-chain adapters behind
the same VenueBalances port are what compare against a truly independent source.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from tradeplane.wallets.adapters.venue_cache import VENUE_CALLS, VENUE_REQUEST_SECONDS
from tradeplane.wallets.domain.ledger import EntryKind
from tradeplane.wallets.domain.reconciliation import VenueBalance
from tradeplane.wallets.domain.wallets import Venue, Wallet, WalletKind
from tradeplane.wallets.service_layer.ledger import WalletsLedger
from tradeplane.wallets.service_layer.ports import VenueSnapshot


class PaperVenueBalances:
    """VenueBalances for wallets on the paper venue (one SQL query per fetch)."""

    def __init__(self, ledger: WalletsLedger, clock: Callable[[], datetime]) -> None:
        self._ledger = ledger
        self._clock = clock

    def handles(self, wallet: Wallet) -> bool:
        return wallet.kind is WalletKind.VENUE_ACCOUNT and wallet.venue is Venue.PAPER

    async def fetch(self, wallets: Sequence[Wallet], *, force_refresh: bool) -> VenueSnapshot:
        now = self._clock()
        # Counted like a real venue's call, so the venue panels cover the embedded default.
        with VENUE_REQUEST_SECONDS.labels("paper", "balances").time():
            rows = await self._ledger.ledger_balances(
                [w.wallet_id for w in wallets], exclude_kinds=[EntryKind.ADJUSTMENT]
            )
        VENUE_CALLS.labels("paper", "balances", "ok").inc()
        return VenueSnapshot(
            tuple(VenueBalance(b.wallet_id, b.currency, b.available, b.hold, now) for b in rows),
            calls=1,
        )
