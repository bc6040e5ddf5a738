"""GatewaySettings: the gateway's configuration (environment variables)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from tradeplane.runtime.config import ServiceSettings

_DEFAULT_WEB_DIR = Path(__file__).resolve().parents[3] / "web" / "dist"  # gateway/web/dist


class GatewaySettings(ServiceSettings):
    service_name: str = "gateway"
    grpc_port: int = 0  # unused: the gateway serves HTTP; GRPC_HOST is its listen interface
    http_port: int = 8080  # HTTP_PORT: JSON API, WebSockets, web UI; 0 = pick a free port
    metrics_port: int = 9105  # METRICS_PORT

    # Upstream services ("host:port"); a route or channel of a service that is not set answers
    # 503 / an UPSTREAM_UNAVAILABLE error frame.
    market_addr: str | None = None
    execution_addr: str | None = None
    wallets_addr: str | None = None
    backtest_addr: str | None = None

    # Comma-separated Origins allowed to open a WebSocket ("*" = any). Empty: same origin only
    # (Origin host equals the Host header) and clients that send no Origin (non-browsers).
    gateway_allowed_origins: str = ""
    gateway_heartbeat_seconds: float = Field(10.0, gt=0)  # a peer silent 3x this is closed
    gateway_client_queue_size: int = Field(256, ge=1)  # frames queued per connection
    gateway_max_subscriptions: int = Field(100, ge=1)  # per connection
    gateway_max_connections_per_caller: int = Field(50, ge=1)  # per token subject (auth on)
    gateway_replay_size: int = Field(10_000, ge=1)  # updates kept per subscription key to resume
    gateway_snapshot_candles: int = Field(100, ge=1)  # recent candles in a CANDLES snapshot
    gateway_snapshot_recent: int = Field(50, ge=1)  # fills/blocks in a LIVE snapshot
    gateway_frame_max_items: int = Field(500, ge=1)  # updates batched in one data frame at most
    # At most one frame per key per window: an update after a quiet window goes out at once,
    # updates within the window are held and sent together at its end (0 = one frame per
    # upstream message). Fewer, larger frames per browser at high rates.
    gateway_batch_seconds: float = Field(0.025, ge=0, le=1)
    gateway_upstream_timeout_seconds: float = Field(10.0, gt=0)  # per unary call
    gateway_upstream_retry_max_seconds: float = Field(5.0, gt=0)  # stream reconnect backoff cap
    # SO_SNDBUF of accepted sockets and the high-water mark of their user-space write buffer,
    # in bytes (0 = OS default, autotuned, and asyncio's 64 KiB): a smaller buffer bounds the
    # memory a stalled browser can hold and detects it sooner.
    gateway_socket_send_buffer: int = Field(0, ge=0)
    # Token the gateway's shared upstream streams use (one stream serves many browsers);
    # unset: the token of the browser that opened the stream. Each browser is checked itself.
    gateway_service_token: SecretStr | None = None
    # Built web UI served at "/" (default gateway/web/dist when it exists).
    tradeplane_web_dir: Path | None = None

    @property
    def web_dir(self) -> Path | None:
        if self.tradeplane_web_dir is not None:
            return self.tradeplane_web_dir
        return _DEFAULT_WEB_DIR if _DEFAULT_WEB_DIR.is_dir() else None

    @property
    def allowed_origins(self) -> frozenset[str]:
        return frozenset(
            o.strip().rstrip("/") for o in self.gateway_allowed_origins.split(",") if o.strip()
        )
