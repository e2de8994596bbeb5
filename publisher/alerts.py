"""Alerts that are loud but not noisy: logged, stored, and posted to webhooks with dedup.

A *condition* is (kind, key): key is "fund:N" when a fund is given, else the caller's `key`,
else "*" (a caller's `key` wins over the fund). The kinds the rest of navpub raises:

- held: a NAV jump held for approval (`navpub approve`)
- breaker_open: the fund's circuit breaker opened; cleared by `resolve("breaker_open")`
  (or `resolve("breaker_closed")`, the same thing) when it closes
- oracle_failure: a price could not be obtained or trusted
- publish_failed: a publication failed (reverted, refused, …)
- rpc_unreachable: the chain's RPC endpoint does not answer
- not_mined: a publication was not mined in time
- publication_dropped: a publication's nonce was used by something else
- volatility_mode: the fund switched to (or out of) high-volatility cadence
- keeper_tick_failed: a keeper tick failed
- low_balance: the engine's key is running out of gas money
- overdue: a fund's NAV is older than its cadence allows

Rules of `fire` (the condition is active):

- A condition that was not firing (never seen, or resolved since) is *new*: logged at
  WARNING, stored in the alerts table, posted to every webhook.
- A condition already firing whose last accepted notification is less than `cooldown_s` old
  is *suppressed*: logged at DEBUG only, not stored, not posted, state untouched.
- A condition already firing whose cooldown has elapsed, or that no receiver has accepted
  yet, is *due again*: logged at WARNING and posted; it is stored as a re-notification only
  once a receiver accepts it (so a dead receiver does not fill the alerts table each tick;
  the first occurrence is always stored).
- `last_sent_at` (the start of the cooldown) moves only when at least one webhook accepted
  the post (2xx), so a dead receiver never swallows an alert: the next `fire` retries. With
  no webhook configured, logging and storing are the notification and the cooldown applies
  to them.

Rules of `resolve`: a firing condition posts one "resolved" notification, is logged at INFO,
stored (message "resolved: …") and marked inactive, whether or not a receiver accepted it (a
resolution is not retried). A condition that is not firing: nothing at all. A condition that
fires again after a resolve is new again.

A webhook never raises: a refused connection, a timeout or a non-2xx answer is logged at
ERROR with the URL's host only (webhook URLs carry tokens in their path). Nor does the store: an
error reading or writing the alerts or the dedup state is logged at ERROR and the alert is
still posted (loud beats quiet; without the state it may be posted again next time).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from publisher.store import AlertState, Store, StoreError

log = logging.getLogger("navpub.alerts")

KINDS = (
    "held",
    "breaker_open",
    "oracle_failure",
    "publish_failed",
    "rpc_unreachable",
    "not_mined",
    "publication_dropped",
    "volatility_mode",
    "keeper_tick_failed",
    "low_balance",
    "overdue",
)

# Kinds that name the clearing of another condition.
RESOLVES = {"breaker_closed": "breaker_open"}


def condition_key(fund_id: int | None, key: str | None) -> str:
    """The dedup key of a condition: the caller's key, else "fund:N", else "*"."""
    if key is not None:
        return key
    return "*" if fund_id is None else f"fund:{fund_id}"


def webhook_host(url: str) -> str:
    """What may be logged of a webhook URL: its host (and port), never path, query or userinfo."""
    try:
        split = urlsplit(url)
        host = split.hostname or "?"
        return f"{host}:{split.port}" if split.port else host
    except ValueError:
        return "?"


def _one_line(text: str) -> str:
    return " ".join(text.split())


class Alerter:
    """Logs, stores and posts alerts; see the module docstring for the dedup rules."""

    def __init__(
        self,
        store: Store,
        webhooks: Sequence[str],
        *,
        cooldown_s: int = 3600,
        clock: Callable[[], int],
        timeout_s: float = 5.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.store = store
        self.webhooks = tuple(webhooks)
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.timeout_s = timeout_s
        self._owns_client = client is None
        self.client = client if client is not None else httpx.Client(timeout=timeout_s)

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> Alerter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- conditions --------------------------------------------------------------------

    def fire(self, kind: str, message: str, *, fund_id: int | None = None, key: str | None = None) -> bool:
        """The condition is active. Returns whether a webhook accepted a notification."""
        now = int(self.clock())
        ckey = condition_key(fund_id, key)
        message = _one_line(message)
        where = _where(fund_id, key)
        state, state_ok = self._state(kind, ckey)
        new = state is None or not state.active
        notified_at = None if state is None or new else state.last_sent_at
        if notified_at is not None and now - notified_at < self.cooldown_s:
            log.debug("alert %s%s (already notified, cooling down): %s", kind, where, message)
            return False
        log.warning("alert %s%s: %s", kind, where, message)
        if new:
            self._write(self.store.add_alert, kind, message, now, fund_id)
        text = f"[navpub] {kind}{where}: {message}"
        sent = self._post_all(self._payload(text, kind, fund_id, ckey, "firing", message, now))
        accepted = sent or not self.webhooks
        if accepted and notified_at is not None:
            self._write(self.store.add_alert, kind, message, now, fund_id)  # re-notified after the cooldown
        if state_ok:
            self._write(
                self.store.set_alert_state,
                kind,
                ckey,
                active=True,
                first_at=state.first_at if state is not None and not new else now,
                last_sent_at=now if accepted else notified_at,
                last_message=message,
            )
        return sent

    def resolve(self, kind: str, message: str, *, fund_id: int | None = None, key: str | None = None) -> bool:
        """The condition cleared. Returns whether a webhook accepted the "resolved" notification."""
        kind = RESOLVES.get(kind, kind)
        ckey = condition_key(fund_id, key)
        message = _one_line(message)
        state, _ = self._state(kind, ckey)
        if state is None or not state.active:
            return False
        # Read only now: with the chain clock a reading is an RPC round trip, and nearly every
        # call finds nothing active.
        now = int(self.clock())
        where = _where(fund_id, key)
        log.info("resolved %s%s: %s", kind, where, message)
        self._write(self.store.add_alert, kind, f"resolved: {message}", now, fund_id)
        text = f"[navpub] RESOLVED {kind}{where}: {message}"
        sent = self._post_all(self._payload(text, kind, fund_id, ckey, "resolved", message, now))
        self._write(
            self.store.set_alert_state,
            kind,
            ckey,
            active=False,
            first_at=state.first_at,
            last_sent_at=state.last_sent_at,
            last_message=message,
        )
        return sent

    def state(self, kind: str, *, fund_id: int | None = None, key: str | None = None) -> AlertState | None:
        """The stored dedup state of a condition (None: never fired)."""
        return self.store.alert_state(RESOLVES.get(kind, kind), condition_key(fund_id, key))

    # -- plumbing ----------------------------------------------------------------------

    def _state(self, kind: str, ckey: str) -> tuple[AlertState | None, bool]:
        try:
            return self.store.alert_state(kind, ckey), True
        except StoreError as exc:
            log.error("alert state of %s/%s unreadable, notifying anyway: %s", kind, ckey, exc)
            return None, False

    @staticmethod
    def _write(write: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        try:
            write(*args, **kwargs)
        except StoreError as exc:
            log.error("alert not recorded in the store: %s", exc)

    @staticmethod
    def _payload(
        text: str, kind: str, fund_id: int | None, ckey: str, status: str, message: str, now: int
    ) -> dict[str, Any]:
        return {
            "text": text,
            "kind": kind,
            "fund_id": fund_id,
            "key": ckey,
            "status": status,
            "message": message,
            "at": now,
        }

    def _post_all(self, payload: dict[str, Any]) -> bool:
        """Posts to every webhook; True when at least one accepted (2xx)."""
        results = [self._post(url, payload) for url in self.webhooks]
        return any(results)

    def _post(self, url: str, payload: dict[str, Any]) -> bool:
        host = webhook_host(url)
        try:
            answer = self.client.post(url, json=payload, timeout=self.timeout_s)
        except httpx.TimeoutException:
            log.error("alert webhook %s timed out after %ss", host, self.timeout_s)
            return False
        except Exception as exc:  # never raise: a dead receiver must not break the caller
            # The exception's text may quote the URL: only its type is logged.
            log.error("alert webhook %s unreachable (%s)", host, type(exc).__name__)
            return False
        if not answer.is_success:
            log.error("alert webhook %s answered HTTP %d", host, answer.status_code)
            return False
        return True


def _where(fund_id: int | None, key: str | None) -> str:
    if fund_id is not None:
        return f" fund {fund_id}"
    return f" [{key}]" if key is not None else ""
