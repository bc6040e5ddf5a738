"""Trading states: the stricter one is in force; every change is recorded."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tradeplane.execution.domain.trading_state import (
    GLOBAL,
    TradingState,
    change_trading_state,
    effective_state,
)
from tradeplane.runtime.errors import InvalidArgument

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
A, R, H = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED


@pytest.mark.parametrize(
    ("g", "a", "expected"),
    [
        (A, A, A),
        (A, R, R),
        (R, A, R),
        (A, H, H),
        (H, A, H),
        (R, H, H),
        (H, R, H),
        (R, R, R),
        (H, H, H),
    ],
)
def test_effective_state_is_the_stricter(
    g: TradingState, a: TradingState, expected: TradingState
) -> None:
    assert effective_state(g, a) is expected


def test_only_halted_cancels_open_orders() -> None:
    assert [s for s in TradingState if s.cancels_open_orders] == [H]


@pytest.mark.parametrize("current", list(TradingState))
@pytest.mark.parametrize("new", list(TradingState))
def test_every_change_is_allowed_and_recorded(current: TradingState, new: TradingState) -> None:
    change = change_trading_state(
        current, new, account_id="acct", reason="ops", changed_by="alice", time=T0
    )
    assert (change.state, change.previous_state, change.reason, change.changed_by) == (
        new,
        current,
        "ops",
        "alice",
    )
    assert change.canceled_order_count == 0 and not change.is_global and change.time == T0


def test_global_change_and_validation() -> None:
    change = change_trading_state(
        A, H, account_id=GLOBAL, reason="kill switch", changed_by="system", time=T0
    )
    assert change.is_global
    with pytest.raises(InvalidArgument) as info:
        change_trading_state(A, None, account_id="acct", reason="", changed_by="x", time=T0)
    assert info.value.field == "state"
    with pytest.raises(InvalidArgument) as info:
        change_trading_state(A, H, account_id="acct", reason="", changed_by="", time=T0)
    assert info.value.field == "changed_by"
