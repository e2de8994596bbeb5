"""Publish, skip, hold or fail: the decision for one fund's NAV. Pure: valuation, the fund's
last published state, its guard state and the time in; a decision and the next state out.

Rules, in order:
1. No valuation (an asset could not be priced) or a negative NAV → fail, with an alert.
2. Circuit breaker: every failed or estimated cycle counts; after `breaker_after`
   consecutive ones (default 3) the breaker opens and nothing is published for the fund.
   It closes by itself on the first cycle whose prices are all live and confident. Opening
   and closing are alerted once each.
3. Jump guard: the NAV moved more than `jump_threshold_bps` (30 %, strictly more) from the
   last published NAV while the fund's activity counter did not change → hold. A held report
   is published only after `navpub approve` or superseded by a later report that passes.
   The same jump seen again (same activity, same last round) is not alerted again.
   After an outage the baseline is old: when the last NAV is older than
   `jump_baseline_max_age_s` (default 6 h), the allowed move grows with the time elapsed,
   at `jump_hourly_bps` (default 5 %) per hour since the baseline, never below 30 %, up to
   `jump_max_bps` (default 100 %), measured both ways alike (a fall is measured as the rise
   back: −50 % counts as 100 %). So a fund is not locked by a move that accumulated while
   nothing could be published, while a move beyond the cap — a tenfold pump after a three-day
   outage, or a fall to a tenth — is still held for a person. An emergency trigger never
   bypasses this guard.
4. Skip: the change is below `skip_change_bps` (1 %, strictly less), the heartbeat (the
   fund's cadence) has not elapsed since the last NAV, the estimated flag is unchanged,
   and the trigger is neither an emergency nor forced (`publish --force`) → skip.
5. Otherwise publish, with the estimated flag when a cached price was used.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Literal

from publisher.money import fmt_usd
from publisher.snapshot import NavOnChain
from publisher.value import Valuation

Action = Literal["publish", "skip", "hold", "fail"]
Trigger = Literal["scheduled", "emergency", "manual", "forced"]
BPS = 10_000


@dataclass(frozen=True)
class GuardRules:
    jump_threshold_bps: int = 3000
    skip_change_bps: int = 100
    heartbeat_s: int = 3600
    jump_baseline_max_age_s: int = 6 * 3600
    jump_hourly_bps: int = 500
    jump_max_bps: int = 10_000
    breaker_after: int = 3


@dataclass(frozen=True)
class FundGuardState:
    """What the guard remembers about a fund between cycles (persisted in the store)."""

    consecutive_bad: int = 0
    breaker_open: bool = False
    # The activity counter and on-chain round of the jump last alerted, so the same jump is
    # not alerted twice.
    held_activity: int | None = None
    held_round: int | None = None


@dataclass(frozen=True)
class Alert:
    kind: str  # breaker_open, breaker_closed, held, oracle_failure, negative_nav
    message: str


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    estimated: bool
    state: FundGuardState
    alerts: tuple[Alert, ...] = ()
    change_bps: int | None = None


def pct(bps: int) -> str:
    """Basis points as an exact percentage string: 1234 → "12.34 %"."""
    return f"{Decimal(bps).scaleb(-2):f} %"


def change_bps(nav: int, last: int) -> int | None:
    """|nav − last| in basis points of last, rounded down; None without a baseline."""
    if last <= 0:
        return None
    return abs(nav - last) * BPS // last


def allowed_jump_bps(rules: GuardRules, baseline_age_s: int) -> int:
    """The move the jump guard lets through for a baseline this old."""
    if baseline_age_s <= rules.jump_baseline_max_age_s:
        return rules.jump_threshold_bps
    grown = rules.jump_hourly_bps * baseline_age_s // 3600
    return max(rules.jump_threshold_bps, min(grown, rules.jump_max_bps))


def beyond(nav: int, last: int, allowed_bps: int, *, symmetric: bool) -> bool:
    """Whether nav moved strictly more than `allowed_bps` from last, compared exactly. With
    `symmetric` a fall is measured as the rise back to last (−50 % is 100 %): the stale-baseline
    allowance grows large, and a fall measured the plain way could never exceed 100 %."""
    if symmetric and nav < last:
        return (last - nav) * BPS > allowed_bps * nav
    return abs(nav - last) * BPS > allowed_bps * last


def decide(
    valuation: Valuation | None,
    failure: Alert | None,
    last: NavOnChain,
    last_activity: int | None,
    state: FundGuardState,
    now: int,
    trigger: Trigger,
    rules: GuardRules,
) -> Decision:
    """The decision for one fund this cycle.

    `failure` says why there is no valuation (kind oracle_failure or valuation_failed).
    `last_activity` is the fund's activity counter when its last NAV was published (None when
    unknown: then any jump counts as unexplained).
    """
    if valuation is None:
        problem = failure or Alert("valuation_failed", "no valuation")
        return _bad(state, "fail", problem.message, rules, estimated=False, alert=problem)
    if valuation.nav < 0:
        reason = (
            f"negative NAV: assets {fmt_usd(valuation.gross)} < liabilities "
            f"{fmt_usd(valuation.liabilities.total)}"
        )
        return _bad(state, "fail", reason, rules, estimated=False, alert=Alert("negative_nav", reason))

    alerts: list[Alert] = []
    if valuation.estimated:
        if state.breaker_open:
            return _bad(state, "fail", "circuit breaker open: prices still estimated", rules, estimated=True)
        bad = _bad(state, "publish", "estimated NAV (cached prices)", rules, estimated=True)
        if bad.state.breaker_open:
            return replace(bad, action="fail", reason=bad.alerts[0].message)
        state = bad.state
    else:
        if state.breaker_open:
            alerts.append(
                Alert(
                    "breaker_closed",
                    f"circuit breaker closed: prices healthy again (NAV {fmt_usd(valuation.nav)})",
                )
            )
        state = replace(state, consecutive_bad=0, breaker_open=False)

    moved = change_bps(valuation.nav, last.nav) if last.published else None
    if moved is not None:
        age = max(0, now - last.as_of)
        allowed = allowed_jump_bps(rules, age)
        unexplained = last_activity is None or last_activity == valuation.activity
        stale = age > rules.jump_baseline_max_age_s
        # Strictly more than the threshold, compared exactly (moved is rounded down).
        if unexplained and beyond(valuation.nav, last.nav, allowed, symmetric=stale):
            reason = (
                f"NAV moved {pct(moved)} ({fmt_usd(last.nav)} → {fmt_usd(valuation.nav)}) "
                f"with no fund activity since the last NAV; limit {pct(allowed)}"
            )
            seen = state.held_activity == valuation.activity and state.held_round == last.round
            if not seen:
                alerts.append(Alert("held", reason + "; approve with `navpub approve --fund N`"))
            state = replace(state, held_activity=valuation.activity, held_round=last.round)
            return Decision("hold", reason, valuation.estimated, state, tuple(alerts), moved)
        state = replace(state, held_activity=None, held_round=None)

        since = now - last.as_of
        if (
            trigger not in ("emergency", "forced")
            and abs(valuation.nav - last.nav) * BPS < rules.skip_change_bps * last.nav
            and since < rules.heartbeat_s
            and valuation.estimated == last.estimated
        ):
            reason = (
                f"change {pct(moved)} below {pct(rules.skip_change_bps)} and heartbeat not due "
                f"({since} s of {rules.heartbeat_s} s)"
            )
            return Decision("skip", reason, valuation.estimated, state, tuple(alerts), moved)

    reason = "first NAV" if not last.published else f"change {pct(moved)}" if moved is not None else "publish"
    if trigger in ("emergency", "forced"):
        reason += f" ({trigger} trigger)"
    if valuation.estimated:
        reason += "; estimated (cached prices)"
    return Decision("publish", reason, valuation.estimated, state, tuple(alerts), moved)


def _bad(state: FundGuardState, action: Action, reason: str, rules: GuardRules, *, estimated: bool,
         alert: Alert | None = None) -> Decision:  # fmt: skip
    """Counts one failed or estimated cycle; opens the breaker when the count reaches the limit."""
    count = state.consecutive_bad + 1
    alerts = [alert] if alert else []
    opens = not state.breaker_open and count >= rules.breaker_after
    if opens:
        alerts.insert(
            0,
            Alert("breaker_open", f"circuit breaker open after {count} failed or estimated cycles: {reason}"),
        )
    new = replace(state, consecutive_bad=count, breaker_open=state.breaker_open or opens)
    return Decision(action, reason, estimated, new, tuple(alerts))
