"""Bearer-token check and per-method scope enforcement (see tradeplane.runtime.auth)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import grpc.aio

from tradeplane.runtime.auth import (
    ANONYMOUS_ALL_SCOPES,
    PUBLIC_SERVICES,
    TokenVerifier,
    authorize,
    bearer_token,
    required_scope,
    set_current_caller,
)
from tradeplane.runtime.errors import PermissionDenied, Unauthenticated
from tradeplane.runtime.interceptors._base import RpcInfo, WrappingInterceptor


class AuthInterceptor(WrappingInterceptor):
    """`verifier=None` means AUTH_MODE=disabled: every call runs as an anonymous principal
    holding every scope."""

    def __init__(self, verifier: TokenVerifier | None) -> None:
        self._verifier = verifier

    @asynccontextmanager
    async def around(self, info: RpcInfo, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        if info.service in PUBLIC_SERVICES:
            yield
            return
        token = bearer_token(context.invocation_metadata())
        if self._verifier is None:
            set_current_caller(ANONYMOUS_ALL_SCOPES, token)
            yield
            return
        try:
            if token is None:
                raise Unauthenticated(
                    "missing bearer token: send 'authorization: Bearer <jwt>' metadata"
                )
            principal = self._verifier.verify(token)
            authorize(principal, required_scope(info.proto_name))
        except Unauthenticated as exc:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, exc.message)
        except PermissionDenied as exc:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, exc.message)
        set_current_caller(principal, token)
        yield
