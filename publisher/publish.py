"""One publish cycle: reconcile the outbox with the chain, compute, and send what passed — all
due funds in one transaction — then account for it (HWM, gas ledger, alerts).

Exactly once: a report is committed before anything is sent, a publication owns one nonce
(sender.py), and before computing anything the outbox is reconciled with the chain (receipts
of sent hashes, the account's nonce). After a network failure the NAV waits in the outbox;
when the chain answers again, the stuck publication's nonce is reused for the newest NAVs
(older ones are superseded) or, when nothing newer exists, the signed transaction is sent again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from web3.exceptions import Web3RPCError
from web3.logs import DISCARD

from publisher import failpoints
from publisher._exceptions import NavPubError, RpcUnreachable, TransactionFailed
from publisher.alerts import Alerter
from publisher.artifacts import load_artifact
from publisher.config import Settings
from publisher.engine import CycleResult, FundResult, NavEngine
from publisher.fees import Fees
from publisher.guard import Trigger
from publisher.keys import load_account
from publisher.price import describe
from publisher.rpc import is_transient
from publisher.sender import Call, Hooks, Prepared, TxSender, calldata_of, fees_of
from publisher.store import Publication, Report, Store

log = logging.getLogger("navpub.publish")

Outcome = Literal["published", "skipped", "held", "failed", "pending"]


@dataclass(frozen=True)
class FundOutcome:
    """What a publish cycle did for one fund."""

    fund_id: int
    nav: int | None
    estimated: bool
    decision: Outcome
    reason: str
    report_id: int | None
    tx_hash: str | None = None
    gas_used: int | None = None  # this fund's share of the transaction's gas
    cost_usd: int | None = None  # this fund's share, 18 decimals


def _last_fees(pub: Publication) -> Fees | None:
    """The fees of a publication's last attempt: what a replacement at its nonce must beat."""
    return fees_of(pub.attempts[-1]) if pub.attempts else None


def fund_shares(total: int, n: int) -> list[int]:
    """Splits `total` over `n` funds exactly: equal parts, the remainder to the first."""
    part, rest = divmod(total, n)
    return [part + rest] + [part] * (n - 1)


def pack_nav_update(fund_id: int, nav: int, as_of: int, flags: int, share_version: int = 0) -> int:
    """The word FundVault.updateNAVBatch takes for one fund (its `packNavUpdate`): NAV in the
    low 128 bits, then flags (16), asOf (48), the share version's low 32 bits and the fund id
    (32). The vault skips the word (`NAVSkipped`) when the fund's share version has moved."""
    for name, value, bits in (
        ("fund id", fund_id, 32),
        ("NAV", nav, 128),
        ("asOf", as_of, 48),
        ("flags", flags, 16),
    ):
        if not 0 <= value < 1 << bits:
            raise ValueError(f"fund {fund_id}: {name} {value} does not fit {bits} bits of a batch word")
    if share_version < 0:
        raise ValueError(f"fund {fund_id}: share version {share_version} is negative")
    return fund_id << 224 | (share_version & 0xFFFFFFFF) << 192 | as_of << 144 | flags << 128 | nav


def unpack_nav_update(word: int) -> tuple[int, int, int, int, int]:
    """(fund id, NAV, asOf, flags, share version's low 32 bits) of a batch word."""
    return (
        word >> 224,
        word & ((1 << 128) - 1),
        (word >> 144) & ((1 << 48) - 1),
        (word >> 128) & 0xFFFF,
        (word >> 192) & 0xFFFFFFFF,
    )


class AlertClock:
    """The engine's clock for alerts, which must not need the RPC: with the chain clock
    (NAVPUB_CLOCK=chain) a reading is an RPC call, and an alert that the RPC is unreachable would
    itself fail. When a reading fails for a transient reason, the last good one stands in (the
    wall clock if there is none yet)."""

    def __init__(self, clock: Callable[[], int]) -> None:
        self._clock = clock
        self.last: int | None = None

    def __call__(self) -> int:
        try:
            self.last = int(self._clock())
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.debug("clock unreadable (%s); using the last reading", type(exc).__name__)
            if self.last is None:
                self.last = int(time.time())
        return self.last


class Publisher:
    """The engine plus the outbox and the sender: `cycle()` is `navpub publish`."""

    def __init__(self, engine: NavEngine, sender: TxSender) -> None:
        self.engine = engine
        self.sender = sender
        self.store: Store = engine.store
        self.settings: Settings = engine.settings
        self.last_cycle: CycleResult | None = None
        s = self.settings
        self.alert_clock = AlertClock(engine.clock)
        self.alerter = Alerter(
            engine.store, s.alert_webhooks, cooldown_s=s.alert_cooldown_s, clock=self.alert_clock
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, *, hooks: Hooks | None = None, **sender_kw: object
    ) -> Publisher:
        engine = NavEngine.from_settings(settings)
        account = load_account(settings)
        sender = TxSender(engine.pool, account, engine.store, settings, hooks=hooks, **sender_kw)  # type: ignore[arg-type]
        return cls(engine, sender)

    def alert(
        self, kind: str, message: str, fund_id: int | None = None, report_id: int | None = None
    ) -> None:
        """Logged, stored and posted to the webhooks, deduplicated (publisher/alerts.py)."""
        self.alerter.fire(kind, message, fund_id=fund_id)

    def _decision_alerts(self, cycle: CycleResult) -> None:
        """The guard's alerts go out; conditions that cleared this cycle are resolved."""
        for f in cycle.funds:
            for a in f.decision.alerts:
                if a.kind == "breaker_closed":
                    self.alerter.resolve(a.kind, a.message, fund_id=f.fund_id)
                else:
                    self.alerter.fire(a.kind, a.message, fund_id=f.fund_id)
            if f.valuation is not None:
                self.alerter.resolve("oracle_failure", "prices available again", fund_id=f.fund_id)
                # The seed's "Mark NAV as estimated … Alert monitoring": on the first estimated
                # NAV, not when the breaker opens three cycles later.
                cached = [a.asset for a in f.valuation.assets if a.estimated]
                if f.valuation.estimated:
                    message = f"NAV estimated: cached price of {', '.join(cached) or 'an asset'}"
                    self.alerter.fire("nav_estimated", message, fund_id=f.fund_id)
                else:
                    self.alerter.resolve("nav_estimated", "live prices again", fund_id=f.fund_id)
            if f.decision.action != "hold":
                self.alerter.resolve("held", f"no longer held: {f.decision.reason}", fund_id=f.fund_id)
        self._source_alerts(cycle)

    def _source_alerts(self, cycle: CycleResult) -> None:
        """Every source dropped for deviating from its asset's median is alerted when it is
        detected, naming the asset and the source (one condition each, deduplicated and
        cooled down like the others), and resolved once that source is used again."""
        firing = self.store.active_alert_keys("source_deviating")
        for asset, agg in cycle.aggregates.items():
            for v in agg.verdicts:
                key = f"{asset}|{v.source}"
                if v.status == "deviating":
                    self.alerter.fire("source_deviating", f"{asset}: {describe(v)}", key=key)
                elif v.status == "used" and key in firing:
                    self.alerter.resolve("source_deviating", f"{asset}: {v.source} agrees again", key=key)

    # -- reconcile ----------------------------------------------------------------------------

    def settle_outbox(self) -> list[Publication]:
        """Settles every unfinished publication the chain already has an answer for, and
        finishes the accounting of any a crash cut short (outcome recorded, reports still sent)."""
        settled = []
        for pub in self.store.unaccounted_publications():
            self._account(pub)
            settled.append(pub)
        for pub in self.store.unfinished_publications():
            done = self.sender.settle(pub)
            if done is not None:
                self._account(done)
                settled.append(done)
        return settled

    def resume_outbox(self, cycle: CycleResult | None) -> list[Publication]:
        """Unfinished publications whose nonce is still free: replaced by the newest NAVs of
        their funds when newer ones wait, sent again otherwise, then awaited. A ripcord the
        breaker still wants is always sent again, never traded for a NAV; one it no longer wants
        gives its nonce to the fund's newest NAV, or is cancelled."""
        out = []
        for pub in self.store.unfinished_publications():
            ripcord = pub.kind == "ripcord"
            wanted = ripcord and self._ripcord_wanted(pub)  # sent as it is, whatever NAVs wait
            newer = [] if wanted else self.store.pending_reports(pub.fund_ids)
            if newer:
                carried = self.store.reports_of(pub.id)
                fresh_funds = {n.fund_id for n in newer}
                reports = [*newer, *(r for r in carried if r.fund_id not in fresh_funds)]
                prepared = self._prepare(reports)
                if prepared is not None:
                    # Same nonce, newest payload: whichever of the two is mined, only one can be.
                    # The old one is marked replaced (and its reports not carried over superseded)
                    # in the store transaction that commits the new one: were it marked before, a
                    # crash in between would leave its transaction in flight but unwatched.
                    fresh = self._publish(
                        prepared, reports, cycle, nonce=pub.nonce, min_fees=_last_fees(pub), replaces=pub.id
                    )
                    if fresh is not None:
                        out.append(fresh)
                    continue
            if ripcord and not wanted:
                cancelled = self._cancel(pub, cycle)
                if cancelled is not None:
                    out.append(cancelled)
                continue
            self.sender.rebroadcast(pub)
            done = self.sender.wait(pub.id, None)
            self._account(done, cycle)
            out.append(done)
        return out

    def _ripcord_wanted(self, pub: Publication) -> bool:
        """Whether a ripcord publication still does what the fund's breaker asks: a pause while
        it is open, a release while it is closed."""
        _, args = self.engine.vault.decode_function_input(calldata_of(pub.attempts[-1].raw_tx))
        fund_id = int(args["fundId"])
        return bool(args["paused"]) == self.store.fund_record(fund_id).guard.breaker_open

    def _cancel(self, pub: Publication, cycle: CycleResult | None) -> Publication | None:
        """Takes a stuck publication's nonce with a zero-value transfer to the engine itself."""
        try:
            prepared = self.sender.cancellation()
            done = self.sender.publish(
                prepared, [], pub.fund_ids, nonce=pub.nonce, min_fees=_last_fees(pub), kind="cancel",
                replaces=pub.id,
            )  # fmt: skip
        except (TransactionFailed, RpcUnreachable) as exc:
            self.alert("ripcord_failed", f"cancelling publication {pub.id} (nonce {pub.nonce}): {exc}")
            return None
        self._account(done, cycle)
        return self.store.publication(done.id)

    # -- the cycle -----------------------------------------------------------------------------

    def cycle(
        self,
        fund_ids: Sequence[int] | None = None,
        *,
        force: bool = False,
        trigger: Trigger = "scheduled",
        emergency: Collection[int] = (),
    ) -> list[FundOutcome]:
        """Reconcile, compute, send, account. Raises RpcUnreachable when the chain cannot be
        read at all (nothing is lost: the outbox is reconciled next time)."""
        s = self.settings
        try:
            self.settle_outbox()
        except RpcUnreachable as exc:
            self.alert("rpc_unreachable", str(exc))
            raise
        cycle = self.engine.rpc_call(
            lambda: self.engine.run(
                fund_ids, "forced" if force else trigger, extra_symbols=[s.native_symbol], emergency=emergency
            ),
            "NAV cycle",
        )
        self.last_cycle = cycle
        self.alert_clock.last = cycle.now  # a reading of this cycle's time for alerts, should the RPC go
        self.alerter.resolve("rpc_unreachable", "the RPC answers again")
        self._decision_alerts(cycle)
        resumed = self.resume_outbox(cycle)
        self.sync_ripcord(cycle, resumed)
        wanted = [f.fund_id for f in cycle.funds]
        due = [r for r in self.store.pending_reports(wanted) if self._still_newer(r, cycle)]
        if due:
            prepared = self._prepare(due)
            if prepared is not None:
                self._publish(prepared, due, cycle)
        # Per fund: what became of the report this cycle sent (or resent), else its decision.
        sent = {r.fund_id: r for p in resumed for r in self.store.reports_of(p.id)}
        sent.update({r.fund_id: r for r in due})
        outcomes = []
        for f in cycle.funds:
            report = sent.get(f.fund_id)
            outcomes.append(self._outcome(report.id) if report else self._decision(f, cycle))
        self.write_state_files(cycle, outcomes)
        return outcomes

    def write_state_files(self, cycle: CycleResult, outcomes: Sequence[FundOutcome]) -> None:
        """nav_state.json and nav.json for other tools; a disk error is alerted, not fatal —
        the NAV is on chain and in the store whatever happens to these files."""
        from publisher.statefiles import state_after_cycle  # it reads views, which read this module

        engine = self.engine
        try:
            state_after_cycle(
                engine.store, self.settings, engine.deployment, sorted(engine.registry.fx), cycle, outcomes
            )
        except OSError as exc:
            self.alert("state_files", f"could not write the state files in {self.settings.state_dir}: {exc}")

    def sync_ripcord(self, cycle: CycleResult, resumed: Sequence[Publication] = ()) -> None:
        """Mirrors each fund's circuit breaker on chain: paused while it is open (readable by
        every consumer, like Chainlink's ripcord), unpaused when it closes — but only a pause
        the engine set itself; a guardian's pause is the guardian's to lift."""
        vault = load_artifact("FundVault")
        # A ripcord still in flight answers for its fund until it settles, and one resumed this
        # cycle acted after the cycle's snapshot was read: no second one beside either.
        in_flight = {
            fid
            for p in [*self.store.unfinished_publications(), *resumed]
            if p.kind != "nav"
            for fid in p.fund_ids
        }
        for f in cycle.funds:
            if f.fund_id in in_flight:
                continue
            breaker_open = self.store.fund_record(f.fund_id).guard.breaker_open
            on_chain = f.snapshot.nav.paused
            try:
                if breaker_open and not on_chain:
                    pause, reason = True, f"circuit breaker open: {f.decision.reason}"[:200]
                elif not breaker_open and on_chain and f.snapshot.nav.engine_paused:
                    # Only the engine's own ripcord (FLAG_ENGINE_PAUSE, held on chain): a
                    # guardian's pause is the guardian's to lift, and the vault refuses it.
                    pause, reason = False, "circuit breaker closed: prices healthy again"
                else:
                    continue
                args = (f.fund_id, pause, reason)
                call = Call(self.engine.deployment.vault, vault.abi, "setFundPaused", args)
                prepared = self.sender.prepare(call, f"setFundPaused({f.fund_id}, {pause})")
                pub = self.sender.publish(prepared, [], [f.fund_id], kind="ripcord")
            except (NavPubError, Web3RPCError) as exc:
                self.alert("ripcord_failed", f"fund {f.fund_id}: {exc}", f.fund_id)
                continue
            self._account(pub, cycle)

    def _still_newer(self, report: Report, cycle: CycleResult) -> bool:
        """A report whose asOf the chain already has (or passed) is obsolete: superseded."""
        on_chain = next((f.snapshot.nav for f in cycle.funds if f.fund_id == report.fund_id), None)
        if on_chain is not None and report.as_of is not None and report.as_of <= on_chain.as_of:
            self.store.set_reports_status([report.id], "superseded")
            return False
        return True

    def _prepare(self, reports: Sequence[Report]) -> Prepared | None:
        """The transaction for `reports` (updateNAVBatch, one word a fund, even for one: the
        word carries the share version the NAV was computed at, which the vault checks),
        simulated. A revert fails the reports with the decoded error: never retried blindly."""
        reports = sorted(reports, key=lambda r: r.fund_id)
        vault = load_artifact("FundVault")
        address = self.engine.deployment.vault
        try:
            words = [
                pack_nav_update(r.fund_id, r.nav, r.as_of, r.flags, r.share_version or 0) for r in reports
            ]
        except ValueError as exc:
            self._failed(reports, str(exc))
            return None
        call = Call(address, vault.abi, "updateNAVBatch", (words,))
        what = f"NAV of fund(s) {', '.join(str(r.fund_id) for r in reports)}"
        try:
            return self.sender.prepare(call, what)
        except TransactionFailed as exc:
            self._failed(reports, str(exc))
        except RpcUnreachable as exc:
            for r in reports:
                self.alert("publish_failed", f"{exc}; the NAV stays in the outbox", r.fund_id, r.id)
        return None

    def _publish(
        self,
        prepared: Prepared,
        reports: Sequence[Report],
        cycle: CycleResult | None,
        *,
        nonce: int | None = None,
        min_fees: Fees | None = None,
        replaces: int | None = None,
    ) -> Publication | None:
        reports = sorted(reports, key=lambda r: r.fund_id)
        ids = [r.id for r in reports]
        try:
            pub = self.sender.publish(
                prepared, ids, [r.fund_id for r in reports], nonce=nonce, min_fees=min_fees, replaces=replaces
            )
        except RpcUnreachable as exc:
            for r in reports:
                self.alert("publish_failed", f"{exc}; the NAV stays in the outbox", r.fund_id, r.id)
            return None
        except TransactionFailed as exc:
            self._failed(reports, str(exc))
            return None
        self._account(pub, cycle)
        return self.store.publication(pub.id)

    def _failed(self, reports: Sequence[Report], error: str) -> None:
        self.store.set_reports_status([r.id for r in reports], "failed", error)
        for r in reports:
            self.alert("publish_failed", error, r.fund_id, r.id)

    # -- accounting ----------------------------------------------------------------------------

    def _account(self, pub: Publication, cycle: CycleResult | None = None) -> None:
        """Receipt → reports confirmed, HWM and activity baseline, gas in USD; or the failure."""
        reports = self.store.reports_of(pub.id)
        ids = [r.id for r in reports]
        now = self.engine.clock()
        if pub.status == "confirmed":
            failpoints.hit(failpoints.AFTER_RECORD)  # crash-test seam (publisher/failpoints.py)
            # The reports are marked confirmed last: until then they say "sent" under a settled
            # publication, which settle_outbox finds after a crash and accounts again (every
            # step before this one is idempotent), so no HWM or report is lost.
            receipt = self.sender.receipt_of(pub)
            vault = self.engine.vault

            def events(name: str) -> Sequence[Any]:
                if receipt is None:
                    return ()
                return getattr(vault.events, name)().process_receipt(receipt, errors=DISCARD)

            # Shares changed between the read and the inclusion: the vault skipped these NAVs
            # (not over today's supply). The next cycle computes fresh ones.
            skipped = {ev["args"]["fundId"]: dict(ev["args"]) for ev in events("NAVSkipped")}
            for r in reports:
                if r.fund_id in skipped:
                    ids.remove(r.id)
                    self.store.set_reports_status(
                        [r.id], "superseded", f"skipped on chain, shares changed: {skipped[r.fund_id]}"
                    )
                    continue
                self.alerter.resolve("publish_failed", f"published in {pub.tx_hash}", fund_id=r.fund_id)
                if r.activity is not None:
                    self.store.set_published_activity(r.fund_id, r.activity, now)
                if r.previous_round is not None:
                    # A jump held in the same cycle as an approved NAV was measured from the
                    # NAV this one just replaced: no longer a question for a person.
                    self.store.supersede_stale_held(r.fund_id, r.previous_round + 1)
            for ev in events("HighWaterMarkUpdated"):
                # The mark is per share: the NAV per share fees crystallise on.
                self.store.set_high_water_mark(ev["args"]["fundId"], ev["args"]["newNAV"], now)
            for ev in events("FundPaused"):
                state = "paused" if ev["args"]["paused"] else "unpaused"
                fund_id = ev["args"]["fundId"]
                self.alert("ripcord", f"fund {fund_id} {state} on chain: {ev['args']['reason']}", fund_id)
            native = self._native_usd(cycle)
            if native is not None and pub.cost_wei is not None:
                self.store.update_publication(
                    pub.id, native_usd=native, cost_usd=pub.cost_wei * native // 10**18
                )
            self.store.set_reports_status(ids, "confirmed")
        elif pub.status == "failed":
            self.store.set_reports_status(ids, "failed", pub.error)
            for r in reports:
                self.alert("publish_failed", f"fund {r.fund_id}: {pub.error}", r.fund_id, r.id)
            if pub.kind != "nav":
                funds = ", ".join(map(str, pub.fund_ids))
                self.alert("ripcord_failed", f"{pub.kind} publication {pub.id} (fund {funds}): {pub.error}")
        elif pub.status == "dropped":
            sibling = self._mined_sibling(pub)
            if sibling is not None:
                # The nonce went to the publication this one replaced: that one is on chain.
                self.store.update_publication(pub.id, status="replaced", error=None)
                self.store.set_reports_status(ids, "pending")
                self._account(sibling, cycle)
                return
            # The NAVs were never published: back to the outbox, where newer ones supersede them.
            self.store.set_reports_status(ids, "pending")
            self.alert("publication_dropped", f"publication {pub.id} (nonce {pub.nonce}): {pub.error}")
        elif pub.status == "sent":
            self.alert(
                "not_mined", f"publication {pub.id} (nonce {pub.nonce}) not mined yet; it stays in the outbox"
            )

    def _mined_sibling(self, pub: Publication) -> Publication | None:
        """A replaced publication of the same nonce whose transaction was mined after all."""
        for other in self.store.publications(("replaced",)):
            if other.nonce == pub.nonce and other.sender == pub.sender and other.id != pub.id:
                for attempt in other.attempts:
                    receipt = self.sender.receipt(attempt.tx_hash)
                    if receipt is not None:
                        self.store.update_publication(other.id, status="sent")
                        settled = self.sender.settle(self.store.publication(other.id))  # type: ignore[arg-type]
                        if settled is not None:
                            carried = [r.id for r in self.store.reports_of(other.id)]
                            self.store.set_reports_status(carried, "sent")
                            return settled
        return None

    def _native_usd(self, cycle: CycleResult | None) -> int | None:
        native = self.settings.native_symbol
        if cycle is not None and native in cycle.prices:
            return cycle.prices[native].price
        cached = self.store.cached_prices([native]).get(native)
        return cached.price if cached else None

    # -- outcomes -------------------------------------------------------------------------------

    def _decision(self, f: FundResult, cycle: CycleResult) -> FundOutcome:
        """The outcome of a fund nothing was sent for this cycle."""
        v = f.valuation
        if f.decision.action == "publish":
            stored = self.store.report(f.report_id) if f.report_id else None
            if stored is not None and stored.status == "superseded":
                return FundOutcome(
                    f.fund_id,
                    v.nav if v else None,
                    f.decision.estimated,
                    "skipped",
                    "the chain already has a NAV as of this block",
                    f.report_id,
                )
            if stored is not None:
                return self._outcome(stored.id)
        names: dict[str, Outcome] = {
            "skip": "skipped",
            "hold": "held",
            "fail": "failed",
            "publish": "pending",
        }
        return FundOutcome(
            f.fund_id,
            v.nav if v else None,
            f.decision.estimated,
            names[f.decision.action],
            f.decision.reason,
            f.report_id,
        )

    def _outcome(self, report_id: int) -> FundOutcome:
        """A sent report's outcome, from its publication."""
        r = self.store.report(report_id)
        assert r is not None
        pub = self.store.publication(r.publication_id) if r.publication_id else None
        if r.status == "failed":
            return FundOutcome(r.fund_id, r.nav, r.estimated, "failed", r.error or "failed", r.id)
        if r.status == "superseded":
            # The vault skipped it (NAVSkipped): its shares changed before the inclusion.
            return FundOutcome(r.fund_id, r.nav, r.estimated, "skipped", r.error or "superseded", r.id)
        if pub is None or r.status != "confirmed" or pub.status != "confirmed":
            reason = (
                "in the outbox: the RPC did not take it; it is sent again when the RPC answers"
                if pub is None or pub.status == "signed"
                else f"sent (nonce {pub.nonce}), not confirmed yet; it stays in the outbox"
            )
            return FundOutcome(r.fund_id, r.nav, r.estimated, "pending", reason, r.id)
        idx = sorted(pub.fund_ids).index(r.fund_id)
        n = len(pub.fund_ids)
        gas = fund_shares(pub.gas_used, n)[idx] if pub.gas_used is not None else None
        cost = fund_shares(pub.cost_usd, n)[idx] if pub.cost_usd is not None else None
        reason = r.reason + (f" (approved by {r.approved_by})" if r.approved_by else "")
        return FundOutcome(r.fund_id, r.nav, r.estimated, "published", reason, r.id, pub.tx_hash, gas, cost)
