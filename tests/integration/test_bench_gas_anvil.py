"""bench.gas on its own anvil with a batch of 10: the gas targets hold. Gas is deterministic
(the same transactions on the same rules), so this is a regression check, not a timing."""

from __future__ import annotations

import pytest

from bench import gas

pytestmark = pytest.mark.anvil


def test_gas_per_update_stays_under_the_targets() -> None:
    r = gas.run(batches_of=(10,))
    single, batch = r["single"], r["batches"]["10"]
    assert single["below_peak"] <= gas.TARGET_SINGLE
    assert batch["marginal"]["below_peak"] <= gas.TARGET_MARGINAL
    # A rise within a drawdown reads the mark, leaving a peak writes it: never cheaper than below.
    assert batch["marginal"]["below_peak"] < batch["marginal"]["rising"] < batch["marginal"]["new_peak"]
    assert batch["marginal"]["new_peak"] < batch["marginal"]["leaving_peak"]
    assert r["targets"]["single_ok"] and r["targets"]["marginal_ok"]
    assert "batch of 10: marginal per fund" in gas.render(r)
