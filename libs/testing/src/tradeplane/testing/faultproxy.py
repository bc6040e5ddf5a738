"""A TCP fault proxy for chaos tests: put it on a dependency edge (service -> service,
service -> Postgres/Redis, venue adapter -> fake Coinbase) and inject faults while traffic
flows.

Hand-written because none of the usual tools exist on these machines (no toxiproxy binary,
no Docker, no netem in CI): a few asyncio pumps do the job. Toxics, each changeable at any
time and applied to every chunk as it passes (like toxiproxy's):

- ``latency(ms, jitter_ms)``: every chunk waits latency +- jitter before it is forwarded;
- ``bandwidth(bytes_per_second)``: chunks are paced to the rate;
- ``slicer(size, delay_ms)``: chunks are cut into pieces of ``size`` bytes, ``delay`` apart;
- ``blackhole()``: bytes are read and dropped, connections stay open (a hung peer);
- ``limit_data(n)``: a connection is closed after ``n`` bytes in the given direction;
- ``reset_peer()``: every open connection is reset (RST) now; ``refuse()``: new ones too;
- ``clear()``: back to a transparent pipe.

``direction`` is "up" (client -> target), "down" (target -> client) or "both".

    async with FaultProxy("127.0.0.1", target_port) as proxy:
        connect_to(proxy.port)
        proxy.blackhole()
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

Direction = Literal["up", "down", "both"]
_CHUNK = 64 * 1024


@dataclass
class _Toxics:
    latency: float = 0.0  # seconds
    jitter: float = 0.0
    bytes_per_second: float = 0.0  # 0 = unlimited
    slice_size: int = 0
    slice_delay: float = 0.0
    blackhole: bool = False
    limit: int | None = None  # close the connection after this many bytes


@dataclass(eq=False)  # hashed by identity: kept in a set
class _Connection:
    client: asyncio.StreamWriter
    target: asyncio.StreamWriter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=lambda: {"up": 0, "down": 0})


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0) rather than FIN: the peer sees a connection reset."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        seed: int = 0,
    ) -> None:
        self.target_host, self.target_port = target_host, target_port
        self._listen = (listen_host, listen_port)
        self._toxics = {"up": _Toxics(), "down": _Toxics()}
        self._refuse = False
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._random = random.Random(seed)
        self.connections_total = 0
        self.bytes = {"up": 0, "down": 0}

    # -- lifecycle

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, *self._listen)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for connection in list(self._connections):
            await self._close(connection, reset=False)

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the proxy first"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def address(self) -> str:
        return f"{self._listen[0]}:{self.port}"

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    # -- toxics

    def _each(self, direction: Direction) -> list[_Toxics]:
        return list(self._toxics.values()) if direction == "both" else [self._toxics[direction]]

    def latency(self, ms: float, jitter_ms: float = 0.0, direction: Direction = "both") -> None:
        for t in self._each(direction):
            t.latency, t.jitter = ms / 1000, jitter_ms / 1000

    def bandwidth(self, bytes_per_second: float, direction: Direction = "both") -> None:
        for t in self._each(direction):
            t.bytes_per_second = bytes_per_second

    def slicer(self, size: int, delay_ms: float = 0.0, direction: Direction = "both") -> None:
        for t in self._each(direction):
            t.slice_size, t.slice_delay = size, delay_ms / 1000

    def blackhole(self, on: bool = True, direction: Direction = "both") -> None:
        for t in self._each(direction):
            t.blackhole = on

    def limit_data(self, n_bytes: int, direction: Direction = "both") -> None:
        for t in self._each(direction):
            t.limit = n_bytes

    def refuse(self, on: bool = True) -> None:
        self._refuse = on

    def reset_peer(self) -> None:
        for connection in list(self._connections):
            for task in connection.tasks:
                task.cancel()
            _reset(connection.client)
            _reset(connection.target)
            self._connections.discard(connection)

    def clear(self) -> None:
        self._toxics = {"up": _Toxics(), "down": _Toxics()}
        self._refuse = False

    # -- plumbing

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refuse:
            _reset(writer)
            return
        try:
            target_reader, target_writer = await asyncio.open_connection(
                self.target_host, self.target_port
            )
        except OSError:
            _reset(writer)  # the target is down: so is the proxy, to the client
            return
        self.connections_total += 1
        connection = _Connection(writer, target_writer)
        self._connections.add(connection)
        connection.tasks = [
            asyncio.create_task(self._pump(connection, reader, target_writer, "up")),
            asyncio.create_task(self._pump(connection, target_reader, writer, "down")),
        ]

    async def _pump(
        self,
        connection: _Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        direction: Literal["up", "down"],
    ) -> None:
        try:
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    break
                toxics = self._toxics[direction]
                if toxics.blackhole:
                    continue
                if toxics.latency:
                    spread = self._random.uniform(-toxics.jitter, toxics.jitter)
                    await asyncio.sleep(max(0.0, toxics.latency + spread))
                if toxics.limit is not None:
                    room = toxics.limit - connection.sent[direction]
                    if room <= 0 or len(data) >= room:
                        await self._write(writer, data[: max(room, 0)], toxics, direction)
                        connection.sent[direction] += max(room, 0)
                        break
                await self._write(writer, data, toxics, direction)
                connection.sent[direction] += len(data)
        except (ConnectionError, OSError):
            pass
        finally:
            if connection in self._connections:
                asyncio.get_running_loop().create_task(self._close(connection, reset=False))

    async def _write(
        self,
        writer: asyncio.StreamWriter,
        data: bytes,
        toxics: _Toxics,
        direction: Literal["up", "down"],
    ) -> None:
        size = toxics.slice_size or len(data) or 1
        for start in range(0, len(data), size):
            piece = data[start : start + size]
            if toxics.bytes_per_second:
                await asyncio.sleep(len(piece) / toxics.bytes_per_second)
            writer.write(piece)
            await writer.drain()
            self.bytes[direction] += len(piece)
            if toxics.slice_size and toxics.slice_delay:
                await asyncio.sleep(toxics.slice_delay)

    async def _close(self, connection: _Connection, *, reset: bool) -> None:
        self._connections.discard(connection)
        current = asyncio.current_task()
        for task in connection.tasks:
            if task is not current:
                task.cancel()
        for writer in (connection.client, connection.target):
            if reset:
                _reset(writer)
            else:
                with contextlib.suppress(Exception):
                    writer.close()
