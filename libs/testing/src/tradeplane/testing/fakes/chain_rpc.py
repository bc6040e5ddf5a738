"""FakeChainNode: a local JSON-RPC node (starlette + uvicorn, real sockets) answering the
read-only balance calls of Solana and EVM chains, counting the calls it receives.

    Solana: getBalance [address, config?] -> {"context": {"slot"}, "value": lamports}
            getTokenAccountsByOwner [owner, {"programId"|"mint"}, {"encoding": "jsonParsed"}]
              -> {"context", "value": [{"pubkey", "account": {"data": {"program": "spl-token",
                  "parsed": {"info": {"mint", "owner", "tokenAmount": {"amount",
                  "decimals", "uiAmountString"}}, "type": "account"}}, ...}}]}
    EVM:    eth_getBalance [address, block] -> "0x<wei>"
            eth_call [{"to": contract, "data": "0x70a08231" + address (32 bytes)}, block]
              -> "0x<uint256>" (ERC-20 balanceOf; unknown contracts answer "0x")

Batches (a JSON array of requests) are answered as arrays. Unknown methods get error -32601.
Fault controls: `down = True` (HTTP 503), `rate_limited_for = s` (429 + Retry-After), `delay`.

    async with FakeChainNode() as node:
        node.solana_balance["Addr..."] = 1_500_000_000          # lamports
        node.solana_tokens["Addr..."] = [("MintUSDC...", 2_500_000, 6)]
        node.evm_balance["0xabc..."] = 10**18
        node.erc20[("0xtoken...", "0xabc...")] = 5_000_000
        ... node.url, node.calls["getBalance"]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import socket
import time
from collections import Counter
from decimal import Decimal
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

SPL_TOKEN_PROGRAM = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
BALANCE_OF = "0x70a08231"


class _QuietServer(uvicorn.Server):
    def capture_signals(self) -> Any:  # the test process keeps its own signal handlers
        return contextlib.nullcontext()


class FakeChainNode:
    def __init__(self, *, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.slot = 1000
        self.solana_balance: dict[str, int] = {}
        self.solana_tokens: dict[
            str, list[tuple[str, int, int]]
        ] = {}  # owner -> (mint, units, dec)
        self.evm_balance: dict[str, int] = {}  # lower-case address -> wei
        self.erc20: dict[tuple[str, str], int] = {}  # (contract, holder), lower case -> units
        self.down = False
        self.rate_limited_for: float | None = None
        self.delay = 0.0
        self.calls: Counter[str] = Counter()  # answered calls per method
        self.requests = 0  # HTTP requests, whatever the answer
        self._blocked_until = 0.0
        self._server: _QuietServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._app = Starlette(routes=[Route("/", self._endpoint, methods=["POST"])])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        sock.listen(128)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = _QuietServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="fake-chain")
        while not self._server.started:
            if self._task.done():
                await self._task
                raise RuntimeError("fake chain node stopped during start-up")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
            self._server = self._task = None

    async def __aenter__(self) -> FakeChainNode:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def reset_counts(self) -> None:
        self.calls.clear()
        self.requests = 0

    async def _endpoint(self, request: Request) -> Response:
        self.requests += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.rate_limited_for is not None:
            self._blocked_until = time.monotonic() + self.rate_limited_for
            self.rate_limited_for = None
        remaining = self._blocked_until - time.monotonic()
        if remaining > 0:
            return JSONResponse(
                {"jsonrpc": "2.0", "error": {"code": 429, "message": "Too many requests"}},
                status_code=429,
                headers={"Retry-After": str(math.ceil(remaining))},
            )
        if self.down:
            return Response("node unavailable", status_code=503)
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse(_error(None, -32700, "parse error"))
        if isinstance(body, list):
            return JSONResponse([self._answer(r) for r in body])
        return JSONResponse(self._answer(body))

    def _answer(self, req: Any) -> dict[str, Any]:
        if not isinstance(req, dict) or not isinstance(req.get("method"), str):
            return _error(None, -32600, "invalid request")
        rid, method, params = req.get("id"), req["method"], req.get("params") or []
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return _error(rid, -32601, f"method {method} not found")
        try:
            result = handler(params)
        except (IndexError, KeyError, TypeError, ValueError) as exc:
            return _error(rid, -32602, f"invalid params: {exc}")
        self.calls[method] += 1
        return {"jsonrpc": "2.0", "id": rid, "result": result}

    def _context(self) -> dict[str, Any]:
        return {"apiVersion": "2.0.15", "slot": self.slot}

    def _m_getBalance(self, params: list[Any]) -> Any:
        return {"context": self._context(), "value": self.solana_balance.get(params[0], 0)}

    def _m_getTokenAccountsByOwner(self, params: list[Any]) -> Any:
        owner, selector = params[0], params[1]
        if selector.get("programId", SPL_TOKEN_PROGRAM) != SPL_TOKEN_PROGRAM:
            return {"context": self._context(), "value": []}
        value = []
        for i, (mint, units, decimals) in enumerate(self.solana_tokens.get(owner, [])):
            if "mint" in selector and selector["mint"] != mint:
                continue
            ui = Decimal(units).scaleb(-decimals)
            info = {
                "isNative": False,
                "mint": mint,
                "owner": owner,
                "state": "initialized",
                "tokenAmount": {
                    "amount": str(units),
                    "decimals": decimals,
                    "uiAmount": float(ui),
                    "uiAmountString": format(ui.normalize(), "f"),
                },
            }
            value.append(
                {
                    "pubkey": f"{owner[:16]}TokenAccount{i}",
                    "account": {
                        "data": {
                            "program": "spl-token",
                            "parsed": {"info": info, "type": "account"},
                            "space": 165,
                        },
                        "executable": False,
                        "lamports": 2039280,
                        "owner": SPL_TOKEN_PROGRAM,
                        "rentEpoch": 18446744073709551615,
                        "space": 165,
                    },
                }
            )
        return {"context": self._context(), "value": value}

    def _m_eth_getBalance(self, params: list[Any]) -> Any:
        return hex(self.evm_balance.get(str(params[0]).lower(), 0))

    def _m_eth_call(self, params: list[Any]) -> Any:
        call = params[0]
        data = str(call["data"]).lower()
        if not data.startswith(BALANCE_OF) or len(data) != len(BALANCE_OF) + 64:
            raise ValueError("only balanceOf(address) is supported")
        holder = "0x" + data[-40:]
        key = (str(call["to"]).lower(), holder)
        if not any(c == key[0] for c, _ in self.erc20):
            return "0x"  # no contract at that address
        return "0x" + format(self.erc20.get(key, 0), "064x")

    def _m_eth_blockNumber(self, params: list[Any]) -> Any:
        return hex(self.slot)


def _error(rid: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}
