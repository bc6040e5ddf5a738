"""WalletsService over gRPC: maps requests to use cases and results back to protos."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

from tradeplane.runtime.errors import InvalidArgument
from tradeplane.wallets.domain.currencies import check_currency_code
from tradeplane.wallets.domain.wallets import check_wallet_id
from tradeplane.wallets.entrypoints import mapping
from tradeplane.wallets.service_layer.ledger import WalletsLedger, WalletView
from tradeplane.wallets.service_layer.page_tokens import decode_token, encode_token, page_size
from tradeplane.wallets.service_layer.reconciliation import Reconciler
from trading.wallets.v1 import wallets_pb2 as pb
from trading.wallets.v1 import wallets_pb2_grpc

MAX_SEQ = 2**63 - 1  # sequence numbers are stored as BIGINT


class WalletsServicer(wallets_pb2_grpc.WalletsServiceServicer):
    def __init__(
        self,
        ledger: WalletsLedger,
        reconciler: Reconciler,
        shutdown_event: asyncio.Event,
        clock: Callable[[], datetime],
    ) -> None:
        self._ledger = ledger
        self._reconciler = reconciler
        self._shutdown = shutdown_event
        self._clock = clock

    async def ListWallets(
        self, request: pb.ListWalletsRequest, context: Any
    ) -> pb.ListWalletsResponse:
        venue = None
        if request.venue:
            venue = mapping.VENUE_FROM_PROTO.get(request.venue)
            if venue is None:
                raise InvalidArgument("venue", f"unknown venue {request.venue}")
        rows, token = await self._ledger.wallet_listing(
            venue=venue, page_size_=request.page_size, page_token=request.page_token
        )
        return pb.ListWalletsResponse(
            wallets=[mapping.listing_to_proto(r) for r in rows], next_page_token=token
        )

    async def GetWallet(self, request: pb.GetWalletRequest, context: Any) -> pb.GetWalletResponse:
        if not request.wallet_id:
            raise InvalidArgument("wallet_id", "required")
        view = await self._ledger.get_wallet(request.wallet_id)
        return pb.GetWalletResponse(wallet=mapping.wallet_to_proto(view))

    async def CreateWallet(
        self, request: pb.CreateWalletRequest, context: Any
    ) -> pb.CreateWalletResponse:
        if not request.HasField("wallet"):
            raise InvalidArgument("wallet", "required")
        wallet = await self._ledger.create_wallet(
            mapping.wallet_from_proto(request.wallet, self._clock())
        )
        view = WalletView(wallet, ())
        return pb.CreateWalletResponse(wallet=mapping.wallet_to_proto(view))

    async def ListBalances(
        self, request: pb.ListBalancesRequest, context: Any
    ) -> pb.ListBalancesResponse:
        as_of = mapping.optional_time(request, "as_of")
        if request.source == pb.BALANCE_SOURCE_VENUE:
            if as_of is not None:
                raise InvalidArgument("as_of", "only valid with the LEDGER source")
            return await self._venue_balances(request)
        if request.source not in (pb.BALANCE_SOURCE_UNSPECIFIED, pb.BALANCE_SOURCE_LEDGER):
            raise InvalidArgument("source", f"unknown balance source {request.source}")
        page = await self._ledger.list_balances(
            wallet_ids=list(request.wallet_ids),
            currencies=list(request.currencies),
            as_of=as_of,
            include_zero=request.include_zero,
            page_size_=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListBalancesResponse(
            balances=[mapping.balance_to_proto(b, page.as_of) for b in page.balances],
            next_page_token=page.next_page_token,
        )

    async def _venue_balances(self, request: pb.ListBalancesRequest) -> pb.ListBalancesResponse:
        """Venue balances: fetched (through the venue's cache) and paged by offset."""
        limit = page_size(request.page_size, default=100, maximum=1000)
        for i, w in enumerate(request.wallet_ids):
            check_wallet_id(w, f"wallet_ids[{i}]")
        for i, c in enumerate(request.currencies):
            check_currency_code(c, f"currencies[{i}]")
        offset = 0
        if request.page_token:
            raw = decode_token(request.page_token).get("o")
            if not isinstance(raw, int) or raw < 0:
                raise InvalidArgument("page_token", "malformed page token")
            offset = raw
        snapshot = await self._reconciler.venue_balances(list(request.wallet_ids) or None)
        wanted = set(request.currencies)
        rows = sorted(
            (
                b
                for b in snapshot.balances
                if (not wanted or b.currency in wanted) and (request.include_zero or b.total != 0)
            ),
            key=lambda b: (b.wallet_id, b.currency),
        )
        page = rows[offset : offset + limit]
        token = encode_token({"o": offset + limit}) if offset + limit < len(rows) else ""
        return pb.ListBalancesResponse(
            balances=[mapping.venue_balance_to_proto(b) for b in page], next_page_token=token
        )

    async def RecordTransfer(
        self, request: pb.RecordTransferRequest, context: Any
    ) -> pb.RecordTransferResponse:
        entry = await self._ledger.record_transfer(mapping.transfer_from_proto(request))
        return pb.RecordTransferResponse(entry=mapping.entry_to_proto(entry))

    async def ListLedgerEntries(
        self, request: pb.ListLedgerEntriesRequest, context: Any
    ) -> pb.ListLedgerEntriesResponse:
        entries, token = await self._ledger.list_entries(
            mapping.entry_filter_from_proto(request),
            page_size_=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListLedgerEntriesResponse(
            entries=[mapping.entry_to_proto(e) for e in entries], next_page_token=token
        )

    async def Reconcile(self, request: pb.ReconcileRequest, context: Any) -> pb.ReconcileResponse:
        run = await self._reconciler.reconcile(
            list(request.wallet_ids), all_wallets=request.all, force_refresh=request.force_refresh
        )
        return pb.ReconcileResponse(run=mapping.run_to_proto(run))

    async def GetReconciliation(
        self, request: pb.GetReconciliationRequest, context: Any
    ) -> pb.GetReconciliationResponse:
        run = await self._reconciler.get(request.run_id)
        return pb.GetReconciliationResponse(run=mapping.run_to_proto(run))

    async def ListReconciliations(
        self, request: pb.ListReconciliationsRequest, context: Any
    ) -> pb.ListReconciliationsResponse:
        runs, token = await self._reconciler.list_runs(
            mapping.run_filter_from_proto(request),
            page_size_=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListReconciliationsResponse(
            runs=[mapping.run_to_proto(r) for r in runs], next_page_token=token
        )

    async def StreamReconciliations(
        self, request: pb.StreamReconciliationsRequest, context: Any
    ) -> AsyncIterator[pb.StreamReconciliationsResponse]:
        since = request.since_seq if request.HasField("since_seq") else None
        if since is not None and since > MAX_SEQ:
            raise InvalidArgument("since_seq", f"must be at most {MAX_SEQ}")
        async for runs, reset in self._reconciler.stream(since, self._shutdown):
            yield pb.StreamReconciliationsResponse(
                runs=[mapping.run_to_proto(r) for r in runs], reset=reset
            )
