"""A short soak (bench/soak.py) on its own anvil: the keeper through 24 simulated hours with
faults far more frequent than the bench's defaults, then every invariant checked against the
chain. The 1000-hour run is marked slow.
"""

from __future__ import annotations

import pytest

from bench import soak
from bench.soak import Figures, Scenario

pytestmark = pytest.mark.anvil

HOURS = 24
SEED = 11
# Every kind of trouble shows up within 24 hours at these rates (the seed fixes which, when).
BUSY = Scenario(
    p_trade=0.1,
    p_vol_shock=0.05,
    p_jump=0.08,
    p_source_fault=0.5,
    p_rpc_fault=0.25,
    p_restart=0.02,
    p_crash_mid_publish=0.03,
)


@pytest.fixture(scope="module")
def figures() -> Figures:
    return soak.run(HOURS, SEED, BUSY)


def check(figures: Figures, name: str) -> None:
    outcome = figures.invariant_checks[name]
    assert outcome == "ok", f"{name}: {outcome}\n{soak.render(figures)}"


def test_the_soak_met_every_kind_of_trouble(figures: Figures) -> None:
    kinds = {k.split(":")[0] for k in figures.faults}
    assert {"rpc", "source", "process", "market", "manager"} <= kinds, figures.faults
    assert figures.faults.get("rpc: down", 0) >= 1
    assert figures.holds >= 1 and figures.approvals >= 1
    assert figures.bad_inputs_rejected >= 1
    assert figures.ticks >= HOURS * soak.TICKS_PER_HOUR - figures.restarts
    assert figures.navs_published >= HOURS  # three funds hourly, less what the faults cost


def test_every_due_nav_is_published_or_explained(figures: Figures) -> None:
    check(figures, soak.CHECK_EXPLAINED)
    assert sum(figures.hours_accounted.values()) == HOURS * len(soak.FUNDS)


def test_no_duplicate_round_on_chain(figures: Figures) -> None:
    check(figures, soak.CHECK_DUPLICATES)
    assert figures.duplicates == 0


def test_chain_records_are_the_confirmed_reports(figures: Figures) -> None:
    check(figures, soak.CHECK_MATCH)


def test_no_lost_report(figures: Figures) -> None:
    check(figures, soak.CHECK_LOST)
    assert figures.lost_reports == 0


def test_high_water_mark_is_the_highest_published_nav(figures: Figures) -> None:
    check(figures, soak.CHECK_HWM)


def test_gas_ledger_is_the_sum_of_receipts(figures: Figures) -> None:
    check(figures, soak.CHECK_GAS)


def test_no_error_escapes_a_tick(figures: Figures) -> None:
    check(figures, soak.CHECK_ESCAPES)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_a_thousand_hours_with_the_default_scenario() -> None:
    figures = soak.run(1000, seed=1)
    failed = {k: v for k, v in figures.invariant_checks.items() if v != "ok"}
    assert failed == {}, soak.render(figures)
    assert figures.duplicates == 0 and figures.lost_reports == 0
