"""Trading state per account and global: ACTIVE, REDUCING (only position-shrinking orders)
or HALTED (nothing; the kill switch, which also cancels open orders). The state in force for
an account is the stricter of its own and the global one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from tradeplane.runtime.errors import InvalidArgument


class TradingState(StrEnum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"

    @property
    def strictness(self) -> int:
        return _STRICTNESS[self]

    @property
    def cancels_open_orders(self) -> bool:
        """Entering HALTED cancels every open order in scope."""
        return self is TradingState.HALTED


_STRICTNESS = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}

GLOBAL = ""  # account_id of the global (service-wide) state


def effective_state(global_state: TradingState, account_state: TradingState) -> TradingState:
    """The stricter of the two."""
    return max(global_state, account_state, key=lambda s: s.strictness)


@dataclass(frozen=True, slots=True)
class TradingStateChange:
    """A change of trading state (maps onto ``TradingStateChange``); ``account_id`` is
    ``GLOBAL`` ("") for the service-wide state."""

    account_id: str
    state: TradingState
    previous_state: TradingState
    reason: str
    changed_by: str
    time: datetime
    canceled_order_count: int = 0

    @property
    def is_global(self) -> bool:
        return self.account_id == GLOBAL


def change_trading_state(
    current: TradingState,
    new: TradingState | None,
    *,
    account_id: str,
    reason: str,
    changed_by: str,
    time: datetime,
) -> TradingStateChange:
    """Validate and record a change. Every state may follow every other (pause and resume);
    setting the same state again is recorded too, so a repeated halt still cancels orders."""
    if new is None:
        raise InvalidArgument("state", "required (ACTIVE, REDUCING or HALTED)")
    if not changed_by:
        raise InvalidArgument("changed_by", "required")
    return TradingStateChange(
        account_id=account_id,
        state=new,
        previous_state=current,
        reason=reason,
        changed_by=changed_by,
        time=time,
    )
