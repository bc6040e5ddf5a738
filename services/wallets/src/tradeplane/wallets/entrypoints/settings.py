"""WalletsSettings: the wallets service's configuration (environment variables)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from pydantic import Field, SecretStr, field_validator, model_validator

from tradeplane.runtime.config import ServiceSettings
from tradeplane.runtime.errors import InvalidArgument
from tradeplane.wallets.domain.currencies import check_currency_code
from tradeplane.wallets.domain.wallets import check_wallet_id


def parse_currency_amounts(value: str, *, allow_zero: bool) -> dict[str, Decimal]:
    """ "USD=100000,BTC=0.5" -> {"USD": Decimal("100000"), "BTC": Decimal("0.5")}."""
    result: dict[str, Decimal] = {}
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        code, sep, amount = part.partition("=")
        if not sep:
            raise ValueError(f"{part!r} is not CURRENCY=AMOUNT")
        code = code.strip().upper()
        try:
            check_currency_code(code)
        except InvalidArgument as exc:
            raise ValueError(exc.message) from None
        try:
            number = Decimal(amount.strip())
        except InvalidOperation:
            raise ValueError(f"{amount!r} is not a decimal amount") from None
        if not number.is_finite() or number < 0 or (number == 0 and not allow_zero):
            raise ValueError(f"{part!r}: the amount must be {'≥' if allow_zero else '>'} 0")
        if code in result:
            raise ValueError(f"{code} listed twice")
        result[code] = number
    return result


def parse_tokens(value: str, *, with_decimals: bool) -> list[tuple[str, str, int]]:
    """ "USDC=0xA0b8...:6" -> [("USDC", "0xA0b8...", 6)]; without decimals they are 0."""
    result = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        code, sep, rest = part.partition("=")
        code = code.strip().upper()
        if not sep or not rest.strip():
            raise ValueError(f"{part!r} is not CURRENCY=TOKEN")
        try:
            check_currency_code(code)
        except InvalidArgument as exc:
            raise ValueError(exc.message) from None
        token, _, decimals = rest.strip().partition(":")
        if with_decimals and not decimals.isdigit():
            raise ValueError(f"{part!r}: decimals must be given as CURRENCY=0xCONTRACT:DECIMALS")
        result.append((code, token, int(decimals) if decimals else 0))
    return result


class WalletsSettings(ServiceSettings):
    service_name: str = "wallets"
    grpc_port: int = 50053  # GRPC_PORT
    metrics_port: int = 9103  # METRICS_PORT
    database_url: str  # DATABASE_URL: required (the launcher passes sqlite:///var/data/wallets.db)

    # Upstream: where the fill consumer reads execution's StreamEvents. Unset = no consumer.
    execution_addr: str | None = None  # EXECUTION_ADDR, host:port
    # Bearer token the fill consumer sends to execution when AUTH_MODE=jwt there (READ scope).
    wallets_execution_token: SecretStr | None = None
    wallets_fill_backoff_initial_seconds: float = Field(0.5, gt=0)
    wallets_fill_backoff_max_seconds: float = Field(30.0, gt=0)

    # The default paper wallet created at start-up (idempotently) so the UI has something.
    wallets_default_wallet: bool = True  # WALLETS_DEFAULT_WALLET: false = create none
    wallets_default_wallet_id: str = "paper"
    wallets_default_wallet_name: str = "Paper trading"
    # execution account whose paper fills land in that wallet
    wallets_default_account_id: str = "paper-main"  # execution's EXECUTION_DEFAULT_ACCOUNT
    # Deposited once into the default wallet: CURRENCY=AMOUNT, comma separated ("" = none).
    wallets_initial_deposits: str = "USD=100000"

    # Reconciliation: scheduled runs over every wallet (0 = off) and tolerances.
    wallets_reconcile_interval_seconds: float = Field(0.0, ge=0)
    # Per-currency overrides of the built-in tolerances, e.g. "USD=0.05,BTC=0.000001".
    wallets_reconcile_tolerances: str = ""
    # Tolerance of currencies without one (built-in or configured).
    wallets_reconcile_default_tolerance: Decimal = Field(Decimal(0), ge=0)
    # Reconciliation runs executing at once per process (more Reconcile calls wait their turn).
    wallets_reconcile_concurrency: int = Field(4, ge=1)
    # How often an idle StreamReconciliations checks for runs stored by other replicas.
    wallets_stream_poll_seconds: float = Field(1.0, gt=0)

    # Venue balances (reconciliation, ListBalances source=VENUE) go through the cache
    # (REDIS_URL: shared by replicas; unset: in-process).
    wallets_venue_stale_ttl_seconds: float = Field(86_400.0, gt=0)  # stale copy kept this long
    # Coinbase Advanced Trade accounts API for COINBASE wallets: used when COINBASE_API_KEY
    # or this URL is set (default then https://api.coinbase.com); else no Coinbase source.
    wallets_coinbase_rest_url: str | None = None
    wallets_coinbase_accounts_ttl_seconds: float = Field(30.0, gt=0)
    wallets_coinbase_page_limit: int = Field(250, ge=1, le=250)
    wallets_coinbase_timeout_seconds: float = Field(10.0, gt=0)
    coinbase_api_key: SecretStr | None = None  # COINBASE_API_KEY (a Kubernetes Secret)
    coinbase_api_secret: SecretStr | None = None  # COINBASE_API_SECRET
    # Read-only on-chain wallets: JSON-RPC nodes (unset = that chain is not monitored).
    wallets_chain_ttl_seconds: float = Field(30.0, gt=0)
    wallets_solana_rpc_url: str | None = None
    wallets_solana_tokens: str = ""  # CURRENCY=MINT,... e.g. "USDC=EPjFWdd5..."
    wallets_evm_rpc_url: str | None = None
    wallets_evm_native_currency: str = "ETH"
    wallets_evm_tokens: str = ""  # CURRENCY=0xCONTRACT:DECIMALS,...

    @model_validator(mode="after")
    def _coinbase_key_pair(self) -> WalletsSettings:
        if (self.coinbase_api_key is None) != (self.coinbase_api_secret is None):
            raise ValueError("set both COINBASE_API_KEY and COINBASE_API_SECRET, or neither")
        return self

    @field_validator("wallets_solana_tokens")
    @classmethod
    def _solana_tokens(cls, value: str) -> str:
        parse_tokens(value, with_decimals=False)
        return value

    @field_validator("wallets_evm_tokens")
    @classmethod
    def _evm_tokens(cls, value: str) -> str:
        parse_tokens(value, with_decimals=True)
        return value

    @field_validator("wallets_default_wallet_id")
    @classmethod
    def _wallet_id(cls, value: str) -> str:
        try:
            return check_wallet_id(value, "WALLETS_DEFAULT_WALLET_ID")
        except InvalidArgument as exc:
            raise ValueError(exc.message) from None

    @field_validator("wallets_initial_deposits")
    @classmethod
    def _deposits(cls, value: str) -> str:
        parse_currency_amounts(value, allow_zero=False)
        return value

    @field_validator("wallets_reconcile_tolerances")
    @classmethod
    def _tolerances(cls, value: str) -> str:
        parse_currency_amounts(value, allow_zero=True)
        return value

    @property
    def initial_deposits(self) -> dict[str, Decimal]:
        return parse_currency_amounts(self.wallets_initial_deposits, allow_zero=False)

    @property
    def solana_tokens(self) -> dict[str, str]:
        """mint -> currency."""
        return {t: c for c, t, _ in parse_tokens(self.wallets_solana_tokens, with_decimals=False)}

    @property
    def evm_tokens(self) -> list[tuple[str, str, int]]:
        """(currency, contract, decimals)."""
        return parse_tokens(self.wallets_evm_tokens, with_decimals=True)

    @property
    def tolerance_overrides(self) -> dict[str, Decimal]:
        return parse_currency_amounts(self.wallets_reconcile_tolerances, allow_zero=True)
