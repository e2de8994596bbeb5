"""`navpub verify` on a real anvil: PASS after a publish, FAIL naming ETH once one of its feeds
moves, PASS again after a republish; statements against the NAV and net collateral; a fund never
published; cached prices; bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from publisher import cli
from publisher.artifacts import REPO_ROOT
from publisher.chain import contract_at, send
from publisher.cli import main
from publisher.config import Settings, load_settings
from publisher.keys import dev_account
from publisher.localchain import AnvilNode
from publisher.publish import Publisher
from tests.chainops import advance

pytestmark = pytest.mark.anvil

E18 = 10**18
# Fund 1: 10 BTC, 100 ETH, 70,000 USDC at the middle feeds' $42,000, $2,200 and $1, less $1,250 of
# fees and $20,000 borrowed.
FUND1_NAV = (420_000 + 220_000 + 70_000 - 1_250 - 20_000) * E18
# ETH's feeds answer $2,198.90, $2,200.00 and $2,201.54; moving the first to $2,201 makes the
# median $2,201 (4.5 bps: well within the 10 % deviation limit, every feed kept).
ETH_MOVED = 2_201
FUND1_NAV_MOVED = FUND1_NAV + 100 * E18
# The demo's haircuts (BTC 0.0625, ETH 0.1): collateral after haircuts less the $20,000 borrowed.
FUND1_NET_MOVED = (393_750 + 198_090 + 70_000 - 20_000) * E18


@pytest.fixture
def settings(anvil: AnvilNode, demo_chain: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A pristine demo chain and a state directory of its own, on the chain's clock."""
    env = {
        "NAVPUB_RPC_URL": anvil.rpc_url,
        "NAVPUB_STATE_DIR": str(demo_chain),
        "NAVPUB_CLOCK": "chain",
        "NAVPUB_RETRY_BACKOFF_S": "0",
        "NAVPUB_SOURCES_FILE": str(REPO_ROOT / "scripts" / "demo-sources.toml"),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(cli.out, "width", 200)  # one line per reason, for the text assertions
    yield load_settings()


def set_eth_feed(pub: Publisher, index: int, usd: int, *, age: int = 0) -> None:
    """Moves one of ETH's mock feeds, sent by anvil's account #3: never the engine's key, whose
    nonces are the publisher's alone (a nonce taken under it is a dropped publication)."""
    ref = pub.engine.deployment.feeds["ETH"][index]
    feed = contract_at(pub.engine.w3, "MockV3Aggregator", ref.address)
    admin = dev_account(pub.settings, 3)
    if age == 0:
        send(pub.engine.w3, admin, feed.functions.updateAnswer(usd * 10**ref.decimals), "updateAnswer")
    else:
        now = pub.engine.w3.eth.get_block("latest")["timestamp"]
        rnd = feed.functions.latestRound().call() + 1
        call = feed.functions.updateRoundData(rnd, usd * 10**ref.decimals, now - age, now - age)
        send(pub.engine.w3, admin, call, "updateRoundData")


def verify_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    rc = main(["verify", *args, "--json"])
    return rc, json.loads(capsys.readouterr().out)


def raw(amount: dict[str, Any] | None) -> int:
    assert amount is not None
    return int(amount["raw"])


def rows(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["asset"]: a for a in result["assets"]}


def test_publish_verify_move_a_feed_republish(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    pub = Publisher.from_settings(settings)
    assert [o.decision for o in pub.cycle()] == ["published"] * 3
    as_of, rnd = pub.engine.vault.functions.navState(1).call()[1:3]

    # 1. Right after the publish: the recomputation matches to the wei, with the report's breakdown.
    rc, r = verify_json(capsys, "--fund", "1")
    assert rc == 0 and r["passed"] is True and r["verdict"] == "PASS" and r["reason"].startswith("PASS")
    assert raw(r["published"]["nav"]) == raw(r["recomputed"]["nav"]) == FUND1_NAV
    assert (r["published"]["as_of"], r["published"]["round"]) == (as_of, rnd)
    assert r["published"]["report_id"] is not None and r["breakdown_available"] is True
    assert raw(r["difference"]) == 0 and r["largest"] is None and r["warnings"] == []
    assert raw(r["tolerance"]["usd"]) == 5 * E18 and r["tolerance"]["kind"] == "absolute"
    assert raw(r["recomputed"]["net_collateral"]) == (393_750 + 198_000 + 70_000 - 20_000) * E18
    eth = rows(r)["ETH"]
    assert raw(eth["published"]["price"]) == raw(eth["recomputed"]["price"]) == 2_200 * E18
    assert raw(eth["published"]["amount"]) == 100 * E18 and raw(eth["published"]["value"]) == 220_000 * E18
    assert {li["kind"]: raw(li["published"]) for li in r["liabilities"]} == {
        "pending_fees": 1_250 * E18,
        "pending_withdrawals": 0,
        "borrowed": 20_000 * E18,
        "offexchange_borrowed": 0,
    }
    assert main(["verify", "--fund", "1"]) == 0
    text = capsys.readouterr().out
    assert "PASS: recomputed NAV $688,750.00 matches the published $688,750.00" in text

    # 2. One of ETH's three feeds moves a few bps: the median follows, the published NAV is $100 off.
    set_eth_feed(pub, 0, ETH_MOVED)
    rc, r = verify_json(capsys, "--fund", "1")
    assert rc == 1 and r["passed"] is False and r["verdict"] == "FAIL"
    assert raw(r["recomputed"]["nav"]) == FUND1_NAV_MOVED and raw(r["published"]["nav"]) == FUND1_NAV
    assert raw(r["difference"]) == 100 * E18 and r["within"] is False
    eth = rows(r)["ETH"]
    assert (
        raw(eth["recomputed"]["price"]) == ETH_MOVED * E18 and raw(eth["published"]["price"]) == 2_200 * E18
    )
    assert (raw(eth["difference"]), raw(eth["price_effect"]), raw(eth["amount_effect"])) == (
        100 * E18,
        100 * E18,
        0,
    )
    assert {a: raw(x["difference"]) for a, x in rows(r).items() if a != "ETH"} == {"BTC": 0, "USDC": 0}
    assert all(raw(li["nav_effect"]) == 0 for li in r["liabilities"])
    assert r["largest"] == "ETH +$100.00 (price $2,200.00 → $2,201.00)"
    assert r["reason"] == (
        "FAIL: recomputed NAV $688,850.00 differs from the published $688,750.00 by +$100.00 "
        "(tolerance $5.00); largest difference ETH +$100.00 (price $2,200.00 → $2,201.00)"
    )
    assert main(["verify", "--fund", "1"]) == 1
    text = capsys.readouterr().out
    assert "FAIL: recomputed NAV $688,850.00" in text and "largest difference ETH +$100.00" in text
    # A relative tolerance: 0.1 % of $688,750 is $688.75 (passes), 0.01 % is $68.875 (does not).
    rc, r = verify_json(capsys, "--fund", "1", "--tolerance", "0.1%")
    assert rc == 0 and raw(r["tolerance"]["usd"]) == 688_750 * E18 // 1000
    rc, r = verify_json(capsys, "--fund", "1", "--tolerance", "0.01%")
    assert rc == 1 and raw(r["tolerance"]["usd"]) == 68_875 * E18 // 1000
    # Exactly at the tolerance passes, a cent under it does not.
    assert verify_json(capsys, "--fund", "1", "--tolerance", "100")[0] == 0
    assert verify_json(capsys, "--fund", "1", "--tolerance", "99.99")[0] == 1
    # verify records nothing: no report, no price cache entry is written.
    assert len(pub.store.reports(limit=1000)) == 3

    # 3. Republished (newer asOf): PASS again, against the new report.
    advance(pub.engine.w3, 60)
    (o,) = pub.cycle([1], force=True)
    assert o.decision == "published" and o.nav == FUND1_NAV_MOVED
    rc, r = verify_json(capsys, "--fund", "1")
    assert rc == 0 and r["passed"] is True and raw(r["difference"]) == 0
    assert r["published"]["round"] == rnd + 1 and r["published"]["as_of"] > as_of
    assert r["published"]["report_id"] == o.report_id
    assert raw(rows(r)["ETH"]["published"]["price"]) == ETH_MOVED * E18

    # 4. A statement: against the recomputed NAV, then against the net collateral.
    rc, r = verify_json(capsys, "--fund", "1", "--reported", "688850")
    assert rc == 0 and r["reported"]["within"] is True and raw(r["reported"]["difference"]) == 0
    assert raw(r["reported"]["compared_with"]) == FUND1_NAV_MOVED and r["reported"]["basis"] == "nav"
    rc, r = verify_json(capsys, "--fund", "1", "--reported", "$688,950.00")
    assert rc == 1 and r["reported"]["within"] is False and raw(r["reported"]["difference"]) == 100 * E18
    assert r["within"] is True  # the published NAV itself still matches: only the statement fails
    assert r["reason"] == (
        "FAIL: the statement's $688,950.00 differs from the recomputed NAV $688,850.00 by +$100.00 "
        "(tolerance $5.00)"
    )
    rc, r = verify_json(capsys, "--fund", "1", "--reported", "641840", "--basis", "net")
    assert rc == 0 and raw(r["reported"]["compared_with"]) == FUND1_NET_MOVED
    assert raw(r["recomputed"]["net_collateral"]) == FUND1_NET_MOVED
    rc, r = verify_json(capsys, "--fund", "1", "--reported", "641840")  # the same figure as a NAV
    assert rc == 1 and raw(r["reported"]["difference"]) == FUND1_NET_MOVED - FUND1_NAV_MOVED
    assert main(["verify", "--fund", "1", "--reported", "641830", "--basis", "net"]) == 1
    assert "the statement's $641,830.00 differs from the recomputed net collateral" in capsys.readouterr().out


def test_never_published_unknown_fund_and_bad_input(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    pub = Publisher.from_settings(settings)
    assert [o.decision for o in pub.cycle([1])] == ["published"]
    rc, r = verify_json(capsys, "--fund", "2")
    assert rc == 1 and r["verdict"] == "FAIL" and r["reason"] == "FAIL: fund 2 has no published NAV yet"
    assert r["published"] is None and r["difference"] is None
    # Still recomputed: 100 XAUT at $2,650 and 200,000 USDC, less the $640 of fees.
    assert raw(r["recomputed"]["nav"]) == (265_000 + 200_000 - 640) * E18
    assert main(["verify", "--fund", "2"]) == 1
    assert "FAIL: fund 2 has no published NAV yet" in capsys.readouterr().out

    assert main(["verify", "--fund", "99"]) == 2
    assert "--fund 99: no such fund (this vault has funds 1 to 3)" in capsys.readouterr().err
    for args, option in (
        (["--tolerance", "abc"], "--tolerance"),
        (["--tolerance", "-1"], "--tolerance"),
        (["--tolerance", "5%%"], "--tolerance"),
        (["--reported", "lots"], "--reported"),
        (["--basis", "gross"], "--basis"),
    ):
        assert main(["verify", "--fund", "1", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: " + option) and err.count("\n") == 1, err


def test_cached_prices_are_a_warning(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    pub = Publisher.from_settings(settings)
    assert [o.decision for o in pub.cycle([1])] == ["published"]  # caches ETH at $2,200
    advance(pub.engine.w3, 60)
    for i in (0, 2):  # two of three feeds older than their 3,900 s limit: confidence below 50
        set_eth_feed(pub, i, 2_300, age=4_000)
    rc, r = verify_json(capsys, "--fund", "1")
    assert rc == 0 and r["recomputed"]["estimated"] is True and raw(r["difference"]) == 0
    assert rows(r)["ETH"]["recomputed"]["estimated"] is True
    (warning,) = r["warnings"]
    assert "cached prices (ETH)" in warning and "weaker" in warning
