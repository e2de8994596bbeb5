"""bench.gas on its own anvil with a batch of 10: the gas stays under the measured ceilings.
Gas is deterministic (the same transactions on the same rules), so this is a regression
check, not a timing."""

from __future__ import annotations

import pytest

from bench import gas

pytestmark = pytest.mark.anvil


def test_gas_per_update_stays_under_the_ceilings() -> None:
    r = gas.run(batches_of=(10,))
    single, batch = r["single"], r["batches"]["10"]
    assert single["below_peak"] <= gas.CEILING_SINGLE
    assert batch["marginal"]["below_peak"] <= gas.CEILING_MARGINAL
    # The engine's batch of one costs what the four-argument updateNAV costs, within calldata.
    assert abs(single["below_peak"] - r["single_forms"]["updateNAV/4"]["below_peak"]) < 1_000
    # A rise within a drawdown reads the mark, leaving a peak writes it: never cheaper than below.
    assert batch["marginal"]["below_peak"] < batch["marginal"]["rising"] < batch["marginal"]["new_peak"]
    assert batch["marginal"]["new_peak"] < batch["marginal"]["leaving_peak"]
    assert "batch of 10: marginal per fund" in gas.render(r)
