"""The guard with plain data: jump (exactly 30 %), stale baseline, skip (1 %, heartbeat), breaker."""

from __future__ import annotations

from dataclasses import replace

import pytest

from publisher.guard import Alert, FundGuardState, GuardRules, allowed_jump_bps, decide
from publisher.snapshot import NavOnChain
from publisher.value import Liabilities, Valuation

E18 = 10**18
NOW = 1_800_000_000
RULES = GuardRules()
LAST = NavOnChain(nav=1_000_000 * E18, as_of=NOW - 3600, round=7, flags=0, high_water_mark=1_000_000 * E18)


def val(nav: int, *, activity: int = 5, estimated: bool = False) -> Valuation:
    return Valuation(
        fund_id=1, gross=nav, liabilities=Liabilities(0, 0, 0, 0), nav=nav, total_shares=E18,
        queued_shares=0, nav_per_share=nav, collateral=nav, net_collateral=nav, estimated=estimated,
        activity=activity, assets=(),
    )  # fmt: skip


def run(
    v: Valuation | None,
    *,
    last: NavOnChain = LAST,
    last_activity: int | None = 5,
    state: FundGuardState | None = None,
    trigger: str = "scheduled",
    now: int = NOW,
    failure: Alert | None = None,
):
    return decide(v, failure, last, last_activity, state or FundGuardState(), now, trigger, RULES)  # type: ignore[arg-type]


def test_first_nav_is_published() -> None:
    d = run(val(500 * E18), last=NavOnChain(0, 0, 0, 0, 0))
    assert (d.action, d.reason) == ("publish", "first NAV")


@pytest.mark.parametrize(("nav", "action"), [
    (1_300_000 * E18, "publish"),  # exactly +30 %: not more than 30 %
    (1_300_000 * E18 + 1, "hold"),
    (700_000 * E18, "publish"),  # exactly −30 %
    (700_000 * E18 - 1, "hold"),
])  # fmt: skip
def test_jump_guard_boundary_at_exactly_30_percent(nav: int, action: str) -> None:
    assert run(val(nav)).action == action


def test_jump_with_activity_is_explained_and_published() -> None:
    d = run(val(1_400_000 * E18, activity=6))
    assert d.action == "publish"


def test_jump_with_unknown_baseline_activity_is_held() -> None:
    d = run(val(1_400_000 * E18), last_activity=None)
    assert d.action == "hold" and "no fund activity" in d.reason


def test_emergency_trigger_never_bypasses_the_jump_guard() -> None:
    assert run(val(1_400_000 * E18), trigger="emergency").action == "hold"


def test_the_same_jump_is_alerted_once() -> None:
    first = run(val(1_400_000 * E18))
    assert first.action == "hold" and [a.kind for a in first.alerts] == ["held"]
    again = run(val(1_410_000 * E18), state=first.state)
    assert again.action == "hold" and again.alerts == ()
    # A later NAV that passes clears the memory, so a new jump is alerted again.
    passed = run(val(1_010_000 * E18, activity=6), state=again.state)
    assert passed.state.held_activity is None


def test_stale_baseline_allows_an_hourly_rate_so_a_fund_is_not_locked_forever() -> None:
    day_old = replace(LAST, as_of=NOW - 24 * 3600)
    assert allowed_jump_bps(RULES, 6 * 3600) == 3000
    assert allowed_jump_bps(RULES, 24 * 3600) == 10_000  # 5 %/h × 24 h = 120 %, capped at 100 %
    assert run(val(1_900_000 * E18), last=day_old).action == "publish"  # +90 % after a day
    assert run(val(2_300_000 * E18), last=day_old).action == "hold"  # +130 % is still held


def test_a_stale_baseline_allowance_is_capped_both_ways() -> None:
    """After three days 5 %/h would allow +360 % and, measured plainly, any fall at all; the cap
    (100 %, falls measured as the rise back) holds a pump or a crash for a person."""
    three_days = replace(LAST, as_of=NOW - 72 * 3600)
    assert allowed_jump_bps(RULES, 72 * 3600) == 10_000
    assert run(val(1_400_000 * E18), last=three_days).action == "publish"  # +40 %
    assert run(val(2_000_000 * E18), last=three_days).action == "publish"  # exactly +100 %: not more
    assert run(val(2_000_001 * E18), last=three_days).action == "hold"
    assert run(val(4_600_000 * E18), last=three_days).action == "hold"  # +360 %
    assert run(val(600_000 * E18), last=three_days).action == "publish"  # −40 % is +66.7 % back
    assert run(val(500_000 * E18), last=three_days).action == "publish"  # −50 % is exactly +100 % back
    assert run(val(499_999 * E18), last=three_days).action == "hold"
    assert run(val(100_000 * E18), last=three_days).action == "hold"  # a fall to a tenth
    # Within the normal window a fall is measured plainly, as the seed's 30 % rule says.
    assert run(val(700_000 * E18)).action == "publish" and run(val(699_999 * E18)).action == "hold"


@pytest.mark.parametrize(("nav", "since", "action"), [
    (1_009_999 * E18, 3599, "skip"),  # < 1 % and heartbeat not due
    (1_010_000 * E18, 3599, "publish"),  # exactly 1 %: not below
    (1_009_999 * E18, 3600, "publish"),  # heartbeat due
])  # fmt: skip
def test_skip_rule_boundaries(nav: int, since: int, action: str) -> None:
    d = run(val(nav), last=replace(LAST, as_of=NOW - since))
    assert d.action == action
    if action == "skip":
        assert "below 1.00 %" in d.reason and "heartbeat not due" in d.reason


def test_emergency_bypasses_the_skip_rule() -> None:
    d = run(val(1_000_001 * E18), last=replace(LAST, as_of=NOW - 60), trigger="emergency")
    assert d.action == "publish" and "emergency" in d.reason


def test_change_of_estimated_flag_is_published() -> None:
    d = run(val(1_000_001 * E18, estimated=True), last=replace(LAST, as_of=NOW - 60))
    assert d.action == "publish" and d.estimated


def test_negative_nav_fails_with_an_alert() -> None:
    d = run(val(-1))
    assert d.action == "fail" and d.alerts[0].kind == "negative_nav"


def test_breaker_opens_after_three_bad_cycles_and_closes_when_healthy() -> None:
    oracle = Alert("oracle_failure", "BTC: cannot be priced")
    s1 = run(val(1_000_000 * E18, estimated=True), last=replace(LAST, as_of=NOW - 7200))
    assert s1.action == "publish" and s1.state.consecutive_bad == 1
    s2 = run(None, failure=oracle, state=s1.state)
    assert (
        s2.action == "fail"
        and not s2.state.breaker_open
        and [a.kind for a in s2.alerts] == ["oracle_failure"]
    )
    s3 = run(val(1_000_000 * E18, estimated=True), state=s2.state, last=replace(LAST, as_of=NOW - 7200))
    assert s3.action == "fail" and s3.state.breaker_open
    assert [a.kind for a in s3.alerts] == ["breaker_open"]
    s4 = run(val(1_000_000 * E18, estimated=True), state=s3.state, last=replace(LAST, as_of=NOW - 7200))
    assert s4.action == "fail" and s4.alerts == ()  # open: no publishing, no repeated alert
    s5 = run(val(1_000_000 * E18), state=s4.state, last=replace(LAST, as_of=NOW - 7200))
    assert s5.action == "publish" and not s5.state.breaker_open and s5.state.consecutive_bad == 0
    assert [a.kind for a in s5.alerts] == ["breaker_closed"]
