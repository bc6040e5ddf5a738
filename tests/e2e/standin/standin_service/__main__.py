from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server


def log(level: str, msg: str) -> None:
    print(
        json.dumps({"level": level, "service": "standin", "msg": msg}), file=sys.stderr, flush=True
    )


async def main() -> int:
    env = {k: os.environ.get(k, "") for k in ("GRPC_PORT", "METRICS_PORT", "DATABASE_URL")}
    log("INFO", f"standin env {json.dumps(env)}")
    log("ERROR", "standin says hello on the error channel")
    if int(os.environ["METRICS_PORT"]) > 0:
        start_http_server(int(os.environ["METRICS_PORT"]), addr="0.0.0.0")
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    # grpcio's servicer starts with "" SERVING; like the runtime, say NOT_SERVING until ready.
    await servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    reflection.enable_server_reflection(
        [health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
        server,
    )
    server.add_insecure_port(f"0.0.0.0:{os.environ['GRPC_PORT']}")
    await server.start()
    await asyncio.sleep(0.3)  # pretend to run startup hooks
    if not os.environ.get("STANDIN_NEVER_READY"):
        await servicer.set("", health_pb2.HealthCheckResponse.SERVING)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if os.environ.get("STANDIN_IGNORE_SIGTERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    exit_after = float(os.environ.get("STANDIN_EXIT_AFTER", "0") or 0)
    if exit_after:
        await asyncio.sleep(exit_after)
        log("CRITICAL", "standin crashing on purpose")
        os._exit(3)
    await stop.wait()
    await servicer.enter_graceful_shutdown()
    await server.stop(float(os.environ.get("SHUTDOWN_GRACE_SECONDS", "10")))
    log("INFO", "standin stopped")
    return 0


sys.exit(asyncio.run(main()))
