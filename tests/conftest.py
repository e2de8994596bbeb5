"""Shared fixtures: an in-process eth-tester chain with the contracts deployed, and a real anvil."""

from __future__ import annotations

import ast
import contextlib
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.exceptions import TransactionFailed as TesterTransactionFailed
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError
from web3.providers.eth_tester import EthereumTesterProvider

from publisher.artifacts import load_artifact
from publisher.chain import DecodedRevert, connect, decode_revert, revert_of
from publisher.config import load_settings
from publisher.deploy import NAV_ENGINE_ROLE, create_address, deploy_demo
from publisher.keys import load_account
from publisher.localchain import REPO_ROOT, AnvilNode, free_port, load_anvil_config, start_anvil
from tests.httpserver import http_server  # noqa: F401 - fixture for every test
from tests.rpcproxy import RpcProxy


@dataclass
class Local:
    """An eth-tester chain with the core contracts deployed and named actors."""

    w3: Web3
    tester: EthereumTester
    admin: str
    engine: str
    manager: str
    investor: str
    outsider: str
    vault: Contract
    hub: Contract
    router: Contract

    def deploy(self, name: str, *args: object, sender: str | None = None) -> Contract:
        art = load_artifact(name)
        factory = self.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
        tx = factory.constructor(*args).transact({"from": sender or self.admin})
        address = self.w3.eth.wait_for_transaction_receipt(tx)["contractAddress"]
        return self.w3.eth.contract(address=address, abi=art.abi)

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def set_time(self, timestamp: int) -> None:
        """Makes `timestamp` the latest block's time, which is what calls see.

        eth-tester's time_travel(T) sets the pending block to T and the latest to T - 1.
        """
        self.tester.time_travel(timestamp + 1)
        assert self.now() == timestamp, (self.now(), timestamp)

    def travel(self, seconds: int) -> int:
        """Moves the latest block's time forward by `seconds`; returns the new time."""
        target = self.now() + seconds
        self.set_time(target)
        return target


def _deploy_core(w3: Web3, tester: EthereumTester) -> Local:
    admin, engine, manager, investor, outsider = w3.eth.accounts[:5]

    def deploy(name: str, *args: object) -> Contract:
        art = load_artifact(name)
        tx = w3.eth.contract(abi=art.abi, bytecode=art.bytecode).constructor(*args).transact({"from": admin})
        return w3.eth.contract(
            address=w3.eth.wait_for_transaction_receipt(tx)["contractAddress"], abi=art.abi
        )

    vault_address = create_address(admin, w3.eth.get_transaction_count(admin) + 1)
    hub = deploy("AnalyticsHub", vault_address)
    vault = deploy("FundVault", admin, hub.address, 3600)
    router = deploy("PriceOracleRouter", admin, 1000, 50)
    vault.functions.grantRole(NAV_ENGINE_ROLE, engine).transact({"from": admin})
    return Local(w3, tester, admin, engine, manager, investor, outsider, vault, hub, router)


@pytest.fixture
def local() -> Local:
    """A fresh in-process chain per test (eth-tester + py-evm), core contracts deployed."""
    tester = EthereumTester(PyEVMBackend())
    w3 = Web3(EthereumTesterProvider(tester))
    return _deploy_core(w3, tester)


@dataclass
class Caught:
    """The revert a `reverts` block caught."""

    error: DecodedRevert | None = None


@contextlib.contextmanager
def reverts(name: str, *args: object) -> Iterator[Caught]:
    """Asserts the block reverts with custom error `name` (and `args`, when given)."""
    caught = Caught()
    try:
        yield caught
    except (ContractLogicError, TesterTransactionFailed, OverflowError) as exc:
        decoded = (
            revert_of(exc) if isinstance(exc, ContractLogicError) else decode_revert(_tester_revert_data(exc))
        )
        assert decoded is not None, f"undecodable revert: {exc!r}"
        caught.error = decoded
        assert decoded.name == name, f"expected {name}, got {decoded}"
        if args:
            assert decoded.args == args, f"expected {name}{args}, got {decoded}"
    else:
        pytest.fail(f"expected revert {name}, nothing reverted")


def _tester_revert_data(exc: BaseException) -> bytes | None:
    """The raw revert data behind an eth-tester failure.

    eth-tester's web3 provider re-raises reverts as "execution reverted: b'...'" text, and
    on custom errors whose arguments do not decode as a string it fails with OverflowError;
    either way the original exception, with the raw bytes, is in the context chain.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TesterTransactionFailed) and seen.args:
            first = seen.args[0]
            if isinstance(first, Exception) and first.args:
                first = first.args[0]
            if isinstance(first, bytes):
                return first
            _, _, literal = str(first).partition("execution reverted: ")
            try:
                value = ast.literal_eval(literal)
            except (ValueError, SyntaxError):
                value = None
            if isinstance(value, bytes):
                return value
        seen = seen.__cause__ or seen.__context__
    return None


@pytest.fixture(scope="session")
def demo_deployment(anvil: AnvilNode, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo deployed once on the session's anvil; returns its deployment.json."""
    state = tmp_path_factory.mktemp("demo-state")
    settings = load_settings(rpc_url=anvil.rpc_url, state_dir=state, anvil_env=None)
    account = load_account(settings)
    deploy_demo(connect(settings), settings, account, account.address)
    return state / "deployment.json"


@pytest.fixture
def demo_chain(anvil: AnvilNode, demo_deployment: Path, tmp_path: Path) -> Iterator[Path]:
    """A state directory holding the demo's deployment.json, on a chain that is put back
    exactly as the demo left it when the test ends (anvil's evm_snapshot / evm_revert), its
    clock reset to now, so each test gets a pristine demo without deploying it again."""
    w3 = Web3(Web3.HTTPProvider(anvil.rpc_url))
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
    state = tmp_path / "state"
    state.mkdir()
    shutil.copy(demo_deployment, state / "deployment.json")
    try:
        yield state
    finally:
        # A transaction a test left in the mempool (automine off, fees too low) survives
        # evm_revert and would be mined into the next test, taking the engine's nonce there.
        w3.provider.make_request("anvil_dropAllTransactions", [])
        w3.provider.make_request("evm_setAutomine", [True])
        assert w3.provider.make_request("evm_revert", [snapshot])["result"] is True
        # The revert keeps the time a test moved forward; bring it back to now, but never
        # behind the latest block (anvil would then mine blocks older than their parent).
        latest = w3.eth.get_block("latest")
        w3.provider.make_request("evm_setTime", [max(int(time.time()), int(latest["timestamp"]) + 1)])
        # Nor a base fee a test raised (anvil_setNextBlockBaseFeePerGas outlives the revert).
        w3.provider.make_request("anvil_setNextBlockBaseFeePerGas", [hex(int(latest["baseFeePerGas"]))])


@pytest.fixture(scope="session")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnvilNode]:
    """A real anvil node on a free port with anvil.env's other settings; always stopped."""
    base = load_anvil_config(REPO_ROOT / "anvil.env")
    config = base.model_copy(update={"port": free_port()})
    log: Path = tmp_path_factory.mktemp("anvil") / "anvil.log"
    node = start_anvil(config, log_path=log)
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def proxy(anvil: AnvilNode) -> Iterator[RpcProxy]:
    """A fault-injecting JSON-RPC proxy (tests/rpcproxy.py) in front of the session's anvil."""
    with RpcProxy(anvil.rpc_url) as p:
        yield p
