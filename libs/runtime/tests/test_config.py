"""Settings from the environment: frozen, case-insensitive, failing fast naming the variable."""

from __future__ import annotations

import pydantic
import pytest

from tradeplane.runtime.config import ServiceSettings, load_settings

_OUR_VARS = (
    "SERVICE_NAME",
    "GRPC_HOST",
    "GRPC_PORT",
    "METRICS_PORT",
    "DATABASE_URL",
    "REDIS_URL",
    "AUTH_MODE",
    "JWT_ALGORITHM",
    "JWT_SECRET",
    "JWT_PUBLIC_KEY",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "LOG_LEVEL",
    "SHUTDOWN_GRACE_SECONDS",
    "MARKET_FEED",
)


class MarketLikeSettings(ServiceSettings):
    service_name: str = "market"
    grpc_port: int = 50051
    metrics_port: int = 9101
    market_feed: str = "simulated"


class NoDefaultsSettings(ServiceSettings):
    service_name: str = "bare"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _OUR_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def test_defaults_and_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_MODE", "disabled")
    monkeypatch.setenv("grpc_port", "6000")  # case-insensitive
    monkeypatch.setenv("MARKET_FEED", "replay")
    monkeypatch.setenv("SHUTDOWN_GRACE_SECONDS", "2.5")
    settings = load_settings(MarketLikeSettings)
    assert settings.grpc_port == 6000
    assert settings.metrics_port == 9101
    assert settings.market_feed == "replay"
    assert settings.shutdown_grace_seconds == 2.5
    assert settings.auth_mode == "disabled"
    assert settings.redis_url is None


def test_settings_are_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_MODE", "disabled")
    settings = load_settings(MarketLikeSettings)
    with pytest.raises(pydantic.ValidationError):
        settings.grpc_port = 1  # type: ignore[misc]


def test_jwt_needs_a_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        load_settings(MarketLikeSettings)
    assert exit_info.value.code == 2
    assert "JWT_SECRET" in capsys.readouterr().err
    monkeypatch.setenv("JWT_SECRET", "s" * 32)
    assert load_settings(MarketLikeSettings).jwt_secret is not None


def test_es256_needs_a_public_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JWT_ALGORITHM", "ES256")
    with pytest.raises(SystemExit):
        load_settings(MarketLikeSettings)
    assert "JWT_PUBLIC_KEY" in capsys.readouterr().err


def test_missing_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AUTH_MODE", "disabled")
    with pytest.raises(SystemExit) as exit_info:
        load_settings(NoDefaultsSettings)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "GRPC_PORT: is required but not set" in err
    assert "METRICS_PORT: is required but not set" in err


def test_invalid_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AUTH_MODE", "sometimes")
    monkeypatch.setenv("GRPC_PORT", "not-a-port")
    with pytest.raises(SystemExit):
        load_settings(MarketLikeSettings)
    err = capsys.readouterr().err
    assert "GRPC_PORT" in err and "'not-a-port'" in err
    assert "AUTH_MODE" in err


def test_values_of_credential_like_variables_are_not_echoed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class WithLimits(MarketLikeSettings):
        api_token_ttl: int = 0
        max_orders: int = 0

    monkeypatch.setenv("AUTH_MODE", "disabled")
    monkeypatch.setenv("API_TOKEN_TTL", "hunter2")
    monkeypatch.setenv("MAX_ORDERS", "many")
    with pytest.raises(SystemExit):
        load_settings(WithLimits)
    err = capsys.readouterr().err
    assert "API_TOKEN_TTL" in err and "hunter2" not in err
    assert "MAX_ORDERS" in err and "'many'" in err


def test_es256_public_key_path_must_exist(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JWT_ALGORITHM", "ES256")
    monkeypatch.setenv("JWT_PUBLIC_KEY", "/nonexistent/jwt.pub")
    with pytest.raises(SystemExit):
        load_settings(MarketLikeSettings)
    assert "JWT_PUBLIC_KEY is neither PEM text nor the path of a file" in capsys.readouterr().err
