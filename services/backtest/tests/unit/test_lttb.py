"""LTTB downsampling of an equity curve."""

from __future__ import annotations

import numpy as np
import pytest

from tradeplane.backtest.domain import lttb_indices


def _curve(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    x = np.arange(n, dtype=np.float64) * 60
    y = 1000 + np.cumsum(rng.normal(0, 1, n))
    y[n // 3] += 500  # a spike and a crash that a chart must show
    y[2 * n // 3] -= 700
    return x, y


def test_keeps_first_last_and_extremes_within_max_points() -> None:
    x, y = _curve(100_000)
    keep = lttb_indices(x, y, 500)
    assert len(keep) == 500
    assert keep[0] == 0 and keep[-1] == len(x) - 1
    assert (np.diff(keep) > 0).all()
    assert int(np.argmax(y)) in keep
    assert int(np.argmin(y)) in keep


def test_short_series_are_returned_whole() -> None:
    x, y = _curve(40)
    assert lttb_indices(x, y, 40).tolist() == list(range(40))
    assert lttb_indices(x, y, 1000).tolist() == list(range(40))


def test_the_largest_triangle_is_chosen_in_each_bucket() -> None:
    # Five points into three: one bucket (points 1..3) between the ends; the point with the
    # largest triangle against point 0 and the last point wins.
    x = np.arange(5.0)
    y = np.array([0.0, 1.0, 5.0, 2.0, 0.0])
    assert lttb_indices(x, y, 3).tolist() == [0, 2, 4]


def test_at_least_three_points() -> None:
    with pytest.raises(ValueError):
        lttb_indices([0, 1, 2, 3], [0, 1, 2, 3], 2)


def test_the_library_keeps_the_same_points_as_the_reference() -> None:
    from tradeplane.backtest.domain.lttb import lttb_indices_numpy

    x, y = _curve(200_003)
    for points in (3, 10, 2000):
        assert (lttb_indices(x, y, points) == lttb_indices_numpy(x, y, points)).all()
    times = (1_600_000_000 + 60 * np.arange(50_000)).astype(np.int64)  # epoch seconds, int
    values = y[:50_000]
    assert (lttb_indices(times, values, 700) == lttb_indices_numpy(times, values, 700)).all()
