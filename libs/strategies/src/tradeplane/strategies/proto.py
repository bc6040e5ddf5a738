"""A StrategyDefinition as the API's `trading.common.v1.StrategyDefinition` (the backtest and
execution services both list strategies). Kept out of the package's __init__: the strategy
API itself knows nothing of protobuf."""

from __future__ import annotations

from typing import Any

from tradeplane.strategies.api import StrategyDefinition
from tradeplane.strategies.params import ParamType
from trading.common.v1 import common_pb2 as cpb

PARAM_TYPE_TO_PROTO: dict[ParamType, Any] = {
    ParamType.INT: cpb.PARAMETER_TYPE_INT,
    ParamType.FLOAT: cpb.PARAMETER_TYPE_FLOAT,
    ParamType.DECIMAL: cpb.PARAMETER_TYPE_DECIMAL,
    ParamType.BOOL: cpb.PARAMETER_TYPE_BOOL,
    ParamType.STRING: cpb.PARAMETER_TYPE_STRING,
    ParamType.CHOICE: cpb.PARAMETER_TYPE_CHOICE,
}


def definition_to_proto(d: StrategyDefinition) -> cpb.StrategyDefinition:
    return cpb.StrategyDefinition(
        name=d.name,
        display_name=d.display_name,
        description=d.description,
        parameters=[
            cpb.ParameterSpec(
                name=p.name,
                type=PARAM_TYPE_TO_PROTO[p.type],
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
