"""Signing, sending and landing transactions exactly once.

A *publication* owns one nonce of the engine's key. Its signed transaction is committed to
the store before it is broadcast, every fee bump re-signs the same payload at the same nonce,
and a newer payload for the same nonce replaces the older one: whatever happens — retries,
fee bumps, a crash between send and receipt — at most one transaction of a nonce is mined.

    prepare   static call (a revert is decoded and never sent), gas estimate + margin, fees
    sign      nonce from the local counter, synced with the chain's pending count
    commit    publication + attempt (raw signed tx) in the store   ← before anything leaves
    broadcast with retries; "already known" is success, "replacement underpriced" bumps
    wait      receipt with a timeout; not mined → replace with fees raised ≥ 12.5 %
    settle    receipt → confirmed or failed; nonce used by something else → dropped
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import rlp
from eth_account.signers.local import LocalAccount
from eth_account.typed_transactions import TypedTransaction
from hexbytes import HexBytes
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError
from web3.types import TxParams, TxReceipt

from publisher import failpoints
from publisher._exceptions import NavPubError, TransactionFailed
from publisher.chain import revert_of
from publisher.config import Settings
from publisher.fees import FeeRules, Fees, bumped, initial_fees
from publisher.rpc import RpcPool
from publisher.store import Attempt, Publication, SignedTx, Store

log = logging.getLogger("navpub.sender")

# How many looks, receipt_poll_s apart, must find none of a publication's transactions once
# its nonce is used, before it is called dropped (see TxSender.settle).
NONCE_TAKEN_CHECKS = 2


class NonceManager:
    """One local nonce counter per key, behind a lock: synced from the chain's pending count
    and from the nonces the outbox still holds, and never moved backwards."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next: dict[str, int] = {}

    def reserve(self, address: str, chain_pending: int, held: int = 0) -> int:
        """The next nonce for `address`: past its local counter, the chain's pending count and
        `held` (one past the highest nonce of an unfinished publication)."""
        with self._lock:
            nonce = max(self._next.get(address, 0), chain_pending, held)
            self._next[address] = nonce + 1
            return nonce

    def release(self, address: str, nonce: int) -> None:
        """Gives `nonce` back when nothing was sent with it (the outbox write failed, or the node
        refused the transaction): a counter left past it would queue every later transaction of
        this process behind a gap, never mined."""
        with self._lock:
            if self._next.get(address) == nonce + 1:
                self._next[address] = nonce

    def peek(self, address: str) -> int:
        with self._lock:
            return self._next.get(address, 0)


@dataclass(frozen=True)
class Call:
    """A contract function call, independent of any client (the pool may switch URL)."""

    address: str
    abi: list[dict[str, Any]]
    fn_name: str
    args: tuple[Any, ...]

    def bind(self, w3: Web3) -> ContractFunction:
        return w3.eth.contract(address=self.address, abi=self.abi).get_function_by_name(self.fn_name)(
            *self.args
        )

    def data(self, w3: Web3) -> str:
        return w3.eth.contract(address=self.address, abi=self.abi).encode_abi(
            self.fn_name, args=list(self.args)
        )


@dataclass(frozen=True)
class Prepared:
    """A call ready to sign: target, data, gas limit, fees."""

    to: str
    data: str
    gas: int
    fees: Fees
    chain_id: int


@dataclass
class Hooks:
    """Test seams: called after each broadcast (e.g. to mine, or to simulate a crash)."""

    after_broadcast: Callable[[Attempt], None] | None = None


class TxSender:
    """Sends publications for one key through an RpcPool, recording every step in the store."""

    def __init__(
        self,
        pool: RpcPool,
        account: LocalAccount,
        store: Store,
        settings: Settings,
        *,
        nonces: NonceManager | None = None,
        clock: Callable[[], int] = lambda: int(time.time()),
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        hooks: Hooks | None = None,
    ) -> None:
        self.pool = pool
        self.account = account
        self.store = store
        self.settings = settings
        self.rules = FeeRules.from_settings(settings)
        self.nonces = nonces or NonceManager()
        self.clock = clock
        self.monotonic = monotonic
        self.sleep = sleep
        self.hooks = hooks or Hooks()

    # -- RPC with retries ---------------------------------------------------------------------

    def _rpc(self, fn: Callable[[Web3], Any], what: str) -> Any:
        s = self.settings
        return self.pool.call(fn, attempts=s.publish_attempts, backoff_s=s.retry_backoff_s, what=what)

    # -- prepare ----------------------------------------------------------------------------

    def prepare(self, call: Call, what: str) -> Prepared:
        """Static call (surfaces a revert before paying for it), gas estimate plus margin, fees."""
        base: TxParams = {"from": self.account.address}

        def simulate(w3: Web3) -> Prepared:
            fn = call.bind(w3)
            try:
                fn.call(base)
                estimate = fn.estimate_gas(base)
            except ContractLogicError as exc:
                raise _reverted(what, exc) from None
            except Web3RPCError as exc:
                if revert_of(exc) is not None:
                    raise _reverted(what, exc) from None
                raise
            return Prepared(
                to=call.address, data=call.data(w3), gas=estimate * self.settings.gas_margin_pct // 100,
                fees=self._fresh_fees(w3), chain_id=self.pool.chain_id,
            )  # fmt: skip

        return self._rpc(simulate, f"prepare {what}")

    def cancellation(self) -> Prepared:
        """A zero-value transfer to the engine's own address: signed at a stuck transaction's nonce
        with higher fees, it takes the nonce and the stuck transaction can never be mined."""
        fees = self._rpc(self._fresh_fees, "fees")
        # 21,000: the intrinsic gas of a plain transfer (yellow paper G_transaction), all it uses.
        chain_id = self.pool.chain_id
        return Prepared(to=self.account.address, data="0x", gas=21_000, fees=fees, chain_id=chain_id)

    def _fresh_fees(self, w3: Web3) -> Fees:
        block = w3.eth.get_block("latest")
        base_fee = block.get("baseFeePerGas")
        if base_fee is not None:
            # The block being built may already charge more than the last one did.
            try:
                pending = w3.eth.get_block("pending").get("baseFeePerGas")
            except Web3RPCError:
                pending = None
            base_fee = max(int(base_fee), int(pending or 0))
        if base_fee is None:
            return initial_fees(None, 0, w3.eth.gas_price, self.rules)
        try:
            tip = w3.eth.max_priority_fee
        except Web3RPCError:  # nodes without eth_maxPriorityFeePerGas
            tip = self.rules.priority_floor
        return initial_fees(int(base_fee), int(tip), 0, self.rules)

    # -- publish ----------------------------------------------------------------------------

    def publish(
        self,
        prepared: Prepared,
        report_ids: Sequence[int],
        fund_ids: Sequence[int],
        *,
        nonce: int | None = None,
        min_fees: Fees | None = None,
        kind: str = "nav",
        replaces: int | None = None,
    ) -> Publication:
        """Commits and sends a new publication, then waits for it (replacing it when it is not
        mined in time). `nonce`/`min_fees`/`replaces` reuse a stuck publication's nonce: the new one
        replaces it (marked so in the same store transaction). Raises RpcUnreachable when the
        broadcast fails after the retries (the publication stays in the outbox, signed, for the
        next cycle's reconciliation)."""
        sender = self.account.address
        fresh_nonce = nonce is None
        if nonce is None:
            pending = self._rpc(lambda w3: w3.eth.get_transaction_count(sender, "pending"), "nonce")
            held = max(
                (p.nonce + 1 for p in self.store.unfinished_publications() if p.sender == sender), default=0
            )
            nonce = self.nonces.reserve(sender, pending, held)
        fees = prepared.fees
        if min_fees is not None:
            fees = bumped(min_fees, fees, self.rules) or fees
        try:
            signed = self._sign(prepared, nonce, fees)
            failpoints.hit(failpoints.BEFORE_OUTBOX)  # crash-test seams (publisher/failpoints.py)
            pid = self.store.create_publication(sender, nonce, report_ids, fund_ids, self.clock(), kind,
                                                signed=signed, replaces=replaces)  # fmt: skip
        except BaseException:
            if fresh_nonce:
                self.nonces.release(sender, nonce)
            raise
        attempt = self._last_attempt(pid)
        failpoints.hit(failpoints.AFTER_OUTBOX)
        try:
            self._broadcast_attempt(pid, attempt, prepared, nonce)
        except TransactionFailed:
            if fresh_nonce and self.store.publication(pid).status == "failed":  # type: ignore[union-attr]
                self.nonces.release(sender, nonce)  # refused by the node: the nonce never left
            raise
        return self.wait(pid, prepared)

    def _sign(self, prepared: Prepared, nonce: int, fees: Fees) -> SignedTx:
        tx: dict[str, Any] = {
            "to": prepared.to, "data": prepared.data, "gas": prepared.gas, "nonce": nonce,
            "chainId": prepared.chain_id, "value": 0, **fees.tx_fields(),
        }  # fmt: skip
        signed = self.account.sign_transaction(tx)
        return SignedTx(
            tx_hash="0x" + bytes(signed.hash).hex(), raw_tx="0x" + bytes(signed.raw_transaction).hex(),
            gas_limit=prepared.gas, max_fee=fees.max_fee, priority_fee=fees.priority_fee,
            gas_price=fees.gas_price,
        )  # fmt: skip

    def _sign_and_record(self, pid: int, prepared: Prepared, nonce: int, fees: Fees) -> Attempt:
        """Signs another attempt of a publication (a fee bump) and records it."""
        self.store.add_attempt(pid, self._sign(prepared, nonce, fees), self.clock())
        return self._last_attempt(pid)

    def _last_attempt(self, pid: int) -> Attempt:
        pub = self.store.publication(pid)
        assert pub is not None
        return pub.attempts[-1]

    def _broadcast_attempt(self, pid: int, attempt: Attempt, prepared: Prepared, nonce: int) -> Attempt:
        """Broadcasts `attempt`; answers that mean something are handled for what they mean."""
        for _ in range(self.settings.max_replacements + 1):
            try:
                self._send_raw(attempt.raw_tx, "send transaction")
            except Web3RPCError as exc:
                message = str(exc).lower()
                if "already known" in message or "already imported" in message:
                    pass  # the node has this very transaction: it was sent
                elif (
                    "replacement" in message and "underpriced" in message
                ) or "less than block base fee" in message:
                    # Another transaction holds this nonce with higher fees (ours from before a
                    # restart, usually), or the base fee rose since the fees were set: bump past
                    # both and sign again.
                    fresh = self._rpc(self._fresh_fees, "fees")
                    fees = bumped(fees_of(attempt), fresh, self.rules)
                    if fees is None:
                        raise TransactionFailed(
                            f"publication {pid}: replacement underpriced and fees at their cap"
                        ) from None
                    attempt = self._sign_and_record(pid, prepared, nonce, fees)
                    continue
                elif "nonce too low" in message:
                    # The nonce is used. If by one of ours, the outcome is in a receipt; if not,
                    # the publication was dropped. Settling tells which.
                    self.store.update_publication(pid, status="sent")
                    return attempt
                else:
                    self.store.update_publication(pid, status="failed", error=str(exc)[:500])
                    raise TransactionFailed(
                        f"publication {pid}: the node refused the transaction: {exc}"
                    ) from None
            self.store.update_publication(pid, status="sent")
            failpoints.hit(failpoints.AFTER_SEND)
            if self.hooks.after_broadcast:
                self.hooks.after_broadcast(attempt)
            return attempt
        raise TransactionFailed(f"publication {pid}: the node kept refusing replacements as underpriced")

    def _send_raw(self, raw_tx: str, what: str) -> None:
        self._rpc(lambda w3: w3.eth.send_raw_transaction(HexBytes(raw_tx)), what)

    # -- wait, replace, settle ---------------------------------------------------------------

    def wait(self, pid: int, prepared: Prepared | None) -> Publication:
        """Waits for a receipt of any attempt; replaces the transaction with higher fees when
        none comes in time (needs `prepared`, i.e. the payload). Returns the publication as it
        stands: confirmed, failed, dropped, or still sent when every replacement timed out."""
        replacements = 0
        while True:
            pub = self.store.publication(pid)
            assert pub is not None
            outcome = self._wait_once(pub)
            if outcome is not None:
                return outcome
            if prepared is None or replacements >= self.settings.max_replacements:
                log.warning("publication %s (nonce %s) not mined yet; it stays in the outbox", pid, pub.nonce)
                return pub
            fresh = self._rpc(self._fresh_fees, "fees")
            fees = bumped(fees_of(pub.attempts[-1]), fresh, self.rules)
            if fees is None:
                log.warning("publication %s: fees at their cap, not replaced", pid)
                return pub
            replacements += 1
            attempt = self._sign_and_record(pid, prepared, pub.nonce, fees)
            log.warning(
                "publication %s not mined in time: replaced with %s (fee cap %s)",
                pid,
                attempt.tx_hash,
                fees.cap,
            )
            self._broadcast_attempt(pid, attempt, prepared, pub.nonce)

    def _wait_once(self, pub: Publication) -> Publication | None:
        """Polls until a receipt (→ settled publication), a consumed nonce with none of ours
        mined (→ dropped), or the timeout (→ None)."""
        deadline = self.monotonic() + self.settings.receipt_timeout_s
        while True:
            settled = self.settle(pub)
            if settled is not None:
                return settled
            if self.monotonic() >= deadline:
                return None
            self.sleep(self.settings.receipt_poll_s)

    def settle(self, pub: Publication) -> Publication | None:
        """The publication's outcome if the chain knows it, else None (still pending)."""
        sender = self.account.address
        for attempt in reversed(pub.attempts):
            receipt = self.receipt(attempt.tx_hash)
            if receipt is not None:
                if not self._confirmed_enough(receipt):
                    return None
                failpoints.hit(failpoints.AFTER_RECEIPT)
                return self._record_receipt(pub, attempt, receipt)
        mined_nonce = self._rpc(lambda w3: w3.eth.get_transaction_count(sender, "latest"), "nonce")
        if mined_nonce > pub.nonce:
            # Our nonce was used and none of our hashes has a receipt: a transaction we did not
            # sign (or do not know) took it — unless the node has one of ours in a block. Anvil
            # under load has counted the nonce before its receipt, or even the transaction, was
            # findable: we look again, one poll apart, before calling it dropped (and its NAVs
            # sent again).
            for check in range(NONCE_TAKEN_CHECKS):
                if check:
                    self.sleep(self.settings.receipt_poll_s)
                if any(self.receipt(a.tx_hash) or self._known(a.tx_hash) for a in pub.attempts):
                    return None
            reason = f"nonce {pub.nonce} was used by a transaction that is none of this publication's"
            self.store.update_publication(pub.id, status="dropped", error=reason)
            log.warning("publication %s dropped: %s", pub.id, reason)
            return self.store.publication(pub.id)
        return None

    def receipt(self, tx_hash: str) -> TxReceipt | None:
        def get(w3: Web3) -> TxReceipt | None:
            try:
                return w3.eth.get_transaction_receipt(HexBytes(tx_hash))
            except TransactionNotFound:
                return None

        return self._rpc(get, "receipt")

    def _known(self, tx_hash: str) -> bool:
        """Whether the node has the transaction in a block (receipt or not)."""

        def get(w3: Web3) -> bool:
            try:
                return w3.eth.get_transaction(HexBytes(tx_hash)).get("blockNumber") is not None
            except TransactionNotFound:
                return False

        return self._rpc(get, "transaction")

    def _confirmed_enough(self, receipt: TxReceipt) -> bool:
        need = self.settings.confirmations
        if need <= 1:
            return True
        head = self._rpc(lambda w3: w3.eth.block_number, "block number")
        return head - receipt["blockNumber"] + 1 >= need

    def _record_receipt(self, pub: Publication, attempt: Attempt, receipt: TxReceipt) -> Publication:
        gas_used = int(receipt["gasUsed"])
        price = int(receipt.get("effectiveGasPrice") or attempt.gas_price or 0)
        values: dict[str, Any] = {
            "tx_hash": attempt.tx_hash,
            "block_number": int(receipt["blockNumber"]),
            "gas_used": gas_used,
            "effective_gas_price": price,
            "cost_wei": gas_used * price,
            "confirmed_at": self.clock(),
        }
        if receipt["status"] == 1:
            values["status"] = "confirmed"
        else:
            values["status"] = "failed"
            values["error"] = self._revert_reason(attempt, receipt)
        self.store.update_publication(pub.id, **values)
        settled = self.store.publication(pub.id)
        assert settled is not None
        return settled

    def _revert_reason(self, attempt: Attempt, receipt: TxReceipt) -> str:
        """Replays the mined transaction as a call at its block to name the custom error."""

        def replay(w3: Web3) -> str:
            tx = w3.eth.get_transaction(HexBytes(attempt.tx_hash))
            try:
                w3.eth.call({"from": tx["from"], "to": tx["to"], "data": tx["input"], "gas": tx["gas"]},
                            receipt["blockNumber"] - 1)  # fmt: skip
            except (ContractLogicError, Web3RPCError) as exc:
                decoded = revert_of(exc)
                if decoded is not None:
                    return f"reverted on-chain: {decoded}"
            return "reverted on-chain"

        try:
            return str(self._rpc(replay, "revert reason"))
        except (NavPubError, Web3RPCError):
            return "reverted on-chain"

    def receipt_of(self, pub: Publication) -> TxReceipt | None:
        return self.receipt(pub.tx_hash) if pub.tx_hash else None

    def rebroadcast(self, pub: Publication) -> None:
        """Sends the last signed attempt again (after a restart or a network failure)."""
        attempt = pub.attempts[-1]
        try:
            self._send_raw(attempt.raw_tx, "rebroadcast")
        except Web3RPCError as exc:
            message = str(exc).lower()
            if not any(k in message for k in ("already known", "already imported", "nonce too low")):
                raise
        self.store.update_publication(pub.id, status="sent")


def calldata_of(raw_tx: str) -> bytes:
    """The input data of a signed transaction (typed, EIP-2718, or legacy)."""
    raw = HexBytes(raw_tx)
    if raw and raw[0] <= 0x7F:  # a typed transaction starts with its type byte
        return bytes(TypedTransaction.from_bytes(raw).as_dict()["data"])
    return bytes(rlp.decode(bytes(raw))[5])  # legacy: nonce, gasPrice, gas, to, value, data, v, r, s


def fees_of(attempt: Attempt) -> Fees:
    if attempt.gas_price is not None:
        return Fees(gas_price=attempt.gas_price)
    return Fees(max_fee=attempt.max_fee, priority_fee=attempt.priority_fee)


def _reverted(what: str, exc: Exception) -> TransactionFailed:
    decoded = revert_of(exc)
    if decoded is None:
        return TransactionFailed(f"{what} would revert: {exc}")
    return TransactionFailed(f"{what} would revert: {decoded}", error_name=decoded.name, args=decoded.args)
