"""Property-style: seeded random sequences of deposits, withdrawals, internal moves, fills,
reversals and retries (same key, same or changed payload). After every step: each currency
sums to zero over all accounts, no wallet's available balance is negative, every clearing
account is flat, and the ledger's wallet balances equal an independent running model. At the
end, replaying every request ever made changes nothing. (Hypothesis is not installed; the
seeds make any failure reproducible.)"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import pytest

from tradeplane.runtime.errors import AlreadyExists
from tradeplane.wallets.domain.accounts import Account, AccountKind
from tradeplane.wallets.domain.fills import Fill, Side
from tradeplane.wallets.domain.ledger import (
    EntryKind,
    InsufficientFunds,
    ensure_no_overdraft,
    reversal_entry,
)
from tradeplane.wallets.domain.transfers import TransferKind, TransferRequest
from tradeplane.wallets.domain.wallets import Venue

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
D = Decimal
WALLETS = ("w1", "w2")
PRECISION = {"USD": 8, "BTC": 8, "ETH": 18}
PRODUCTS = {  # product -> (typical price, price decimals)
    "BTC-USD": (60000, 2),
    "ETH-USD": (3000, 2),
    "ETH-BTC": (D("0.05"), 5),
}
FEE_RATE = D("0.006")
STEPS = 150


def q(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(D(1).scaleb(-PRECISION[currency]), rounding=ROUND_HALF_EVEN)


def random_amount(rng: random.Random, currency: str, top: int) -> Decimal:
    return D(rng.randint(1, top * 10**6)).scaleb(-rng.randint(6, 6 + PRECISION[currency] - 6))


class Scenario:
    def __init__(self, rng: random.Random, book) -> None:
        self.rng = rng
        self.book = book
        self.model: dict[tuple[str, str], Decimal] = defaultdict(Decimal)  # available balances
        self.requests: list[object] = []  # TransferRequest | Fill, everything accepted
        self.clock = T0
        self.counter = 0

    def key(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"

    def tick(self) -> datetime:
        self.clock += timedelta(seconds=self.rng.randint(1, 120))
        return self.clock

    # --- operations -------------------------------------------------------------------------

    def deposit(self) -> None:
        wallet, currency = self.rng.choice(WALLETS), self.rng.choice(list(PRECISION))
        amount = random_amount(self.rng, currency, {"USD": 20000, "BTC": 2, "ETH": 30}[currency])
        req = TransferRequest(self.key("dep"), TransferKind.DEPOSIT, wallet, currency, amount)
        self.book.transfer(req, now=self.tick())
        self.model[(wallet, currency)] += amount
        self.requests.append(req)

    def outflow(self, internal: bool) -> None:
        wallet, currency = self.rng.choice(WALLETS), self.rng.choice(list(PRECISION))
        have = self.model[(wallet, currency)]
        # Half the time ask for more than there is, to exercise the refusal.
        if have > 0 and self.rng.random() < 0.5:
            amount = q(have * D(self.rng.randint(1, 100)) / 100, currency) or have
        else:
            amount = have + random_amount(self.rng, currency, 1)
        to = next(w for w in WALLETS if w != wallet) if internal else ""
        kind = TransferKind.INTERNAL if internal else TransferKind.WITHDRAWAL
        req = TransferRequest(self.key("out"), kind, wallet, currency, amount, to_wallet_id=to)
        if amount > have:
            with pytest.raises(InsufficientFunds) as err:
                self.book.transfer(req, now=self.tick())
            assert err.value.shortfall == amount - have
            return
        self.book.transfer(req, now=self.tick())
        self.model[(wallet, currency)] -= amount
        if internal:
            self.model[(to, currency)] += amount
        self.requests.append(req)

    def trade(self) -> None:
        wallet = self.rng.choice(WALLETS)
        product = self.rng.choice(list(PRODUCTS))
        base, quote = product.split("-")
        typical, price_places = PRODUCTS[product]
        price = q(D(typical) * D(self.rng.randint(80, 120)) / 100, quote).quantize(
            D(1).scaleb(-price_places)
        )
        size = D(self.rng.randint(1, 10**8)).scaleb(-8) * (1 if base == "BTC" else 10)
        side = self.rng.choice([Side.BUY, Side.SELL])
        notional = q(size * price, quote)
        fee = q(notional * FEE_RATE, quote)
        s = 1 if side is Side.BUY else -1
        quote_after = self.model[(wallet, quote)] - s * notional - fee
        base_after = self.model[(wallet, base)] + s * size
        if quote_after < 0 or base_after < 0:
            return  # the venue would not have filled an unaffordable order
        f = Fill(
            fill_id=self.key("fill"),
            venue_trade_id=self.key("trade"),
            order_id=self.key("order"),
            account_id=f"acct-{wallet}",
            venue=Venue.PAPER,
            product_id=product,
            side=side,
            size=size,
            price=price,
            fee=notional * FEE_RATE,  # unrounded, as venues report it
            time=self.tick(),
        )
        entries = self.book.fill(f, now=self.clock)
        assert [e.kind for e in entries][:2] == [EntryKind.TRADE, EntryKind.SETTLEMENT]
        self.model[(wallet, quote)] = quote_after
        self.model[(wallet, base)] = base_after
        self.requests.append(f)

    def reverse(self) -> None:
        candidates = [
            e
            for e in self.book.entries
            if e.kind in (EntryKind.DEPOSIT, EntryKind.INTERNAL_TRANSFER)
            and f"reversal:{e.entry_id}" not in self.book.by_key
        ]
        if not candidates:
            return
        original = self.rng.choice(candidates)
        rev = reversal_entry(original, now=self.tick())
        affordable = all(
            self.model[(p.wallet_id, p.currency)] + p.amount >= 0
            for p in rev.postings
            if p.wallet_id is not None
        )
        if not affordable:
            with pytest.raises(InsufficientFunds):
                ensure_no_overdraft(rev, self.book.accounts())
            return
        ensure_no_overdraft(rev, self.book.accounts())
        self.book.post(rev)
        for p in rev.postings:
            if p.wallet_id is not None:
                self.model[(p.wallet_id, p.currency)] += p.amount

    def retry(self) -> None:
        if not self.requests:
            return
        before = len(self.book.entries)
        request = self.rng.choice(self.requests)
        if isinstance(request, TransferRequest):
            if self.rng.random() < 0.5:
                self.book.transfer(request, now=self.tick())  # same payload: a replay
            else:
                changed = replace(request, amount=request.amount + D(1))
                with pytest.raises(AlreadyExists):
                    self.book.transfer(changed, now=self.tick())
        else:
            assert isinstance(request, Fill)
            self.book.fill(request, now=self.tick())
        assert len(self.book.entries) == before

    def step(self) -> None:
        self.rng.choices(
            [
                self.deposit,
                lambda: self.outflow(internal=False),
                lambda: self.outflow(internal=True),
                self.trade,
                self.reverse,
                self.retry,
            ],
            weights=[4, 3, 2, 5, 1, 3],
        )[0]()

    # --- invariants -------------------------------------------------------------------------

    def check(self) -> None:
        totals = self.book.totals()
        assert all(total == 0 for total in totals.values()), totals
        balances = self.book.accounts()
        for (code, currency), amount in balances.items():
            account = Account.parse(code)
            if account.kind is AccountKind.CLEARING:
                assert amount == 0, (code, currency, amount)
            if account.constrained:
                assert amount >= 0, (code, currency, amount)
        ledger = {k: b.available for k, b in self.book.wallet_balances().items()}
        model = {k: v for k, v in self.model.items() if k in ledger or v != 0}
        assert ledger == model


@pytest.mark.parametrize("seed", range(20))
def test_random_ledger_histories_keep_every_invariant(seed: int, new_book) -> None:
    scenario = Scenario(random.Random(seed), new_book())
    for _ in range(STEPS):
        scenario.step()
        scenario.check()
    kinds = {e.kind for e in scenario.book.entries}
    assert {EntryKind.DEPOSIT, EntryKind.TRADE, EntryKind.FEE} <= kinds  # the mix is exercised

    # Replaying every accepted request, in any order, changes nothing.
    snapshot = scenario.book.accounts()
    count = len(scenario.book.entries)
    replays = list(scenario.requests)
    scenario.rng.shuffle(replays)
    for request in replays:
        if isinstance(request, TransferRequest):
            scenario.book.transfer(request, now=scenario.tick())
        else:
            assert isinstance(request, Fill)
            scenario.book.fill(request, now=scenario.tick())
    assert len(scenario.book.entries) == count
    assert scenario.book.accounts() == snapshot
