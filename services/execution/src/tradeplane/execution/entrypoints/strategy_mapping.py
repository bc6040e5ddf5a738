"""Proto mapping of live strategies: instances, definitions and states."""

from __future__ import annotations

from typing import Any

from tradeplane.execution.adapters.strategy_store import StrategyRecord
from tradeplane.execution.entrypoints.mapping import ts, venue_out
from tradeplane.runtime.errors import InvalidArgument
from tradeplane.strategies import ParamType, StrategyDefinition
from trading.common.v1 import common_pb2 as cpb
from trading.execution.v1 import execution_pb2 as pb

PARAM_TYPE: dict[ParamType, Any] = {
    ParamType.INT: cpb.PARAMETER_TYPE_INT,
    ParamType.FLOAT: cpb.PARAMETER_TYPE_FLOAT,
    ParamType.DECIMAL: cpb.PARAMETER_TYPE_DECIMAL,
    ParamType.BOOL: cpb.PARAMETER_TYPE_BOOL,
    ParamType.STRING: cpb.PARAMETER_TYPE_STRING,
    ParamType.CHOICE: cpb.PARAMETER_TYPE_CHOICE,
}


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


def definition_out(d: StrategyDefinition) -> cpb.StrategyDefinition:
    return cpb.StrategyDefinition(
        name=d.name,
        display_name=d.display_name,
        description=d.description,
        parameters=[
            cpb.ParameterSpec(
                name=p.name,
                type=PARAM_TYPE[p.type],
                default_value=p.format(p.default),
                min=p.format(p.min),
                max=p.format(p.max),
                step=p.format(p.step),
                choices=list(p.choices),
                description=p.description,
            )
            for p in d.parameters
        ],
        indicators=list(d.indicators),
        vectorised=d.vectorised,
    )
