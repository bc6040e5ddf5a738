"""Read-only on-chain wallets (Solana and EVM) over real gRPC, through Redis, against a local
fake JSON-RPC node that counts the calls it answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from tradeplane.testing.fakes.chain_rpc import FakeChainNode
from trading.common.v1 import common_pb2
from trading.wallets.v1 import wallets_pb2 as pb

from .conftest import RunningWallets, start_wallets, stop_wallets, wallets_settings

SOL_ADDRESS = "A1TMhSGzQxMr1TboBKtgixKz1sS6REASMxPo1qsyTSJd"
USDC_MINT = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
OTHER_MINT = "2cHr7QS3xfuSV8wdxo3ztuF4xbiarF6Nrgx3qpx3HzXR"
EVM_ADDRESS = "0x00000000219ab540356cBB839Cbe05303d7705Fa"
USDC_CONTRACT = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"


@pytest_asyncio.fixture
async def node() -> AsyncIterator[FakeChainNode]:
    async with FakeChainNode() as server:
        server.solana_balance[SOL_ADDRESS] = 1_500_000_000  # 1.5 SOL
        server.solana_tokens[SOL_ADDRESS] = [(USDC_MINT, 2_500_000, 6), (OTHER_MINT, 7, 0)]
        server.evm_balance[EVM_ADDRESS.lower()] = 2 * 10**18 + 5  # 2.000000000000000005 ETH
        server.erc20[(USDC_CONTRACT.lower(), EVM_ADDRESS.lower())] = 12_340_000  # 12.34
        yield server


@pytest_asyncio.fixture
async def wallets_chain(
    tmp_path: Path, node: FakeChainNode, redis_url: str
) -> AsyncIterator[RunningWallets]:
    settings = wallets_settings(
        f"sqlite:///{tmp_path / 'w.db'}",
        redis_url=redis_url,
        wallets_default_wallet=False,
        wallets_chain_ttl_seconds=2.0,
        wallets_solana_rpc_url=node.url,
        wallets_solana_tokens=f"USDC={USDC_MINT}",
        wallets_evm_rpc_url=node.url,
        wallets_evm_tokens=f"USDC={USDC_CONTRACT}:6",
    )
    running = await start_wallets(settings)
    for wallet_id, venue, address, chain in (
        ("sol", common_pb2.VENUE_SOLANA, SOL_ADDRESS, "solana-mainnet"),
        ("eth", common_pb2.VENUE_EVM, EVM_ADDRESS, "eip155:1"),
    ):
        await running.stub.CreateWallet(
            pb.CreateWalletRequest(
                wallet=pb.Wallet(
                    wallet_id=wallet_id,
                    display_name=wallet_id,
                    kind=pb.WALLET_KIND_ONCHAIN_ADDRESS,
                    venue=venue,
                    address=address,
                    chain=chain,
                    read_only=True,
                )
            )
        )
    try:
        yield running
    finally:
        await stop_wallets(running)


async def venue_balances(w: RunningWallets) -> dict[tuple[str, str], tuple[str, bool]]:
    reply = await w.stub.ListBalances(pb.ListBalancesRequest(source=pb.BALANCE_SOURCE_VENUE))
    return {(b.wallet_id, b.currency): (b.total, b.stale) for b in reply.balances}


async def test_chain_balances_cached_and_stale_when_node_down(
    wallets_chain: RunningWallets, node: FakeChainNode
) -> None:
    assert await venue_balances(wallets_chain) == {
        ("sol", "SOL"): ("1.5", False),
        ("sol", "USDC"): ("2.5", False),  # the unknown mint is ignored
        ("eth", "ETH"): ("2.000000000000000005", False),
        ("eth", "USDC"): ("12.34", False),
    }
    expected_calls = {"getBalance": 1, "getTokenAccountsByOwner": 1, "eth_getBalance": 1}
    assert dict(node.calls) == {**expected_calls, "eth_call": 1}

    await asyncio.gather(*(venue_balances(wallets_chain) for _ in range(20)))
    assert sum(node.calls.values()) == 4  # within the TTL: no call

    # Reconcile: the ledger knows nothing of these addresses, so every balance differs.
    run = (await wallets_chain.stub.Reconcile(pb.ReconcileRequest(all=True))).run
    assert run.status == pb.RECONCILIATION_STATUS_DISCREPANCIES and run.checked_count == 4
    assert run.venue_calls == 0

    node.down = True
    await asyncio.sleep(2.1)  # past the TTL
    stale = await venue_balances(wallets_chain)
    assert stale[("eth", "USDC")] == ("12.34", True) and all(s for _, s in stale.values())
    run = (await wallets_chain.stub.Reconcile(pb.ReconcileRequest(all=True))).run
    assert all(d.venue_stale for d in run.discrepancies)


async def test_cold_concurrent_reads_make_one_call_per_key(
    wallets_chain: RunningWallets, node: FakeChainNode
) -> None:
    node.delay = 0.05
    replies = await asyncio.gather(*(venue_balances(wallets_chain) for _ in range(30)))
    assert dict(node.calls) == {
        "getBalance": 1,
        "getTokenAccountsByOwner": 1,
        "eth_getBalance": 1,
        "eth_call": 1,
    }
    assert all(r == replies[0] and len(r) == 4 for r in replies)


async def test_node_down_with_nothing_cached_fails_the_run(
    wallets_chain: RunningWallets, node: FakeChainNode
) -> None:
    node.rate_limited_for = 5
    run = (await wallets_chain.stub.Reconcile(pb.ReconcileRequest(all=True))).run
    assert run.status == pb.RECONCILIATION_STATUS_FAILED and "rate limited" in run.error
    assert node.requests == 1
