"""Backtest service: a fast, look-ahead-free engine over stored candles, runs, playback."""
