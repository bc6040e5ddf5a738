"""The ledger on SQLAlchemy (Postgres and SQLite): wallets, entries, postings, balances and
consumer cursors. Balances are one GROUP BY over postings; lists page in SQL; writes are batched.

A `SqlLedgerSession` is one transaction. Write sessions lock up front on SQLite (BEGIN
IMMEDIATE, see adapters.sqlite); on Postgres `get_wallet(..., lock=True)` takes the wallet row
with SELECT ... FOR UPDATE, which serialises every balance-checked write on that wallet.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, func, literal, or_, select, text, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from tradeplane.runtime.errors import AlreadyExists
from tradeplane.wallets.adapters import orm
from tradeplane.wallets.adapters.sqlite import WRITE_OPTION, configure_sqlite
from tradeplane.wallets.domain.accounts import Account, AccountKind
from tradeplane.wallets.domain.balances import WalletBalance
from tradeplane.wallets.domain.currencies import amount_text
from tradeplane.wallets.domain.ledger import EntryKind, JournalEntry, Posting
from tradeplane.wallets.domain.wallets import Venue, Wallet, WalletKind
from tradeplane.wallets.service_layer.ports import (
    BalanceQuery,
    EntryQuery,
    KeyConflict,
    WalletListing,
)

W = orm.wallets
E = orm.journal_entries
P = orm.postings
C = orm.consumer_cursors


def wallet_from_row(row: Any) -> Wallet:
    return Wallet(
        wallet_id=row.wallet_id,
        display_name=row.display_name,
        kind=WalletKind(row.kind),
        venue=Venue(row.venue),
        account_id=row.account_id,
        address=row.address,
        chain=row.chain,
        read_only=bool(row.read_only),
        create_time=row.create_time,
    )


def wallet_to_row(wallet: Wallet) -> dict[str, Any]:
    return {
        "wallet_id": wallet.wallet_id,
        "display_name": wallet.display_name,
        "kind": wallet.kind.value,
        "venue": wallet.venue.value,
        "account_id": wallet.account_id,
        "address": wallet.address,
        "chain": wallet.chain,
        "read_only": wallet.read_only,
        "create_time": wallet.create_time,
    }


def _entry_row(entry: JournalEntry) -> dict[str, Any]:
    return {
        "entry_id": entry.entry_id,
        "idempotency_key": entry.idempotency_key,
        "fingerprint": entry.fingerprint,
        "kind": entry.kind.value,
        "description": entry.description,
        "effective_time": entry.effective_time,
        "record_time": entry.record_time,
        "fill_id": entry.fill_id,
        "order_id": entry.order_id,
        "external_ref": entry.external_ref,
        "corrects_entry_id": entry.corrects_entry_id,
    }


def _entry_from_rows(row: Any, legs: Sequence[Any]) -> JournalEntry:
    return JournalEntry(
        entry_id=row.entry_id,
        idempotency_key=row.idempotency_key,
        kind=EntryKind(row.kind),
        postings=tuple(
            Posting(Account.parse(leg.account_code), leg.currency, leg.amount) for leg in legs
        ),
        effective_time=row.effective_time,
        record_time=row.record_time,
        fingerprint=row.fingerprint,
        description=row.description,
        fill_id=row.fill_id,
        order_id=row.order_id,
        external_ref=row.external_ref,
        corrects_entry_id=row.corrects_entry_id,
    )


class SqlLedgerSession:
    """One transaction on the ledger tables."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self._dialect = conn.dialect.name

    # -- helpers -----------------------------------------------------------------------------

    def _insert(self, table: Any) -> Any:
        return (postgresql.insert if self._dialect == "postgresql" else sqlite.insert)(table)

    def _sum(self, expr: Any) -> ColumnElement[Decimal]:
        """Exact SUM of amounts, 0 when there are none (decimal_sum on SQLite)."""
        if self._dialect == "sqlite":
            total: Any = func.decimal_sum(expr, type_=orm.LedgerAmount())
        else:
            total = func.sum(expr, type_=orm.LedgerAmount())
        zero = literal(Decimal(0), orm.LedgerAmount())  # '0' text on SQLite, like decimal_sum
        return func.coalesce(total, zero, type_=orm.LedgerAmount())

    # -- wallets -----------------------------------------------------------------------------

    async def insert_wallet(self, wallet: Wallet) -> None:
        try:
            async with self.conn.begin_nested():
                await self.conn.execute(W.insert().values(**wallet_to_row(wallet)))
        except IntegrityError:
            raise AlreadyExists(
                f"wallet {wallet.wallet_id} (or one for the same account/address) exists"
            ) from None

    async def get_wallet(self, wallet_id: str, *, lock: bool = False) -> Wallet | None:
        query = select(W).where(W.c.wallet_id == wallet_id)
        if lock:
            query = query.with_for_update()  # Postgres row lock; SQLite holds the db lock
        row = (await self.conn.execute(query)).first()
        return None if row is None else wallet_from_row(row)

    async def wallets_by_ids(self, wallet_ids: Collection[str]) -> dict[str, Wallet]:
        if not wallet_ids:
            return {}
        rows = (await self.conn.execute(select(W).where(W.c.wallet_id.in_(list(wallet_ids))))).all()
        return {r.wallet_id: wallet_from_row(r) for r in rows}

    async def wallet_for_account(self, venue: Venue, account_id: str) -> Wallet | None:
        query = select(W).where(
            W.c.venue == venue.value, W.c.account_id == account_id, W.c.kind == "venue_account"
        )
        row = (await self.conn.execute(query)).first()
        return None if row is None else wallet_from_row(row)

    async def list_wallets(
        self, *, venue: Venue | None, after: str | None, limit: int | None
    ) -> list[Wallet]:
        query = select(W).order_by(W.c.wallet_id)
        if venue is not None:
            query = query.where(W.c.venue == venue.value)
        if after is not None:
            query = query.where(W.c.wallet_id > after)
        if limit is not None:
            query = query.limit(limit)
        # .all() fetches in one call; iterating the result fetches row by row (much slower)
        return [wallet_from_row(r) for r in (await self.conn.execute(query)).all()]

    async def wallet_listing(
        self, *, venue: Venue | None, after: str | None, limit: int
    ) -> list[WalletListing]:
        """A page of wallets with their balances as text: ONE statement on Postgres (the
        aggregation, numeric -> text and JSON packing happen in SQL); two on SQLite."""
        if self._dialect == "postgresql":
            params = {
                "venue": venue.value if venue else None,
                "after": after,
                "limit": limit,
            }
            rows = (await self.conn.execute(_PG_WALLET_LISTING, params)).all()
            listings = []
            for r in rows:
                f = r[10].split(" ") if r[10] else []
                listings.append(
                    WalletListing(
                        r[0],
                        r[1],
                        r[2],
                        r[3],
                        r[4],
                        r[5],
                        r[6],
                        bool(r[7]),
                        int(r[8]),
                        int(r[9]),
                        tuple(zip(f[0::4], f[1::4], f[2::4], f[3::4], strict=True)),
                    )
                )
            return listings
        wallets = await self.list_wallets(venue=venue, after=after, limit=limit)
        by_wallet: dict[str, list[tuple[str, str, str, str]]] = {w.wallet_id: [] for w in wallets}
        if wallets:
            span = (wallets[0].wallet_id, wallets[-1].wallet_id)
            for b in await self.balances(BalanceQuery(wallet_range=span, venue=venue)):
                if b.wallet_id in by_wallet:
                    by_wallet[b.wallet_id].append(
                        (
                            b.currency,
                            amount_text(b.available),
                            amount_text(b.hold),
                            amount_text(b.total),
                        )
                    )
        listings = []
        for w in wallets:
            micros = int(w.create_time.timestamp() * 1_000_000)
            listings.append(
                WalletListing(
                    w.wallet_id,
                    w.display_name,
                    w.kind.value,
                    w.venue.value,
                    w.account_id,
                    w.address,
                    w.chain,
                    w.read_only,
                    micros // 1_000_000,
                    (micros % 1_000_000) * 1000,
                    tuple(by_wallet[w.wallet_id]),
                )
            )
        return listings

    # -- balances ----------------------------------------------------------------------------

    async def balances(self, q: BalanceQuery) -> list[WalletBalance]:
        """Wallet balances (available, hold) per (wallet, currency) in ONE grouped query."""
        available = self._sum(case((P.c.account_kind == AccountKind.AVAILABLE.value, P.c.amount)))
        held = self._sum(case((P.c.account_kind == AccountKind.HOLD.value, P.c.amount)))
        query = (
            select(P.c.wallet_id, P.c.currency, available.label("available"), held.label("hold"))
            .where(P.c.wallet_id.is_not(None))
            .group_by(P.c.wallet_id, P.c.currency)
            .order_by(P.c.wallet_id, P.c.currency)
        )
        if q.wallet_ids is not None:
            query = query.where(P.c.wallet_id.in_(list(q.wallet_ids)))
        if q.wallet_range is not None:
            query = query.where(P.c.wallet_id.between(*q.wallet_range))
        if q.venue is not None:
            query = query.where(
                P.c.wallet_id.in_(select(W.c.wallet_id).where(W.c.venue == q.venue.value))
            )
        if q.currencies:
            query = query.where(P.c.currency.in_(list(q.currencies)))
        if q.as_of is not None:
            query = query.where(P.c.effective_time <= q.as_of)
        if q.exclude_kinds:
            query = query.where(P.c.entry_kind.not_in([k.value for k in q.exclude_kinds]))
        if q.after is not None:
            query = query.where(tuple_(P.c.wallet_id, P.c.currency) > tuple_(*q.after))
        if not q.include_zero:
            query = query.having(or_(available != Decimal(0), held != Decimal(0)))
        if q.limit is not None:
            query = query.limit(q.limit)
        rows = (await self.conn.execute(query)).all()
        return [WalletBalance(r.wallet_id, r.currency, r.available, r.hold) for r in rows]

    async def account_balance(self, account: Account, currency: str) -> Decimal:
        query = select(self._sum(P.c.amount)).where(
            P.c.account_code == account.code, P.c.currency == currency
        )
        return Decimal((await self.conn.execute(query)).scalar_one())

    # -- entries -----------------------------------------------------------------------------

    async def entries_by_keys(self, keys: Collection[str]) -> dict[str, JournalEntry]:
        """The entries posted under these idempotency keys (two queries for any number)."""
        if not keys:
            return {}
        rows = (await self.conn.execute(select(E).where(E.c.idempotency_key.in_(list(keys))))).all()
        entries = await self._with_postings(rows)
        return {e.idempotency_key: e for e in entries}

    async def _with_postings(self, rows: Sequence[Any]) -> list[JournalEntry]:
        if not rows:
            return []
        legs: dict[str, list[Any]] = {r.entry_id: [] for r in rows}
        query = select(P).where(P.c.entry_id.in_(list(legs))).order_by(P.c.entry_id, P.c.leg)
        for leg in (await self.conn.execute(query)).all():
            legs[leg.entry_id].append(leg)
        return [_entry_from_rows(r, legs[r.entry_id]) for r in rows]

    async def insert_entries(self, entries: Sequence[JournalEntry]) -> None:
        """Insert entries with their postings and accounts: three batched statements.
        A duplicate idempotency key raises IntegrityError (the caller retries as a replay)."""
        if not entries:
            return
        accounts: dict[str, Account] = {}
        posting_rows = []
        for entry in entries:
            for leg, p in enumerate(entry.postings):
                accounts[p.account.code] = p.account
                posting_rows.append(
                    {
                        "entry_id": entry.entry_id,
                        "leg": leg,
                        "account_code": p.account.code,
                        "wallet_id": p.account.wallet_id,
                        "account_kind": p.account.kind.value,
                        "currency": p.currency,
                        "amount": p.amount,
                        "effective_time": entry.effective_time,
                        "entry_kind": entry.kind.value,
                    }
                )
        account_rows = [
            {
                "account_code": a.code,
                "kind": a.kind.value,
                "owner": a.owner,
                "wallet_id": a.wallet_id,
            }
            for a in accounts.values()
        ]
        stmt = self._insert(orm.ledger_accounts).on_conflict_do_nothing(
            index_elements=["account_code"]
        )
        await self.conn.execute(stmt, account_rows)
        try:
            await self.conn.execute(E.insert(), [_entry_row(e) for e in entries])
        except IntegrityError as exc:
            raise KeyConflict(str(exc.orig)) from exc
        await self.conn.execute(P.insert(), posting_rows)

    async def list_entries(self, q: EntryQuery) -> list[tuple[int, JournalEntry]]:
        """Entries newest first by effective time (then insertion order), filtered and paged in
        SQL; postings loaded in one more query. Returns (row id, entry) for the page token."""
        query = select(E).order_by(E.c.effective_time.desc(), E.c.id.desc()).limit(q.limit)
        if q.wallet_id:
            query = query.where(
                E.c.entry_id.in_(select(P.c.entry_id).where(P.c.wallet_id == q.wallet_id))
            )
        if q.currency:
            query = query.where(
                E.c.entry_id.in_(select(P.c.entry_id).where(P.c.currency == q.currency))
            )
        if q.kinds:
            query = query.where(E.c.kind.in_([k.value for k in q.kinds]))
        if q.start is not None:
            query = query.where(E.c.effective_time >= q.start)
        if q.end is not None:
            query = query.where(E.c.effective_time < q.end)
        if q.as_of is not None:
            query = query.where(E.c.record_time <= q.as_of)
        if q.fill_id:
            query = query.where(E.c.fill_id == q.fill_id)
        if q.after is not None:
            t, row_id = q.after
            query = query.where(
                or_(E.c.effective_time < t, and_(E.c.effective_time == t, E.c.id < row_id))
            )
        rows = (await self.conn.execute(query)).all()
        entries = await self._with_postings(rows)
        return [(int(r.id), e) for r, e in zip(rows, entries, strict=True)]

    # -- consumer cursors --------------------------------------------------------------------

    async def get_cursor(self, consumer: str) -> int | None:
        row = (await self.conn.execute(select(C.c.seq).where(C.c.consumer == consumer))).first()
        return None if row is None else int(row.seq)

    async def set_cursor(self, consumer: str, seq: int, now: datetime) -> None:
        stmt = self._insert(C).values(consumer=consumer, seq=seq, update_time=now)
        stmt = stmt.on_conflict_do_update(
            index_elements=["consumer"], set_={"seq": seq, "update_time": now}
        )
        await self.conn.execute(stmt)


# ListWallets on Postgres: the page of wallets, the grouped sums of their postings packed as
# one text per wallet, "<currency> <available> <hold> <total> ..." (currency codes have no
# spaces; trim_scale: "1.5", not "1.500000000000000000"; cheaper than JSON on both sides),
# joined to the page. The BETWEEN lets the postings index do the
# range; the IN keeps exactly the page's wallets (venue filter).
_PG_WALLET_LISTING = text(
    """
WITH page AS MATERIALIZED (
    SELECT wallet_id, display_name, kind, venue, account_id, address, chain, read_only,
           create_time
    FROM wallets
    WHERE (CAST(:venue AS text) IS NULL OR venue = CAST(:venue AS text))
      AND (CAST(:after AS text) IS NULL OR wallet_id > CAST(:after AS text))
    ORDER BY wallet_id
    LIMIT :limit
), bal AS (
    SELECT p.wallet_id, p.currency,
           COALESCE(SUM(p.amount) FILTER (WHERE p.account_kind = 'available'), 0) AS a,
           COALESCE(SUM(p.amount) FILTER (WHERE p.account_kind = 'hold'), 0) AS h
    FROM postings p
    WHERE p.wallet_id BETWEEN (SELECT min(wallet_id) FROM page)
                          AND (SELECT max(wallet_id) FROM page)
      AND (CAST(:venue AS text) IS NULL OR p.wallet_id IN (SELECT wallet_id FROM page))
    GROUP BY p.wallet_id, p.currency
), packed AS (
    SELECT wallet_id,
           string_agg(
               concat_ws(' ', currency, trim_scale(a), trim_scale(h), trim_scale(a + h)),
               ' ' ORDER BY currency
           ) AS balances
    FROM bal
    GROUP BY wallet_id
)
SELECT page.wallet_id, page.display_name, page.kind, page.venue, page.account_id,
       page.address, page.chain, page.read_only,
       floor(extract(epoch FROM page.create_time))::bigint,
       (extract(microseconds FROM page.create_time)::bigint % 1000000) * 1000,
       COALESCE(packed.balances, '')
FROM page LEFT JOIN packed ON packed.wallet_id = page.wallet_id
ORDER BY page.wallet_id
"""
)


class SqlLedgerStore:
    """Opens ledger sessions (transactions) on one engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        configure_sqlite(engine)
        self.engine = engine

    @asynccontextmanager
    async def read(self) -> AsyncIterator[SqlLedgerSession]:
        async with self.engine.connect() as conn, conn.begin():
            yield SqlLedgerSession(conn)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[SqlLedgerSession]:
        """A transaction committed on success, rolled back on any error."""
        async with self.engine.connect() as conn:
            await conn.execution_options(**{WRITE_OPTION: True})
            async with conn.begin():
                yield SqlLedgerSession(conn)
