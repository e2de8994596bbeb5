"""A guardian's hand-computed NAV: the seed's "Recalculate manually" as an on-chain
transaction signed with the guardian's own key (`FundVault.correctNAV`), its reason in the
`NAVCorrected` event. With `reset_mark` it is also the audited way to repair a per-share
high-water mark that a bad NAV pushed up."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from web3.logs import DISCARD

from publisher._exceptions import InputError
from publisher.chain import check_funds, connect, contract_at, send
from publisher.config import Settings
from publisher.deployment import load_deployment
from publisher.keys import load_guardian
from publisher.store import Store

#: A reason is for people and auditors, logged on chain: one line, short enough to read.
MAX_REASON = 200


@dataclass(frozen=True)
class Correction:
    """What a correction put on chain."""

    fund_id: int
    nav: int
    nav_per_share: int
    as_of: int
    guardian: str
    tx_hash: str
    old_mark: int | None  # the mark before, when it was reset
    new_mark: int | None


def parse_nav(text: str) -> int:
    """An exact USD amount ("690000.25") → 18-decimal integer; more than 18 decimals, a negative
    or a non-number is refused, never rounded."""
    try:
        d = Decimal(text.strip())
    except InvalidOperation:
        raise InputError(f"--nav: {text!r} is not a number") from None
    if not d.is_finite() or d < 0:
        raise InputError(f"--nav: {text!r} is not a non-negative amount of USD")
    scaled = d.scaleb(18)
    if scaled != scaled.to_integral_value():
        raise InputError(f"--nav: {text!r} has more than 18 decimals")
    return int(scaled)


def check_reason(reason: str) -> str:
    text = " ".join(reason.split())
    if not text:
        raise InputError("--reason: a correction needs a reason (it is logged on chain)")
    if len(text) > MAX_REASON:
        raise InputError(f"--reason: {len(text)} characters; at most {MAX_REASON}")
    return text


def correct_nav(settings: Settings, fund_id: int, nav: int, reason: str, *, reset_mark: bool) -> Correction:
    """Sends the correction as the guardian, as of the chain's latest block time, and records the
    mark it leaves in the store (the engine learns marks from receipts it did not send here)."""
    reason = check_reason(reason)
    guardian = load_guardian(settings)
    w3 = connect(settings)
    deployment = load_deployment(settings, w3)
    vault = contract_at(w3, "FundVault", deployment.vault)
    check_funds(vault, [fund_id])
    as_of = int(w3.eth.get_block("latest")["timestamp"])
    call = vault.functions.correctNAV(fund_id, nav, as_of, 0, reset_mark, reason)
    receipt = send(w3, guardian, call, f"correctNAV({fund_id})")
    (corrected,) = vault.events.NAVCorrected().process_receipt(receipt, errors=DISCARD)
    per_share = int(corrected["args"]["navPerShare"])
    old_mark = new_mark = None
    for ev in vault.events.HighWaterMarkReset().process_receipt(receipt, errors=DISCARD):
        old_mark, new_mark = int(ev["args"]["oldMark"]), int(ev["args"]["newMark"])
    if new_mark is None:
        for ev in vault.events.HighWaterMarkUpdated().process_receipt(receipt, errors=DISCARD):
            new_mark = int(ev["args"]["newNAV"])
    if new_mark is not None:
        Store.for_settings(settings).set_high_water_mark(fund_id, new_mark, as_of)
    return Correction(
        fund_id=fund_id,
        nav=nav,
        nav_per_share=per_share,
        as_of=as_of,
        guardian=guardian.address,
        tx_hash="0x" + bytes(receipt["transactionHash"]).hex(),
        old_mark=old_mark,
        new_mark=new_mark,
    )
