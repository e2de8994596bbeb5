"""read_snapshot on anvil behind the counting proxy: two round trips for every fund, chunks in
one batch, and a wrong fund-count hint (too low, too high) still reads exactly the funds at the block."""

from __future__ import annotations

from pathlib import Path

import pytest
from web3 import Web3
from web3.contract import Contract

from publisher import snapshot
from publisher.chain import contract_at
from publisher.deployment import Deployment
from publisher.localchain import AnvilNode
from publisher.snapshot import read_snapshot
from tests.rpcproxy import RpcProxy

pytestmark = pytest.mark.anvil


def _vault(w3: Web3, demo_chain: Path) -> tuple[Web3, Contract]:
    deployment = Deployment.model_validate_json((demo_chain / "deployment.json").read_text())
    return w3, contract_at(w3, "FundVault", deployment.vault)


def test_every_fund_in_two_round_trips_without_chain_id_lookups(proxy: RpcProxy, demo_chain: Path) -> None:
    w3, vault = _vault(Web3(Web3.HTTPProvider(proxy.url)), demo_chain)
    start = len(proxy.requests)
    snap = read_snapshot(w3, vault)
    log = proxy.requests[start:]
    assert [f.fund_id for f in snap.funds] == [1, 2, 3]
    assert [r.method for r in log] == [["eth_call", "eth_getBlockByNumber"], ["eth_call", "eth_call"]]


def test_chunks_share_one_batch(proxy: RpcProxy, demo_chain: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshot, "SNAPSHOT_CHUNK", 1)
    w3, vault = _vault(Web3(Web3.HTTPProvider(proxy.url)), demo_chain)
    start = len(proxy.requests)
    snap = read_snapshot(w3, vault)
    assert [f.fund_id for f in snap.funds] == [1, 2, 3]
    assert [r.method for r in proxy.requests[start:]][1] == ["eth_call"] * 4  # the count + 3 chunks


@pytest.mark.parametrize("hint", [0, 1, 2, 3, 7])
def test_a_wrong_count_hint_still_reads_every_fund_at_the_block(
    anvil: AnvilNode, demo_chain: Path, hint: int
) -> None:
    w3, vault = _vault(Web3(Web3.HTTPProvider(anvil.rpc_url)), demo_chain)
    block = w3.eth.get_block("latest")
    snap = read_snapshot(w3, vault, block=block, count_hint=hint)
    assert snap.block_number == block["number"]
    assert [f.fund_id for f in snap.funds] == [1, 2, 3]
    assert snap == read_snapshot(w3, vault, block=block)


def test_explicit_funds_and_none(anvil: AnvilNode, demo_chain: Path) -> None:
    w3, vault = _vault(Web3(Web3.HTTPProvider(anvil.rpc_url)), demo_chain)
    assert [f.fund_id for f in read_snapshot(w3, vault, [3, 1]).funds] == [3, 1]
    assert read_snapshot(w3, vault, []).funds == ()
