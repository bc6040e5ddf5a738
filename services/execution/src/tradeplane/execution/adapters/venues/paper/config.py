"""Paper venue configuration (from ExecutionSettings)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class PaperConfig:
    maker_fee_bps: Decimal = Decimal("10")  # fee of fills that rested on the book
    taker_fee_bps: Decimal = Decimal("20")  # fee of fills that crossed the book
    slippage_bps: Decimal = Decimal("0")  # taker price moved this much against the order
