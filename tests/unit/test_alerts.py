"""Alerter against a real local HTTP receiver and a real SQLite store, on a fake clock."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from publisher.alerts import Alerter, webhook_host
from publisher.store import Store, StoreError
from tests.httpserver import LocalHTTPServer, refused_url

HOOK = "/hooks/T000/B000/SECRETTOKEN123"
COOLDOWN = 3600


class Clock:
    def __init__(self, now: int = 1_700_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(f"sqlite:///{tmp_path / 's.sqlite3'}")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hook(http_server: LocalHTTPServer) -> str:
    http_server.route("POST", HOOK, json={"ok": True})
    return http_server.url + HOOK


@pytest.fixture
def alerter(store: Store, hook: str, clock: Clock) -> Iterator[Alerter]:
    with Alerter(store, [hook], cooldown_s=COOLDOWN, clock=clock, timeout_s=2.0) as a:
        yield a


def posts(server: LocalHTTPServer, path: str = HOOK) -> list[dict]:
    return [json.loads(r.body) for r in server.requests_to(path)]


def test_first_fire_posts_slack_text_and_fields(alerter, http_server, store, clock, caplog):
    with caplog.at_level(logging.WARNING, logger="navpub.alerts"):
        assert alerter.fire("held", "NAV +40 % with no activity\nheld", fund_id=3) is True
    [req] = http_server.requests_to(HOOK)
    assert req.method == "POST"
    assert req.headers["content-type"] == "application/json"
    body = json.loads(req.body)
    assert body == {
        "text": "[navpub] held fund 3: NAV +40 % with no activity held",
        "kind": "held",
        "fund_id": 3,
        "key": "fund:3",
        "status": "firing",
        "message": "NAV +40 % with no activity held",
        "at": clock.now,
    }
    [record] = [r for r in caplog.records if r.name == "navpub.alerts"]
    assert record.levelno == logging.WARNING
    assert "held" in record.getMessage() and "fund 3" in record.getMessage()
    [stored] = store.alerts()
    assert (stored["kind"], stored["fund_id"], stored["created_at"]) == ("held", 3, clock.now)
    state = store.alert_state("held", "fund:3")
    assert state is not None and state.active and state.last_sent_at == clock.now


def test_cooldown_suppresses_then_renotifies(alerter, http_server, store, clock, caplog):
    assert alerter.fire("overdue", "NAV 2 h old", fund_id=1) is True
    clock.now += COOLDOWN - 1
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="navpub.alerts"):
        assert alerter.fire("overdue", "NAV 3 h old", fund_id=1) is False
    assert len(posts(http_server)) == 1
    assert [r.levelno for r in caplog.records if r.name == "navpub.alerts"] == [logging.DEBUG]
    assert len(store.alerts()) == 1  # a suppressed repeat is not stored

    clock.now += 1  # the cooldown has elapsed
    assert alerter.fire("overdue", "NAV 3 h old", fund_id=1) is True
    assert [p["message"] for p in posts(http_server)] == ["NAV 2 h old", "NAV 3 h old"]
    assert len(store.alerts()) == 2  # the re-notification is stored
    state = store.alert_state("overdue", "fund:1")
    assert state is not None and state.last_sent_at == clock.now
    assert state.first_at == clock.now - COOLDOWN


def test_resolve_posts_once_and_fire_again_is_new(alerter, http_server, store, clock):
    assert alerter.resolve("breaker_open", "closed", fund_id=2) is False  # never fired: nothing
    assert posts(http_server) == []
    assert store.alerts() == []

    alerter.fire("breaker_open", "3 bad cycles", fund_id=2)
    clock.now += 60
    assert alerter.resolve("breaker_closed", "all prices live", fund_id=2) is True
    assert alerter.resolve("breaker_open", "all prices live", fund_id=2) is False
    bodies = posts(http_server)
    assert [b["status"] for b in bodies] == ["firing", "resolved"]
    assert bodies[1]["text"] == "[navpub] RESOLVED breaker_open fund 2: all prices live"
    assert bodies[1]["kind"] == "breaker_open" and bodies[1]["fund_id"] == 2
    state = store.alert_state("breaker_open", "fund:2")
    assert state is not None and not state.active
    assert [a["message"] for a in store.alerts()] == ["resolved: all prices live", "3 bad cycles"]

    clock.now += 60  # well within the cooldown, but a new occurrence after a resolve
    assert alerter.fire("breaker_open", "3 bad cycles again", fund_id=2) is True
    assert [b["status"] for b in posts(http_server)] == ["firing", "resolved", "firing"]


def test_conditions_are_per_kind_fund_and_key(alerter, http_server):
    assert alerter.fire("oracle_failure", "BTC stale", fund_id=1) is True
    assert alerter.fire("oracle_failure", "BTC stale", fund_id=2) is True
    assert alerter.fire("held", "jump", fund_id=1) is True
    assert alerter.fire("rpc_unreachable", "connection refused") is True
    assert alerter.fire("low_balance", "0.01 ETH", key="engine") is True
    assert alerter.fire("oracle_failure", "BTC stale", fund_id=1) is False
    assert alerter.fire("rpc_unreachable", "connection refused") is False
    assert alerter.fire("low_balance", "0.009 ETH", key="engine") is False
    texts = [b["text"] for b in posts(http_server)]
    assert texts == [
        "[navpub] oracle_failure fund 1: BTC stale",
        "[navpub] oracle_failure fund 2: BTC stale",
        "[navpub] held fund 1: jump",
        "[navpub] rpc_unreachable: connection refused",
        "[navpub] low_balance [engine]: 0.01 ETH",
    ]
    assert [b["key"] for b in posts(http_server)][3:] == ["*", "engine"]


def test_restart_keeps_dedup_state(store, hook, http_server, clock):
    with Alerter(store, [hook], cooldown_s=COOLDOWN, clock=clock) as first:
        assert first.fire("not_mined", "publication 7", fund_id=4) is True
    clock.now += 600
    with Alerter(store, [hook], cooldown_s=COOLDOWN, clock=clock) as second:
        assert second.fire("not_mined", "publication 7", fund_id=4) is False
        assert len(posts(http_server)) == 1
        assert second.resolve("not_mined", "mined", fund_id=4) is True
    assert [b["status"] for b in posts(http_server)] == ["firing", "resolved"]


def test_every_webhook_gets_it_and_a_dead_one_stops_nothing(store, http_server, clock, caplog):
    http_server.route("POST", "/a", json={})
    http_server.route("POST", "/b", body="ok", content_type="text/plain")
    with refused_url() as dead, caplog.at_level(logging.ERROR, logger="navpub.alerts"):
        urls = [dead + "/dead/secret-path", http_server.url + "/a", http_server.url + "/b"]
        with Alerter(store, urls, clock=clock, timeout_s=2.0) as alerter:
            assert alerter.fire("publish_failed", "reverted", fund_id=1) is True
            assert alerter.fire("publish_failed", "reverted", fund_id=1) is False  # accepted: cooldown
    assert len(posts(http_server, "/a")) == 1
    assert len(posts(http_server, "/b")) == 1
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert webhook_host(dead) in error.getMessage()
    assert "secret-path" not in caplog.text


def test_all_receivers_dead_does_not_swallow_the_alert(store, http_server, clock):
    with refused_url() as dead, Alerter(store, [dead + "/x"], clock=clock) as alerter:
        assert alerter.fire("keeper_tick_failed", "RPC down") is False
        assert alerter.fire("keeper_tick_failed", "RPC down") is False
    state = store.alert_state("keeper_tick_failed", "*")
    assert state is not None and state.active and state.last_sent_at is None
    assert len(store.alerts()) == 1  # the first occurrence is stored once, retries are not
    http_server.route("POST", "/x", json={})
    with Alerter(store, [http_server.url + "/x"], clock=clock) as alerter:
        assert alerter.fire("keeper_tick_failed", "RPC down") is True  # delivered on recovery
        assert alerter.fire("keeper_tick_failed", "RPC down") is False
    assert len(store.alerts()) == 1


def test_a_500_is_not_delivered(store, http_server, clock, caplog):
    route = http_server.route("POST", HOOK, status=500, body='{"error": "boom"}')
    url = http_server.url + HOOK
    with (
        caplog.at_level(logging.DEBUG, logger="navpub.alerts"),
        Alerter(store, [url], clock=clock) as alerter,
    ):
        assert alerter.fire("publication_dropped", "nonce 5 used", fund_id=1) is False
        clock.now += 10
        assert alerter.fire("publication_dropped", "nonce 5 used", fund_id=1) is False
        assert route.hits == 2  # retried: nothing was delivered
        http_server.route("POST", HOOK, json={"ok": True})
        clock.now += 10
        assert alerter.fire("publication_dropped", "nonce 5 used", fund_id=1) is True
        clock.now += 10
        assert alerter.fire("publication_dropped", "nonce 5 used", fund_id=1) is False
    assert len(http_server.requests_to(HOOK)) == 3
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2 and all("HTTP 500" in e for e in errors)
    assert "SECRETTOKEN123" not in caplog.text
    assert url not in caplog.text


def test_timeout_is_not_delivered_and_never_raises(store, http_server, clock, caplog):
    http_server.route("POST", HOOK, hang=True)
    with (
        caplog.at_level(logging.ERROR, logger="navpub.alerts"),
        Alerter(store, [http_server.url + HOOK], clock=clock, timeout_s=0.2) as alerter,
    ):
        assert alerter.fire("volatility_mode", "fund 1 at 900 s cadence", fund_id=1) is False
    assert "timed out" in caplog.text
    assert "SECRETTOKEN123" not in caplog.text


def test_no_webhook_logs_stores_and_cools_down(store, clock, caplog):
    with (
        caplog.at_level(logging.WARNING, logger="navpub.alerts"),
        Alerter(store, [], clock=clock) as alerter,
    ):
        assert alerter.fire("held", "jump", fund_id=1) is False
        assert alerter.fire("held", "jump", fund_id=1) is False
        clock.now += COOLDOWN
        assert alerter.fire("held", "jump", fund_id=1) is False
    assert len(store.alerts()) == 2
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2


def test_store_failure_still_posts(store, hook, http_server, clock, monkeypatch):
    def broken(*_args, **_kwargs):
        raise StoreError("store unavailable: disk I/O error")

    monkeypatch.setattr(store, "alert_state", broken)
    monkeypatch.setattr(store, "add_alert", broken)
    monkeypatch.setattr(store, "set_alert_state", broken)
    with Alerter(store, [hook], clock=clock) as alerter:
        assert alerter.fire("keeper_tick_failed", "store down") is True
    assert len(posts(http_server)) == 1


def test_webhook_host_hides_path_query_and_userinfo():
    assert webhook_host("https://user:pw@hooks.slack.com/services/T/B/XYZ?token=1") == "hooks.slack.com"
    assert webhook_host("http://127.0.0.1:8080/x/y") == "127.0.0.1:8080"
    assert webhook_host("not a url") == "?"
