"""The store on SQLite: versioned schema, exact big integers, cache, reports, approval, fund state."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import update

from publisher.gas import ledger
from publisher.guard import FundGuardState
from publisher.price import CachedPrice
from publisher.store import LATEST_VERSION, NewReport, SignedTx, Store, StoreError, schema_version

E18 = 10**18


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(f"sqlite:///{tmp_path / 'state' / 'navpub.sqlite3'}")


def report(fund_id: int = 1, *, status: str = "held", nav: int = 5 * E18) -> NewReport:
    return NewReport(fund_id=fund_id, created_at=100, trigger="scheduled", block_number=7, decision="hold",
                     reason="jump", status=status, nav=nav, inputs={"prices": {"BTC": "42000"}})  # fmt: skip


def test_new_database_is_stamped_and_reopens(tmp_path: Path, store: Store) -> None:
    assert store.version() == LATEST_VERSION
    again = Store.open(f"sqlite:///{tmp_path / 'state' / 'navpub.sqlite3'}")
    assert again.version() == LATEST_VERSION


def test_a_newer_database_is_refused(tmp_path: Path, store: Store) -> None:
    with store.engine.begin() as conn:
        conn.execute(update(schema_version).values(version=LATEST_VERSION + 1))
    with pytest.raises(StoreError, match="newer than this navpub knows"):
        Store.open(f"sqlite:///{tmp_path / 'state' / 'navpub.sqlite3'}")


def test_big_integers_are_exact(store: Store) -> None:
    huge = 2**255 + 12345
    store.save_prices([CachedPrice("BTC", huge, 99, 10, ("a", "b"))])
    assert store.cached_prices(["BTC"])["BTC"] == CachedPrice("BTC", huge, 99, 10, ("a", "b"))
    rid = store.add_report(report(nav=huge))
    assert store.report(rid).nav == huge


def test_cache_upserts(store: Store) -> None:
    store.save_prices([CachedPrice("BTC", 1, 90, 10, ("a",))])
    store.save_prices([CachedPrice("BTC", 2, 95, 20, ("b",)), CachedPrice("ETH", 3, 100, 20, ())])
    assert {k: v.price for k, v in store.cached_prices().items()} == {"BTC": 2, "ETH": 3}


def test_approve_newest_held_and_supersede_the_rest(store: Store) -> None:
    old = store.add_report(report())
    new = store.add_report(report(nav=6 * E18))
    approved = store.approve(1, "alice", 200)
    assert (approved.id, approved.status, approved.approved_by, approved.approved_at) == (
        new,
        "approved",
        "alice",
        200,
    )
    assert store.report(old).status == "superseded"
    with pytest.raises(StoreError, match="fund 1 has no held NAV to approve"):
        store.approve(1, "alice", 201)
    assert store.report(new).inputs == {"prices": {"BTC": "42000"}}


def test_supersede_held_by_a_passing_report(store: Store) -> None:
    held = store.add_report(report())
    passing = store.add_report(report(status="pending"))
    assert store.supersede_held(1, passing) == 1
    assert store.report(held).status == "superseded"


def test_fund_state_round_trip(store: Store) -> None:
    assert store.fund_record(3).guard == FundGuardState() and store.fund_record(3).published_activity is None
    store.save_guard_state(3, FundGuardState(2, True, 9, 4), 50)
    store.set_published_activity(3, 9, 51)
    rec = store.fund_record(3)
    assert rec.guard == FundGuardState(2, True, 9, 4) and rec.published_activity == 9


def test_alerts_are_kept(store: Store) -> None:
    rid = store.add_report(report())
    store.add_alert("held", "NAV moved 40 %", 10, 1, rid)
    (a,) = store.alerts(1)
    assert (a["kind"], a["report_id"], a["message"]) == ("held", rid, "NAV moved 40 %")


def test_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises((StoreError, OSError)):
        Store.open(f"sqlite:///{blocker / 'navpub.sqlite3'}")


def test_pending_beats_approved_and_older_ones_are_superseded(store: Store) -> None:
    held = store.add_report(report())
    store.approve(1, "bob", 10)
    assert [r.id for r in store.pending_reports()] == [held]  # the approval is what waits
    old = store.add_report(report(status="pending"))
    new = store.add_report(report(status="pending", nav=7 * E18))
    assert [r.id for r in store.pending_reports()] == [new]  # a fresh NAV that passed wins
    assert store.report(old).status == "superseded" and store.report(held).status == "superseded"


def test_publication_lifecycle(store: Store) -> None:
    rid = store.add_report(report(status="pending"))
    pid = store.create_publication("0xabc", 7, [rid], [1], 100)
    assert store.report(rid).status == "sent" and store.report(rid).publication_id == pid
    store.add_attempt(pid, SignedTx("0x01", "0xf8", 50_000, max_fee=10, priority_fee=1), 101)
    store.add_attempt(pid, SignedTx("0x02", "0xf9", 50_000, max_fee=12, priority_fee=2), 102)
    (p,) = store.unfinished_publications()
    assert (p.nonce, p.status, p.kind, p.fund_ids, [a.tx_hash for a in p.attempts]) == (
        7, "signed", "nav", (1,), ["0x01", "0x02"],
    )  # fmt: skip
    store.update_publication(pid, status="confirmed", tx_hash="0x02", gas_used=40_000, cost_wei=2**80)
    assert store.unfinished_publications() == [] and store.publication(pid).cost_wei == 2**80
    assert [r.id for r in store.reports_of(pid)] == [rid]


def test_every_publication_is_read_for_the_ledger_past_a_thousand(store: Store) -> None:
    """The gas ledger, `navpub gas` and the metrics sum over publications(): it once stopped at
    the oldest 1,000, so a year of updates showed the cost of its first six weeks."""
    for nonce in range(1_005):
        signed = SignedTx(f"0x{nonce:x}", "0xf8", 50_000, max_fee=10, priority_fee=1)
        pid = store.create_publication("0xabc", nonce, [], [1 + nonce % 3], nonce, signed=signed)
        status = "confirmed" if nonce % 2 == 0 else "replaced"
        store.update_publication(pid, status=status, tx_hash=f"0x{nonce:x}", gas_used=30_000 + nonce)
    confirmed = store.publications(("confirmed",))
    assert len(store.publications()) == 1_005 and len(confirmed) == 503
    assert (
        ledger(confirmed).gas
        == ledger(store.publications()).gas
        == sum(30_000 + n for n in range(0, 1_005, 2))
    )
    last = confirmed[-1]
    assert last.nonce == 1_004 and [a.tx_hash for a in last.attempts] == ["0x3ec"]
