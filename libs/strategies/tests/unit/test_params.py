"""Typed strategy parameters: parsing, defaults and errors that name the parameter."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tradeplane.runtime.errors import InvalidArgument
from tradeplane.strategies import Parameter, ParamType, validate_params
from tradeplane.strategies.params import format_params

SPECS = (
    Parameter("period", ParamType.INT, 20, "bars", min=1, max=500),
    Parameter("width", ParamType.FLOAT, 2.0, "std devs", min=0.5, max=4.0),
    Parameter("amount", ParamType.DECIMAL, Decimal("0.01"), "size", min=Decimal("0.001")),
    Parameter("enabled", ParamType.BOOL, False, "switch"),
    Parameter("mode", ParamType.CHOICE, "fast", "mode", choices=("fast", "slow")),
    Parameter("label", ParamType.STRING, "", "text"),
)


def test_missing_parameters_take_their_defaults() -> None:
    values = validate_params(SPECS, {})
    assert values == {
        "period": 20,
        "width": 2.0,
        "amount": Decimal("0.01"),
        "enabled": False,
        "mode": "fast",
        "label": "",
    }


def test_strings_from_the_proto_map_are_parsed_by_type() -> None:
    values = validate_params(
        SPECS,
        {"period": "30", "width": "2.5", "amount": "0.015", "enabled": "true", "mode": "slow"},
    )
    assert values["period"] == 30 and isinstance(values["period"], int)
    assert values["width"] == 2.5
    assert values["amount"] == Decimal("0.015")
    assert values["enabled"] is True
    assert values["mode"] == "slow"


def test_python_values_are_accepted_and_decimals_stay_exact() -> None:
    values = validate_params(SPECS, {"period": 7, "width": 1, "amount": 0.1, "enabled": True})
    assert values["period"] == 7
    assert values["width"] == 1.0 and isinstance(values["width"], float)
    assert values["amount"] == Decimal("0.1")


@pytest.mark.parametrize(
    ("raw", "field", "text"),
    [
        ({"period": "2.5"}, "params.period", "integer"),
        ({"period": "0"}, "params.period", ">= 1"),
        ({"period": 501}, "params.period", "<= 500"),
        ({"width": "wide"}, "params.width", "number"),
        ({"width": "nan"}, "params.width", "finite"),
        ({"amount": "abc"}, "params.amount", "decimal"),
        ({"amount": "0.0001"}, "params.amount", ">= 0.001"),
        ({"enabled": "yes"}, "params.enabled", "true or false"),
        ({"mode": "medium"}, "params.mode", "one of fast, slow"),
        ({"period": True}, "params.period", "number"),
        ({"perod": "3"}, "params.perod", "unknown parameter"),
    ],
)
def test_bad_values_raise_invalid_argument_naming_the_parameter(
    raw: dict[str, object], field: str, text: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validate_params(SPECS, raw)
    assert caught.value.field == field
    assert text in caught.value.message


def test_an_invalid_default_is_a_programming_error() -> None:
    with pytest.raises(InvalidArgument):
        Parameter("n", ParamType.INT, 0, "bars", min=1)
    with pytest.raises(ValueError, match="choices"):
        Parameter("c", ParamType.CHOICE, "a", "choice")


def test_values_format_back_to_proto_strings() -> None:
    values = validate_params(SPECS, {"enabled": True, "amount": "0.50"})
    assert format_params(SPECS, values) == {
        "period": "20",
        "width": "2.0",
        "amount": "0.50",
        "enabled": "true",
        "mode": "fast",
        "label": "",
    }
