"""Hypothesis stateful test of the ledger as the service runs it (use cases + SQL, on SQLite
and Postgres): random deposits, withdrawals, internal moves, fills, retries with the same key
(same payload → the same entry, changed payload → ALREADY_EXISTS) and fill redeliveries.

After every step: per currency, all postings sum to zero (debits equal credits); no wallet's
available balance is negative; the SQL balances equal an independent model; replaying any
earlier request changed nothing. Each example uses fresh wallet ids in the one database."""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.stateful import (  # noqa: E402
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select  # noqa: E402

from tradeplane.runtime.db import create_engine, run_migrations  # noqa: E402
from tradeplane.runtime.errors import AlreadyExists, FailedPrecondition  # noqa: E402
from tradeplane.wallets.adapters import orm  # noqa: E402
from tradeplane.wallets.adapters.ledger_repository import SqlLedgerStore  # noqa: E402
from tradeplane.wallets.domain.currencies import default_catalog  # noqa: E402
from tradeplane.wallets.domain.fills import Fill, Side  # noqa: E402
from tradeplane.wallets.domain.transfers import TransferKind, TransferRequest  # noqa: E402
from tradeplane.wallets.domain.wallets import Venue, Wallet, WalletKind  # noqa: E402
from tradeplane.wallets.migrations import MIGRATIONS_DIR  # noqa: E402
from tradeplane.wallets.service_layer.ledger import WalletsLedger  # noqa: E402
from tradeplane.wallets.service_layer.ports import BalanceQuery, FillBatch  # noqa: E402

T0 = datetime(2026, 5, 1, tzinfo=UTC)
CURRENCIES = ("USD", "BTC")
amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(5000), places=2)
# withdrawals and moves: a fraction of what is available (above 1 = refused as overdraft)
fractions = st.decimals(min_value=Decimal("0.05"), max_value=Decimal("1.2"), places=2)
sizes = st.decimals(min_value=Decimal("0.001"), max_value=Decimal("0.05"), places=3)
prices = st.decimals(min_value=Decimal(100), max_value=Decimal(2000), places=2)
fees = st.decimals(min_value=Decimal(0), max_value=Decimal(1), places=2)
_examples = itertools.count()


def make_machine(database_url: str) -> type[RuleBasedStateMachine]:
    class LedgerMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.loop = asyncio.new_event_loop()
            self.engine = create_engine(database_url)
            self.ledger = WalletsLedger(SqlLedgerStore(self.engine), default_catalog())
            self.prefix = f"x{next(_examples)}"
            self.model: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
            self.done: list[tuple[str, Any, Any]] = []  # (kind, request, what it returned)
            self.seq = 0
            self.clock = itertools.count()

        def run(self, coro: Any) -> Any:
            return self.loop.run_until_complete(coro)

        def teardown(self) -> None:
            self.run(self.engine.dispose())
            self.loop.close()

        def wallet(self, i: int) -> str:
            return f"{self.prefix}-w{i}"

        @initialize()
        def wallets(self) -> None:
            for i in range(3):
                self.run(
                    self.ledger.create_wallet(
                        Wallet(
                            wallet_id=self.wallet(i),
                            display_name="w",
                            kind=WalletKind.VENUE_ACCOUNT,
                            venue=Venue.PAPER,
                            account_id=f"{self.prefix}-acct{i}",
                            create_time=T0,
                        )
                    )
                )

        def key(self) -> str:
            return f"{self.prefix}-k{len(self.done)}"

        def transfer(self, request: TransferRequest) -> None:
            available = self.model[(request.wallet_id, request.currency)]
            if request.kind is not TransferKind.DEPOSIT and request.amount > available:
                with pytest.raises(FailedPrecondition):
                    self.run(self.ledger.record_transfer(request))
                return
            entry = self.run(self.ledger.record_transfer(request))
            self.done.append(("transfer", request, entry.entry_id))
            sign = -1 if request.kind is not TransferKind.DEPOSIT else 1
            self.model[(request.wallet_id, request.currency)] += sign * request.amount
            if request.kind is TransferKind.INTERNAL:
                self.model[(request.to_wallet_id, request.currency)] += request.amount

        @rule(w=st.integers(0, 2), c=st.sampled_from(CURRENCIES), amount=amounts)
        def deposit(self, w: int, c: str, amount: Decimal) -> None:
            self.transfer(
                TransferRequest(self.key(), TransferKind.DEPOSIT, self.wallet(w), c, amount)
            )

        def share(self, w: int, c: str, fraction: Decimal) -> Decimal:
            available = self.model[(self.wallet(w), c)]
            return max(Decimal("0.01"), (available * fraction).quantize(Decimal("0.01")))

        @rule(w=st.integers(0, 2), c=st.sampled_from(CURRENCIES), fraction=fractions)
        def withdraw(self, w: int, c: str, fraction: Decimal) -> None:
            amount = self.share(w, c, fraction)
            self.transfer(
                TransferRequest(self.key(), TransferKind.WITHDRAWAL, self.wallet(w), c, amount)
            )

        @rule(
            w=st.integers(0, 2),
            to=st.integers(0, 2),
            c=st.sampled_from(CURRENCIES),
            fraction=fractions,
        )
        def move(self, w: int, to: int, c: str, fraction: Decimal) -> None:
            if w == to:
                return
            amount = self.share(w, c, fraction)
            self.transfer(
                TransferRequest(
                    self.key(),
                    TransferKind.INTERNAL,
                    self.wallet(w),
                    c,
                    amount,
                    to_wallet_id=self.wallet(to),
                )
            )

        @rule(w=st.integers(0, 2), buy=st.booleans(), size=sizes, price=prices, fee=fees)
        def fill(self, w: int, buy: bool, size: Decimal, price: Decimal, fee: Decimal) -> None:
            wallet = self.wallet(w)
            usd, btc = self.model[(wallet, "USD")], self.model[(wallet, "BTC")]
            # Size it to what the wallet can pay for (the venue would not fill more).
            milli = Decimal("0.001")
            affordable = ((usd - fee) / price).quantize(milli, rounding="ROUND_DOWN")
            size = min(size, affordable if buy else btc.quantize(milli, rounding="ROUND_DOWN"))
            notional = size * price
            if size <= 0 or (not buy and fee > usd + notional):
                return
            self.seq += 1
            fill = Fill(
                fill_id=f"{self.prefix}-f{self.seq}",
                venue_trade_id=f"{self.prefix}-t{self.seq}",
                order_id="o",
                account_id=f"{self.prefix}-acct{w}",
                venue=Venue.PAPER,
                product_id="BTC-USD",
                side=Side.BUY if buy else Side.SELL,
                size=size,
                price=price,
                fee=fee,
                time=T0 + timedelta(seconds=next(self.clock)),
            )
            posted = self.run(self.ledger.post_fills(FillBatch(self.seq, (fill,)), consumer="p"))
            assert posted == 1
            self.done.append(("fill", fill, None))
            s = 1 if buy else -1
            self.model[(wallet, "BTC")] += s * size
            self.model[(wallet, "USD")] += -s * notional - fee

        @rule(data=st.data())
        def replay(self, data: st.DataObject) -> None:
            """Any earlier request again, unchanged: nothing new is posted."""
            if not self.done:
                return
            kind, request, result = data.draw(st.sampled_from(self.done))
            if kind == "transfer":
                entry = self.run(self.ledger.record_transfer(request))
                assert entry.entry_id == result
            else:
                batch = FillBatch(self.seq, (request,))
                assert self.run(self.ledger.post_fills(batch, consumer="p")) == 0

        @rule(data=st.data(), extra=amounts)
        def reuse_key_with_other_payload(self, data: st.DataObject, extra: Decimal) -> None:
            transfers = [d for d in self.done if d[0] == "transfer"]
            if not transfers:
                return
            _, request, _ = data.draw(st.sampled_from(transfers))
            changed = TransferRequest(
                request.idempotency_key,
                request.kind,
                request.wallet_id,
                request.currency,
                request.amount + extra,
                to_wallet_id=request.to_wallet_id,
            )
            with pytest.raises(AlreadyExists):
                self.run(self.ledger.record_transfer(changed))

        @invariant()
        def books_balance_and_match_the_model(self) -> None:
            async def read() -> tuple[dict[str, Decimal], dict[tuple[str, str], Decimal]]:
                async with self.ledger._store.read() as s:  # type: ignore[attr-defined]
                    p = orm.postings
                    total = s._sum(p.c.amount)
                    rows = await s.conn.execute(select(p.c.currency, total).group_by(p.c.currency))
                    sums = {c: Decimal(v) for c, v in rows}
                    wallets = [self.wallet(i) for i in range(3)]
                    balances = await s.balances(BalanceQuery(wallet_ids=wallets))
                return sums, {(b.wallet_id, b.currency): b.available for b in balances}

            sums, balances = self.run(read())
            assert all(v == 0 for v in sums.values()), sums  # debits == credits per currency
            assert all(v >= 0 for v in balances.values()), balances
            expected = {k: v for k, v in self.model.items() if k in balances or v != 0}
            assert balances == expected

    return LedgerMachine


def test_ledger_state_machine(database_url: str) -> None:
    run_migrations(database_url, MIGRATIONS_DIR)
    # Postgres round trips are slower; fewer examples keep the suite quick.
    examples = 15 if database_url.startswith("sqlite") else 8
    run_state_machine_as_test(
        make_machine(database_url),
        settings=settings(
            max_examples=examples,
            stateful_step_count=30,
            deadline=None,
            derandomize=True,  # the same programs every run: reproducible, steady timing
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
