"""bench/cycle.py end to end at 3 funds × 3 assets: its own anvil, setup, both cycles, the JSON."""

from __future__ import annotations

import json

import pytest

from bench.cycle import main

pytestmark = pytest.mark.anvil


@pytest.mark.timeout(120)
def test_bench_cycle_small_run_reports_plausible_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--funds", "3", "--assets", "3", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    e, n = r["engine"], r["naive"]

    assert (r["funds"], r["assets"], r["feeds_per_asset"], r["http_sources_per_asset"]) == (3, 3, 3, 2)
    # The engine's reads: block (+ fund count), snapshots, quotes — whatever the number of funds.
    assert e["read_round_trips"] <= 3
    assert "eth_chainId" not in e["read_calls_by_method"]
    assert e["round_trips"] == e["read_round_trips"] + e["publish_round_trips"] + e["reconcile_round_trips"]
    assert n["round_trips"] > e["round_trips"]
    assert n["read_round_trips"] > e["read_round_trips"]
    # Every fund published exactly once on chain, by each; one transaction for the engine.
    for side in (e, n):
        assert side["published"] == 3
        assert side["rounds_advanced_once"] == 3
        assert side["http_price_requests"] == 3 * 2
        assert isinstance(side["gas_used"], int) and side["gas_used"] > 0
        assert float(side["wall_s"]) > 0
    assert e["transactions"] == 1
    assert n["transactions"] == 3  # one updateNAV per fund; the vault records each in the hub
    assert n["gas_used"] > e["gas_used"]
    assert set(e["stages_s"]) >= {"snapshot", "price", "value", "publish"}
    # Same inputs, same median: the two NAVs agree (to a millionth of a dollar at most).
    assert r["nav_max_diff_wei"] <= 10**12
    assert float(r["ratio"]["round_trips"]) > 1
