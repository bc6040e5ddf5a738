"""Proto <-> domain mapping for WalletsService (conversion and field naming only)."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from tradeplane.runtime.errors import InvalidArgument
from tradeplane.wallets.domain.balances import WalletBalance
from tradeplane.wallets.domain.currencies import amount_text, format_amount, parse_amount
from tradeplane.wallets.domain.ledger import EntryKind, JournalEntry
from tradeplane.wallets.domain.reconciliation import (
    Discrepancy,
    ReconciliationStatus,
    ReconciliationTrigger,
    VenueBalance,
)
from tradeplane.wallets.domain.transfers import TransferKind, TransferRequest
from tradeplane.wallets.domain.wallets import Venue, Wallet, WalletKind
from tradeplane.wallets.service_layer.ledger import EntryFilter, WalletView, new_wallet_id
from tradeplane.wallets.service_layer.ports import WalletListing
from tradeplane.wallets.service_layer.reconciliation import RunFilter, RunRecord
from trading.common.v1 import common_pb2
from trading.wallets.v1 import wallets_pb2 as pb

VENUE_TO_PROTO = {
    Venue.PAPER: common_pb2.VENUE_PAPER,
    Venue.COINBASE: common_pb2.VENUE_COINBASE,
    Venue.SOLANA: common_pb2.VENUE_SOLANA,
    Venue.EVM: common_pb2.VENUE_EVM,
}
VENUE_FROM_PROTO = {v: k for k, v in VENUE_TO_PROTO.items()}
KIND_TO_PROTO = {
    WalletKind.VENUE_ACCOUNT: pb.WALLET_KIND_VENUE_ACCOUNT,
    WalletKind.ONCHAIN_ADDRESS: pb.WALLET_KIND_ONCHAIN_ADDRESS,
}
KIND_FROM_PROTO = {v: k for k, v in KIND_TO_PROTO.items()}
ENTRY_KIND_TO_PROTO = {
    EntryKind.DEPOSIT: pb.ENTRY_KIND_DEPOSIT,
    EntryKind.WITHDRAWAL: pb.ENTRY_KIND_WITHDRAWAL,
    EntryKind.INTERNAL_TRANSFER: pb.ENTRY_KIND_INTERNAL_TRANSFER,
    EntryKind.TRADE: pb.ENTRY_KIND_TRADE,
    EntryKind.FEE: pb.ENTRY_KIND_FEE,
    EntryKind.SETTLEMENT: pb.ENTRY_KIND_SETTLEMENT,
    EntryKind.ADJUSTMENT: pb.ENTRY_KIND_ADJUSTMENT,
}
ENTRY_KIND_FROM_PROTO = {v: k for k, v in ENTRY_KIND_TO_PROTO.items()}
TRANSFER_KIND_FROM_PROTO = {
    pb.TRANSFER_KIND_DEPOSIT: TransferKind.DEPOSIT,
    pb.TRANSFER_KIND_WITHDRAWAL: TransferKind.WITHDRAWAL,
    pb.TRANSFER_KIND_INTERNAL: TransferKind.INTERNAL,
}
STATUS_TO_PROTO = {
    ReconciliationStatus.RUNNING: pb.RECONCILIATION_STATUS_RUNNING,
    ReconciliationStatus.MATCHED: pb.RECONCILIATION_STATUS_MATCHED,
    ReconciliationStatus.DISCREPANCIES: pb.RECONCILIATION_STATUS_DISCREPANCIES,
    ReconciliationStatus.FAILED: pb.RECONCILIATION_STATUS_FAILED,
}
STATUS_FROM_PROTO = {v: k for k, v in STATUS_TO_PROTO.items()}
TRIGGER_TO_PROTO = {
    ReconciliationTrigger.MANUAL: pb.RECONCILIATION_TRIGGER_MANUAL,
    ReconciliationTrigger.SCHEDULED: pb.RECONCILIATION_TRIGGER_SCHEDULED,
}


def timestamp(moment: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(moment)
    return ts


def moment(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def optional_time(message: object, field: str) -> datetime | None:
    if not message.HasField(field):  # type: ignore[attr-defined]
        return None
    return moment(getattr(message, field))


def time_range(message: object, field: str) -> tuple[datetime | None, datetime | None]:
    if not message.HasField(field):  # type: ignore[attr-defined]
        return None, None
    r: common_pb2.TimeRange = getattr(message, field)
    start = moment(r.start) if r.HasField("start") else None
    end = moment(r.end) if r.HasField("end") else None
    if start is not None and end is not None and end <= start:
        raise InvalidArgument(f"{field}.end", "must be after start")
    return start, end


def balance_to_proto(b: WalletBalance, as_of: datetime | None = None) -> pb.Balance:
    msg = pb.Balance(
        wallet_id=b.wallet_id,
        currency=b.currency,
        total=amount_text(b.total),
        available=amount_text(b.available),
        hold=amount_text(b.hold),
        source=pb.BALANCE_SOURCE_LEDGER,
    )
    if as_of is not None:
        msg.as_of.CopyFrom(timestamp(as_of))
    return msg


def venue_balance_to_proto(b: VenueBalance) -> pb.Balance:
    return pb.Balance(
        wallet_id=b.wallet_id,
        currency=b.currency,
        total=format_amount(b.total),
        available=format_amount(b.available),
        hold=format_amount(b.hold),
        source=pb.BALANCE_SOURCE_VENUE,
        as_of=timestamp(b.as_of),
        stale=b.stale,
    )


KIND_VALUE_TO_PROTO = {k.value: v for k, v in KIND_TO_PROTO.items()}
VENUE_VALUE_TO_PROTO = {k.value: v for k, v in VENUE_TO_PROTO.items()}


def listing_to_proto(w: WalletListing) -> pb.Wallet:
    """ListWallets' hot path: text and ints straight into the message."""
    ledger = pb.BALANCE_SOURCE_LEDGER
    wallet_id = w.wallet_id
    return pb.Wallet(
        wallet_id=wallet_id,
        display_name=w.display_name,
        kind=KIND_VALUE_TO_PROTO[w.kind],
        venue=VENUE_VALUE_TO_PROTO[w.venue],
        account_id=w.account_id,
        address=w.address,
        chain=w.chain,
        read_only=w.read_only,
        balances=[
            pb.Balance(
                wallet_id=wallet_id,
                currency=c,
                total=t,
                available=a,
                hold=h,
                source=ledger,
            )
            for c, a, h, t in w.balances
        ],
        create_time=Timestamp(seconds=w.create_seconds, nanos=w.create_nanos),
    )


def wallet_to_proto(view: WalletView) -> pb.Wallet:
    w = view.wallet
    return pb.Wallet(
        wallet_id=w.wallet_id,
        display_name=w.display_name,
        kind=KIND_TO_PROTO[w.kind],
        venue=VENUE_TO_PROTO[w.venue],
        account_id=w.account_id,
        address=w.address,
        chain=w.chain,
        read_only=w.read_only,
        balances=[balance_to_proto(b) for b in view.balances],
        create_time=timestamp(w.create_time),
    )


def wallet_from_proto(w: pb.Wallet, now: datetime) -> Wallet:
    kind = KIND_FROM_PROTO.get(w.kind)
    if kind is None:
        raise InvalidArgument("wallet.kind", "required")
    venue = VENUE_FROM_PROTO.get(w.venue)
    if venue is None:
        raise InvalidArgument("wallet.venue", "required")
    if not w.display_name.strip():
        raise InvalidArgument("wallet.display_name", "required")
    if len(w.display_name) > 200:
        raise InvalidArgument("wallet.display_name", "at most 200 characters")
    for field in ("account_id", "address"):
        if len(getattr(w, field)) > 128:
            raise InvalidArgument(f"wallet.{field}", "at most 128 characters")
    if len(w.chain) > 64:
        raise InvalidArgument("wallet.chain", "at most 64 characters")
    return Wallet(
        wallet_id=w.wallet_id or new_wallet_id(),
        display_name=w.display_name.strip(),
        kind=kind,
        venue=venue,
        account_id=w.account_id,
        address=w.address,
        chain=w.chain,
        read_only=w.read_only,
        create_time=now,
    )


def transfer_from_proto(r: pb.RecordTransferRequest) -> TransferRequest:
    if not r.idempotency_key:
        raise InvalidArgument("idempotency_key", "required")
    kind = TRANSFER_KIND_FROM_PROTO.get(r.kind)
    if kind is None:
        raise InvalidArgument("kind", "required: deposit, withdrawal or internal")
    if not r.wallet_id:
        raise InvalidArgument("wallet_id", "required")
    if not r.currency:
        raise InvalidArgument("currency", "required")
    if not r.amount:
        raise InvalidArgument("amount", "required")
    if len(r.description) > 500:
        raise InvalidArgument("description", "at most 500 characters")
    if len(r.external_ref) > 200:
        raise InvalidArgument("external_ref", "at most 200 characters")
    return TransferRequest(
        idempotency_key=r.idempotency_key,
        kind=kind,
        wallet_id=r.wallet_id,
        to_wallet_id=r.to_wallet_id,
        currency=r.currency,
        amount=parse_amount(r.amount, "amount"),
        effective_time=optional_time(r, "effective_time"),
        description=r.description,
        external_ref=r.external_ref,
    )


def entry_to_proto(e: JournalEntry) -> pb.LedgerEntry:
    return pb.LedgerEntry(
        entry_id=e.entry_id,
        idempotency_key=e.idempotency_key,
        kind=ENTRY_KIND_TO_PROTO[e.kind],
        description=e.description,
        postings=[
            pb.Posting(
                account=p.account.code,
                wallet_id=p.wallet_id or "",
                currency=p.currency,
                amount=format_amount(p.amount),
            )
            for p in e.postings
        ],
        effective_time=timestamp(e.effective_time),
        record_time=timestamp(e.record_time),
        fill_id=e.fill_id,
        order_id=e.order_id,
        external_ref=e.external_ref,
        corrects_entry_id=e.corrects_entry_id,
    )


def entry_filter_from_proto(r: pb.ListLedgerEntriesRequest) -> EntryFilter:
    kinds = []
    for i, k in enumerate(r.kinds):
        kind = ENTRY_KIND_FROM_PROTO.get(k)
        if kind is None:
            raise InvalidArgument(f"kinds[{i}]", "not an entry kind")
        kinds.append(kind)
    start, end = time_range(r, "time_range")
    return EntryFilter(
        wallet_id=r.wallet_id,
        currency=r.currency,
        kinds=tuple(kinds),
        start=start,
        end=end,
        as_of=optional_time(r, "as_of"),
        fill_id=r.fill_id,
    )


def discrepancy_to_proto(d: Discrepancy) -> pb.Discrepancy:
    return pb.Discrepancy(
        wallet_id=d.wallet_id,
        currency=d.currency,
        ledger_balance=format_amount(d.ledger_balance),
        venue_balance=format_amount(d.venue_balance),
        difference=format_amount(d.difference),
        tolerance=format_amount(d.tolerance),
        venue_stale=d.venue_stale,
    )


def run_to_proto(r: RunRecord) -> pb.ReconciliationRun:
    msg = pb.ReconciliationRun(
        run_id=r.run_id,
        seq=r.seq,
        status=STATUS_TO_PROTO[r.status],
        trigger=TRIGGER_TO_PROTO[r.trigger],
        wallet_ids=list(r.wallet_ids),
        checked_count=r.checked_count,
        discrepancies=[discrepancy_to_proto(d) for d in r.discrepancies],
        venue_calls=r.venue_calls,
        error=r.error,
        venue_stale=r.venue_stale,
        start_time=timestamp(r.start_time),
    )
    if r.end_time is not None:
        msg.end_time.CopyFrom(timestamp(r.end_time))
    return msg


def run_filter_from_proto(r: pb.ListReconciliationsRequest) -> RunFilter:
    statuses = []
    for i, s in enumerate(r.statuses):
        status = STATUS_FROM_PROTO.get(s)
        if status is None:
            raise InvalidArgument(f"statuses[{i}]", "not a reconciliation status")
        statuses.append(status)
    start, end = time_range(r, "time_range")
    return RunFilter(wallet_id=r.wallet_id, statuses=tuple(statuses), start=start, end=end)
