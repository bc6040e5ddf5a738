"""The JSON API for the web UI: each route is one gRPC call, protobuf's JSON mapping both ways.

Request fields come from the path, the query string (see `jsonmap`) and, for POST/PUT, the JSON
body (the request message in protobuf's JSON mapping). Errors: HTTP status from the gRPC status
(`errors.HTTP_STATUS_BY_CODE`) and an HttpError JSON body {code, message, httpStatus}.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import orjson
from google.protobuf.descriptor import FieldDescriptor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tradeplane.gateway.auth import Authenticator, Caller, token_from
from tradeplane.gateway.errors import ApiError, from_rpc_error
from tradeplane.gateway.jsonmap import build_request, message_json
from tradeplane.gateway.upstreams import Method, Upstreams, method
from tradeplane.runtime.auth import required_scope
from tradeplane.runtime.errors import DomainError
from trading.execution.v1 import execution_pb2

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApiRoute:
    http_method: str
    path: str
    service: str
    rpc: str
    summary: str
    defaults: dict[str, Any] = field(default_factory=dict)  # request fields unless given
    defaults_unless: tuple[str, ...] = ()  # ... or unless one of these fields is given


R = ApiRoute

# Order matters where a literal segment and a {parameter} compete (Starlette: first match).
ROUTES: tuple[ApiRoute, ...] = (
    # market
    R("GET", "/api/market/products", "market", "ListProducts", "Products with last price"),
    R(
        "GET",
        "/api/market/products/{product_id}/candles",
        "market",
        "GetCandles",
        "Candles of a product with indicators (indicators=sma:period=20,rsi)",
    ),
    R("GET", "/api/market/products/{product_id}/book", "market", "GetOrderBook", "Order book"),
    # live (execution)
    R("GET", "/api/live/accounts", "execution", "ListAccounts", "Trading accounts"),
    R("GET", "/api/live/orders", "execution", "ListOrders", "Orders (filters)"),
    R("POST", "/api/live/orders", "execution", "SubmitOrder", "Submit an order"),
    R("GET", "/api/live/orders/{order_id}", "execution", "GetOrder", "One order"),
    R("POST", "/api/live/orders/{order_id}/cancel", "execution", "CancelOrder", "Cancel"),
    R("DELETE", "/api/live/orders/{order_id}", "execution", "CancelOrder", "Cancel"),
    R("GET", "/api/live/fills", "execution", "ListFills", "Fills (filters)"),
    R("GET", "/api/live/positions", "execution", "ListPositions", "Positions"),
    R("GET", "/api/live/portfolio", "execution", "GetPortfolio", "Portfolio of an account"),
    R("GET", "/api/live/blocks", "execution", "ListBlocks", "Blocked trades (filters)"),
    R("GET", "/api/live/trading-state", "execution", "GetTradingState", "Trading state"),
    R("POST", "/api/live/trading-state", "execution", "SetTradingState", "Set trading state"),
    R(
        "POST",
        "/api/live/kill-switch",
        "execution",
        "HaltTrading",
        "Kill switch: halt trading (all accounts unless account_id)",
        {"all_accounts": True},
    ),
    R("GET", "/api/live/risk-limits", "execution", "GetRiskLimits", "Risk limits"),
    R("PUT", "/api/live/risk-limits", "execution", "SetRiskLimits", "Set risk limits"),
    R("GET", "/api/live/venues", "execution", "ListVenues", "Venues and their health"),
    # strategies and decisions (execution)
    R(
        "GET",
        "/api/strategies/definitions",
        "execution",
        "ListStrategyDefinitions",
        "Strategies that can be started",
    ),
    R("GET", "/api/strategies", "execution", "ListStrategies", "Running strategy instances"),
    R("POST", "/api/strategies", "execution", "StartStrategy", "Start a strategy"),
    R(
        "POST",
        "/api/strategies/{strategy_instance_id}/stop",
        "execution",
        "StopStrategy",
        "Stop a strategy",
    ),
    R("GET", "/api/decisions", "execution", "ListDecisions", "Decision records (agents)"),
    R("GET", "/api/decisions/summary", "execution", "SummarizeDecisions", "Totals per agent"),
    R("GET", "/api/decisions/{decision_id}", "execution", "GetDecision", "Decision + orders"),
    # wallets
    R("GET", "/api/wallets", "wallets", "ListWallets", "Wallets with balances"),
    R("POST", "/api/wallets", "wallets", "CreateWallet", "Create a wallet"),
    R("GET", "/api/wallets/{wallet_id}", "wallets", "GetWallet", "One wallet"),
    R(
        "GET",
        "/api/wallets/{wallet_id}/ledger",
        "wallets",
        "ListLedgerEntries",
        "Ledger entries of a wallet",
    ),
    R("GET", "/api/balances", "wallets", "ListBalances", "Balances (filters)"),
    R("GET", "/api/ledger", "wallets", "ListLedgerEntries", "Ledger entries (filters)"),
    R("POST", "/api/transfers", "wallets", "RecordTransfer", "Record a transfer"),
    R(
        "POST",
        "/api/reconciliations",
        "wallets",
        "Reconcile",
        "Reconcile now (all wallets unless wallet_ids)",
        {"all": True},
        ("wallet_ids",),
    ),
    R("GET", "/api/reconciliations", "wallets", "ListReconciliations", "Reconciliation history"),
    R("GET", "/api/reconciliations/{run_id}", "wallets", "GetReconciliation", "One run"),
    # backtests
    R("GET", "/api/backtests", "backtest", "ListBacktests", "Backtests"),
    R("POST", "/api/backtests", "backtest", "RunBacktest", "Run a backtest"),
    R("GET", "/api/backtests/strategies", "backtest", "ListStrategies", "Strategies"),
    R(
        "GET",
        "/api/backtests/compare",
        "backtest",
        "CompareBacktests",
        "A/B compare (backtest_a_id, backtest_b_id, max_points)",
    ),
    R("GET", "/api/backtests/{backtest_id}", "backtest", "GetBacktest", "One backtest"),
    R("POST", "/api/backtests/{backtest_id}/cancel", "backtest", "CancelBacktest", "Cancel"),
    R("GET", "/api/backtests/{backtest_id}/trades", "backtest", "ListTrades", "Trades"),
    R("GET", "/api/backtests/{backtest_id}/orders", "backtest", "ListOrders", "Orders"),
    R(
        "GET",
        "/api/backtests/{backtest_id}/equity",
        "backtest",
        "GetEquity",
        "Equity curve (max_points downsamples with LTTB)",
    ),
    R(
        "GET",
        "/api/backtests/{backtest_id}/playback/candles",
        "backtest",
        "GetPlaybackCandles",
        "Candles, indicators and trade markers",
    ),
    R(
        "GET",
        "/api/backtests/{backtest_id}/playback/state",
        "backtest",
        "GetPlaybackState",
        "State at ?timestamp=",
    ),
    R(
        "GET",
        "/api/backtests/{backtest_id}/monte-carlo",
        "backtest",
        "GetMonteCarloReport",
        "Monte Carlo report",
    ),
    R("GET", "/api/sweeps", "backtest", "ListSweeps", "Sweeps"),
    R("POST", "/api/sweeps", "backtest", "RunSweep", "Run a parameter sweep"),
    R("GET", "/api/sweeps/{sweep_id}", "backtest", "GetSweep", "One sweep"),
    R("GET", "/api/sweeps/{sweep_id}/results", "backtest", "ListSweepResults", "Results"),
    R("POST", "/api/sweeps/{sweep_id}/cancel", "backtest", "CancelSweep", "Cancel a sweep"),
)


def json_response(content: bytes, status: int = 200) -> Response:
    return Response(content, status_code=status, media_type="application/json")


def error_response(error: ApiError) -> Response:
    return json_response(orjson.dumps(error.body()), error.http_status)


async def _json_body(request: Request) -> dict[str, Any] | None:
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, f"body: invalid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, "body: must be a JSON object")
    return body


def make_handler(
    route: ApiRoute, upstreams: Upstreams, authenticator: Authenticator
) -> Callable[[Request], Awaitable[Response]]:
    m: Method = method(route.service, route.rpc)
    scope_needed = required_scope(m.full_name)

    async def handle(request: Request) -> Response:
        try:
            try:
                caller = authenticator.authenticate(
                    token_from(request.headers, request.query_params)
                )
            except DomainError as exc:
                raise ApiError(grpc.StatusCode.UNAUTHENTICATED, str(exc)) from None
            if not caller.principal.allows(scope_needed):
                raise ApiError(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"this route requires the '{scope_needed.label}' scope",
                )
            body = await _json_body(request) if request.method in ("POST", "PUT") else None
            rpc_request = build_request(
                m.request_cls,
                path_params=request.path_params,
                query=request.query_params.multi_items(),
                body=body,
                defaults=route.defaults,
                defaults_unless=route.defaults_unless,
            )
            try:
                if caller.accounts is not None and route.service == "execution":
                    await _limit_to_accounts(upstreams, caller, rpc_request)
                response = await upstreams.call(m, rpc_request, caller.token)
            except grpc.aio.AioRpcError as exc:
                raise from_rpc_error(exc, route.service) from None
            if caller.accounts is not None and route.rpc == "ListAccounts":
                listed: Any = response
                kept = [a for a in listed.accounts if a.account_id in caller.accounts]
                del listed.accounts[:]
                listed.accounts.extend(kept)
            return json_response(message_json(response))
        except ApiError as exc:
            return error_response(exc)
        except Exception:
            log.exception("JSON API route failed", extra={"route": route.path})
            return error_response(ApiError(grpc.StatusCode.INTERNAL, "internal error"))

    handle.__name__ = f"{route.service}_{route.rpc}"
    return handle


async def _limit_to_accounts(upstreams: Upstreams, caller: Caller, request: Any) -> None:
    """An account-scoped token (`accounts` claim) reaches its own accounts only: a request
    naming another account is refused, one naming none gets the caller's only account, and
    an order addressed by id must belong to one of them (PERMISSION_DENIED otherwise)."""
    assert caller.accounts is not None
    fields = request.DESCRIPTOR.fields_by_name
    if "account_id" not in fields or request.DESCRIPTOR.name == "GetTradingStateRequest":
        return  # not account data (the global trading state is readable by everyone)
    if request.DESCRIPTOR.name in ("GetOrderRequest", "CancelOrderRequest") and request.order_id:
        owner: Any = await upstreams.call(
            method("execution", "GetOrder"),
            execution_pb2.GetOrderRequest(order_id=request.order_id),
            caller.token,
        )
        if owner.order.account_id not in caller.accounts:
            raise ApiError(grpc.StatusCode.PERMISSION_DENIED, "order_id: not one of your accounts")
        return
    if "all_accounts" in fields and request.all_accounts:
        raise ApiError(
            grpc.StatusCode.PERMISSION_DENIED, "all_accounts: this token is limited to accounts"
        )
    if request.account_id:
        if request.account_id not in caller.accounts:
            raise ApiError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"account_id: this token may not use account {request.account_id!r}",
            )
    elif len(caller.accounts) == 1:
        request.account_id = next(iter(caller.accounts))
    else:
        raise ApiError(
            grpc.StatusCode.PERMISSION_DENIED,
            "account_id: required (this token is limited to "
            + ", ".join(sorted(caller.accounts))
            + ")",
        )


def api_routes(upstreams: Upstreams, authenticator: Authenticator) -> list[Route]:
    return [
        Route(r.path, make_handler(r, upstreams, authenticator), methods=[r.http_method])
        for r in ROUTES
    ]


def openapi_document() -> dict[str, Any]:
    """A minimal OpenAPI 3.1 description of the JSON API (paths, methods, parameters)."""
    paths: dict[str, dict[str, Any]] = {}
    for r in ROUTES:
        m = method(r.service, r.rpc)
        path_names = _path_params(r.path)
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in path_names
        ]
        params += query_parameters(m.request_cls.DESCRIPTOR, set(path_names))
        operation: dict[str, Any] = {
            "operationId": f"{r.service}.{r.rpc}.{r.http_method.lower()}",
            "summary": r.summary,
            "description": f"Calls `{m.full_name}`; request fields from the query string"
            + (" and the JSON body" if r.http_method in ("POST", "PUT") else "")
            + "; response is its JSON mapping.",
            "parameters": params,
            "responses": {
                "200": {"description": f"`{m.response_cls.DESCRIPTOR.full_name}` as JSON"},
                "default": {
                    "description": "Error",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/HttpError"}}
                    },
                },
            },
        }
        paths.setdefault(r.path, {})[r.http_method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "tradeplane gateway JSON API", "version": "v1"},
        "paths": paths,
        "components": {
            "schemas": {
                "HttpError": {
                    "type": "object",
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "httpStatus": {"type": "integer"},
                    },
                    "required": ["code", "message", "httpStatus"],
                }
            }
        },
    }


_SCALAR_SCHEMA: dict[int, dict[str, Any]] = {
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_DOUBLE: {"type": "number"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number"},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "minimum": 0},
    FieldDescriptor.TYPE_INT64: {"type": "string", "pattern": "^-?[0-9]+$"},
    FieldDescriptor.TYPE_UINT64: {"type": "string", "pattern": "^[0-9]+$"},
}


def _schema(fd: FieldDescriptor) -> dict[str, Any] | None:
    if fd.type == FieldDescriptor.TYPE_ENUM:
        assert fd.enum_type is not None
        return {"type": "string", "enum": [v.name for v in fd.enum_type.values]}
    if fd.type == FieldDescriptor.TYPE_MESSAGE:
        assert fd.message_type is not None
        name = fd.message_type.full_name
        if name == "google.protobuf.Timestamp":
            return {"type": "string", "format": "date-time"}
        if name == "trading.market.v1.IndicatorSpec":
            return {"type": "string", "description": "name:param=value;param=value"}
        return None
    return dict(_SCALAR_SCHEMA.get(fd.type, {"type": "string"}))


def query_parameters(descriptor: Any, skip: set[str], prefix: str = "") -> list[dict[str, Any]]:
    """OpenAPI query parameters for a request message (as `jsonmap.query_to_dict` reads
    them): scalar, enum and timestamp fields, repeated ones as arrays, nested messages dotted."""
    params: list[dict[str, Any]] = []
    for fd in descriptor.fields:
        if fd.name in skip:
            continue
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            continue  # maps only in a JSON body
        schema = _schema(fd)
        if schema is None:
            if not fd.is_repeated and not prefix:  # one level of nesting: time_range.start
                params += query_parameters(fd.message_type, set(), f"{fd.name}.")
            continue
        if fd.is_repeated:
            schema = {"type": "array", "items": schema}
        params.append({"name": prefix + fd.name, "in": "query", "schema": schema})
    return params


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]
