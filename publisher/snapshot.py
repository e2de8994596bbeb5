"""One read of the chain per cycle: every due fund's holdings, liabilities and NAV state.

All funds come from ``getFundSnapshots`` eth_calls pinned to one block, so every number of a
cycle describes the same instant. Two JSON-RPC round trips whatever the number of funds: the
latest block (with the vault's fund count), then the count and every chunk of funds at that
block in one batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.exceptions import DecodingError
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError
from web3.types import BlockData

from publisher._exceptions import ChainError
from publisher.sources.onchain import batch_call, reader

FLAG_ESTIMATED = 1
# Set by a guardian or by the engine when its circuit breaker opens (FundVault.FLAG_PAUSED).
FLAG_PAUSED = 2
# Set with FLAG_PAUSED when the pause is the engine's own ripcord (FundVault.FLAG_ENGINE_PAUSE);
# without it the pause is a guardian's, which the vault lets only a guardian lift.
FLAG_ENGINE_PAUSE = 4
# Funds per getFundSnapshots eth_call. Nodes cap an eth_call's gas (anvil and many providers
# at the block gas limit, 30M on mainnet; geth at 50M) and a fund costs about 6,700 gas per
# asset held (13.4M for 100 funds of 20 assets, measured by bench/cycle.py): 32 funds of the
# vault's maximum 64 assets stay near 14M. The chunks share one JSON-RPC batch.
SNAPSHOT_CHUNK = 32


@dataclass(frozen=True)
class Holding:
    """One asset of a fund, in token units."""

    asset: str
    decimals: int
    amount: int


@dataclass(frozen=True)
class NavOnChain:
    """The NAV state the vault stores for a fund (18-decimal USD). NAV per share is the NAV
    over `nav_shares`, the share supply it was published at (flows since do not move it), and
    `high_water_mark` is the highest NAV per share published: marks are per share."""

    nav: int
    as_of: int
    round: int
    flags: int
    high_water_mark: int
    nav_shares: int = 0
    nav_per_share: int = 0

    @property
    def estimated(self) -> bool:
        return bool(self.flags & FLAG_ESTIMATED)

    @property
    def paused(self) -> bool:
        return bool(self.flags & FLAG_PAUSED)

    @property
    def engine_paused(self) -> bool:
        """Paused by the engine's own ripcord, which the engine may lift."""
        return self.paused and bool(self.flags & FLAG_ENGINE_PAUSE)

    @property
    def published(self) -> bool:
        return self.round > 0

    @property
    def per_share(self) -> int | None:
        """NAV per share as published (18 decimals, rounded down); None before the first NAV
        and for a NAV published while the fund had no shares."""
        return self.nav_per_share if self.published and self.nav_shares else None


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
    share_version: int = 0  # +1 at every change of total_shares; a NAV carries the one it used

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


def _fund(raw: Any, asked: int, vault: str) -> FundSnapshot:
    """One decoded getFundSnapshots row. A row that contradicts itself or the request (arrays of
    different lengths, another fund than asked) is a vault this engine must not value: a
    ChainError saying so, never a half-read fund."""
    (fund_id, manager, assets, decimals, amounts, fees, withdrawals, borrowed, shares, queued, activity,
     nav, as_of, rnd, flags, hwm, nav_shares, nav_per_share, share_version) = raw  # fmt: skip
    if fund_id != asked:
        raise ChainError(
            f"getFundSnapshots of the vault at {vault} answered fund {fund_id} where {asked} was asked"
        )
    if not len(assets) == len(decimals) == len(amounts):
        raise ChainError(
            f"getFundSnapshots of the vault at {vault}: fund {fund_id} has {len(assets)} assets but "
            f"{len(decimals)} decimals and {len(amounts)} amounts"
        )
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
        nav=NavOnChain(
            nav=nav,
            as_of=as_of,
            round=rnd,
            flags=flags,
            high_water_mark=hwm,
            nav_shares=nav_shares,
            nav_per_share=nav_per_share,
        ),
        share_version=share_version,
    )


def _latest(w3: Web3, vault: Contract, with_count: bool) -> tuple[BlockData, int | None]:
    """The latest block and, with `with_count`, the vault's fund count: one round trip.

    The count is asked first, so on a node that answers a batch in order it can only be the
    count at that block or lower (a fund is never deleted): a hint, checked at the block.
    """
    client = reader(w3)
    if not with_count:
        return client.eth.get_block("latest"), None
    with client.batch_requests() as batch:
        batch.add(client.eth.call({"to": vault.address, "data": vault.encode_abi("fundCount", [])}, "latest"))
        batch.add(client.eth.get_block("latest"))
        raw_count, latest = batch.execute()
    try:
        (count,) = w3.codec.decode(["uint256"], bytes(raw_count))  # type: ignore[arg-type]
    except DecodingError as exc:
        raise _undecodable(vault, "fundCount", exc) from None
    return latest, int(count)  # type: ignore[return-value]


def _undecodable(vault: Contract, what: str, exc: Exception) -> ChainError:
    # An address with code that is not a FundVault (a wrong deployment.json, a proxy pointing
    # elsewhere) answers with empty or foreign data.
    return ChainError(
        f"{what} of the vault at {vault.address} returned data that does not decode ({exc}); "
        "is that address a FundVault of this version?"
    )


def _snapshots(
    w3: Web3, vault: Contract, ids: Sequence[int], number: int, *, with_count: bool
) -> tuple[int | None, list[FundSnapshot]]:
    """(fund count at `number` if asked, the snapshots of `ids`), in one JSON-RPC batch."""
    chunks = [list(ids[i : i + SNAPSHOT_CHUNK]) for i in range(0, len(ids), SNAPSHOT_CHUNK)]
    calls: list[tuple[Contract, str, list[Any]]] = [(vault, "fundCount", [])] if with_count else []
    calls += [(vault, "getFundSnapshots", [chunk]) for chunk in chunks]
    try:
        answers = batch_call(w3, calls, number)
    except DecodingError as exc:
        raise _undecodable(
            vault, "fundCount / getFundSnapshots" if with_count else "getFundSnapshots", exc
        ) from None
    count = int(answers.pop(0)) if with_count else None
    rows = [raw for chunk in answers for raw in chunk]
    if len(rows) != len(ids):
        raise ChainError(
            f"getFundSnapshots of the vault at {vault.address} answered {len(rows)} funds "
            f"for {len(ids)} asked"
        )
    return count, [_fund(raw, fid, vault.address) for raw, fid in zip(rows, ids, strict=True)]


def read_snapshot(
    w3: Web3,
    vault: Contract,
    fund_ids: Sequence[int] | None = None,
    block: BlockData | None = None,
    *,
    count_hint: int | None = None,
) -> ChainSnapshot:
    """Reads `fund_ids` (default: every fund) at `block` (default: the latest).

    Every fund: the block comes with the fund count as a hint (`count_hint` stands in for it
    when `block` is given), then the count at the block and the snapshots of funds 1 to the
    hint in one batch; funds the hint missed are read at the same block after that, and a
    hint beyond the count (a reorg, a node answering out of order) means reading again from
    the count.
    """
    every = fund_ids is None
    if block is None:
        block, hint = _latest(w3, vault, with_count=every and count_hint is None)
        count_hint = count_hint if hint is None else hint
    number = int(block["number"])
    if fund_ids is not None:
        funds = _snapshots(w3, vault, list(fund_ids), number, with_count=False)[1]
    else:
        guess = count_hint or 0
        try:
            count, funds = _snapshots(w3, vault, range(1, guess + 1), number, with_count=True)
        except ContractLogicError:
            # Funds 1..hint do not all exist at this block: read from the count itself.
            count, funds = _snapshots(w3, vault, [], number, with_count=True)
            guess = 0
        assert count is not None
        if count > guess:
            funds += _snapshots(w3, vault, range(guess + 1, count + 1), number, with_count=False)[1]
    return ChainSnapshot(number, int(block["timestamp"]), tuple(funds))
