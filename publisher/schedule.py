"""When each fund is due (seed nav-update-process.md, "Frequency"). Pure: state and a clock in.

- Standard cadence: every `cadence_s` (3600 s).
- High volatility: every `high_volatility_cadence_s` (900 s) while one of the fund's assets
  moved more than `volatility_threshold_bps` over the last hour; back to standard once no
  asset did. Each switch is reported once, for the log and the alert.
- Emergency: an activity event on the vault (or `navpub trigger`) publishes at once; that is
  the keeper's business, not the schedule's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

HOUR = 3600


@dataclass(frozen=True)
class ScheduleRules:
    cadence_s: int = 3600
    high_volatility_cadence_s: int = 900
    # 5 % in an hour: a move the hourly NAV would lag by a meaningful amount (and half of the
    # 10 % deviation limit, so it is a market move, not a broken source).
    volatility_threshold_bps: int = 500


@dataclass(frozen=True)
class FundSchedule:
    fund_id: int
    last_run: int | None = None
    high_volatility: bool = False

    def cadence(self, rules: ScheduleRules) -> int:
        return rules.high_volatility_cadence_s if self.high_volatility else rules.cadence_s

    def due(self, now: int, rules: ScheduleRules) -> bool:
        return self.last_run is None or now - self.last_run >= self.cadence(rules)

    def next_due(self, rules: ScheduleRules) -> int | None:
        return None if self.last_run is None else self.last_run + self.cadence(rules)


Sample = tuple[int, int]  # (time, 18-decimal price)


def hourly_move_bps(samples: Sequence[Sample], now: int) -> int:
    """The largest move of the latest price against the prices of the last hour, in basis
    points of the older price (rounded down). The price "an hour ago" is the newest sample
    at least an hour old (up to two hours), so sparse samples still span the hour."""
    if not samples:
        return 0
    ordered = sorted(samples)
    p_last = ordered[-1][1]
    earlier = ordered[:-1]
    window = [p for t, p in earlier if now - t < HOUR]
    an_hour_ago = [p for t, p in earlier if HOUR <= now - t <= 2 * HOUR]
    window += an_hour_ago[-1:]
    return max((abs(p_last - p) * 10_000 // p for p in window if p > 0), default=0)


def trim(samples: Sequence[Sample], now: int) -> list[Sample]:
    """Samples still useful: the last two hours."""
    return [s for s in samples if now - s[0] <= 2 * HOUR]


def update_mode(
    state: FundSchedule, moves: Mapping[str, int], assets: Sequence[str], rules: ScheduleRules
) -> tuple[FundSchedule, str | None]:
    """The fund's mode given its assets' hourly moves; the second value says why it switched
    (None when it did not)."""
    hot = {a: moves[a] for a in assets if moves.get(a, 0) > rules.volatility_threshold_bps}
    if hot and not state.high_volatility:
        worst = max(hot, key=hot.__getitem__)
        why = (
            f"high volatility: {worst} moved {hot[worst]} bps in the last hour "
            f"(limit {rules.volatility_threshold_bps}); publishing every {rules.high_volatility_cadence_s} s"
        )
        return replace(state, high_volatility=True), why
    if not hot and state.high_volatility:
        return replace(state, high_volatility=False), f"calm again: back to every {rules.cadence_s} s"
    return state, None
