"""The fault proxy's toxics do what they say, against a real TCP echo server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tradeplane.testing.faultproxy import FaultProxy


@pytest_asyncio.fixture
async def echo() -> AsyncIterator[int]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def _roundtrip(port: int, payload: bytes, wait: float = 5.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(len(payload)), wait)
    finally:
        writer.close()


async def test_transparent_then_latency(echo: int) -> None:
    async with FaultProxy("127.0.0.1", echo) as proxy:
        assert await _roundtrip(proxy.port, b"hello") == b"hello"
        proxy.latency(100, direction="up")
        began = time.monotonic()
        assert await _roundtrip(proxy.port, b"slow") == b"slow"
        assert time.monotonic() - began >= 0.1
        assert proxy.connections_total == 2


async def test_blackhole_swallows_and_clear_restores(echo: int) -> None:
    async with FaultProxy("127.0.0.1", echo) as proxy:
        proxy.blackhole()
        with pytest.raises(TimeoutError):
            await _roundtrip(proxy.port, b"lost", wait=0.3)
        proxy.clear()
        assert await _roundtrip(proxy.port, b"back") == b"back"


async def test_reset_peer_resets_open_connections_and_refuse_new_ones(echo: int) -> None:
    async with FaultProxy("127.0.0.1", echo) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"x")
        assert await reader.readexactly(1) == b"x"
        proxy.reset_peer()
        with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
            await asyncio.wait_for(reader.readexactly(1), 2)
        writer.close()
        proxy.refuse()
        with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
            await _roundtrip(proxy.port, b"no")


async def test_limit_data_closes_after_n_bytes(echo: int) -> None:
    async with FaultProxy("127.0.0.1", echo) as proxy:
        proxy.limit_data(10, direction="down")
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"0123456789abcdef")
        got = await asyncio.wait_for(reader.read(100), 2)
        got += await asyncio.wait_for(reader.read(100), 2)
        assert got == b"0123456789"
        assert await asyncio.wait_for(reader.read(100), 2) == b""  # closed
        writer.close()


async def test_slicer_and_bandwidth_deliver_everything_paced(echo: int) -> None:
    async with FaultProxy("127.0.0.1", echo) as proxy:
        proxy.slicer(7, delay_ms=1, direction="down")
        payload = bytes(range(256)) * 4
        assert await _roundtrip(proxy.port, payload) == payload
        proxy.clear()
        proxy.bandwidth(20_000, direction="up")
        began = time.monotonic()
        assert await _roundtrip(proxy.port, b"z" * 4_000) == b"z" * 4_000
        assert time.monotonic() - began >= 0.18  # 4 kB at 20 kB/s


async def test_target_down_resets_the_client() -> None:
    async with FaultProxy("127.0.0.1", 1) as proxy:  # nothing listens on port 1
        with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
            await _roundtrip(proxy.port, b"x")
