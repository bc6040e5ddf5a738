"""Bearer-token check and per-method scope enforcement (see tradeplane.runtime.auth)."""

from __future__ import annotations

from collections.abc import Iterable

import grpc
import grpc.aio

from tradeplane.runtime.auth import (
    ANONYMOUS_ALL_SCOPES,
    TokenVerifier,
    authorize,
    bearer_token,
    required_scope,
    set_current_caller,
)
from tradeplane.runtime.errors import PermissionDenied, Unauthenticated
from tradeplane.runtime.interceptors._base import RpcInfo


class Authenticator:
    """`verifier=None` means AUTH_MODE=disabled: every call runs as an anonymous principal
    holding every scope. Not called for PUBLIC_SERVICES (probes and discovery)."""

    def __init__(self, verifier: TokenVerifier | None) -> None:
        self._verifier = verifier

    async def authenticate(
        self,
        info: RpcInfo,
        metadata: Iterable[tuple[str, str | bytes]] | None,
        context: grpc.aio.ServicerContext,
    ) -> None:
        """Set the call's principal, or end the call UNAUTHENTICATED / PERMISSION_DENIED."""
        token = bearer_token(metadata)
        if self._verifier is None:
            set_current_caller(ANONYMOUS_ALL_SCOPES, token)
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
