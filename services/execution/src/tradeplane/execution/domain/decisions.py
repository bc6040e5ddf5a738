"""Decision records: why an order was placed (strategy or agent, inputs, reason, optional
model usage and trace id). Stored with the order; the "agent inspector" lists them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from tradeplane.runtime.errors import InvalidArgument

_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_REASON_LENGTH = 4000


@dataclass(frozen=True, slots=True)
class Decision:
    decision_id: str
    strategy: str
    account_id: str
    product_id: str
    create_time: datetime
    reason: str = ""
    strategy_instance_id: str = ""
    inputs: Mapping[str, Any] = field(default_factory=dict, hash=False)
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_amount: Decimal | None = None
    cost_currency: str = ""
    trace_id: str = ""
    order_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.strategy:
            raise InvalidArgument("decision.strategy", "required when a decision is attached")
        if len(self.reason) > MAX_REASON_LENGTH:
            raise InvalidArgument(
                "decision.reason", f"at most {MAX_REASON_LENGTH} characters, got {len(self.reason)}"
            )
        if self.prompt_tokens < 0:
            raise InvalidArgument("decision.prompt_tokens", "must not be negative")
        if self.completion_tokens < 0:
            raise InvalidArgument("decision.completion_tokens", "must not be negative")
        if self.trace_id and not _TRACE_ID.match(self.trace_id):
            raise InvalidArgument("decision.trace_id", "must be 32 lowercase hex characters")
        if self.cost_amount is not None:
            if not self.cost_amount.is_finite() or self.cost_amount < 0:
                raise InvalidArgument("decision.cost.amount", "must be a non-negative number")
            if not self.cost_currency:
                raise InvalidArgument("decision.cost.currency", "required with an amount")

    def with_order(self, order_id: str) -> Decision:
        return replace(self, order_ids=(*self.order_ids, order_id))
