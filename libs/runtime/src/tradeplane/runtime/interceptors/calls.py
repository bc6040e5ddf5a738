"""Tracks the task of every call in flight, so shutdown can wait for handlers to return."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc.aio

from tradeplane.runtime.interceptors._base import RpcInfo, WrappingInterceptor


class CallTracker(WrappingInterceptor):
    """grpc's server.stop() cancels the calls still open but does not wait for their handlers;
    GrpcService.stop() waits on `tasks` so no handler still uses a resource (e.g. a database
    engine) that a shutdown hook is about to close."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[object]] = set()

    @asynccontextmanager
    async def around(self, info: RpcInfo, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - grpc always runs a call in a task
            yield
            return
        self.tasks.add(task)
        try:
            yield
        finally:
            self.tasks.discard(task)
