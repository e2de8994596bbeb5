"""Adversarial scenarios on a real anvil, through the real engine, publisher and keeper: price
sources manipulated (one, two colluding, a flash of a thin market, a thousandfold), NAV
inflation before a withdrawal (seed nav-update-process.md), a replayed signed publication, and
the jump guard facing a baseline three days old after an outage.

Feeds are moved with anvil's dev account #3 (the mocks are open), never the engine's key, so
the publisher's nonces stay its own. Time moves only through the chain (evm_setNextBlockTimestamp);
the engine reads it with NAVPUB_CLOCK=chain.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import Web3RPCError
from web3.logs import DISCARD

from publisher import demo
from publisher.chain import contract_at, send
from publisher.cli import main
from publisher.config import Settings, load_settings
from publisher.engine import guard_rules
from publisher.guard import allowed_jump_bps, pct
from publisher.keeper import Keeper
from publisher.keys import dev_account
from publisher.localchain import AnvilNode
from publisher.navlog import nav_records
from publisher.publish import FundOutcome, Publisher
from tests.conftest import reverts
from tests.httpserver import LocalHTTPServer

pytestmark = pytest.mark.anvil

E18 = 10**18
HOUR = 3600
DAY = 24 * HOUR
BPS = 10_000
# Fund 1, the seed's example: 10 BTC, 100 ETH, 70,000 USDC at the middle feeds' $42,000, $2,200
# and $1, less $1,250 of fees and $20,000 borrowed.
FUND1_NAV = 688_750 * E18
FUND1_ASSETS = ("BTC", "ETH", "USDC")
FeedKey = tuple[str, int]  # (asset, index of its feed)


@dataclass
class Env:
    settings: Settings
    pub: Publisher
    oracle: LocalAccount  # anvil dev account #3: moves feeds, never signs for the engine
    hooks: LocalHTTPServer  # the alert webhook

    @property
    def w3(self) -> Web3:
        return self.pub.engine.w3

    @property
    def vault(self) -> Contract:
        return self.pub.engine.vault

    def feed(self, symbol: str, index: int) -> Contract:
        return contract_at(
            self.w3, "MockV3Aggregator", self.pub.engine.deployment.feeds[symbol][index].address
        )

    def feed_id(self, symbol: str, index: int) -> str:
        return f"feed:{self.pub.engine.deployment.feeds[symbol][index].address}"

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])


def base_answer(symbol: str, index: int) -> int:
    """The feed's answer as deployed by the demo (its decimals, its few bps of skew)."""
    price = next(a.price_usd for a in demo.ASSETS if a.symbol == symbol)
    return demo.feed_answer(price, demo.FEED_DECIMALS[index], demo.FEED_SKEW[index])


def price18(symbol: str, index: int, factor: Decimal = Decimal(1)) -> int:
    """What the engine reads from that feed when it answers base × factor, in 18 decimals."""
    return int(base_answer(symbol, index) * factor) * 10 ** (18 - demo.FEED_DECIMALS[index])


def market(
    env: Env,
    moves: Mapping[str | FeedKey, Decimal] | None = None,
    *,
    assets: Collection[str] | None = None,
    silent: Collection[str] = (),
) -> None:
    """Every feed of `assets` (default: all) answers again, as hourly feeds do: its deployed
    answer times the factor given for its asset or for the feed itself. Feeds of `silent`
    assets are left unanswered, so they go stale like a network that stopped reporting."""
    moves = moves or {}
    for symbol, feeds in env.pub.engine.deployment.feeds.items():
        if (assets is not None and symbol not in assets) or symbol in silent:
            continue
        for i in range(len(feeds)):
            factor = moves.get((symbol, i), moves.get(symbol, Decimal(1)))
            answer = int(base_answer(symbol, i) * factor)
            send(env.w3, env.oracle, env.feed(symbol, i).functions.updateAnswer(answer), f"{symbol} feed {i}")


def silence(env: Env, symbol: str, index: int) -> None:
    """The feed's last answer becomes older than its max age: that source is down."""
    info = env.pub.engine.deployment.feeds[symbol][index]
    feed = env.feed(symbol, index)
    old = env.now() - info.max_age_s - 60
    rnd = feed.functions.latestRound().call() + 1
    send(
        env.w3, env.oracle, feed.functions.updateRoundData(rnd, base_answer(symbol, index), old, old), "stale"
    )


def advance_to(env: Env, timestamp: int) -> None:
    """Mines a block at exactly `timestamp` (the chain's clock, which the engine reads)."""
    assert timestamp > env.now(), (timestamp, env.now())
    env.w3.provider.make_request("evm_setNextBlockTimestamp", [timestamp])
    env.w3.provider.make_request("evm_mine", [])


def chain_nav(env: Env, fund_id: int = 1) -> tuple[int, int, int]:
    """(NAV, asOf, round) on chain."""
    nav, as_of, rnd, *_ = env.vault.functions.navState(fund_id).call()
    return nav, as_of, rnd


def posted(env: Env, kind: str, status: str = "firing", fund_id: int = 1) -> list[dict[str, Any]]:
    """The alerts the webhook received of that kind and status for the fund."""
    bodies = [json.loads(r.body) for r in env.hooks.requests_to("/hook")]
    return [b for b in bodies if (b["kind"], b["status"], b["fund_id"]) == (kind, status, fund_id)]


def source_alerts(env: Env, status: str) -> set[str]:
    """The keys (asset|source) of the source_deviating alerts the webhook received, by status;
    a set, and each key posted once (deduplicated)."""
    bodies = [json.loads(r.body) for r in env.hooks.requests_to("/hook")]
    keys = [b["key"] for b in bodies if (b["kind"], b["status"]) == ("source_deviating", status)]
    assert len(keys) == len(set(keys)), keys
    return set(keys)


def inputs_of(env: Env, outcome: FundOutcome) -> dict[str, Any]:
    assert outcome.report_id is not None
    report = env.pub.store.report(outcome.report_id)
    assert report is not None
    return report.inputs


def verdicts(env: Env, outcome: FundOutcome, symbol: str) -> dict[str, tuple[str, str]]:
    """source id → (status, reason) of every source of `symbol` in the report's stored inputs."""
    return {
        v["source"]: (v["status"], v["reason"]) for v in inputs_of(env, outcome)["prices"][symbol]["verdicts"]
    }


def one(outcomes: list[FundOutcome], fund_id: int = 1) -> FundOutcome:
    (o,) = [o for o in outcomes if o.fund_id == fund_id]
    return o


@pytest.fixture
def env(
    anvil: AnvilNode, demo_chain: Path, http_server: LocalHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Env]:
    """A pristine demo chain, the engine on the chain's clock, alerts posted to a local webhook."""
    http_server.route("POST", "/hook", json={"ok": True})
    for k, v in {
        "NAVPUB_RPC_URL": anvil.rpc_url,
        "NAVPUB_STATE_DIR": str(demo_chain),
        "NAVPUB_CLOCK": "chain",
        "NAVPUB_RETRY_BACKOFF_S": "0",
        "NAVPUB_ALERT_WEBHOOKS": f"{http_server.url}/hook",
    }.items():
        monkeypatch.setenv(k, v)
    settings = load_settings()
    e = Env(settings, Publisher.from_settings(settings), dev_account(settings, 3), http_server)
    # The feeds answered when the session deployed the demo, which may be longer ago than their
    # max age: fund 1's feeds answer afresh, at the demo's prices.
    market(e, assets=FUND1_ASSETS)
    yield e


def cycle(env: Env, *, emergency: Collection[int] = (), force: bool = False, wait: int = 60) -> FundOutcome:
    """Fund 1's publish cycle `wait` seconds of chain time later. Blocks mined within the same
    second share a timestamp, and a NAV as of the second the chain already has is superseded
    (asOf must grow), so each cycle here is given a second of its own, as on a real chain."""
    advance_to(env, env.now() + wait)
    return one(env.pub.cycle([1], emergency=emergency, force=force))


def first_nav(env: Env) -> FundOutcome:
    o = cycle(env)
    assert (o.decision, o.nav) == ("published", FUND1_NAV)
    return o


# -- 1. price manipulation -----------------------------------------------------------------


def test_one_source_of_three_moved_50_percent_is_dropped_named_and_moves_nothing(env: Env) -> None:
    """Each BTC feed in turn reports +50 % and −50 %: dropped as deviating, named by address in
    the stored report, the NAV the honest pair's, skipped; and past the heartbeat the honest NAV
    is what is published."""
    first_nav(env)
    tried = 0
    for index in range(3):
        for factor in (Decimal("1.5"), Decimal("0.5")):
            market(env, {("BTC", index): factor}, assets=["BTC"])
            o = cycle(env)
            tried += 1
            # The NAV is the one the two honest feeds give: the median of the kept pair.
            honest = [price18("BTC", i) for i in range(3) if i != index]
            expected = FUND1_NAV + 10 * ((sum(honest) // 2) - 42_000 * E18)
            assert o.nav == expected and abs(o.nav - FUND1_NAV) * BPS <= 5 * FUND1_NAV
            assert o.decision == "skipped" and "below 1" in o.reason
            states = verdicts(env, o, "BTC")
            dropped = {s: why for s, (status, why) in states.items() if status != "used"}
            assert list(dropped) == [env.feed_id("BTC", index)], states  # the manipulated one, by address
            why = dropped[env.feed_id("BTC", index)]
            assert "bps from the median" in why and "(limit 1000 bps)" in why
    assert tried == 6
    # A manipulated source persisting past the heartbeat: the honest NAV is what goes on chain.
    advance_to(env, env.now() + HOUR)
    market(env, {("BTC", 0): Decimal("1.5")}, assets=FUND1_ASSETS)
    o = cycle(env)
    assert o.decision == "published"
    honest = (price18("BTC", 1) + price18("BTC", 2)) // 2
    assert chain_nav(env)[0] == FUND1_NAV + 10 * (honest - 42_000 * E18)
    assert posted(env, "held") == [] and env.pub.store.fund_record(1).guard.consecutive_bad == 0


def test_two_colluding_sources_of_one_asset_are_the_median_and_below_30_percent_are_published(
    env: Env,
) -> None:
    """What the product does, precisely, when two of an asset's three sources collude (+40 %):
    the median is theirs and the honest source is the one dropped. The only line of defence
    left is the fund-level jump guard, whose limit is on the NAV: BTC is 61 % of fund 1, so its
    NAV moves 24.4 %, under the 30 % limit, and the manipulated NAV is published."""
    first_nav(env)
    market(env, {("BTC", 0): Decimal("1.4"), ("BTC", 1): Decimal("1.4")}, assets=["BTC"])
    o = cycle(env)
    states = verdicts(env, o, "BTC")
    assert [s for s, (status, _) in states.items() if status == "deviating"] == [env.feed_id("BTC", 2)]
    colluded = (price18("BTC", 0, Decimal("1.4")) + price18("BTC", 1, Decimal("1.4"))) // 2
    assert o.nav == FUND1_NAV + 10 * (colluded - 42_000 * E18)
    moved = (o.nav - FUND1_NAV) * BPS // FUND1_NAV
    assert 2400 < moved < 3000  # 24.4 %: under the jump limit
    assert inputs_of(env, o)["prices"]["BTC"]["confidence"] == 66  # two of three agree: above 50
    assert o.decision == "published" and chain_nav(env)[0] == o.nav
    assert posted(env, "held") == []


def test_two_colluding_sources_moving_the_nav_over_30_percent_are_held_until_approved(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two of three sources of BTC and of ETH collude (+40 %): the medians follow them and fund
    1's NAV moves 37 % with no fund activity. Held — scheduled or emergency, however often the
    engine looks — alerted once, nothing sent, until a person approves it."""
    first_nav(env)
    on_chain = chain_nav(env)
    sent_before = len(env.pub.store.publications())
    colluders = {(s, i): Decimal("1.4") for s in ("BTC", "ETH") for i in (0, 1)}
    market(env, colluders, assets=["BTC", "ETH"])
    held = cycle(env)
    assert (
        held.decision == "held" and "with no fund activity" in held.reason and "limit 30.00 %" in held.reason
    )
    assert held.nav is not None and (held.nav - FUND1_NAV) * BPS > 3700 * FUND1_NAV
    for trigger in ("scheduled", "emergency", "scheduled"):
        o = cycle(env, emergency={1} if trigger == "emergency" else ())
        assert (o.decision, o.nav) == ("held", held.nav), trigger
    assert cycle(env, force=True).decision == "held"  # --force never sends a held jump
    assert chain_nav(env) == on_chain and len(env.pub.store.publications()) == sent_before
    assert len(posted(env, "held")) == 1  # five cycles, one alert

    assert main(["approve", "--fund", "1", "--by", "risk officer"]) == 0
    capsys.readouterr()
    advance_to(env, env.now() + 60)
    assert main(["publish", "--fund", "1", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["decision"] == "published" and "approved by risk officer" in row["reason"]
    assert chain_nav(env)[0] == held.nav and chain_nav(env)[2] == on_chain[2] + 1
    # The approved NAV is the new baseline: the next cycle is an ordinary one and the alert closes
    # (the cycle that sent it judged the same jump again, from the NAV it was replacing).
    assert cycle(env).decision == "skipped"
    assert len(posted(env, "held")) == 1 and len(posted(env, "held", "resolved")) == 1


def test_a_thin_source_flash_is_never_published_and_the_next_cycle_is_normal(env: Env) -> None:
    """A flash move (+50 % for one cycle, then back) of a thin source, in the two shapes where it
    is not simply outvoted: (a) another BTC source is down, so the flash and one honest source
    are all there is; (b) the market is so thin that two of the three sources follow it."""
    first_nav(env)
    cached = env.pub.store.cached_prices(["BTC"])["BTC"].price
    assert cached == 42_000 * E18

    # (a) Two live sources 50 % apart: neither is within 10 % of their midpoint, both are
    # dropped, and the last good BTC price (this hour's) stands in: NAV unchanged, estimated.
    silence(env, "BTC", 0)
    flashed = int(base_answer("BTC", 2) * Decimal("1.5"))
    send(env.w3, env.oracle, env.feed("BTC", 2).functions.updateAnswer(flashed), "flash")
    flash = cycle(env)
    states = verdicts(env, flash, "BTC")
    assert states[env.feed_id("BTC", 0)][0] == "invalid" and "stale" in states[env.feed_id("BTC", 0)][1]
    assert states[env.feed_id("BTC", 1)][0] == states[env.feed_id("BTC", 2)][0] == "deviating"
    assert flash.nav == FUND1_NAV and flash.estimated and flash.decision == "published"
    assert env.pub.store.cached_prices(["BTC"])["BTC"].price == cached  # the flash never enters the cache
    # Alerted on detection (the seed's "Alert monitoring"), not when the breaker opens: each
    # deviating source by asset and name, and the fund's first estimated NAV.
    dropped = {f"BTC|{env.feed_id('BTC', i)}" for i in (1, 2)}
    assert source_alerts(env, "firing") == dropped
    (estimated,) = posted(env, "nav_estimated")
    assert "cached price of BTC" in estimated["message"]
    # Back: the two live sources agree (confidence 66), a live price again, nothing estimated.
    send(env.w3, env.oracle, env.feed("BTC", 2).functions.updateAnswer(base_answer("BTC", 2)), "back")
    after = cycle(env)
    assert after.decision == "published" and not after.estimated
    assert source_alerts(env, "resolved") == dropped and source_alerts(env, "firing") == dropped  # once
    assert len(posted(env, "nav_estimated", "resolved")) == 1
    assert after.nav == FUND1_NAV + 10 * ((price18("BTC", 1) + price18("BTC", 2)) // 2 - 42_000 * E18)
    assert env.pub.store.fund_record(1).guard.consecutive_bad == 0
    baseline = chain_nav(env)

    # (b) Two of three sources flash +50 %: the median follows, fund 1 moves 30.5 % with no
    # activity — held; the next cycle, the flash over, is an ordinary skip.
    market(env, {("BTC", 0): Decimal("1.5"), ("BTC", 1): Decimal("1.5")}, assets=["BTC"])
    flash = cycle(env, emergency={1})
    assert flash.decision == "held" and flash.nav is not None and flash.nav > baseline[0] * 13 // 10
    market(env, assets=["BTC"])
    after = cycle(env)
    assert after.decision == "skipped" and after.nav == FUND1_NAV
    assert chain_nav(env) == baseline  # never published: the high-water mark never saw it
    hub = contract_at(env.w3, "AnalyticsHub", env.pub.engine.deployment.hub)
    published = [r.nav_per_share for r in nav_records(hub, 1)]
    assert env.vault.functions.navState(1).call()[5] == max(published)  # per share
    assert len(posted(env, "held")) == 1 and len(posted(env, "held", "resolved")) == 1


def test_a_flash_held_then_gone_cannot_be_approved_afterwards(env: Env) -> None:
    """The held alert of a flash reaches a person after the flash is over (the engine already said
    "resolved"): approving then must not publish the flash NAV."""
    first_nav(env)
    market(env, {("BTC", 0): Decimal("1.5"), ("BTC", 1): Decimal("1.5")}, assets=["BTC"])
    flash = cycle(env)
    assert flash.decision == "held"
    market(env, assets=["BTC"])
    assert cycle(env).decision == "skipped"
    assert len(posted(env, "held", "resolved")) == 1  # the engine considers the matter closed
    advance_to(env, env.now() + 60)
    approved = main(["approve", "--fund", "1", "--by", "late operator"])
    if approved == 0:
        advance_to(env, env.now() + 60)
        assert main(["publish", "--fund", "1"]) == 0
    assert chain_nav(env)[0] == FUND1_NAV, "the flash NAV was published after the flash was over"
    assert env.pub.store.report(flash.report_id).status == "superseded"  # type: ignore[arg-type, union-attr]


def test_a_thousandfold_price_is_held_even_for_an_emergency(env: Env) -> None:
    """Every BTC source ×1000 (a decimals slip shared by every network): a valid price to the
    aggregation (under its $10^15 cap), a ×600 NAV to the guard — held, nothing sent."""
    first_nav(env)
    on_chain = chain_nav(env)
    market(env, {"BTC": Decimal(1000)}, assets=["BTC"])
    for emergency in ((), {1}):
        o = cycle(env, emergency=emergency)
        assert o.decision == "held" and o.nav is not None and o.nav > 600 * FUND1_NAV
    assert chain_nav(env) == on_chain and len(env.pub.store.publications()) == 1


def test_a_replayed_signed_publication_is_refused_for_its_nonce(env: Env) -> None:
    """The raw bytes of the engine's own earlier updateNAV, sent again by anyone who saw them."""
    first_nav(env)
    (pub,) = env.pub.store.publications()
    raw = bytes.fromhex(pub.attempts[-1].raw_tx.removeprefix("0x"))
    on_chain, nonce = chain_nav(env), env.w3.eth.get_transaction_count(pub.sender)
    with pytest.raises(Web3RPCError, match="nonce"):
        env.w3.eth.send_raw_transaction(raw)
    assert chain_nav(env) == on_chain and env.w3.eth.get_transaction_count(pub.sender) == nonce


# -- 2. NAV inflation before a withdrawal (seed nav-update-process.md) ------------------------


@dataclass
class Withdrawal:
    request_id: int
    shares: int
    claimable_at: int


def request_withdrawal(env: Env, owner: LocalAccount, shares: int) -> Withdrawal:
    receipt = send(env.w3, owner, env.vault.functions.requestWithdrawal(1, shares), "requestWithdrawal")
    (ev,) = env.vault.events.WithdrawalRequested().process_receipt(receipt, errors=DISCARD)
    return Withdrawal(ev["args"]["requestId"], shares, ev["args"]["claimableAt"])


PUMP = {(s, i): Decimal("1.4") for s in ("BTC", "ETH") for i in (0, 1)}  # two of three, +40 %


def inflation_setup(env: Env) -> tuple[Keeper, LocalAccount, Withdrawal]:
    """The keeper has published every fund; the investor queues a withdrawal of half their fund-1
    shares, which the keeper publishes at once (vault activity); the manager then cannot price
    it early. Returns the keeper, the manager and the request."""
    market(env)  # the keeper values every fund: every feed answers afresh
    keeper = Keeper(env.pub)
    keeper.follower.poll()  # the demo's own deposits are history, not news
    advance_to(env, env.now() + 60)
    assert [o.decision for o in keeper.tick().outcomes] == ["published"] * 3
    investor, manager = dev_account(env.settings, 2), dev_account(env.settings, 1)
    advance_to(env, env.now() + 600)
    w = request_withdrawal(env, investor, env.vault.functions.sharesOf(1, investor.address).call() // 2)
    assert w.claimable_at == env.now() + env.vault.functions.withdrawalDelay().call()
    advance_to(env, env.now() + 15)
    tick = keeper.tick()
    assert tick.emergency == {1} and one(tick.outcomes).decision == "published"
    with reverts("WithdrawalNotClaimable", 1, w.request_id, w.claimable_at):
        env.vault.functions.priceWithdrawal(1, w.request_id).call({"from": manager.address})
    # The hour's scheduled cycle (funds 2 and 3; fund 1 was published ten minutes ago).
    advance_to(env, w.claimable_at - 600)
    market(env)
    assert {o.fund_id for o in keeper.tick().outcomes} == {2, 3}
    return keeper, manager, w


def next_due(keeper: Keeper, fund_id: int) -> int:
    due = keeper.schedules[fund_id].next_due(keeper.rules)
    assert due is not None
    return due


def test_nav_inflated_before_a_withdrawal_is_held_and_the_withdrawal_waits_for_the_honest_nav(
    env: Env,
) -> None:
    keeper, manager, w = inflation_setup(env)
    before_pump = chain_nav(env)
    # A minute before the claimable time two of three sources of BTC and ETH are pumped +40 %.
    advance_to(env, w.claimable_at - 60)
    market(env, PUMP, assets=FUND1_ASSETS)
    advance_to(env, w.claimable_at)
    # Claimable, but no NAV as of the claimable time yet: not even the manager can price it.
    with reverts("WithdrawalAwaitsNav", 1, w.request_id, w.claimable_at, before_pump[1]):
        env.vault.functions.priceWithdrawal(1, w.request_id).call({"from": manager.address})
    # Fund 1's next scheduled cycle (an hour after the emergency one): +37 % with no activity
    # since its last NAV: held.
    due = next_due(keeper, 1)
    assert due > w.claimable_at
    advance_to(env, due)
    held = one(keeper.tick().outcomes)
    assert held.decision == "held" and held.nav is not None and held.nav > FUND1_NAV * 137 // 100
    with reverts("WithdrawalAwaitsNav", 1, w.request_id, w.claimable_at, before_pump[1]):
        env.vault.functions.priceWithdrawal(1, w.request_id).call({"from": manager.address})
    # Still pumped a cycle later (the keeper now looks every 15 min: BTC moved > 5 % in the hour).
    advance_to(env, env.now() + 900)
    market(env, PUMP, assets=FUND1_ASSETS)
    assert one(keeper.tick().outcomes).decision == "held"
    assert chain_nav(env) == before_pump and len(posted(env, "held")) == 1

    # The pump ends; the next NAV is the honest one, as of after the claimable time.
    advance_to(env, env.now() + 900)
    market(env)
    honest = one(keeper.tick().outcomes)
    assert honest.decision == "published" and honest.nav == FUND1_NAV
    nav, as_of, _ = chain_nav(env)
    assert nav == FUND1_NAV and as_of >= w.claimable_at
    total = env.vault.functions.navState(1).call()[6]
    receipt = send(env.w3, manager, env.vault.functions.priceWithdrawal(1, w.request_id), "priceWithdrawal")
    (ev,) = env.vault.events.WithdrawalPriced().process_receipt(receipt, errors=DISCARD)
    assert ev["args"]["usd"] == FUND1_NAV * w.shares // total  # at the honest NAV, not the pumped one


def test_a_dust_withdrawal_request_does_not_explain_a_pumped_nav(env: Env) -> None:
    """The same attack, with the colluding investor adding a request for 1 wei of shares as the
    sources are pumped: a request changes no NAV, so it does not count as activity (it used to,
    and the pumped NAV then passed as "explained") — the keeper runs at once and holds it."""
    keeper, _manager, w = inflation_setup(env)
    accomplice = dev_account(env.settings, 2)
    advance_to(env, w.claimable_at - 60)
    market(env, PUMP, assets=FUND1_ASSETS)
    request_withdrawal(env, accomplice, 1)
    advance_to(env, w.claimable_at + 15)  # the keeper's next tick
    tick = keeper.tick()
    assert tick.emergency == {1}
    assert one(tick.outcomes).decision == "held", "the pumped NAV was published"
    assert chain_nav(env)[0] == FUND1_NAV


# -- 4. the jump guard facing a baseline days old after an outage ----------------------------


def three_day_btc_outage(env: Env) -> int:
    """Every BTC source silent for three days while ETH and USDC keep reporting; the engine runs
    once a day. Returns the asOf of fund 1's last NAV, from before the outage."""
    t0 = chain_nav(env)[1]
    for day in (1, 2, 3):
        advance_to(env, t0 + day * DAY)
        market(env, assets=["ETH", "USDC"])
        o = cycle(env, wait=1)
        assert o.decision == "failed" and "BTC: cannot be priced" in o.reason, o.reason
    # Three failed cycles opened the breaker and pulled the fund's ripcord on chain.
    assert env.pub.store.fund_record(1).guard.breaker_open
    assert env.vault.functions.isPaused(1).call() and chain_nav(env)[1] == t0
    return t0


def test_after_a_three_day_outage_a_plausible_move_is_published_not_locked(env: Env) -> None:
    """The market returns +40 % (BTC and ETH): fund 1 +37 %. With a fresh baseline that is held
    (shown first); three days on, the allowance has grown at 5 % an hour, so the fund is not
    locked: the NAV is published by the ordinary cycle, the breaker closes and the ripcord is lifted."""
    first_nav(env)
    market(env, {"BTC": Decimal("1.4"), "ETH": Decimal("1.4")}, assets=["BTC", "ETH"])
    assert cycle(env).decision == "held"  # an hour-fresh baseline: the same move is held
    market(env, assets=["BTC", "ETH"])
    assert cycle(env).decision == "skipped"

    t0 = three_day_btc_outage(env)
    market(env, {"BTC": Decimal("1.4"), "ETH": Decimal("1.4")}, assets=FUND1_ASSETS)
    o = cycle(env)
    expected = FUND1_NAV + 10 * 16_800 * E18 + 100 * 880 * E18  # BTC $58,800, ETH $3,080
    assert (o.decision, o.nav) == ("published", expected), o.reason
    allowed = allowed_jump_bps(guard_rules(env.settings), chain_nav(env)[1] - t0)
    assert 3000 < (expected - FUND1_NAV) * BPS // FUND1_NAV < allowed
    assert chain_nav(env)[0] == expected and not env.vault.functions.isPaused(1).call()
    assert not env.pub.store.fund_record(1).guard.breaker_open
    assert len(posted(env, "breaker_open")) == 1 and len(posted(env, "breaker_open", "resolved")) == 1


def test_after_a_three_day_outage_a_move_beyond_the_allowance_is_held_then_approved(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    """BTC comes back ×10 (fund 1 +549 %): beyond the stale-baseline cap (three days at 5 % an
    hour would be +360 %; the cap is 100 %), so held — the unexplained jump is not waved
    through — and `navpub approve` then `navpub publish` put it on chain: the documented way
    out for a move no rule can vouch for."""
    first_nav(env)
    t0 = three_day_btc_outage(env)
    market(env, {"BTC": Decimal(10)}, assets=FUND1_ASSETS)
    held = cycle(env)
    allowed = allowed_jump_bps(guard_rules(env.settings), env.now() - t0)
    assert allowed == 10_000  # three days at 5 % an hour is 360 %, capped at 100 %
    assert held.decision == "held" and f"limit {pct(allowed)}" in held.reason, held.reason
    assert held.nav == FUND1_NAV + 10 * 378_000 * E18
    assert chain_nav(env)[1] == t0 and len(posted(env, "held")) == 1
    assert not env.pub.store.fund_record(1).guard.breaker_open  # prices are live again

    assert main(["approve", "--fund", "1", "--by", "cio"]) == 0
    advance_to(env, env.now() + 60)
    capsys.readouterr()
    assert main(["publish", "--fund", "1", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["decision"] == "published" and row["nav_raw"] == str(held.nav)
    assert chain_nav(env)[0] == held.nav and not env.vault.functions.isPaused(1).call()
