"""Ledger use cases: wallets, balances, transfers, entries and posting fills.

Every write is one transaction. Balance-checked writes lock the source wallet first (row lock
on Postgres, BEGIN IMMEDIATE on SQLite), then apply the idempotency rule, then check the
balance: concurrent withdrawals on one wallet are serialised and cannot overdraw it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from tradeplane.runtime.errors import AlreadyExists, DomainError, InvalidArgument, NotFound
from tradeplane.wallets.domain import accounts
from tradeplane.wallets.domain.balances import WalletBalance
from tradeplane.wallets.domain.currencies import CurrencyCatalog, check_currency_code
from tradeplane.wallets.domain.fills import Fill, fill_entries, fill_idempotency_keys
from tradeplane.wallets.domain.ledger import EntryKind, JournalEntry, replay_or_conflict
from tradeplane.wallets.domain.transfers import TransferKind, TransferRequest, transfer_entry
from tradeplane.wallets.domain.wallets import Venue, Wallet, WalletKind, check_wallet_id
from tradeplane.wallets.service_layer import metrics
from tradeplane.wallets.service_layer.page_tokens import decode_token, encode_token, page_size
from tradeplane.wallets.service_layer.ports import (
    BalanceQuery,
    EntryQuery,
    FillBatch,
    KeyConflict,
    LedgerSession,
    LedgerStore,
    WalletListing,
)
from tradeplane.wallets.service_layer.shielding import run_to_completion

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class WalletView:
    wallet: Wallet
    balances: tuple[WalletBalance, ...]


@dataclass(frozen=True, slots=True)
class BalancePage:
    balances: list[WalletBalance]
    next_page_token: str
    as_of: datetime


@dataclass(frozen=True, slots=True)
class EntryFilter:
    wallet_id: str = ""
    currency: str = ""
    kinds: tuple[EntryKind, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    as_of: datetime | None = None
    fill_id: str = ""


_SAFE_ID = re.compile(r"[^A-Za-z0-9_.:-]")


def wallet_id_for_account(venue: Venue, account_id: str) -> str:
    """Id of the wallet created for an execution account seen first in a fill."""
    candidate = f"{venue.value}-{_SAFE_ID.sub('_', account_id)}"
    if len(candidate) <= 64:
        return candidate
    return f"{venue.value}-{hashlib.sha256(account_id.encode()).hexdigest()[:32]}"


class WalletsLedger:
    def __init__(
        self, store: LedgerStore, currencies: CurrencyCatalog, *, clock: Clock = utc_now
    ) -> None:
        self._store = store
        self._currencies = currencies
        self._clock = clock
        # Fills are facts from the venue: a currency the catalog does not list is accepted
        # with the ledger's full precision rather than wedging the consumer.
        self._fill_currencies = CurrencyCatalog(list(currencies), default_precision=18)

    @property
    def currencies(self) -> CurrencyCatalog:
        return self._currencies

    # -- wallets -----------------------------------------------------------------------------

    async def create_wallet(self, wallet: Wallet) -> Wallet:
        return await run_to_completion(self._create_wallet(wallet))

    async def _create_wallet(self, wallet: Wallet) -> Wallet:
        async with self._store.write() as s:
            await s.insert_wallet(wallet)
        return wallet

    async def ensure_wallet(self, wallet: Wallet) -> Wallet:
        """The wallet with this id, created if missing (idempotent start-up provisioning)."""
        async with self._store.write() as s:
            existing = await s.get_wallet(wallet.wallet_id)
            if existing is not None:
                return existing
            await s.insert_wallet(wallet)
            return wallet

    async def list_wallets(
        self, *, venue: Venue | None, page_size_: int, page_token: str
    ) -> tuple[list[WalletView], str]:
        """A page of wallets with their balances: two queries, however many wallets."""
        limit = page_size(page_size_, default=100, maximum=1000)
        after = None
        if page_token:
            raw = decode_token(page_token).get("w")
            if not isinstance(raw, str) or not raw:
                raise InvalidArgument("page_token", "malformed page token")
            after = raw
        async with self._store.read() as s:
            wallets = await s.list_wallets(venue=venue, after=after, limit=limit + 1)
            page = wallets[:limit]
            balances = []
            if page:
                span = (page[0].wallet_id, page[-1].wallet_id)
                balances = await s.balances(BalanceQuery(wallet_range=span, venue=venue))
        token = encode_token({"w": page[-1].wallet_id}) if len(wallets) > limit else ""
        return self._views(page, balances), token

    async def wallet_listing(
        self, *, venue: Venue | None, page_size_: int, page_token: str
    ) -> tuple[list[WalletListing], str]:
        """ListWallets: a page of wallets with their balances as text, in one statement on
        Postgres (see the repository), whatever the page size."""
        limit = page_size(page_size_, default=100, maximum=1000)
        after = None
        if page_token:
            raw = decode_token(page_token).get("w")
            if not isinstance(raw, str) or not raw:
                raise InvalidArgument("page_token", "malformed page token")
            after = raw
        async with self._store.read() as s:
            rows = await s.wallet_listing(venue=venue, after=after, limit=limit + 1)
        page = rows[:limit]
        token = encode_token({"w": page[-1].wallet_id}) if len(rows) > limit else ""
        return page, token

    @staticmethod
    def _views(wallets: Sequence[Wallet], balances: Sequence[WalletBalance]) -> list[WalletView]:
        by_wallet: dict[str, list[WalletBalance]] = {w.wallet_id: [] for w in wallets}
        for b in balances:
            by_wallet[b.wallet_id].append(b)
        return [WalletView(w, tuple(by_wallet[w.wallet_id])) for w in wallets]

    async def get_wallet(self, wallet_id: str) -> WalletView:
        check_wallet_id(wallet_id)
        async with self._store.read() as s:
            wallet = await s.get_wallet(wallet_id)
            if wallet is None:
                raise NotFound(f"wallet {wallet_id} not found")
            balances = await s.balances(BalanceQuery(wallet_ids=[wallet_id]))
        return WalletView(wallet, tuple(balances))

    async def wallets(self, wallet_ids: Sequence[str] | None) -> list[Wallet]:
        """The given wallets (NOT_FOUND naming the first unknown one), or all of them."""
        async with self._store.read() as s:
            if wallet_ids is None:
                return await s.list_wallets(venue=None, after=None, limit=None)
            found = await s.wallets_by_ids(set(wallet_ids))
        missing = [w for w in wallet_ids if w not in found]
        if missing:
            raise NotFound(f"wallet {missing[0]} not found")
        return [found[w] for w in dict.fromkeys(wallet_ids)]

    # -- balances ----------------------------------------------------------------------------

    async def list_balances(
        self,
        *,
        wallet_ids: Sequence[str],
        currencies: Sequence[str],
        as_of: datetime | None,
        include_zero: bool,
        page_size_: int,
        page_token: str,
    ) -> BalancePage:
        limit = page_size(page_size_, default=100, maximum=1000)
        for i, w in enumerate(wallet_ids):
            check_wallet_id(w, f"wallet_ids[{i}]")
        for i, c in enumerate(currencies):
            check_currency_code(c, f"currencies[{i}]")
        after = None
        if page_token:
            payload = decode_token(page_token)
            last_wallet, last_currency = payload.get("w"), payload.get("c")
            if not isinstance(last_wallet, str) or not isinstance(last_currency, str):
                raise InvalidArgument("page_token", "malformed page token")
            after = (last_wallet, last_currency)
        moment = as_of or self._clock()
        async with self._store.read() as s:
            if wallet_ids:
                found = await s.wallets_by_ids(set(wallet_ids))
                missing = [w for w in wallet_ids if w not in found]
                if missing:
                    raise NotFound(f"wallet {missing[0]} not found")
            rows = await s.balances(
                BalanceQuery(
                    wallet_ids=list(wallet_ids) or None,
                    currencies=list(currencies),
                    as_of=as_of,
                    include_zero=include_zero,
                    after=after,
                    limit=limit + 1,
                )
            )
        page = rows[:limit]
        token = ""
        if len(rows) > limit:
            token = encode_token({"w": page[-1].wallet_id, "c": page[-1].currency})
        return BalancePage(page, token, moment)

    async def ledger_balances(
        self, wallet_ids: Sequence[str], *, exclude_kinds: Sequence[EntryKind] = ()
    ) -> list[WalletBalance]:
        async with self._store.read() as s:
            return await s.balances(
                BalanceQuery(wallet_ids=list(wallet_ids), exclude_kinds=exclude_kinds)
            )

    # -- transfers ---------------------------------------------------------------------------

    async def record_transfer(self, request: TransferRequest) -> JournalEntry:
        try:
            return await run_to_completion(self._record_transfer(request))
        except KeyConflict:
            # Another request took the key between our lookup and insert: now it is a replay
            # (same payload) or ALREADY_EXISTS (different payload).
            return await run_to_completion(self._record_transfer(request))

    async def _record_transfer(self, request: TransferRequest) -> JournalEntry:
        key = request.idempotency_key
        async with self._store.write() as s:
            wallet = await s.get_wallet(request.wallet_id, lock=True)
            if wallet is None:
                raise NotFound(f"wallet {request.wallet_id} not found")
            existing = (await s.entries_by_keys([key])).get(key)
            hit = replay_or_conflict(existing, key, request.fingerprint)
            if hit is not None:
                return hit
            currency = self._currencies.get(request.currency, "currency")
            to_wallet = None
            if request.kind is TransferKind.INTERNAL:
                to_wallet = await s.get_wallet(request.to_wallet_id)
                if to_wallet is None:
                    raise NotFound(f"wallet {request.to_wallet_id} not found")
            available = None
            if request.kind is not TransferKind.DEPOSIT:
                available = await s.account_balance(
                    accounts.available(wallet.wallet_id), currency.code
                )
            entry = transfer_entry(
                request,
                wallet=wallet,
                currency=currency,
                now=self._clock(),
                available=available,
                to_wallet=to_wallet,
            )
            await s.insert_entries([entry])
            metrics.count_entries([entry.kind.value])
            return entry

    # -- entries -----------------------------------------------------------------------------

    async def list_entries(
        self, f: EntryFilter, *, page_size_: int, page_token: str
    ) -> tuple[list[JournalEntry], str]:
        limit = page_size(page_size_, default=100, maximum=1000)
        if f.wallet_id:
            check_wallet_id(f.wallet_id)
        if f.currency:
            check_currency_code(f.currency)
        after = None
        if page_token:
            payload = decode_token(page_token)
            try:
                after = (datetime.fromisoformat(payload["t"]), int(payload["id"]))
            except (KeyError, TypeError, ValueError):
                raise InvalidArgument("page_token", "malformed page token") from None
        query = EntryQuery(
            limit=limit + 1,
            wallet_id=f.wallet_id,
            currency=f.currency,
            kinds=f.kinds,
            start=f.start,
            end=f.end,
            as_of=f.as_of,
            fill_id=f.fill_id,
            after=after,
        )
        async with self._store.read() as s:
            rows = await s.list_entries(query)
        page = rows[:limit]
        token = ""
        if len(rows) > limit:
            row_id, last = page[-1]
            token = encode_token({"t": last.effective_time.isoformat(), "id": row_id})
        return [e for _, e in page], token

    # -- fills -------------------------------------------------------------------------------

    async def post_fills(self, batch: FillBatch, *, consumer: str) -> int:
        return await run_to_completion(self._post_fills(batch, consumer=consumer))

    async def _post_fills(self, batch: FillBatch, *, consumer: str) -> int:
        """Post the batch's fills and move the consumer's cursor to `batch.last_seq`, in ONE
        transaction: after a crash either both happened or neither did. Fills already posted
        (same idempotency keys and payload) are skipped. Returns the fills newly posted."""
        now = self._clock()
        async with self._store.write() as s:
            keys = [k for f in batch.fills for k in fill_idempotency_keys(f)]
            existing = await s.entries_by_keys(keys)
            wallets: dict[tuple[Venue, str], Wallet] = {}
            new: list[JournalEntry] = []
            taken: set[str] = set()
            posted = 0
            for fill in batch.fills:
                try:
                    wallet = await self._wallet_for_fill(s, fill, wallets, now)
                    built = fill_entries(
                        fill, wallet=wallet, currencies=self._fill_currencies, now=now
                    )
                    fresh = []
                    for entry in built:
                        key = entry.idempotency_key
                        if key in taken:
                            continue
                        if replay_or_conflict(existing.get(key), key, entry.fingerprint) is None:
                            fresh.append(entry)
                except DomainError as exc:
                    reason = "conflict" if isinstance(exc, AlreadyExists) else "invalid"
                    metrics.FILLS_REJECTED.labels(reason).inc()
                    log.error(
                        "fill not posted",
                        extra={"fill_id": fill.fill_id, "error": exc.status_message()},
                    )
                    continue
                if fresh:
                    posted += 1
                    new.extend(fresh)
                    taken.update(e.idempotency_key for e in fresh)
                else:
                    metrics.FILLS_REPLAYED.inc()
            await s.insert_entries(new)
            metrics.count_entries([e.kind.value for e in new])
            await s.set_cursor(consumer, batch.last_seq, now)
        metrics.FILLS_POSTED.inc(posted)
        return posted

    async def _wallet_for_fill(
        self,
        s: LedgerSession,
        fill: Fill,
        cache: dict[tuple[Venue, str], Wallet],
        now: datetime,
    ) -> Wallet:
        key = (fill.venue, fill.account_id)
        wallet = cache.get(key)
        if wallet is None:
            wallet = await s.wallet_for_account(fill.venue, fill.account_id)
            if wallet is None:
                # A fill for an account we have no wallet for: open one, never drop the fill.
                wallet = Wallet(
                    wallet_id=wallet_id_for_account(fill.venue, fill.account_id),
                    display_name=f"{fill.venue.value} account {fill.account_id}",
                    kind=WalletKind.VENUE_ACCOUNT,
                    venue=fill.venue,
                    account_id=fill.account_id,
                    create_time=now,
                )
                await s.insert_wallet(wallet)
                log.info("wallet opened for a new account", extra={"wallet_id": wallet.wallet_id})
            cache[key] = wallet
        return wallet

    async def cursor(self, consumer: str) -> int | None:
        async with self._store.read() as s:
            return await s.get_cursor(consumer)


def new_wallet_id() -> str:
    return f"w-{uuid.uuid4().hex[:16]}"


def initial_deposit_request(wallet_id: str, currency: str, amount: Decimal) -> TransferRequest:
    """The start-up deposit into the default wallet; the fixed key makes restarts replays."""
    return TransferRequest(
        idempotency_key=f"initial-deposit:{wallet_id}:{currency}",
        kind=TransferKind.DEPOSIT,
        wallet_id=wallet_id,
        currency=currency,
        amount=amount,
        description="initial paper deposit (WALLETS_INITIAL_DEPOSITS)",
    )
