"""The same keeper cycle done the naive way, measured beside the engine's by bench/cycle.py.

One request per thing, as a first keeper written with web3.py usually is: per fund its
holdings and liabilities in separate eth_calls (the vault's per-fund views, or
``getFundSnapshots([id])`` one fund at a time when those views are gone), every token's
decimals, every feed's ``latestRoundData`` and the router's price one asset at a time, the
HTTP prices one request after another; then one ``updateNAV`` transaction per fund, each
built by web3 (estimate, fees, nonce) and awaited (the vault records each in the hub itself;
the hub takes records from its vault only). Same inputs, same median, exact integers: its
NAVs are compared with the engine's.

    .venv/bin/python -m bench.cycle
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError
from web3.types import TxReceipt

from publisher.artifacts import load_artifact
from publisher.deployment import Deployment
from publisher.quotes import decimal_to_e18, scale_to_e18
from publisher.snapshot import read_snapshot

PER_FUND_VIEWS = ("getAllHoldings", "getPendingFees", "getPendingWithdrawals", "getBorrowed", "latestNAV")
# web3's own default: a tutorial keeper does not tune it.
RECEIPT_POLL_S = 0.1


@dataclass
class NaiveResult:
    """What the naive cycle read, computed and sent."""

    block_number: int
    navs: dict[int, int]  # fund id → NAV sent (18-decimal USD)
    receipts: list[TxReceipt]
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage

    @property
    def gas_used(self) -> int:
        return sum(int(r["gasUsed"]) for r in self.receipts)

    @property
    def cost_wei(self) -> int:
        return sum(int(r["gasUsed"]) * int(r["effectiveGasPrice"]) for r in self.receipts)


@dataclass(frozen=True)
class _Fund:
    fund_id: int
    holdings: tuple[tuple[str, int], ...]  # (token address, amount in token units)
    liabilities: int  # 18-decimal USD


def _contract(w3: Web3, name: str, address: str) -> Contract:
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=load_artifact(name).abi)


def _function_abi(contract: Contract, name: str) -> dict[str, Any] | None:
    return next((e for e in contract.abi if e.get("type") == "function" and e.get("name") == name), None)


def _median(values: Sequence[int]) -> int:
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) // 2


def _read_fund(vault: Contract, w3: Web3, fund_id: int, block: int, per_fund_views: bool) -> _Fund:
    if per_fund_views:
        f = vault.functions
        assets, amounts = f.getAllHoldings(fund_id).call(block_identifier=block)
        fees = f.getPendingFees(fund_id).call(block_identifier=block)
        withdrawals = f.getPendingWithdrawals(fund_id).call(block_identifier=block)
        borrowed = f.getBorrowed(fund_id).call(block_identifier=block)
        # The last NAV, as any keeper reads it to judge the new one against.
        f.latestNAV(fund_id).call(block_identifier=block)
        return _Fund(fund_id, tuple(zip(assets, amounts, strict=True)), fees + withdrawals + borrowed)
    snap = read_snapshot(w3, vault, [fund_id], w3.eth.get_block(block)).funds[0]
    return _Fund(fund_id, tuple((h.asset, h.amount) for h in snap.holdings), snap.liabilities)


def _send(w3: Web3, account: LocalAccount, fn: ContractFunction) -> TxReceipt:
    """web3's plain path: build (estimate, fees, chain id), sign, send, wait for the receipt."""
    tx = fn.build_transaction(
        {"from": account.address, "nonce": w3.eth.get_transaction_count(account.address)}
    )
    signed = account.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, poll_latency=RECEIPT_POLL_S)
    if receipt["status"] != 1:
        raise RuntimeError(f"naive transaction {tx_hash.hex()} reverted")
    return receipt


def naive_cycle(
    rpc_url: str,
    deployment: Deployment,
    account: LocalAccount,
    http_urls: Mapping[str, Sequence[str]],
    *,
    router: bool,
    on_publish: Callable[[], None] = lambda: None,
) -> NaiveResult:
    """One naive cycle over every fund through `rpc_url`; `http_urls` are each symbol's price URLs.
    `on_publish` is called as the first transaction is about to be built (reads end there)."""
    w3 = Web3(Web3.HTTPProvider(rpc_url))
    vault = _contract(w3, "FundVault", deployment.vault)
    oracle = _contract(w3, "PriceOracleRouter", deployment.router)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    block = w3.eth.get_block("latest")
    number, as_of = int(block["number"]), int(block["timestamp"])
    count = vault.functions.fundCount().call(block_identifier=number)
    per_fund_views = all(_function_abi(vault, n) is not None for n in PER_FUND_VIEWS)
    funds = [_read_fund(vault, w3, i, number, per_fund_views) for i in range(1, count + 1)]
    held = sorted({a for f in funds for a, amount in f.holdings if amount > 0})
    decimals = {
        a: _contract(w3, "MockERC20", a).functions.decimals().call(block_identifier=number) for a in held
    }
    t1 = time.perf_counter()

    quotes: dict[str, list[int]] = {}
    for address in held:
        symbol = deployment.symbol_of(address)
        if symbol is None:
            raise RuntimeError(f"naive cycle: no symbol for held token {address}")
        found = quotes.setdefault(address, [])
        for feed in deployment.feeds.get(symbol, []):
            agg = _contract(w3, "AggregatorV3Interface", feed.address)
            _, answer, _, updated_at, _ = agg.functions.latestRoundData().call(block_identifier=number)
            if answer > 0 and updated_at > 0:
                found.append(scale_to_e18(answer, feed.decimals))
        if router:
            try:
                price, _confidence = oracle.functions.getPrice(address).call(block_identifier=number)
                found.append(price)
            except ContractLogicError:
                pass  # no fresh source: the router is one source fewer
    with httpx.Client(timeout=5, trust_env=False) as client:
        for address in held:
            symbol = deployment.symbol_of(address)
            assert symbol is not None
            for url in http_urls.get(symbol, ()):
                answer = client.get(url)
                if answer.status_code == 200:
                    payload = json.loads(answer.text, parse_float=Decimal)
                    quotes[address].append(decimal_to_e18(str(payload["price"])))
    t2 = time.perf_counter()

    navs: dict[int, int] = {}
    for f in funds:
        gross = sum(
            amount * _median(quotes[a]) // 10 ** decimals[a] for a, amount in f.holdings if amount > 0
        )
        navs[f.fund_id] = gross - f.liabilities
    t3 = time.perf_counter()

    on_publish()
    receipts: list[TxReceipt] = []
    # The form that carries asOf, so both cycles publish the same NAVs as of the same block.
    update = vault.get_function_by_signature("updateNAV(uint256,uint256,uint48,uint16)")
    for fund_id, nav in navs.items():
        receipts.append(_send(w3, account, update(fund_id, nav, as_of, 0)))
    t4 = time.perf_counter()
    timings.update(snapshot=t1 - t0, price=t2 - t1, value=t3 - t2, publish=t4 - t3, total=t4 - t0)
    return NaiveResult(number, navs, receipts, timings)
