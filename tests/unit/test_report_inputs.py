"""A stored report explains itself: every source's verdict, cache use, breakdown, previous NAV."""

from __future__ import annotations

import json

import pytest

from publisher.engine import report_inputs
from publisher.price import PriceRules, PriceUnavailable, aggregate, resolve
from publisher.quotes import Quote, SourceFailure
from publisher.snapshot import NavOnChain

E18 = 10**18
NOW = 1_800_000_000


def test_failed_asset_keeps_every_source_state() -> None:
    rules = PriceRules()
    stale = Quote("ETH", 2_200 * E18, 100, NOW - 9_999, "feed:0xA", 3_600)
    agg = aggregate("ETH", [SourceFailure("ETH", "http:kraken", "timed out after 5 s"), stale], NOW, rules)
    with pytest.raises(PriceUnavailable) as exc:
        resolve(agg, None, NOW, rules)
    btc = aggregate("BTC", [Quote("BTC", 42_000 * E18, 100, NOW, "feed:0xB", 3_600)], NOW, rules)
    good = resolve(btc, None, NOW, rules)
    data = report_inputs(
        None, {"BTC": good}, {"ETH": exc.value}, NavOnChain(5 * E18, NOW - 60, 3, 0, 5 * E18)
    )
    json.dumps(data)  # JSON-ready
    assert data["previous"] == {"nav": "5", "as_of": NOW - 60, "round": 3}
    eth = data["unpriced"]["ETH"]
    assert eth["error"].startswith("ETH: cannot be priced")
    assert [(v["source"], v["status"]) for v in eth["verdicts"]] == [
        ("http:kraken", "failed"),
        ("feed:0xA", "invalid"),
    ]
    assert "stale" in eth["verdicts"][1]["reason"] and eth["verdicts"][1]["price"] == "2200"
    assert data["prices"]["BTC"]["verdicts"][0]["status"] == "used" and data["liabilities"] is None
