"""Candle widths and their UTC-aligned buckets.

Buckets are aligned to the Unix epoch, which is a UTC midnight, so every width that divides a
day gives natural boundaries: 1d starts at 00:00 UTC, 6h at 00/06/12/18 UTC, 1h on the hour.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_SECOND = timedelta(seconds=1)

_SECONDS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "6h": 21600, "1d": 86400}


def epoch_seconds(moment: datetime) -> int:
    """Whole seconds since the epoch, rounded down (exact: no float on the way).

    `moment` must be timezone-aware; naive datetimes are ambiguous and rejected."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: a timezone-aware (UTC) time is required")
    return (moment - EPOCH) // _ONE_SECOND


def from_epoch_seconds(seconds: int) -> datetime:
    """The UTC datetime `seconds` after the epoch."""
    return EPOCH + timedelta(seconds=seconds)


class Interval(enum.Enum):
    """A candle width. The value is the short code used in configs and CLIs ("1m", "1d")."""

    ONE_MINUTE = "1m"
    FIVE_MINUTES = "5m"
    FIFTEEN_MINUTES = "15m"
    ONE_HOUR = "1h"
    SIX_HOURS = "6h"
    ONE_DAY = "1d"

    @property
    def code(self) -> str:
        return str(self.value)

    @property
    def seconds(self) -> int:
        return _SECONDS[self.value]

    @property
    def duration(self) -> timedelta:
        return timedelta(seconds=self.seconds)

    def floor(self, ts_epoch_seconds: int) -> int:
        """Start (epoch seconds) of the bucket holding `ts_epoch_seconds`."""
        return ts_epoch_seconds - ts_epoch_seconds % self.seconds

    def floor_datetime(self, moment: datetime) -> datetime:
        """Start of the bucket holding `moment`, as a UTC datetime."""
        return from_epoch_seconds(self.floor(epoch_seconds(moment)))

    @classmethod
    def parse(cls, code: str) -> Interval:
        """The interval with this code; ValueError naming the valid codes otherwise."""
        try:
            return cls(code)
        except ValueError:
            valid = ", ".join(i.code for i in cls)
            raise ValueError(f"unknown interval {code!r}; expected one of {valid}") from None


ALL_INTERVALS: tuple[Interval, ...] = tuple(Interval)
