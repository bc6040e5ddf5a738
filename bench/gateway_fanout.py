"""Gateway fan-out: market service -> gateway -> N WebSocket clients on loopback.

    .venv/bin/python bench/gateway_fanout.py [--clients 100] [--rates 250,500,1000,2000]
                                             [--seconds 10] [--workers 4] [--repeat 3]
                                             [--stall] [--ws sansio|websockets|wsproto]

For each tick rate (ticks/s of one product, MARKET_TICK_RATE) it starts the market service and
the gateway as their own processes (`python -m tradeplane.market` / `tradeplane.gateway`,
SQLite, auth off), then `--clients` WebSocket clients spread over `--workers` processes, all
subscribed to CHANNEL_TICKS of BTC-USD. After a warm-up it counts, for `--seconds`:

- delivered ticks/s (sum over clients) and data frames/s (frames batch several ticks);
- end-to-end latency: client receive time - the tick's `time` (set by the market when it
  publishes the tick), p50 / p99 / max;
- gateway latency: client receive time - the frame's `sendTime`;
- the gateway's CPU (utime + stime from /proc) per frame sent and per tick delivered: the
  figure to compare between changes, as latency on a shared machine is mostly scheduling noise.

The last line names the highest rate whose delivery kept up (>= 98% of rate x clients) with an
end-to-end p99 under 100 ms (median over `--repeat` runs).

With `--stall` one more client subscribes and then stops reading: the others' figures show
whether it slows them, the gateway's RSS whether memory stays bounded, and the stalled client
reports whether it was resynced (reset + snapshot) when it read again.

Loopback on one machine: the clients share the CPU with the services, so figures are a floor.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from tradeplane.testing.processes import with_bytecode_cache


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ts(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def _client(url: str, warmup: float, seconds: float, out: list[Any]) -> None:
    from websockets.asyncio.client import connect

    ticks = frames = 0
    e2e: list[float] = []
    gw: list[float] = []
    async with connect(url, max_size=None, open_timeout=30) as ws:
        await ws.recv()  # hello
        await ws.send(
            orjson.dumps(
                {"subscribe": {"channel": "CHANNEL_TICKS", "productIds": ["BTC-USD"]}}
            ).decode()
        )
        start = time.time() + warmup
        end = start + seconds
        while True:
            raw = await ws.recv()
            now = time.time()
            if now >= end:
                break
            frame = orjson.loads(raw)
            if "ping" in frame:
                await ws.send(orjson.dumps({"pong": {"nonce": frame["ping"]["nonce"]}}).decode())
                continue
            data = frame.get("data")
            if data is None or now < start:
                continue
            frames += 1
            items = data["ticks"]["ticks"]
            ticks += len(items)
            gw.append(now - _ts(data["sendTime"]))
            e2e.extend(now - _ts(t["time"]) for t in items[:: max(1, len(items) // 5)])
    out.append((ticks, frames, e2e, gw))


def _stalled(url: str, warmup: float, seconds: float, queue: Any) -> None:
    """A browser that subscribes, then stops reading for the whole measurement; afterwards it
    reads what it is sent and reports whether it got `reset` (SLOW_CONSUMER) + `snapshot`."""

    async def run() -> str:
        from websockets.asyncio.client import connect

        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", int(url.split(":")[2].split("/")[0])))
        sock.setblocking(False)
        async with connect(url, sock=sock, max_queue=1, open_timeout=30) as ws:
            await ws.recv()
            sub = {"subscribe": {"channel": "CHANNEL_TICKS", "productIds": ["BTC-USD"]}}
            await ws.send(orjson.dumps(sub).decode())
            await asyncio.sleep(warmup + seconds)
            kinds: list[str] = []
            try:
                async with asyncio.timeout(10):
                    while not ("reset" in kinds and "snapshot" in kinds[kinds.index("reset") :]):
                        kinds.append(next(iter(orjson.loads(await ws.recv()))))
            except TimeoutError:
                return "no reset received"
            return "reset + snapshot received, then updates resumed"

    queue.put(asyncio.run(run()))


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process: its CPU cost, which load on the machine distorts far less
    than latency."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _worker(url: str, n: int, warmup: float, seconds: float, queue: Any) -> None:
    async def run() -> list[Any]:
        out: list[Any] = []
        await asyncio.gather(*(_client(url, warmup, seconds, out) for _ in range(n)))
        return out

    queue.put(asyncio.run(run()))


def _wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"port {port} did not open")


def _wait_serving(port: int, timeout: float = 60) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                status = stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise SystemExit(f"market on {port} did not become SERVING")


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


# The gateway's own entry point, with uvicorn's WebSocket implementation swapped when --ws asks
# for another one than the gateway's ("sansio": websockets' sans-I/O protocol, with the write
# buffer capped by GATEWAY_SOCKET_SEND_BUFFER).
_GATEWAY_MAIN = """
import sys
import tradeplane.gateway.server as server
impl = sys.argv.pop(1)
if impl != "sansio":
    server._ws_protocol = lambda write_buffer: impl
from tradeplane.gateway.__main__ import main
main()
"""


def run_rate(rate: int, args: argparse.Namespace, tmp: Path) -> tuple[float, float]:
    """One run at `rate`; prints its figures, returns (delivered ticks/s, end-to-end p99 s)."""
    python = sys.executable
    market_port, gw_port = _free_port(), _free_port()
    base = {
        **with_bytecode_cache(dict(os.environ)),
        "AUTH_MODE": "disabled",
        "GRPC_HOST": "127.0.0.1",
        "METRICS_PORT": "-1",
        "LOG_LEVEL": "WARNING",
    }
    market = subprocess.Popen(
        [python, "-m", "tradeplane.market"],
        env={
            **base,
            "GRPC_PORT": str(market_port),
            "MARKET_PRODUCTS": "BTC-USD",
            "MARKET_TICK_RATE": str(rate),
            "MARKET_BACKFILL_DAYS": "0",
            "DATABASE_URL": f"sqlite:///{tmp}/market-{rate}.db",
        },
        stderr=subprocess.DEVNULL,
    )
    profile = ["-m", "cProfile", "-o", f"{args.profile}.{rate}"] if args.profile else []
    gateway = subprocess.Popen(
        [python, *profile, "-c", _GATEWAY_MAIN, args.ws],
        env={
            **base,
            "HTTP_PORT": str(gw_port),
            "MARKET_ADDR": f"127.0.0.1:{market_port}",
            "GATEWAY_BATCH_SECONDS": str(args.batch),
            "GATEWAY_SOCKET_SEND_BUFFER": str(args.send_buffer),
        },
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_serving(market_port)
        _wait_port(gw_port)
        time.sleep(1)
        url = f"ws://127.0.0.1:{gw_port}/ws/market"
        queue: Any = mp.Queue()
        per = [
            args.clients // args.workers + (i < args.clients % args.workers)
            for i in range(args.workers)
        ]
        procs = [
            mp.Process(target=_worker, args=(url, n, args.warmup, args.seconds, queue))
            for n in per
            if n
        ]
        stall_queue: Any = mp.Queue()
        stalled = (
            mp.Process(target=_stalled, args=(url, args.warmup, args.seconds, stall_queue))
            if args.stall
            else None
        )
        for p in [*procs, *([stalled] if stalled else [])]:
            p.start()
        time.sleep(args.warmup)
        rss_start = _rss_mb(gateway.pid)
        cpu_start = _cpu_seconds(gateway.pid), _cpu_seconds(market.pid), time.monotonic()
        time.sleep(args.seconds)
        cpu_end = _cpu_seconds(gateway.pid), _cpu_seconds(market.pid), time.monotonic()
        results = [r for _ in procs for r in queue.get()]
        rss_end = _rss_mb(gateway.pid)
        for p in procs:
            p.join()
        stall_result = stall_queue.get() if stalled else None
        if stalled:
            stalled.join()
    finally:
        for proc in (gateway, market):
            proc.terminate()
            proc.wait(10)
    ticks = sum(r[0] for r in results)
    frames = sum(r[1] for r in results)
    e2e = [x for r in results for x in r[2]]
    gw = [x for r in results for x in r[3]]
    target = rate * args.clients
    wall = cpu_end[2] - cpu_start[2]
    gw_cpu, market_cpu = (cpu_end[0] - cpu_start[0]) / wall, (cpu_end[1] - cpu_start[1]) / wall
    print(
        f"rate {rate:>5}/s x {len(results)} clients: delivered {ticks / args.seconds:>9,.0f} "
        f"ticks/s (target {target:,}) in {frames / args.seconds:>7,.0f} frames/s; "
        f"end-to-end p50 {_pct(e2e, 50) * 1000:6.1f} ms  p99 {_pct(e2e, 99) * 1000:6.1f} ms  "
        f"max {max(e2e, default=float('nan')) * 1000:6.1f} ms; gateway->client p99 "
        f"{_pct(gw, 99) * 1000:6.1f} ms; gateway RSS {rss_start:.0f} -> {rss_end:.0f} MB",
        flush=True,
    )
    per_frame = gw_cpu / max(frames / args.seconds, 1) * 1e6
    per_tick = gw_cpu / max(ticks / args.seconds, 1) * 1e6
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"    gateway CPU {gw_cpu:5.0%} of a core = {per_frame:.0f} us per frame sent "
        f"({per_tick:.1f} us per tick delivered); market CPU {market_cpu:.0%}; "
        f"load average {load}",
        flush=True,
    )
    if stall_result is not None:
        print(f"    + 1 stalled client (stopped reading): {stall_result}", flush=True)
    return ticks / args.seconds, _pct(e2e, 99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rates", default="250,500,1000,2000")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument(
        "--stall", action="store_true", help="add one client that stops reading (slow consumer)"
    )
    parser.add_argument("--send-buffer", type=int, default=65536, help="GATEWAY_SOCKET_SEND_BUFFER")
    parser.add_argument("--profile", help="write the gateway's cProfile stats to PROFILE.<rate>")
    parser.add_argument(
        "--ws",
        default="sansio",
        choices=["sansio", "websockets", "wsproto"],
        help="uvicorn WebSocket implementation (the gateway uses sansio; wsproto needs the "
        "wsproto package installed)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per rate (median reported)")
    parser.add_argument("--batch", type=float, default=0.025, help="GATEWAY_BATCH_SECONDS")
    args = parser.parse_args()
    print(
        f"{os.cpu_count()} CPUs; batch window {args.batch * 1000:g} ms; uvicorn ws={args.ws}; "
        f"send buffer {args.send_buffer} B",
        flush=True,
    )
    held: list[int] = []
    with tempfile.TemporaryDirectory() as tmp:
        for rate in (int(r) for r in args.rates.split(",")):
            runs = [run_rate(rate, args, Path(tmp)) for _ in range(args.repeat)]
            delivered = statistics.median(r[0] for r in runs)
            p99 = statistics.median(r[1] for r in runs)
            if args.repeat > 1:
                print(
                    f"  rate {rate}/s, median of {args.repeat}: delivered {delivered:,.0f} "
                    f"ticks/s, end-to-end p99 {p99 * 1000:.1f} ms",
                    flush=True,
                )
            if delivered >= 0.98 * rate * args.clients and p99 < 0.1:
                held.append(rate)
    print(
        f"highest rate holding delivery and p99 < 100 ms: "
        f"{f'{max(held)}/s x {args.clients} clients' if held else 'none'}; load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}",
        flush=True,
    )


if __name__ == "__main__":
    main()
