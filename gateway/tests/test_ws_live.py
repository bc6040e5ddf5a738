"""/ws/live against a fake ExecutionService (real gRPC socket): snapshot then events, resume
with the last seq, one shared upstream stream, and the slow-consumer close (4409)."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tradeplane.gateway import metrics
from tradeplane.gateway.testing import Client

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def _events(client: Client, count: int) -> list[int]:
    seqs: list[int] = []
    while len(seqs) < count:
        data = await client.recv_kind("data")
        assert data["channel"] == "CHANNEL_LIVE"
        events = data["live"]["events"]
        seqs += [int(e["seq"]) for e in events]
        assert data["seq"] == events[-1]["seq"]
    return seqs


async def _stream_open(execution: Any, count: int = 1) -> None:
    """Events emitted before the upstream stream is open are not for it (since_seq unset)."""
    deadline = time.monotonic() + 5
    while execution.servicer.open_streams != count:
        assert time.monotonic() < deadline, "upstream stream not opened"
        await asyncio.sleep(0.01)


async def test_snapshot_then_fill_events(execution: Any, gateway_factory: Any) -> None:
    gw = await gateway_factory(execution_addr=execution.target)
    client = await Client.open(gw.ws("live"))
    await client.subscribe(channel="CHANNEL_LIVE", subscriptionId="live")
    snapshot = await client.recv_kind("snapshot")
    assert snapshot["channel"] == "CHANNEL_LIVE"
    assert snapshot["live"]["openOrders"][0]["orderId"] == "order-1"  # from ListOrders
    await execution.servicer.emit(3)
    data = await client.recv_kind("data")
    event = data["live"]["events"][0]
    assert event["fill"]["fillId"] == "fill-1"
    assert event["fill"]["side"] == "SIDE_BUY"
    assert [int(e["seq"]) for e in data["live"]["events"]] + await _events(
        client, 3 - len(data["live"]["events"])
    ) == [1, 2, 3]
    await client.close()


async def test_market_channel_is_refused_on_live(execution: Any, gateway_factory: Any) -> None:
    gw = await gateway_factory(execution_addr=execution.target)
    client = await Client.open(gw.ws("live"))
    await client.send({"requestId": "x", "subscribe": {"channel": "CHANNEL_TICKS"}})
    error = await client.recv_kind("error")
    assert error["code"] == "ERROR_CODE_UNSUPPORTED_CHANNEL"
    assert error["requestId"] == "x"
    await client.close()


async def test_resume_after_1000_events_gets_exactly_those(
    execution: Any, gateway_factory: Any
) -> None:
    gw = await gateway_factory(execution_addr=execution.target)
    watcher = await Client.open(gw.ws("live"))  # keeps the shared stream open meanwhile
    await watcher.subscribe(channel="CHANNEL_LIVE")
    client = await Client.open(gw.ws("live"))
    await client.subscribe(channel="CHANNEL_LIVE")
    await _stream_open(execution)
    await execution.servicer.emit(5)
    seen = await _events(client, 5)
    last = seen[-1]
    await client.close()

    await execution.servicer.emit(1000)
    await _events(watcher, 1000)
    client = await Client.open(gw.ws("live"))
    await client.send(
        {"resume": {"subscriptions": [{"channel": "CHANNEL_LIVE", "sinceSeq": str(last)}]}}
    )
    await client.recv_kind("subscribed")
    replayed = await _events(client, 1000)
    assert replayed == list(range(last + 1, last + 1001))
    assert execution.servicer.open_streams == 1  # still the one shared stream

    # With every browser gone the stream closes; a resume then re-opens it from the cursor.
    await client.close()
    await watcher.close()
    deadline = time.monotonic() + 5
    while execution.servicer.open_streams:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    await execution.servicer.emit(10)
    client = await Client.open(gw.ws("live"))
    await client.subscribe(channel="CHANNEL_LIVE", sinceSeq=str(last + 1000))
    assert await _events(client, 10) == list(range(last + 1001, last + 1011))
    assert execution.servicer.stream_requests[-1].since_seq == last + 1000
    await client.close()


async def test_cursor_too_old_gets_reset_and_snapshot(execution: Any, gateway_factory: Any) -> None:
    gw = await gateway_factory(execution_addr=execution.target, gateway_replay_size=10)
    watcher = await Client.open(gw.ws("live"))
    await watcher.subscribe(channel="CHANNEL_LIVE")
    await _stream_open(execution)
    await execution.servicer.emit(30)
    await _events(watcher, 30)
    client = await Client.open(gw.ws("live"))
    await client.subscribe(channel="CHANNEL_LIVE", sinceSeq="2", subscriptionId="old")
    reset = await client.recv_kind("reset")
    assert reset["reason"] == "RESET_REASON_CURSOR_TOO_OLD"
    snapshot = await client.recv_kind("snapshot")
    assert snapshot["subscriptionId"] == "old" and snapshot["seq"] == "30"
    await client.close()
    await watcher.close()


async def test_slow_live_client_is_closed_with_4409(execution: Any, gateway_factory: Any) -> None:
    gw = await gateway_factory(
        execution_addr=execution.target,
        gateway_client_queue_size=10,
        gateway_socket_send_buffer=4096,
    )
    fast = await Client.open(gw.ws("live"))
    await fast.subscribe(channel="CHANNEL_LIVE")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", gw.port))
    sock.setblocking(False)
    slow = Client(await connect(gw.ws("live"), sock=sock, max_queue=1, open_timeout=5))
    await slow.recv_kind("hello")
    await slow.subscribe(channel="CHANNEL_LIVE")
    await slow.recv_kind("snapshot")
    await _stream_open(execution)
    closes = metrics.SLOW_CONSUMER_CLOSES.labels("live")._value.get()
    total = 0
    while metrics.SLOW_CONSUMER_CLOSES.labels("live")._value.get() == closes:
        await execution.servicer.emit(100)
        total += 100
        assert len(await _events(fast, 100)) >= 100  # the fast one keeps up meanwhile
        assert total < 50_000, "the stalled client was never closed"
    frames: list[dict[str, Any]] = []
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            frames.append(await slow.recv(wait=10))
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4409
    assert frames[-1] == {
        "closing": {"code": "CLOSE_CODE_SLOW_CONSUMER", "reason": frames[-1]["closing"]["reason"]}
    }
    # The fast client was not affected.
    await execution.servicer.emit(5)
    assert len(await _events(fast, 5)) >= 5
    await fast.close()


async def test_live_filters_by_account(execution: Any, gateway_factory: Any) -> None:
    gw = await gateway_factory(execution_addr=execution.target)
    client = await Client.open(gw.ws("live"))
    await client.subscribe(channel="CHANNEL_LIVE", accountIds=["acct-2"])
    await client.recv_kind("snapshot")
    await _stream_open(execution)
    await execution.servicer.emit(3, account="acct-1")
    await execution.servicer.emit(2, account="acct-2")
    data = await client.recv_kind("data")
    assert [e["accountId"] for e in data["live"]["events"]] == ["acct-2", "acct-2"]
    assert [int(e["seq"]) for e in data["live"]["events"]] == [4, 5]
    await client.close()


async def test_upstream_down_then_up_is_retried_without_closing(
    gateway_factory: Any, execution_on_port: Any
) -> None:
    from tradeplane.testing import free_port

    port = free_port()
    gw = await gateway_factory(
        execution_addr=f"127.0.0.1:{port}", gateway_upstream_retry_max_seconds=0.3
    )
    client = await Client.open(gw.ws("live"))
    await client.subscribe(channel="CHANNEL_LIVE")
    # The service is down: the snapshot is empty, an error frame says it is retried.
    seen: dict[str, Any] = {}
    while not ("snapshot" in seen and "error" in seen):
        seen.update(await client.recv())
    assert seen["snapshot"]["live"] == {}
    assert seen["error"]["code"] == "ERROR_CODE_UPSTREAM_UNAVAILABLE"
    execution = await execution_on_port(port)
    await _stream_open(execution)
    await execution.servicer.emit(3)
    assert await _events(client, 3) == [1, 2, 3]  # the same socket, no reconnect needed
    await client.close()
