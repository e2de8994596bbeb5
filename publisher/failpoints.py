"""Named points on the publish path where a fault-injection test can make the publisher die.

The exactly-once argument (README "How a NAV is published") is about what a restart finds
after a crash between two steps; these names mark those steps, so tests can crash there and
check that the restart ends with each NAV on chain once and every report settled:

    publish.before_outbox   the report is stored pending; its signed transaction is not committed
    publish.after_outbox    the signed transaction is committed (status signed), not broadcast
    publish.after_send      broadcast (status sent), receipt not fetched yet
    publish.after_receipt   the receipt is fetched, not yet recorded in the store
    publish.after_record    the publication is recorded confirmed, its reports not accounted yet

`hit(name)` does nothing unless the point is armed:
- in-process, by a test: `arm(name, action)`; the action runs at the point (raise a
  BaseException to simulate a crash, or break something, e.g. take the RPC down) until
  `disarm(name)`;
- for a real process: the environment variable NAVPUB_FAILPOINT=name ends the process at
  that point with os._exit(137), as SIGKILL would: no cleanup, no flush, no atexit.
Unarmed, a point costs one dict lookup and one environment lookup.
"""

from __future__ import annotations

import os
from collections.abc import Callable

ENV = "NAVPUB_FAILPOINT"
KILLED_EXIT_CODE = 137  # how a shell reports a process killed by SIGKILL (128 + 9)

BEFORE_OUTBOX = "publish.before_outbox"
AFTER_OUTBOX = "publish.after_outbox"
AFTER_SEND = "publish.after_send"
AFTER_RECEIPT = "publish.after_receipt"
AFTER_RECORD = "publish.after_record"
POINTS = (BEFORE_OUTBOX, AFTER_OUTBOX, AFTER_SEND, AFTER_RECEIPT, AFTER_RECORD)

_armed: dict[str, Callable[[], None]] = {}


def arm(name: str, action: Callable[[], None]) -> None:
    """Runs `action` every time the point `name` is hit, until disarm(name)."""
    if name not in POINTS:
        raise ValueError(f"unknown failpoint {name!r}; known: {', '.join(POINTS)}")
    _armed[name] = action


def disarm(name: str | None = None) -> None:
    """Disarms one point, or every point."""
    if name is None:
        _armed.clear()
    else:
        _armed.pop(name, None)


def hit(name: str) -> None:
    """Called by the publisher at the point `name`."""
    action = _armed.get(name)
    if action is not None:
        action()
    elif os.environ.get(ENV) == name:
        os._exit(KILLED_EXIT_CODE)
