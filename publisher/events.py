"""Following the vault's activity events (trades, deposits, withdrawals, fees, loans) from a
block cursor kept in the store, so a restart neither misses nor repeats one.

Every poll re-reads the last `REORG_DEPTH` blocks below the cursor: a trade moved to another
block by a short reorg is still seen, and since an event is remembered by its transaction
hash and log index, the same trade is never triggered twice.
"""

from __future__ import annotations

from collections.abc import Callable

from eth_utils import event_abi_to_log_topic
from web3 import Web3

from publisher.artifacts import load_artifact
from publisher.store import Store

ACTIVITY_EVENTS = (
    "Deposited", "Traded", "FeeAccrued", "FeeCollected", "Borrowed", "Repaid",
    "WithdrawalRequested", "WithdrawalPriced", "WithdrawalSettled",
)  # fmt: skip
# Ethereum mainnet reorgs deeper than a couple of blocks have not happened since the merge;
# 5 blocks of overlap is cheap (one eth_getLogs range) and covers L2 sequencer hiccups too.
REORG_DEPTH = 5
CURSOR = "cursor"


def activity_topics() -> list[str]:
    abi = load_artifact("FundVault").abi
    return [
        "0x" + event_abi_to_log_topic(e).hex()
        for e in abi
        if e.get("type") == "event" and e["name"] in ACTIVITY_EVENTS
    ]


class ActivityFollower:
    """Polls new activity events of one vault; returns the funds that had any."""

    def __init__(self, w3: Callable[[], Web3], vault: str, store: Store, start_block: int) -> None:
        self._w3 = w3
        self.vault = Web3.to_checksum_address(vault)
        self.store = store
        self.start_block = start_block
        self.topics = activity_topics()

    def cursor(self) -> int:
        """The last block fully processed (the block before the deployment at first)."""
        raw = self.store.get_state(CURSOR)
        return int(raw) if raw is not None else self.start_block - 1

    def poll(self) -> set[int]:
        w3 = self._w3()
        head = int(w3.eth.block_number)
        cursor = self.cursor()
        if head < cursor:
            # The chain is shorter than what we processed: a reorg (or a reverted test chain).
            cursor = max(self.start_block - 1, head - REORG_DEPTH)
        from_block = max(self.start_block, cursor - REORG_DEPTH + 1)
        if from_block > head:
            return set()
        logs = w3.eth.get_logs(
            {"address": self.vault, "fromBlock": from_block, "toBlock": head, "topics": [self.topics]}
        )
        events = [
            ("0x" + bytes(log["transactionHash"]).hex(), int(log["logIndex"]), int(log["blockNumber"]),
             int.from_bytes(bytes(log["topics"][1]), "big"))
            for log in logs
        ]  # fmt: skip
        return self.store.record_events(events, head, from_block - REORG_DEPTH)
