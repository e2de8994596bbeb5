"""The demo deployment with a ZAR rate from a local HTTP rates API, as the API, state-file and
dashboard tests use it."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from publisher.artifacts import REPO_ROOT
from publisher.config import Settings, load_settings
from publisher.keys import dev_account
from publisher.publish import Publisher
from tests.chainops import move_market
from tests.httpserver import LocalHTTPServer

ZAR = Decimal("18.2450")


def sources_with_fx(url: str) -> str:
    base = (REPO_ROOT / "scripts" / "demo-sources.toml").read_text()
    return (
        base
        + f"""
[http_sources.rates]
adapter = "generic"
base_url = "{url}"

[fx.ZAR]
http = [{{ source = "rates", instrument = "USD", path = "/v1/latest", price_field = "rates.ZAR" }}]
"""
    )


def fx_settings(
    rpc_url: str, state_dir: Path, http_server: LocalHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """Settings for the demo in `state_dir` on the chain clock, with `http_server` quoting ZAR."""
    http_server.route("GET", "/v1/latest", json={"base": "USD", "rates": {"ZAR": ZAR}})
    sources = state_dir / "sources.toml"
    sources.write_text(sources_with_fx(http_server.url))
    env = {
        "NAVPUB_RPC_URL": rpc_url,
        "NAVPUB_STATE_DIR": str(state_dir),
        "NAVPUB_CLOCK": "chain",
        "NAVPUB_RETRY_BACKOFF_S": "0",
        "NAVPUB_SOURCES_FILE": str(sources),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return load_settings()


def market(pub: Publisher, settings: Settings, moves: dict[str, Decimal]) -> None:
    """Every demo feed answers again, those of `moves` times the factor (the demo's oracle key)."""
    move_market(pub.engine.w3, pub.engine.deployment, dev_account(settings, 3), moves)
