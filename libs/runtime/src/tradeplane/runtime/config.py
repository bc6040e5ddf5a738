"""Service configuration: environment variables into one frozen object, read once, failing fast."""

from __future__ import annotations

import pathlib
import sys
from typing import Any, Literal, TypeVar

from pydantic import SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Settings every service shares. Services subclass it, set defaults for ``service_name``,
    ``grpc_port`` and ``metrics_port`` and add their own fields."""

    model_config = SettingsConfigDict(frozen=True, case_sensitive=False, extra="ignore")

    service_name: str
    grpc_host: str = "0.0.0.0"
    grpc_port: int  # 0 = pick a free port
    metrics_port: int  # 0 = pick a free port, -1 = no metrics endpoint
    database_url: str | None = None
    redis_url: str | None = None
    auth_mode: Literal["jwt", "disabled"] = "jwt"
    jwt_algorithm: Literal["HS256", "ES256"] = "HS256"
    jwt_secret: SecretStr | None = None
    jwt_public_key: str | None = None  # PEM text or a path to a PEM file
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    log_level: str = "INFO"
    shutdown_grace_seconds: float = 10.0
    db_pool_size: int = 10
    db_max_overflow: int = 10
    db_pool_recycle_seconds: int = 1800
    db_pool_pre_ping: bool = True

    @model_validator(mode="after")
    def _jwt_key_present(self) -> ServiceSettings:
        # Checked here, not on the first call, so a misconfigured service refuses to start.
        if self.auth_mode == "jwt":
            if self.jwt_algorithm == "HS256" and not self.jwt_secret:
                raise ValueError(
                    "JWT_SECRET is required when AUTH_MODE=jwt and JWT_ALGORITHM=HS256 "
                    "(or set AUTH_MODE=disabled explicitly)"
                )
            if self.jwt_algorithm == "ES256" and not self.jwt_public_key:
                raise ValueError(
                    "JWT_PUBLIC_KEY is required when AUTH_MODE=jwt and JWT_ALGORITHM=ES256 "
                    "(or set AUTH_MODE=disabled explicitly)"
                )
            key = self.jwt_public_key
            if key and "-----BEGIN" not in key and not pathlib.Path(key).is_file():
                raise ValueError(
                    f"JWT_PUBLIC_KEY is neither PEM text nor the path of a file ({key!r})"
                )
        return self


S = TypeVar("S", bound=ServiceSettings)


def _env_name(cls: type[ServiceSettings], loc: tuple[Any, ...]) -> str:
    if not loc:
        return ""
    field = str(loc[0])
    prefix = str(cls.model_config.get("env_prefix") or "")
    info = cls.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    if isinstance(alias, str):
        return alias.upper()
    return f"{prefix}{field}".upper()


def describe_validation_error(cls: type[ServiceSettings], error: ValidationError) -> str:
    """One readable message naming each offending environment variable."""
    lines = []
    for err in error.errors():
        env = _env_name(cls, tuple(err.get("loc", ())))
        msg = str(err.get("msg", "invalid"))
        if err.get("type") == "missing":
            msg = "is required but not set"
        elif "input" in err and env and not _is_secret(cls, env):
            msg = f"{msg} (got {err['input']!r})"
        lines.append(f"  {env}: {msg}" if env else f"  {msg.removeprefix('Value error, ')}")
    return f"invalid configuration for {cls.__name__}:\n" + "\n".join(lines)


_SECRET_WORDS = ("SECRET", "PASSWORD", "TOKEN", "KEY", "URL")  # URLs may carry passwords


def _is_secret(cls: type[ServiceSettings], env: str) -> bool:
    """Never echo a value that may be a credential back into the logs."""
    field = cls.model_fields.get(env.lower())
    if field is not None and field.annotation in (SecretStr, SecretStr | None):
        return True
    return any(word in env for word in _SECRET_WORDS)


def load_settings(cls: type[S]) -> S:
    """Build the settings from the environment; on a missing or invalid value print one clear
    error naming the environment variable(s) to stderr and exit with status 2."""
    try:
        return cls()
    except ValidationError as exc:
        print(describe_validation_error(cls, exc), file=sys.stderr)
        raise SystemExit(2) from None
