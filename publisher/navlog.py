"""The NAV history the AnalyticsHub logs: `NAVRecorded` for a single update and one
`NAVBatchRecorded` per batch (one packed word per fund), read back as one series."""

from __future__ import annotations

from dataclasses import dataclass

from web3.contract import Contract

MASK_128 = (1 << 128) - 1


@dataclass(frozen=True)
class NavRecord:
    """One recorded NAV (18-decimal USD) and where it was logged."""

    fund_id: int
    nav: int
    timestamp: int
    flags: int | None  # a batch word carries them; a single record does not
    block_number: int
    log_index: int


def unpack_nav_update(word: int) -> tuple[int, int, int, int]:
    """(fund id, NAV, asOf, flags) of a batch word (see publish.pack_nav_update)."""
    return word >> 192, word & MASK_128, (word >> 144) & ((1 << 48) - 1), (word >> 128) & 0xFFFF


def nav_records(hub: Contract, fund_id: int | None = None, from_block: int = 0) -> list[NavRecord]:
    """Every NAV the hub logged since `from_block` (of one fund, or all), in chain order."""
    out = []
    singles = hub.events.NAVRecorded().get_logs(
        from_block=from_block, argument_filters={"fundId": fund_id} if fund_id is not None else None
    )
    for e in singles:
        a = e["args"]
        out.append(NavRecord(a["fundId"], a["nav"], a["timestamp"], None, e["blockNumber"], e["logIndex"]))
    for e in hub.events.NAVBatchRecorded().get_logs(from_block=from_block):
        for word in e["args"]["records"]:
            fid, nav, as_of, flags = unpack_nav_update(word)
            if fund_id is None or fid == fund_id:
                out.append(NavRecord(fid, nav, as_of, flags, e["blockNumber"], e["logIndex"]))
    return sorted(out, key=lambda r: (r.block_number, r.log_index))
