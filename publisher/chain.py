"""Connecting to the chain, checking it is the right one, sending simple transactions.

The exactly-once publication path (outbox, nonce manager, fee bumps) is the publisher's;
this module is what deploy, the demo and the read-only commands need.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from eth_abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_utils import function_signature_to_4byte_selector, to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.exceptions import ContractLogicError, Web3RPCError
from web3.types import TxParams, TxReceipt

from publisher._exceptions import (
    ChainError,
    NoCode,
    RpcUnreachable,
    TransactionFailed,
    UnknownFund,
    WrongChain,
)
from publisher.artifacts import ARTIFACTS_DIR, load_artifact
from publisher.config import ENV_PREFIX, Settings

# A deploy or demo transaction on a healthy node is mined in one block; two minutes covers
# a public testnet's slow blocks without leaving a stuck command hanging forever.
RECEIPT_TIMEOUT_S = 120
# An estimate is the least gas that succeeded in a simulation; state can differ by the time
# the transaction runs (a slot another transaction dirtied, a refund that no longer applies)
# and a transaction sent with exactly the estimate then runs out of gas. 25 % is ample.
GAS_MARGIN_PCT = 125

_PANIC_REASONS = {
    0x01: "assert failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division by zero",
    0x21: "invalid enum value",
    0x31: "pop on an empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory",
}


def connect(settings: Settings) -> Web3:
    """A Web3 bound to the configured RPC, after checking that it answers the right chain id."""
    url = settings.resolved_rpc_url()
    expected = settings.resolved_chain_id()
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": settings.rpc_timeout_s}))
    try:
        actual = w3.eth.chain_id
    except Exception as exc:  # any transport failure means the same thing to the operator
        raise RpcUnreachable(
            f"{ENV_PREFIX}RPC_URL: no JSON-RPC answer from {url} ({type(exc).__name__}); "
            "is the node running? (`navpub chain start` starts the local one)"
        ) from None
    if actual != expected:
        raise WrongChain(
            f"{ENV_PREFIX}CHAIN_ID: the node at {url} reports chain id {actual}, "
            f"the settings expect {expected}"
        )
    return w3


def require_code(w3: Web3, address: str, what: str) -> None:
    """Raises NoCode when `address` holds no contract (wrong address, or another chain's)."""
    if len(w3.eth.get_code(to_checksum_address(address))) == 0:
        raise NoCode(f"no contract code at {address} ({what}) on chain {w3.eth.chain_id}")


def contract_at(w3: Web3, name: str, address: str) -> Contract:
    """The compiled contract `name` bound to `address`."""
    return w3.eth.contract(address=to_checksum_address(address), abi=load_artifact(name).abi)


# -- revert decoding --------------------------------------------------------------------------


@dataclass(frozen=True)
class DecodedRevert:
    """A revert reason: the custom error's name and arguments, or Error(string) / Panic."""

    name: str
    args: tuple[Any, ...] = field(default_factory=tuple)

    def __str__(self) -> str:
        return f"{self.name}({', '.join(_show(a) for a in self.args)})"


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


@cache
def _error_table() -> dict[bytes, tuple[str, tuple[str, ...]]]:
    """4-byte selector → (name, argument types) of every error in every artifact."""
    table: dict[bytes, tuple[str, tuple[str, ...]]] = {}
    for path in sorted(ARTIFACTS_DIR.glob("*.json")):
        for entry in load_artifact(path.stem).abi:
            if entry.get("type") == "error":
                types = tuple(_abi_type(i) for i in entry.get("inputs", []))
                sig = f"{entry['name']}({','.join(types)})"
                table[function_signature_to_4byte_selector(sig)] = (entry["name"], types)
    table[function_signature_to_4byte_selector("Error(string)")] = ("Error", ("string",))
    table[function_signature_to_4byte_selector("Panic(uint256)")] = ("Panic", ("uint256",))
    return table


def _abi_type(param: dict[str, Any]) -> str:
    t: str = param["type"]
    if t.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param["components"])
        return f"({inner}){t[len('tuple') :]}"
    return t


def decode_revert(data: str | bytes | None) -> DecodedRevert | None:
    """Decodes revert data into a named error; None when empty or unknown."""
    if data is None:
        return None
    try:
        raw = bytes.fromhex(data[2:] if data.startswith("0x") else data) if isinstance(data, str) else data
    except ValueError:
        return None  # not hex: some nodes put text there (Nethermind: "Reverted 0x…")
    if len(raw) < 4:
        return None
    known = _error_table().get(raw[:4])
    if known is None:
        return None
    name, types = known
    try:
        args = tuple(abi_decode(list(types), raw[4:]))
    except Exception:
        return DecodedRevert(name)
    args = tuple(to_checksum_address(a) if t == "address" else a for t, a in zip(types, args, strict=True))
    if name == "Panic" and args:
        return DecodedRevert("Panic", (f"0x{args[0]:02x} {_PANIC_REASONS.get(args[0], 'unknown')}",))
    return DecodedRevert(name, args)


def revert_of(exc: BaseException) -> DecodedRevert | None:
    """The decoded revert carried by a web3 exception, if any."""
    if isinstance(exc, ContractLogicError):
        data = exc.data
        if isinstance(data, dict):
            data = data.get("data")
        return decode_revert(data)
    if isinstance(exc, Web3RPCError) and isinstance(exc.rpc_response, dict):
        err = exc.rpc_response.get("error")
        if isinstance(err, dict) and isinstance(err.get("data"), str):
            return decode_revert(err["data"])
    return None


# -- sending ---------------------------------------------------------------------------------


def send(
    w3: Web3, account: LocalAccount, call: ContractFunction | ContractConstructor, what: str
) -> TxReceipt:
    """Signs and sends one transaction, waits for its receipt, raises a decoded error on revert.

    The gas estimate doubles as a dry run: a revert surfaces there, named, before any fee is paid.
    """
    try:
        base: TxParams = {
            "from": account.address,
            "nonce": w3.eth.get_transaction_count(account.address, "pending"),
        }
        estimate = call.estimate_gas(base)
        fees = _fees(w3)
        tx = call.build_transaction({**base, **fees, "gas": estimate * GAS_MARGIN_PCT // 100})
    except (ContractLogicError, Web3RPCError) as exc:
        raise _failed(what, exc) from None
    signed = account.sign_transaction(tx)
    try:
        tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    except Web3RPCError as exc:
        raise _failed(what, exc) from None
    # A short poll: on a local chain the receipt exists within milliseconds of the send.
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT_S, poll_latency=0.01)
    if receipt["status"] != 1:
        raise TransactionFailed(f"{what}: transaction {tx_hash.hex()} reverted on-chain")
    return receipt


def _fees(w3: Web3) -> TxParams:
    """Fees for deploy and demo transactions: twice the base fee plus 1 gwei, or the gas price.

    Given explicitly so web3 does not look them up again for every transaction; the chain id
    is cached per client for the same reason.
    """
    block = w3.eth.get_block("pending")  # the block being built is the one that charges
    chain_id = _chain_ids.get(w3)
    if chain_id is None:
        chain_id = _chain_ids[w3] = w3.eth.chain_id
    base_fee = block.get("baseFeePerGas")
    if base_fee is None:
        return {"gasPrice": w3.eth.gas_price, "chainId": chain_id}
    tip = 10**9
    return {"maxFeePerGas": 2 * int(base_fee) + tip, "maxPriorityFeePerGas": tip, "chainId": chain_id}


_chain_ids: weakref.WeakKeyDictionary[Web3, int] = weakref.WeakKeyDictionary()


def _failed(what: str, exc: Exception) -> ChainError:
    decoded = revert_of(exc)
    if decoded is not None:
        return TransactionFailed(f"{what} reverted: {decoded}", error_name=decoded.name, args=decoded.args)
    message = getattr(exc, "message", None) or str(exc)
    return TransactionFailed(f"{what} failed: {message}")


def checksum_all(addresses: Iterable[str]) -> list[str]:
    return [to_checksum_address(a) for a in addresses]


def check_funds(vault: Contract, fund_ids: Sequence[int]) -> None:
    """Refuses (UnknownFund, one line) any `--fund` id the vault does not have."""
    if not fund_ids:
        return
    count = vault.functions.fundCount().call()
    for fid in fund_ids:
        if not 1 <= fid <= count:
            raise UnknownFund(f"--fund {fid}: no such fund (this vault has funds 1 to {count})")
