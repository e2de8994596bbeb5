"""One read of the chain per cycle: every due fund's holdings, liabilities and NAV state.

All funds come from a single ``getFundSnapshots`` eth_call pinned to one block, so every
number of a cycle describes the same instant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from web3 import Web3
from web3.contract import Contract
from web3.types import BlockData

FLAG_ESTIMATED = 1
# Set by a guardian or by the engine when its circuit breaker opens (FundVault.FLAG_PAUSED).
FLAG_PAUSED = 2


@dataclass(frozen=True)
class Holding:
    """One asset of a fund, in token units."""

    asset: str
    decimals: int
    amount: int


@dataclass(frozen=True)
class NavOnChain:
    """The NAV state the vault stores for a fund (18-decimal USD)."""

    nav: int
    as_of: int
    round: int
    flags: int
    high_water_mark: int

    @property
    def estimated(self) -> bool:
        return bool(self.flags & FLAG_ESTIMATED)

    @property
    def paused(self) -> bool:
        return bool(self.flags & FLAG_PAUSED)

    @property
    def published(self) -> bool:
        return self.round > 0


@dataclass(frozen=True)
class FundSnapshot:
    """Everything the engine reads about one fund at one block."""

    fund_id: int
    manager: str
    holdings: tuple[Holding, ...]
    pending_fees: int
    pending_withdrawals: int
    borrowed: int
    total_shares: int
    queued_shares: int
    activity: int
    nav: NavOnChain

    @property
    def liabilities(self) -> int:
        """Pending fees + priced, unpaid withdrawals + borrowed (18-decimal USD)."""
        return self.pending_fees + self.pending_withdrawals + self.borrowed


@dataclass(frozen=True)
class ChainSnapshot:
    """The funds read at `block_number`, whose timestamp is `block_timestamp`."""

    block_number: int
    block_timestamp: int
    funds: tuple[FundSnapshot, ...]


def _fund(raw: Any) -> FundSnapshot:
    (fund_id, manager, assets, decimals, amounts, fees, withdrawals, borrowed, shares, queued, activity,
     nav, as_of, rnd, flags, hwm) = raw  # fmt: skip
    return FundSnapshot(
        fund_id=fund_id,
        manager=manager,
        holdings=tuple(Holding(a, d, x) for a, d, x in zip(assets, decimals, amounts, strict=True)),
        pending_fees=fees,
        pending_withdrawals=withdrawals,
        borrowed=borrowed,
        total_shares=shares,
        queued_shares=queued,
        activity=activity,
        nav=NavOnChain(nav=nav, as_of=as_of, round=rnd, flags=flags, high_water_mark=hwm),
    )


def read_snapshot(
    w3: Web3, vault: Contract, fund_ids: Sequence[int] | None = None, block: BlockData | None = None
) -> ChainSnapshot:
    """Reads `fund_ids` (default: every fund) at `block` (default: the latest), in one call."""
    block = block if block is not None else w3.eth.get_block("latest")
    number = int(block["number"])
    if fund_ids is None:
        fund_ids = range(1, vault.functions.fundCount().call(block_identifier=number) + 1)
    ids = list(fund_ids)
    raw = vault.functions.getFundSnapshots(ids).call(block_identifier=number) if ids else []
    return ChainSnapshot(number, int(block["timestamp"]), tuple(_fund(r) for r in raw))
