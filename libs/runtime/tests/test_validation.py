"""Out-of-range Timestamp/Duration fields are named before a handler sees the request."""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from tradeplane.runtime.interceptors.validation import invalid_field, problem_in
from trading.execution.v1 import execution_pb2
from trading.market.v1 import market_pb2


def test_valid_and_absent_fields_pass() -> None:
    assert invalid_field(market_pb2.GetCandlesRequest()) is None
    request = market_pb2.GetCandlesRequest(start=Timestamp(seconds=0), end=Timestamp(seconds=60))
    assert invalid_field(request) is None


def test_timestamps_out_of_range_are_named() -> None:
    late = market_pb2.GetCandlesRequest(end=Timestamp(seconds=253_402_300_800))
    assert invalid_field(late) == "end: must be between 0001-01-01 and 9999-12-31"
    negative_nanos = market_pb2.GetCandlesRequest(start=Timestamp(seconds=1, nanos=-1))
    assert invalid_field(negative_nanos) == "start: nanos must be between 0 and 999999999"


def test_nested_durations_are_checked() -> None:
    limits = execution_pb2.SetRiskLimitsRequest(
        limits=execution_pb2.RiskLimits(loss_cooldown=Duration(seconds=-(2**63)))
    )
    assert invalid_field(limits) == "limits.loss_cooldown: must be within 10000 years"
    mixed = execution_pb2.SetRiskLimitsRequest(
        limits=execution_pb2.RiskLimits(loss_cooldown=Duration(seconds=5, nanos=-1))
    )
    assert invalid_field(mixed) is not None
    fine = execution_pb2.SetRiskLimitsRequest(
        limits=execution_pb2.RiskLimits(loss_cooldown=Duration(seconds=300))
    )
    assert invalid_field(fine) is None


def test_the_check_run_per_call_skips_only_types_that_cannot_hold_a_time() -> None:
    # SetRiskLimitsRequest holds its Duration two levels down; SubmitOrderRequest holds none.
    nested = execution_pb2.SetRiskLimitsRequest(
        limits=execution_pb2.RiskLimits(loss_cooldown=Duration(seconds=-(2**63)))
    )
    for _ in range(2):  # the second time from the per-type cache
        assert problem_in(nested) == "limits.loss_cooldown: must be within 10000 years"
        assert problem_in(market_pb2.GetCandlesRequest(end=Timestamp(seconds=2**40))) is not None
        assert problem_in(execution_pb2.SubmitOrderRequest(base_size="-1")) is None
        assert problem_in(market_pb2.GetCandlesRequest()) is None
    assert problem_in(b"not a message") is None
