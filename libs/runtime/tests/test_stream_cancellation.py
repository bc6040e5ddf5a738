"""Clients cancelling server streams under load must not hurt the service.

Regression: the interceptors used to wrap streaming handlers in async generators. grpc leaves a
generator suspended at `yield` unclosed when it cancels the RPC; the event loop finalised it
later, in another task and context after grpc had released the call, so the logging
interceptor read the freed call (SIGSEGV) and the tracing interceptor failed to detach its
OpenTelemetry context. Now every stream ends, is counted and is logged in the RPC's own task.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pathlib
import random
import signal
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from tradeplane.runtime.server import GrpcService
from trading.market.v1 import market_pb2, market_pb2_grpc

SCRIPT = pathlib.Path(__file__).with_name("fast_stream_service.py")
MARKET = "trading.market.v1.MarketService"
LOAD_SECONDS = 3.0
CLIENTS = 24
CHANNELS = 4


class _Service:
    """fast_stream_service.py as a child process, its log lines collected as they come (the
    pipe must be drained or the service would block on a full stderr)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.log: list[str] = []
        assert proc.stderr is not None
        self._reader = asyncio.create_task(self._collect(proc.stderr))

    async def _collect(self, stream: asyncio.StreamReader) -> None:
        async for line in stream:
            self.log.append(line.decode(errors="replace").rstrip("\n"))

    async def ports(self) -> tuple[int, int]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout=30)
        assert line.startswith(b"PORTS "), (line, self.log)
        grpc_port, metrics_port = line.split()[1:]
        return int(grpc_port), int(metrics_port)

    async def finish(self) -> int:
        code = await asyncio.wait_for(self.proc.wait(), timeout=20)
        await self._reader
        return code


async def _canceled_streams(metrics_port: int) -> float:
    def fetch() -> str:
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    text = await asyncio.to_thread(fetch)
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "grpc_server_handled_total"
        and sample.labels.get("grpc_method") == "StreamTicks"
        and sample.labels.get("grpc_code") == "Canceled"
    )


async def _cancel_streams_repeatedly(
    stub: market_pb2_grpc.MarketServiceStub, until: float, rng: random.Random
) -> int:
    """Open StreamTicks, read a few messages (sometimes none), cancel; again and again.
    Returns how many cancelled streams had delivered at least one message, i.e. surely
    reached the server's handler."""
    cancelled_after_data = 0
    request = market_pb2.StreamTicksRequest(product_ids=["BTC-USD"])
    while time.monotonic() < until:
        call = stub.StreamTicks(request)
        wanted = rng.choice([0, 1, 2, 5, 20, 50])
        got = 0
        while got < wanted:
            await call.read()
            got += 1
        if wanted == 0:
            await asyncio.sleep(rng.uniform(0, 0.005))
        call.cancel()
        cancelled_after_data += got > 0
    return cancelled_after_data


def _errors_in(log: list[str]) -> list[str]:
    bad = []
    for line in log:
        try:
            doc = json.loads(line)
        except ValueError:
            bad.append(line)  # faulthandler output, a bare traceback: never expected here
            continue
        if doc.get("level") in ("ERROR", "CRITICAL") or doc.get("code") == "UNKNOWN":
            bad.append(line)
    return bad


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
async def test_service_survives_cancelled_streams_and_exits_zero(loop: str) -> None:
    env = {
        **os.environ,
        "AUTH_MODE": "disabled",
        "GRPC_PORT": "0",
        "METRICS_PORT": "0",
        "SHUTDOWN_GRACE_SECONDS": "5",
        "PYTHONFAULTHANDLER": "1",
    }
    args = [] if loop == "uvloop" else ["--loop", "asyncio"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    service = _Service(proc)
    try:
        grpc_port, metrics_port = await service.ports()
        target = f"127.0.0.1:{grpc_port}"
        canceled_before = await _canceled_streams(metrics_port)

        channels = [grpc.aio.insecure_channel(target) for _ in range(CHANNELS)]
        try:
            stubs = [market_pb2_grpc.MarketServiceStub(ch) for ch in channels]
            until = time.monotonic() + LOAD_SECONDS
            counts = await asyncio.gather(
                *(
                    _cancel_streams_repeatedly(stubs[i % CHANNELS], until, random.Random(i))
                    for i in range(CLIENTS)
                )
            )
            cancelled = sum(counts)
            assert cancelled > 100, "the load did not run"

            # Still alive and serving after all that.
            assert proc.returncode is None, service.log[-20:]
            health = health_pb2_grpc.HealthStub(channels[0])
            reply = await health.Check(health_pb2.HealthCheckRequest(service=MARKET), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            ticks = stubs[0].StreamTicks(market_pb2.StreamTicksRequest(product_ids=["ETH-USD"]))
            assert (await ticks.read()).ticks[0].product_id == "ETH-USD"
            ticks.cancel()

            # Every stream cancelled after it delivered data ended as Canceled on the server.
            deadline = time.monotonic() + 5
            while True:
                canceled = await _canceled_streams(metrics_port) - canceled_before
                if canceled >= cancelled or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
            assert canceled >= cancelled

            # Shut down with streams still open: they drain, the process exits cleanly.
            open_streams = [
                stub.StreamTicks(market_pb2.StreamTicksRequest(product_ids=["BTC-USD"]))
                for stub in stubs
            ]
            for stream in open_streams:
                await stream.read()
            proc.send_signal(signal.SIGTERM)
            for stream in open_streams:
                while await stream.read() is not grpc.aio.EOF:
                    pass
                assert await stream.code() == grpc.StatusCode.OK
        finally:
            for ch in channels:
                await ch.close()
        assert await service.finish() == 0, service.log[-20:]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    assert _errors_in(service.log) == []
    rpc_lines = [json.loads(line) for line in service.log if '"tradeplane.runtime.rpc"' in line]
    assert sum(doc["code"] == "CANCELLED" for doc in rpc_lines) >= cancelled


# -- in process: the write itself fails because the call is gone ----------------------------

BIG_METHOD = "/tradeplane.test.v1.Big/Stream"
BIG_LABELS = {
    "grpc_type": "server_stream",
    "grpc_service": "tradeplane.test.v1.Big",
    "grpc_method": "Stream",
}


def _handled(code: str) -> float:
    labels = {**BIG_LABELS, "grpc_code": code}
    return REGISTRY.get_sample_value("grpc_server_handled_total", labels) or 0.0


@pytest.fixture
async def big_stream_service(kit: Any) -> AsyncIterator[tuple[GrpcService, asyncio.Event]]:
    """A stream of 1 MB messages: a client that stops reading leaves the server blocked in
    `write()` (flow control), so cancelling fails the pending write rather than interrupting
    the handler between messages."""
    closed = asyncio.Event()

    async def big(request: bytes, context: Any) -> AsyncIterator[bytes]:
        try:
            for _ in range(1000):
                yield b"x" * 1_000_000
        finally:
            closed.set()

    app = GrpcService(kit.Settings(auth_mode="disabled", metrics_port=-1))

    def register(server: grpc.aio.Server) -> None:
        handler = grpc.method_handlers_generic_handler(
            "tradeplane.test.v1.Big", {"Stream": grpc.unary_stream_rpc_method_handler(big)}
        )
        server.add_generic_rpc_handlers((handler,))

    app.add_service(market_pb2.DESCRIPTOR.services_by_name["MarketService"], register)
    await app.start()
    try:
        yield app, closed
    finally:
        await app.stop()


@pytest.mark.parametrize(
    ("end", "code"), [("cancel", "Canceled"), ("deadline", "DeadlineExceeded")]
)
async def test_stalled_stream_ends_cleanly(
    big_stream_service: tuple[GrpcService, asyncio.Event],
    end: str,
    code: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, closed = big_stream_service
    before = _handled(code)
    options = [("grpc.max_receive_message_length", 2_000_000)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}", options=options) as ch:
        call = ch.unary_stream(BIG_METHOD)(b"", timeout=0.5 if end == "deadline" else None)
        await call.read()
        await asyncio.sleep(0.7)  # the server is stuck in write() by now
        with contextlib.suppress(grpc.aio.AioRpcError):
            call.cancel()
    await asyncio.wait_for(closed.wait(), timeout=5)  # the servicer's generator was closed
    for _ in range(50):
        if _handled(code) > before:
            break
        await asyncio.sleep(0.05)
    assert _handled(code) == before + 1
    assert _handled("Unknown") == 0
    assert _handled("Internal") == 0
    # Only the RPC line of a missed deadline is an ERROR (a server-side failure by convention).
    failures = [
        (r.name, r.getMessage())
        for r in caplog.records
        if r.levelno >= logging.ERROR
        and not (end == "deadline" and r.name == "tradeplane.runtime.rpc")
    ]
    assert failures == []
