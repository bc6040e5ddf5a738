"""A database that goes away answers UNAVAILABLE (retryable), not INTERNAL, and the service
recovers when it is back. The wallets service reaches a real Postgres through a TCP relay the
test closes: connections are cut and new ones refused, as when the server is down."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
from sqlalchemy.engine import make_url

from trading.wallets.v1 import wallets_pb2 as pb

from .conftest import start_wallets, stop_wallets, wallets_settings
from .test_wallets_grpc import create_wallet, expect_error, transfer


class Relay:
    """127.0.0.1:<port> -> target, until close(); start() again reopens the same port."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):
                w.transport.abort()
            self._writers.clear()
            await self._server.wait_closed()
            self._server = None


async def test_database_down_answers_unavailable_then_recovers(
    postgres_database_url: str,
) -> None:
    url = make_url(postgres_database_url)
    relay = Relay(url.host or "127.0.0.1", url.port or 5432)
    await relay.start()
    relayed = url.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
    running = await start_wallets(wallets_settings(relayed))
    try:
        await create_wallet(running, "w1")
        await running.stub.ListWallets(pb.ListWalletsRequest())

        await relay.close()  # the database is gone
        code = grpc.StatusCode.UNAVAILABLE
        details = await expect_error(running.stub.ListWallets(pb.ListWalletsRequest()), code)
        assert details == "database unavailable"
        await expect_error(running.stub.GetWallet(pb.GetWalletRequest(wallet_id="w1")), code)
        await expect_error(transfer(running, "k1", pb.TRANSFER_KIND_DEPOSIT, "w1", "5"), code)
        await expect_error(running.stub.Reconcile(pb.ReconcileRequest(all=True)), code)

        await relay.start()  # back on the same port: the pool reconnects
        await transfer(running, "k1", pb.TRANSFER_KIND_DEPOSIT, "w1", "5")
        got = await running.stub.GetWallet(pb.GetWalletRequest(wallet_id="w1"))
        assert [(b.currency, b.total) for b in got.wallet.balances] == [("USD", "5")]
    finally:
        await stop_wallets(running)
        await relay.close()
