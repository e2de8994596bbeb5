"""nav_state.json and nav.json after real publish cycles on anvil."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from publisher.config import Settings
from publisher.localchain import AnvilNode
from publisher.money import usd_str
from publisher.publish import Publisher
from tests.chainops import advance
from tests.demo_env import ZAR, fx_settings, market
from tests.httpserver import LocalHTTPServer

pytestmark = pytest.mark.anvil


@pytest.fixture
def settings(
    anvil: AnvilNode, demo_chain: Path, http_server: LocalHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    yield fx_settings(anvil.rpc_url, demo_chain, http_server, monkeypatch)


def read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_state_files_after_every_cycle(settings: Settings, http_server: LocalHTTPServer) -> None:
    pub = Publisher.from_settings(settings)
    state = settings.state_dir
    pub.cycle()
    nav_state, nav = read(state / "nav_state.json"), read(state / "nav.json")
    assert sorted(nav_state["funds"]) == ["1", "2", "3"] == sorted(nav["funds"])
    for fid in (1, 2, 3):
        on_chain, as_of, rnd, *_, nps, _paused, _shares = pub.engine.vault.functions.navState(fid).call()
        entry = nav_state["funds"][str(fid)]
        assert entry["nav"] == entry["total_equity"] == usd_str(on_chain)
        assert (entry["as_of"], entry["round"], entry["age_s"]) == (as_of, rnd, 0)
        # The seed's peak and drawdown, per share.
        assert entry["peak_equity"] == entry["high_water_mark_per_share"] == usd_str(nps)
        assert entry["drawdown_pct"] == "0.00" and entry["nav_per_share"] == usd_str(nps)
        assert entry["series"] == [
            {"t": as_of, "nav": usd_str(on_chain), "nav_per_share": usd_str(nps), "hwm": usd_str(nps)}
        ]
        # The seed's flat per-fund files carry the same entry.
        assert read(state / "funds" / str(fid) / "nav_state.json") == {"schema": 1, **entry}
    fund1 = nav["funds"]["1"]
    breakdown = fund1["nav_detail"]["asset_breakdown"]
    assert sorted(breakdown) == ["BTC", "ETH", "USDC"]
    assert sum(Decimal(b["usd"]) for b in breakdown.values()) == Decimal(fund1["aum"]["total_usd"])
    assert breakdown["BTC"]["haircut"] == "0.0625"
    assert Decimal(nav["fx"]["usd_zar"]) == ZAR and nav["fx"]["ZAR"]["available"] is True

    # The rates API goes down and an hour passes: no usd_zar (never a made-up rate), the reason instead.
    http_server.route("GET", "/v1/latest", status=503, json={"error": "down"})
    advance(pub.engine.w3, settings.cache_max_age_s + 60)
    market(pub, settings, {"BTC": Decimal("0.97")})
    pub.cycle([1], force=True)
    nav_state, nav = read(state / "nav_state.json"), read(state / "nav.json")
    assert "usd_zar" not in nav["fx"] and nav["fx"]["ZAR"]["available"] is False
    assert "FX unavailable" in nav["fx"]["ZAR"]["reason"]
    entry = nav_state["funds"]["1"]
    assert len(entry["series"]) == 2 and Decimal(entry["drawdown_pct"]) > 0
    # Funds 2 and 3 were not in that cycle: their entries stay, their age is brought to now.
    assert (
        nav_state["funds"]["2"]["round"] == 1 and nav_state["funds"]["2"]["age_s"] > settings.cache_max_age_s
    )


def test_an_unwritable_state_file_is_alerted_and_the_nav_still_published(settings: Settings) -> None:
    (settings.state_dir / "nav.json").mkdir()  # a directory where the file should be
    pub = Publisher.from_settings(settings)
    outcomes = pub.cycle()
    assert [o.decision for o in outcomes] == ["published"] * 3
    alerts = pub.store.alerts()
    assert any(a["kind"] == "state_files" and "nav.json" in a["message"] for a in alerts)
