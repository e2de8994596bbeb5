"""The schedule with a fake clock: standard → high volatility → standard, hours in milliseconds."""

from __future__ import annotations

import itertools

from publisher.schedule import FundSchedule, ScheduleRules, hourly_move_bps, trim, update_mode

E18 = 10**18
RULES = ScheduleRules()


def test_due_at_the_cadence_exactly() -> None:
    s = FundSchedule(1)
    assert s.due(0, RULES)  # never run: due now
    s = FundSchedule(1, last_run=1_000)
    assert not s.due(1_000 + 3_599, RULES) and s.due(1_000 + 3_600, RULES)
    hot = FundSchedule(1, last_run=1_000, high_volatility=True)
    assert not hot.due(1_000 + 899, RULES) and hot.due(1_000 + 900, RULES)
    assert hot.next_due(RULES) == 1_900


def test_hourly_move_against_the_last_hour() -> None:
    samples = [(0, 100 * E18), (1_800, 103 * E18), (3_600, 106 * E18)]
    assert hourly_move_bps(samples, 3_600) == 600  # 106 vs 100, an hour ago exactly
    assert hourly_move_bps(samples, 5_399) == 600  # 100 is still the price "an hour ago"
    assert hourly_move_bps(samples, 7_201) == 291  # 103 (at 1,800) is now the price an hour ago
    assert hourly_move_bps([(0, 100 * E18)], 10) == 0
    assert hourly_move_bps([(0, 100 * E18), (5_000, 94 * E18)], 5_000) == 600  # the newest older one
    assert trim(samples, 3_600 + 7_200) == [(3_600, 106 * E18)]


def test_standard_then_high_volatility_then_standard_over_simulated_hours() -> None:
    """A fake clock walks six hours; BTC jumps 8 % in hour 2 and is flat afterwards."""
    state, samples, log = FundSchedule(1), [], []
    runs = []
    now = 0
    price = 100 * E18
    while now <= 6 * 3600:
        if state.due(now, RULES):
            if 3600 <= now < 2 * 3600 + 1:
                price = 108 * E18 if now >= 3600 else price
            samples = trim([*samples, (now, price)], now)
            state, why = update_mode(state, {"BTC": hourly_move_bps(samples, now)}, ["BTC", "USDC"], RULES)
            if why:
                log.append((now, why.split(":")[0]))
            state = FundSchedule(1, now, state.high_volatility)
            runs.append(now)
        now += 60  # the keeper ticks every minute
    assert log == [(3600, "high volatility"), (7200, "calm again")]  # each switch once
    gaps = [b - a for a, b in itertools.pairwise(runs)]
    assert gaps[:1] == [3600] and 900 in gaps and gaps[-1] == 3600


def test_switch_is_reported_once() -> None:
    state, why = update_mode(FundSchedule(1), {"ETH": 900}, ["ETH"], RULES)
    assert state.high_volatility and why is not None and "ETH moved 900 bps" in why
    again, why2 = update_mode(state, {"ETH": 950}, ["ETH"], RULES)
    assert again.high_volatility and why2 is None
    unrelated, why3 = update_mode(FundSchedule(2), {"ETH": 900}, ["XAUT"], RULES)
    assert not unrelated.high_volatility and why3 is None
