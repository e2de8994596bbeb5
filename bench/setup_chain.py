"""The benchmark's chain: the product's contracts with N funds each holding A assets.

Measures nothing itself: bench/cycle.py calls it and reports its duration apart (`setup_s`).

The core contracts, the mock tokens, their feeds (three per asset, registered with the
router's ``setSources``) come from the product's own deploy code, as ``deploy_demo`` does for
the demo's three funds. The bulk — createFund, mints, approvals, N × A deposits, one fee per
fund — is signed locally with consecutive nonces and sent in JSON-RPC batches with automine
off, then mined in a few full blocks: waiting for 2,000 receipts one by one would take longer
than the benchmark itself. Every receipt is checked afterwards.

    .venv/bin/python -m bench.cycle        # sets this chain up, then measures (bench/cycle.py)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract

from publisher import demo
from publisher.chain import contract_at, send
from publisher.config import Settings
from publisher.deploy import deploy_contract, deploy_core
from publisher.deployment import Deployment, FeedInfo, FundInfo, TokenInfo, write_deployment
from publisher.keys import dev_account, load_account

Progress = Callable[[str], None]

# Setup transactions pay at most this much per gas: far above anvil's base fee whatever the
# setup's blocks do to it, and the dev accounts hold 10,000 ETH each.
MAX_FEE_WEI = 200 * 10**9
TIP_WEI = 10**9
# Fixed gas limits, about 1.5 × what each used at 20 assets (nothing can be estimated against
# state not mined yet); a transaction that runs out fails its receipt check, named.
GAS = {"createFund": 150_000, "mint": 100_000, "approve": 70_000, "deposit": 300_000,
       "accrueFee": 60_000, "updateAnswer": 200_000}  # fmt: skip
# Receipts per JSON-RPC batch when checking them: few round trips, answers of a few hundred kB.
RECEIPT_BATCH = 250


@dataclass(frozen=True)
class BenchAsset:
    """One mock token: its symbol, decimals and the USD price its feeds start at."""

    symbol: str
    name: str
    decimals: int
    price: Decimal


def bench_assets(n: int) -> list[BenchAsset]:
    """The demo's assets (their names, decimals and prices), repeated with a suffix past 21."""
    out = []
    for i in range(n):
        base = demo.ASSETS[i % len(demo.ASSETS)]
        suffix = str(i // len(demo.ASSETS)) if i >= len(demo.ASSETS) else ""
        out.append(BenchAsset(base.symbol + suffix, base.name, base.decimals, base.price_usd))
    return out


def holding(fund_id: int, index: int, asset: BenchAsset) -> Decimal:
    """Whole tokens of `asset` in fund `fund_id`: $1,000 to $20,000 worth, varying by fund and asset."""
    usd = Decimal(1000 * (1 + (fund_id * 7 + index * 3) % 20))
    # At most 6 decimals, so every amount is exact in every token's units.
    step = Decimal(1).scaleb(-min(asset.decimals, 6))
    return (usd / asset.price).quantize(step, rounding=ROUND_DOWN)


def feed_answers(asset: BenchAsset, price: Decimal) -> list[int]:
    """The three feeds' answers for `price`: the demo's decimals and skews."""
    return [demo.feed_answer(price, d, s) for d, s in zip(demo.FEED_DECIMALS, demo.FEED_SKEW, strict=True)]


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@dataclass(frozen=True)
class _Signed:
    label: str
    gas: int
    raw: str
    tx_hash: str


class BulkSender:
    """Transactions signed with consecutive nonces, sent in JSON-RPC batches, mined together.

    Setup only: the product's send path waits for each receipt. Each batch holds what one
    block can take by the transactions' gas limits and is mined at once (anvil was seen to
    drop what a manually mined block could not fit rather than keep it for the next). Transactions of one
    flush run in nonce order per sender, in no guaranteed order across senders, so a
    transaction that needs another sender's must go in a later flush.
    """

    def __init__(self, w3: Web3, rpc_url: str) -> None:
        self.w3 = w3
        self.rpc_url = rpc_url
        self.chain_id = w3.eth.chain_id
        self.nonces: dict[str, int] = {}
        self.queue: list[_Signed] = []
        self.sent = 0
        self.client = httpx.Client(timeout=120, trust_env=False)

    def close(self) -> None:
        self.client.close()

    def add(
        self, account: LocalAccount, contract: Contract, fn: str, args: Sequence[Any], label: str
    ) -> None:
        address = account.address
        if address not in self.nonces:
            self.nonces[address] = self.w3.eth.get_transaction_count(address, "pending")
        tx = {
            "to": contract.address, "data": contract.encode_abi(fn, list(args)), "gas": GAS[fn],
            "nonce": self.nonces[address], "chainId": self.chain_id, "value": 0, "type": 2,
            "maxFeePerGas": MAX_FEE_WEI, "maxPriorityFeePerGas": TIP_WEI,
        }  # fmt: skip
        signed = account.sign_transaction(tx)
        self.nonces[address] += 1
        self.queue.append(
            _Signed(
                label, GAS[fn], "0x" + bytes(signed.raw_transaction).hex(), "0x" + bytes(signed.hash).hex()
            )
        )

    def rpc(self, method: str, params: list[Any]) -> Any:
        return self.batch([(method, params)])[0]

    def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """Results of `calls` in one JSON-RPC batch; any error raises, naming the call."""
        body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
        answer = self.client.post(self.rpc_url, json=body)
        answer.raise_for_status()
        by_id = {r["id"]: r for r in answer.json()}
        out = []
        for i, (method, _) in enumerate(calls):
            r = by_id[i]
            if "error" in r:
                raise RuntimeError(f"setup: {method} failed: {r['error']}")
            out.append(r["result"])
        return out

    def flush(self) -> int:
        """Sends, mines and checks everything added; returns how many transactions that was."""
        txs, self.queue = self.queue, []
        if not txs:
            return 0
        room = int(self.w3.eth.get_block("latest")["gasLimit"])
        blocks: list[list[_Signed]] = [[]]
        used = 0
        for t in txs:
            if used + t.gas > room:
                blocks.append([])
                used = 0
            blocks[-1].append(t)
            used += t.gas
        self.rpc("evm_setAutomine", [False])
        try:
            for block in blocks:
                self.batch([("eth_sendRawTransaction", [t.raw]) for t in block])
                self.rpc("evm_mine", [])
        finally:
            self.rpc("evm_setAutomine", [True])
        for chunk in _chunks(txs, RECEIPT_BATCH):
            receipts = self.batch([("eth_getTransactionReceipt", [t.tx_hash]) for t in chunk])
            for t, r in zip(chunk, receipts, strict=True):
                if r is None or int(r["status"], 16) != 1:
                    state = "not mined" if r is None else "reverted"
                    raise RuntimeError(f"setup transaction {t.label} ({t.tx_hash}) {state}")
        self.sent += len(txs)
        return len(txs)


def deploy_bench(
    w3: Web3, settings: Settings, rpc_url: str, n_funds: int, n_assets: int, progress: Progress
) -> tuple[Deployment, list[BenchAsset], int]:
    """deploy_core, then A tokens with three feeds each, N funds holding all A assets.

    Actors as in the demo: dev account 0 deploys and is the NAV engine, #1 manages every
    fund and deposits, #2 receives the shares. Returns the deployment (also written to the
    state directory), the assets, and how many setup transactions were sent.
    """
    deployer = load_account(settings)
    manager = dev_account(settings, 1)
    investor = dev_account(settings, 2)
    core = deploy_core(w3, settings, deployer, deployer.address)
    router = contract_at(w3, "PriceOracleRouter", core.router)
    vault = contract_at(w3, "FundVault", core.vault)
    assets = bench_assets(n_assets)
    sent = 5  # deploy_core: three contracts, two role grants

    tokens: dict[str, TokenInfo] = {}
    feeds: dict[str, list[FeedInfo]] = {}
    for a in assets:
        token = deploy_contract(w3, deployer, "MockERC20", a.name, a.symbol, a.decimals)
        tokens[a.symbol] = TokenInfo(address=token.address, decimals=a.decimals, name=a.name)
        feeds[a.symbol] = [
            FeedInfo(
                address=deploy_contract(w3, deployer, "MockV3Aggregator", dec, answer).address,
                decimals=dec,
                max_age_s=demo.FEED_MAX_AGE_S,
            )
            for dec, answer in zip(demo.FEED_DECIMALS, feed_answers(a, a.price), strict=True)
        ]
        fs = feeds[a.symbol]
        call = router.functions.setSources(token.address, [f.address for f in fs], [f.max_age_s for f in fs])
        send(w3, deployer, call, f"setSources {a.symbol}")
        sent += 5
    progress(f"{len(assets)} tokens, {3 * len(assets)} feeds")

    bulk = BulkSender(w3, rpc_url)
    try:
        first = vault.functions.fundCount().call() + 1
        fund_ids = list(range(first, first + n_funds))
        for fund_id in fund_ids:
            bulk.add(deployer, vault, "createFund", [manager.address], f"createFund {fund_id}")
        bulk.flush()

        erc20 = {a.symbol: contract_at(w3, "MockERC20", tokens[a.symbol].address) for a in assets}
        for i, a in enumerate(assets):
            total = sum(demo.to_units(holding(f, i, a), a.decimals) for f in fund_ids)
            bulk.add(manager, erc20[a.symbol], "mint", [manager.address, total], f"mint {a.symbol}")
            bulk.add(manager, erc20[a.symbol], "approve", [vault.address, 2**256 - 1], f"approve {a.symbol}")
        for fund_id in fund_ids:
            for i, a in enumerate(assets):
                amount = holding(fund_id, i, a)
                # One share per dollar at the starting price, like the demo's deposits.
                shares = int((amount * a.price).scaleb(18))
                args = [fund_id, tokens[a.symbol].address, demo.to_units(amount, a.decimals), shares,
                        investor.address]  # fmt: skip
                bulk.add(manager, vault, "deposit", args, f"deposit {a.symbol} in fund {fund_id}")
            # $50 of accrued fees: a liability, so the NAV is gross minus something.
            bulk.add(manager, vault, "accrueFee", [fund_id, 50 * 10**18], f"accrueFee {fund_id}")
        bulk.flush()
        sent += bulk.sent
    finally:
        bulk.close()
    progress(f"{n_funds} funds × {n_assets} assets deposited")

    funds = [
        FundInfo(
            fund_id=f, name=f"Bench fund {f}", manager=manager.address, assets=[a.symbol for a in assets]
        )
        for f in fund_ids
    ]
    deployment = core.model_copy(update={"tokens": tokens, "feeds": feeds, "funds": funds})
    write_deployment(settings.deployment_path, deployment)
    return deployment, assets, sent


def move_feeds(
    w3: Web3, rpc_url: str, settings: Settings, deployment: Deployment, prices: dict[str, Decimal]
) -> int:
    """Every feed of every asset answers `prices` now (a new round); returns the transactions sent."""
    deployer = load_account(settings)
    bulk = BulkSender(w3, rpc_url)
    try:
        for symbol, price in prices.items():
            a = BenchAsset(symbol, symbol, deployment.tokens[symbol].decimals, price)
            for feed, answer in zip(deployment.feeds[symbol], feed_answers(a, price), strict=True):
                aggregator = contract_at(w3, "MockV3Aggregator", feed.address)
                bulk.add(deployer, aggregator, "updateAnswer", [answer], f"updateAnswer {symbol}")
        return bulk.flush()
    finally:
        bulk.close()
