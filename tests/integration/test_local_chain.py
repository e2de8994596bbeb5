"""The README's demo command and `navpub chain start|stop`, on their own anvil (free port)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from publisher import cli
from publisher.cli import main
from publisher.localchain import REPO_ROOT, free_port, is_answering

pytestmark = pytest.mark.anvil


@pytest.fixture
def own_chain(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """An anvil.env like the repository's but on a free port; returns its RPC URL."""
    for name in list(os.environ):
        if name.startswith("NAVPUB_"):
            monkeypatch.delenv(name)
    port = free_port()
    text = (REPO_ROOT / "anvil.env").read_text().replace("ANVIL_PORT=8545", f"ANVIL_PORT={port}")
    assert f"ANVIL_PORT={port}" in text
    (tmp_path / "anvil.env").write_text(text)
    monkeypatch.chdir(tmp_path)  # ./anvil.env wins over the repository's
    monkeypatch.setattr(cli.out, "width", 160)
    return f"http://127.0.0.1:{port}"


def test_demo_deploys_prints_and_stops_the_chain(
    own_chain: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--no-serve"]) == 0
    text = capsys.readouterr().out
    for needle in ("Digital Assets Core", "Gold & Stablecoin Reserve", "Diversified 21-Asset Index", "XAUT"):
        assert needle in text
    assert "anvil stopped" in text
    assert not is_answering(own_chain)
    deployment = json.loads((tmp_path / "state" / "deployment.json").read_text())
    assert len(deployment["funds"]) == 3


def test_chain_start_and_stop(own_chain: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chain", "start"]) == 0
    try:
        assert is_answering(own_chain)
        assert (tmp_path / "state" / "anvil.pid").exists()
        assert main(["chain", "start"]) == 2  # the port is taken: said, not crashed
        assert "already answers" in capsys.readouterr().err
    finally:
        assert main(["chain", "stop"]) == 0
    assert "anvil stopped" in capsys.readouterr().out
    assert main(["chain", "stop"]) == 0
    assert "no anvil was running" in capsys.readouterr().out
