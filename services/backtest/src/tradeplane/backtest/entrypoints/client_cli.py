"""Client commands: queue a backtest and watch its progress bar.

    python -m tradeplane.backtest run --strategy sma_crossover --param fast_period=10 \\
        --product BTC-USD --interval 1m --days 1 [--cash 10000] [--no-watch]
    python -m tradeplane.backtest watch <backtest_id>

They talk to BacktestService at --addr (default: $BACKTEST_ADDR, else 127.0.0.1:50054) with
the bearer token in $TRADEPLANE_TOKEN when set. `watch` follows StreamProgress with a tqdm bar
(bars done / total, bars/s, ETA) and exits 0 when the run completed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import grpc
import grpc.aio
from google.protobuf.timestamp_pb2 import Timestamp
from tqdm import tqdm  # type: ignore[import-untyped]

from tradeplane.backtest.adapters.market_client import INTERVAL_TO_PROTO
from tradeplane.runtime.client import create_channel
from trading.backtest.v1 import backtest_pb2 as pb
from trading.backtest.v1 import backtest_pb2_grpc
from trading.common.v1 import common_pb2 as cpb

COMMANDS = ("run", "watch")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tradeplane.backtest")
    parser.add_argument(
        "--addr", default=os.environ.get("BACKTEST_ADDR", "127.0.0.1:50054"), help="host:port"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="queue a backtest (and watch it)")
    run.add_argument("--strategy", required=True)
    run.add_argument("--param", action="append", default=[], help="name=value, repeatable")
    run.add_argument("--product", default="BTC-USD")
    run.add_argument("--interval", default="1m", choices=sorted(INTERVAL_TO_PROTO))
    run.add_argument("--days", type=float, default=1.0, help="range: the last N days")
    run.add_argument("--cash", default="10000")
    run.add_argument("--commission-bps", default="0")
    run.add_argument("--no-watch", action="store_true")
    watch = commands.add_parser("watch", help="show a backtest's progress bar")
    watch.add_argument("backtest_id")
    return parser


async def watch(stub: backtest_pb2_grpc.BacktestServiceStub, backtest_id: str) -> int:
    bar: Any = None
    final = pb.RUN_STATUS_UNSPECIFIED
    message = ""
    try:
        stream = stub.StreamProgress(pb.StreamProgressRequest(backtest_id=backtest_id))
        async for response in stream:
            update = response.update
            if bar is None and update.total:
                bar = tqdm(total=update.total, unit="bar", unit_scale=True, desc=backtest_id[:8])
            if bar is not None:
                bar.update(max(update.done - bar.n, 0))
                bar.set_postfix_str(pb.RunStatus.Name(update.status).removeprefix("RUN_STATUS_"))
            final, message = update.status, update.message
    finally:
        if bar is not None:
            bar.close()
    print(f"{pb.RunStatus.Name(final).removeprefix('RUN_STATUS_')}: {message}")
    return 0 if final == pb.RUN_STATUS_COMPLETED else 1


async def _main(args: argparse.Namespace) -> int:
    channel = create_channel(args.addr, token=os.environ.get("TRADEPLANE_TOKEN") or None)
    stub = backtest_pb2_grpc.BacktestServiceStub(channel)
    try:
        if args.command == "watch":
            return await watch(stub, args.backtest_id)
        params = dict(p.split("=", 1) for p in args.param)
        end = int(time.time()) // 60 * 60
        start = end - int(args.days * 86400)
        config = pb.BacktestConfig(
            strategy=args.strategy,
            params=params,
            product_id=args.product,
            interval=INTERVAL_TO_PROTO[args.interval],
            time_range=cpb.TimeRange(start=Timestamp(seconds=start), end=Timestamp(seconds=end)),
            initial_cash=args.cash,
            commission=pb.Commission(bps=args.commission_bps),
        )
        response = await stub.RunBacktest(pb.RunBacktestRequest(config=config))
        print(response.backtest_id)
        return 0 if args.no_watch else await watch(stub, response.backtest_id)
    except grpc.aio.AioRpcError as error:
        print(f"error: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    finally:
        await channel.close()


def main(argv: Sequence[str]) -> None:
    sys.exit(asyncio.run(_main(_parser().parse_args(list(argv)))))
