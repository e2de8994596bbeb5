"""The sources file: parsing, merging with the deployment, and its errors (each naming the field)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from publisher._exceptions import ConfigError
from publisher.deployment import Deployment, TokenInfo
from publisher.registry import build_registry, load_sources_file

ADDR = "0x" + "1" * 40
DEPLOYMENT = Deployment(
    chain_id=31337, deploy_block=1, deployer=ADDR, nav_engine=ADDR,
    contracts={"FundVault": ADDR, "AnalyticsHub": ADDR, "PriceOracleRouter": ADDR},
    tokens={"BTC": TokenInfo(address="0x" + "b" * 40, decimals=8, name="Bitcoin"),
            "USDT": TokenInfo(address="0x" + "d" * 40, decimals=6, name="Tether")},
)  # fmt: skip

GOOD = """
[http_sources.kraken]
adapter = "kraken"
base_url = "http://127.0.0.1:9"

[assets.BTC]
haircut = "0.0625"
router = true
http = [{ source = "kraken", instrument = "XBTUSD" }]

[assets.USDT]
haircut = "0.3"

[assets.PAXG]
address = "0x2222222222222222222222222222222222222222"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "sources.toml"
    p.write_text(text)
    return p


def test_merge_with_the_deployment(tmp_path: Path) -> None:
    reg = build_registry(DEPLOYMENT, load_sources_file(write(tmp_path, GOOD)))
    btc = reg.get("BTC")
    assert btc.address == DEPLOYMENT.tokens["BTC"].address and btc.decimals == 8
    assert btc.router and btc.router_feeds and btc.haircut == Decimal("0.0625")
    assert [(r.source, r.asset, r.instrument) for r in btc.http] == [("kraken", "BTC", "XBTUSD")]
    assert reg.get("USDT").haircut == 0  # stablecoins carry no haircut
    assert reg.get("PAXG").address == "0x2222222222222222222222222222222222222222"
    assert reg.http_sources["kraken"].id == "kraken"
    assert reg.symbols_by_address()["0x" + "b" * 40] == "BTC"


def test_without_a_file_every_deployment_token_is_priced_by_its_feeds() -> None:
    reg = build_registry(DEPLOYMENT)
    assert set(reg.assets) == {"BTC", "USDT"} and reg.get("BTC").http == ()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[assets.BTC\n", "is not valid TOML"),
        ('[assets.BTC]\nhaircut = "1.5"\n', "assets.BTC.haircut"),
        ('[assets.BTC]\nhttp = [{ source = "nope", instrument = "X" }]\n', "unknown http source 'nope'"),
        ('[http_sources.k]\nadapter = "bogus"\nbase_url = "http://x"\n', "http_sources.k.adapter"),
        ('[http_sources.k]\nid = "other"\nadapter = "kraken"\nbase_url = "http://x"\n', "leave id out"),
        ('[offexchange.1]\nurl = "ftp://x"\n', "offexchange.1.url"),
    ],
)
def test_bad_files_name_the_field(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        build_registry(DEPLOYMENT, load_sources_file(write(tmp_path, text)))
    assert str(exc.value).startswith("NAVPUB_SOURCES_FILE:") and needle in str(exc.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_sources_file(tmp_path / "nope.toml")


def test_unknown_asset_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown asset 'DOGE' \(known: BTC, USDT\)"):
        build_registry(DEPLOYMENT).get("DOGE")
