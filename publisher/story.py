"""The demo's scripted story: the keeper through simulated hours on a local chain.

Each step moves anvil's clock (evm_increaseTime), sets the mock feeds like the market would,
and lets the keeper tick; what it decided is printed. Local chains only.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from rich.console import Console
from web3 import Web3

from publisher import demo
from publisher.chain import contract_at, send
from publisher.config import Settings
from publisher.keeper import Keeper
from publisher.keys import dev_account
from publisher.output import render_publish
from publisher.publish import Publisher

HOUR = 3600


class Story:
    """The market (feeds), the manager (trades) and the clock of the demo chain."""

    def __init__(self, settings: Settings, console: Console) -> None:
        self.console = console
        # Simulated hours are anvil's hours: the keeper must read time from the chain.
        self.publisher = Publisher.from_settings(settings.model_copy(update={"clock": "chain"}))
        self.keeper = Keeper(self.publisher)
        self.w3: Web3 = self.publisher.engine.w3
        self.deployment = self.publisher.engine.deployment
        self.oracle = dev_account(settings, 3)  # feeds are open mocks: any account moves them
        self.manager = dev_account(settings, 1)
        self.prices = {a.symbol: a.price_usd for a in demo.ASSETS}

    # -- the world ------------------------------------------------------------------------

    def advance(self, seconds: int) -> None:
        self.w3.provider.make_request("evm_increaseTime", [seconds])
        self.w3.provider.make_request("evm_mine", [])

    def market(self, moves: dict[str, Decimal] | None = None, *, stale: dict[str, int] | None = None,
               skew: dict[tuple[str, int], Decimal] | None = None) -> None:  # fmt: skip
        """Every feed answers again (they are hourly feeds): the demo prices times `moves`;
        `stale` leaves the first N feeds of an asset unanswered (an outage); `skew` moves one
        feed (asset, index) by a factor (a manipulated source)."""
        for symbol, factor in (moves or {}).items():
            self.prices[symbol] *= factor
        stale = stale or {}
        skew = skew or {}
        now = int(self.w3.eth.get_block("latest")["timestamp"])
        for symbol, feeds in self.deployment.feeds.items():
            for i, (feed, base_skew) in enumerate(zip(feeds, demo.FEED_SKEW, strict=True)):
                price = self.prices[symbol] * skew.get((symbol, i), Decimal(1))
                answer = demo.feed_answer(price, feed.decimals, base_skew)
                mock = contract_at(self.w3, "MockV3Aggregator", feed.address)
                if i < stale.get(symbol, 0):
                    # Its last answer is older than its max age: the feed has gone quiet.
                    old = now - feed.max_age_s - 60
                    rnd = mock.functions.latestRound().call() + 1
                    send(
                        self.w3,
                        self.oracle,
                        mock.functions.updateRoundData(rnd, answer, old, old),
                        "stale feed",
                    )
                else:
                    send(self.w3, self.oracle, mock.functions.updateAnswer(answer), "feed")

    def trade(self, fund_id: int, sell: str, buy: str, usd: Decimal) -> None:
        t_sell, t_buy = self.deployment.tokens[sell], self.deployment.tokens[buy]
        amount_sell = demo.to_units(
            (usd / self.prices[sell]).quantize(Decimal(1).scaleb(-6)), t_sell.decimals
        )
        amount_buy = demo.to_units((usd / self.prices[buy]).quantize(Decimal(1).scaleb(-6)), t_buy.decimals)
        token = contract_at(self.w3, "MockERC20", t_buy.address)
        send(self.w3, self.manager, token.functions.mint(self.manager.address, amount_buy), "mint")
        vault = self.publisher.engine.vault
        send(self.w3, self.manager, vault.functions.trade(fund_id, t_sell.address, amount_sell, t_buy.address,
                                                          amount_buy), "trade")  # fmt: skip

    # -- telling it ------------------------------------------------------------------------

    def step(self, title: str, action: Callable[[], None] | None = None) -> None:
        self.console.rule(title)
        if action is not None:
            action()
        result = self.keeper.tick()
        if result.emergency:
            self.console.print(
                f"emergency publish (vault activity or trigger): fund(s) {sorted(result.emergency)}"
            )
        if result.outcomes:
            render_publish(self.console, result.outcomes)
        else:
            self.console.print("nothing due")
        if result.error:
            self.console.print(f"[red]tick failed:[/] {result.error}")

    def sources(self, symbol: str) -> None:
        """One line per source of `symbol` from the last cycle: used, dropped, and why."""
        cycle = self.publisher.last_cycle
        if cycle is None or symbol not in cycle.aggregates:
            return
        agg = cycle.aggregates[symbol]
        self.console.print(
            f"{symbol}: {len(agg.used)} of {agg.configured} sources used, confidence {agg.confidence}"
        )
        for v in agg.verdicts:
            if v.status != "used":
                self.console.print(f"  {v.source}: {v.status}: {v.reason}")

    def run(self) -> None:
        self.keeper.follower.poll()  # the demo's own deposits are history, not news
        self.step("Hour 0 · first publication: every fund in one transaction")
        self.advance(HOUR)
        self.step("Hour 1 · an ordinary hour: BTC +1.5 %, ETH −0.8 %",
                  lambda: self.market({"BTC": Decimal("1.015"), "ETH": Decimal("0.992")}))  # fmt: skip
        self.advance(600)
        self.step("Hour 1:10 · the manager trades in fund 2 (USDC → XAUT): published at once",
                  lambda: self.trade(2, "USDC", "XAUT", Decimal(26_500)))  # fmt: skip
        self.advance(HOUR)
        self.step("Hour 2 · one BTC source reports +50 %: dropped as deviating, the NAV holds",
                  lambda: self.market(skew={("BTC", 2): Decimal("1.5")}))  # fmt: skip
        self.sources("BTC")
        self.advance(HOUR)
        self.step("Hour 3 · every source healthy again", self.market)
        self.advance(HOUR // 2)

        def outage() -> None:
            self.market(stale={"ETH": 2})
            self.publisher.store.add_trigger(1, self.publisher.engine.clock())
            self.console.print("`navpub trigger --fund 1` asks for a NAV now")

        self.step("Hour 3:30 · two of three ETH feeds go silent: cached price, NAV flagged estimated", outage)
        self.sources("ETH")
        self.advance(HOUR)
        self.step("Hour 4:30 · gold +60 % with no activity in fund 2: held for a person",
                  lambda: self.market({"XAUT": Decimal("1.6")}))  # fmt: skip
        held = self.publisher.store.held_report(2)
        if held is not None:
            self.publisher.store.approve(2, "demo operator", self.publisher.engine.clock())
            self.console.print(f"an operator approves report {held.id} (`navpub approve --fund 2`)")
        self.advance(HOUR)
        self.step("Hour 5:30 · the approved NAV is published", self.market)
