"""Proto mapping of live strategies: instances, definitions and states."""

from __future__ import annotations

from typing import Any

from tradeplane.execution.adapters.strategy_store import StrategyRecord
from tradeplane.execution.entrypoints.mapping import ts, venue_out
from tradeplane.runtime.errors import InvalidArgument
from trading.execution.v1 import execution_pb2 as pb


def states_in(values: Any) -> list[str]:
    out = []
    for value in values:
        if value == pb.STRATEGY_STATE_UNSPECIFIED:
            raise InvalidArgument("states", "STRATEGY_STATE_UNSPECIFIED is not a state")
        try:
            name = pb.StrategyState.Name(value)
        except ValueError:
            raise InvalidArgument("states", f"unknown strategy state {value}") from None
        out.append(name.removeprefix("STRATEGY_STATE_"))
    return out


def instance_out(r: StrategyRecord) -> pb.StrategyInstance:
    return pb.StrategyInstance(
        strategy_instance_id=r.strategy_instance_id,
        strategy=r.strategy,
        params=r.params,
        product_ids=list(r.product_ids),
        account_id=r.account_id,
        venue=venue_out(r.venue),
        state=pb.StrategyState.Value(f"STRATEGY_STATE_{r.state}"),
        error=r.error,
        order_count=r.order_count,
        realized_pnl=format(r.realized_pnl.normalize(), "f") if r.realized_pnl else "0",
        start_time=ts(r.start_time),
        stop_time=ts(r.stop_time),
    )
