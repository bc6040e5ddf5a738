"""The strategy library shared by backtests and execution's live runner.

    from tradeplane.strategies import create_strategy, strategy_definitions
    strategy = create_strategy("sma_crossover", {"fast_period": "10", "slow_period": "30"})

See `api` for the strategy contract, `params` for typed parameters, `indicators` for the
declared indicators and `builtin` for the shipped strategies.
"""

from tradeplane.strategies import builtin as builtin
from tradeplane.strategies.api import (
    Bar,
    BoolArray,
    Fill,
    OrderRequest,
    OrderType,
    Side,
    Strategy,
    StrategyContext,
    StrategyDefinition,
    WorkingOrder,
    buy,
    buy_with_cash,
    close_position,
    sell,
)
from tradeplane.strategies.indicators import (
    INDICATOR_NAMES,
    FloatArray,
    IndicatorSpec,
    compute_all,
    indicator_keys,
)
from tradeplane.strategies.params import Parameter, ParamType, ParamValue, validate_params
from tradeplane.strategies.registry import (
    create_strategy,
    register,
    strategy_class,
    strategy_definitions,
    strategy_names,
)

__all__ = [
    "INDICATOR_NAMES",
    "Bar",
    "BoolArray",
    "Fill",
    "FloatArray",
    "IndicatorSpec",
    "OrderRequest",
    "OrderType",
    "ParamType",
    "ParamValue",
    "Parameter",
    "Side",
    "Strategy",
    "StrategyContext",
    "StrategyDefinition",
    "WorkingOrder",
    "buy",
    "buy_with_cash",
    "close_position",
    "compute_all",
    "create_strategy",
    "indicator_keys",
    "register",
    "sell",
    "strategy_class",
    "strategy_definitions",
    "strategy_names",
    "validate_params",
]
