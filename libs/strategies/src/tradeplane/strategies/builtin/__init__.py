"""The built-in strategies; importing this package registers them."""

from tradeplane.strategies.builtin.bollinger_breakout import BollingerBreakout
from tradeplane.strategies.builtin.crossover import EmaCrossover, SmaCrossover
from tradeplane.strategies.builtin.grid import DollarCostAverage, Grid
from tradeplane.strategies.builtin.rsi_mean_reversion import RsiMeanReversion

__all__ = [
    "BollingerBreakout",
    "DollarCostAverage",
    "EmaCrossover",
    "Grid",
    "RsiMeanReversion",
    "SmaCrossover",
]
