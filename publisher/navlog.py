"""The NAV history from the chain's logs: one AnalyticsHub `NAVRecorded` event per accepted NAV
(fund id as a topic; round, NAV, NAV per share, asOf and flags as data), whether the NAV was
published alone or in a batch. The vault emits the seed's `NAVUpdated` for the same NAVs."""

from __future__ import annotations

from dataclasses import dataclass

from web3.contract import Contract


@dataclass(frozen=True)
class NavRecord:
    """One accepted NAV (18-decimal USD) and where it was logged."""

    fund_id: int
    round: int
    nav: int
    nav_per_share: int
    timestamp: int  # the NAV's asOf
    flags: int
    block_number: int
    log_index: int


def nav_records(hub: Contract, fund_id: int | None = None, from_block: int = 0) -> list[NavRecord]:
    """Every NAV the hub recorded since `from_block` (of one fund, by topic, or all), in chain
    order."""
    logs = hub.events.NAVRecorded().get_logs(
        from_block=from_block, argument_filters={"fundId": fund_id} if fund_id is not None else None
    )
    out = [
        NavRecord(
            a["fundId"],
            a["round"],
            a["nav"],
            a["navPerShare"],
            a["asOf"],
            a["flags"],
            e["blockNumber"],
            e["logIndex"],
        )
        for e in logs
        for a in (e["args"],)
    ]
    return sorted(out, key=lambda r: (r.block_number, r.log_index))
