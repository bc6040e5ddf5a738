"""Indicator maths alone: numpy over whole columns vs a per-candle Python loop.

    .venv/bin/python bench/indicators_math.py [--candles 1000000] [--repeat 3]

For sma(20), ema(20), rsi(14), macd(12,26,9) and bollinger(20,2) on a seeded random walk of
one-minute candles, prints the best-of-N time of `INDICATORS[name].compute` and of a plain
per-candle loop computing the same values (running sums and recursions, the textbook window
for the Bollinger deviation), their ratio, and the largest difference between the two.
No storage, gRPC or cache involved: bench/indicators.py measures the whole GetCandles path.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import numpy as np

from tradeplane.indicators import INDICATORS, validate_spec
from tradeplane.market.domain.candles import CandleArrays

NAN = float("nan")


def loop_sma(close: list[float], n: int) -> list[float]:
    out, total = [NAN] * len(close), 0.0
    for t, price in enumerate(close):
        total += price
        if t >= n:
            total -= close[t - n]
        if t >= n - 1:
            out[t] = total / n
    return out


def loop_ema(close: list[float], n: int) -> list[float]:
    out = [NAN] * len(close)
    alpha, value = 2.0 / (n + 1), 0.0
    for t, price in enumerate(close):
        if t < n - 1:
            value += price
        elif t == n - 1:
            value = (value + price) / n
            out[t] = value
        else:
            value = alpha * price + (1 - alpha) * value
            out[t] = value
    return out


def loop_rsi(close: list[float], n: int) -> list[float]:
    out = [NAN] * len(close)
    gain = loss = 0.0
    for t in range(1, len(close)):
        change = close[t] - close[t - 1]
        up, down = (change, 0.0) if change > 0 else (0.0, -change)
        if t <= n:
            gain += up / n
            loss += down / n
        else:
            gain = (gain * (n - 1) + up) / n
            loss = (loss * (n - 1) + down) / n
        if t >= n:
            total = gain + loss
            out[t] = 50.0 if total == 0 else 100.0 * gain / total
    return out


def loop_macd(close: list[float], fast: int, slow: int, signal: int) -> list[list[float]]:
    fast_ema, slow_ema = loop_ema(close, fast), loop_ema(close, slow)
    macd = [f - s for f, s in zip(fast_ema, slow_ema, strict=True)]
    sig = [NAN] * (slow - 1) + loop_ema(macd[slow - 1 :], signal)
    return [macd, sig, [m - s for m, s in zip(macd, sig, strict=True)]]


def loop_bollinger(close: list[float], n: int, k: float) -> list[list[float]]:
    upper, middle, lower = [NAN] * len(close), [NAN] * len(close), [NAN] * len(close)
    for t in range(n - 1, len(close)):
        window = close[t - n + 1 : t + 1]
        mean = sum(window) / n
        std = math.sqrt(sum((v - mean) * (v - mean) for v in window) / n)
        upper[t], middle[t], lower[t] = mean + k * std, mean, mean - k * std
    return [upper, middle, lower]


LOOPS: dict[str, Callable[[list[float]], list[list[float]]]] = {
    "sma": lambda c: [loop_sma(c, 20)],
    "ema": lambda c: [loop_ema(c, 20)],
    "rsi": lambda c: [loop_rsi(c, 14)],
    "macd": lambda c: loop_macd(c, 12, 26, 9),
    "bollinger": lambda c: loop_bollinger(c, 20, 2.0),
}
PARAMS = {"sma": {"period": 20}, "ema": {"period": 20}, "rsi": {"period": 14}, "macd": {},
          "bollinger": {}}  # fmt: skip


def random_walk(count: int) -> CandleArrays:
    rng = np.random.default_rng(2026)
    close = 30_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.001, count)))
    open_ = np.concatenate(([30_000.0], close[:-1]))
    spread = np.abs(rng.normal(0.0, 10.0, count))
    return CandleArrays.from_columns(
        1_700_000_040 + 60 * np.arange(count),
        open_,
        np.maximum(open_, close) + spread,
        np.minimum(open_, close) - spread,
        close,
        rng.uniform(0.0, 5.0, count),
    )


def best_of(repeat: int, fn: Callable[[], object]) -> tuple[float, object]:
    best, result = math.inf, None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candles", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    arrays = random_walk(args.candles)
    close = arrays.close.tolist()
    print(f"{args.candles:,} one-minute candles, best of {args.repeat}")
    print(f"{'indicator':<10} {'numpy ms':>10} {'loop ms':>10} {'ratio':>8} {'max |diff|':>12}")
    total_numpy = total_loop = 0.0
    for name, loop in LOOPS.items():
        definition = INDICATORS[name]
        params = validate_spec(name, PARAMS[name])
        numpy_s, vectorised = best_of(
            args.repeat, lambda d=definition, p=params: d.compute(arrays, p)
        )
        loop_s, looped = best_of(1, lambda f=loop: f(close))
        assert isinstance(vectorised, dict) and isinstance(looped, list)
        diff = max(
            float(np.nanmax(np.abs(vectorised[out] - np.asarray(ref))))
            for out, ref in zip(definition.outputs, looped, strict=True)
        )
        total_numpy += numpy_s
        total_loop += loop_s
        print(
            f"{name:<10} {numpy_s * 1e3:>10.1f} {loop_s * 1e3:>10.1f} "
            f"{loop_s / numpy_s:>7.0f}x {diff:>12.2e}"
        )
    print(
        f"{'all five':<10} {total_numpy * 1e3:>10.1f} {total_loop * 1e3:>10.1f} "
        f"{total_loop / total_numpy:>7.0f}x"
    )


if __name__ == "__main__":
    main()
