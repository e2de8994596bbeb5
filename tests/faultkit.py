"""What the fault suites and the soak share: a simulated crash, a fake sender clock, and the
settings of a publisher on the demo chain."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from publisher.config import Settings, load_settings

if TYPE_CHECKING:  # the soak (bench/) runs without pytest's import
    import pytest


class SimulatedCrash(BaseException):
    """The process dies: a BaseException, so no handler of the product catches it."""


def crash(*_: object) -> None:
    """A failpoint or hook action: the process dies here."""
    raise SimulatedCrash


@dataclass
class FakeTime:
    """The sender's monotonic clock and sleep: a receipt wait expires without real waiting."""

    now: float = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def chain_settings(monkeypatch: pytest.MonkeyPatch, rpc_url: str, state_dir: Path, **extra: str) -> Settings:
    """Settings for the demo chain at `rpc_url`: the chain's clock, no retry backoff, plus
    `extra` (NAVPUB_* names). Set in the environment, so a `navpub` process a test starts
    gets the same."""
    env = {
        "NAVPUB_RPC_URL": rpc_url,
        "NAVPUB_STATE_DIR": str(state_dir),
        "NAVPUB_CLOCK": "chain",
        "NAVPUB_RETRY_BACKOFF_S": "0",
        **extra,
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return load_settings()
