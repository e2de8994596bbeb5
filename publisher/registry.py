"""Which assets exist and where their prices come from.

The registry is the deployment's tokens (symbol → address, decimals) merged with an optional
sources file (``NAVPUB_SOURCES_FILE``, TOML) that adds HTTP price APIs, haircuts, FX rates
and off-exchange accounts. Example::

    [http_sources.coinbase]
    adapter = "coinbase"
    base_url = "https://api.coinbase.com"
    timeout_s = 5
    max_age_s = 120

    [assets.BTC]
    haircut = "0.0625"           # collateral haircut (portfolio-haircut seed)
    router = false               # also use the router's aggregate as one source
    router_feeds = true          # each of the router's feeds for BTC is a source
    http = [{ source = "coinbase", instrument = "BTC-USD" }]

    [assets.XAUT]
    address = "0x…"              # only needed for tokens the deployment does not name

    [fx.ZAR]                     # ZAR per USD, for display
    http = [{ source = "rates", instrument = "ZAR", path = "/v1/usd", price_field = "rates.ZAR" }]

    [offexchange.1]              # fund 1 also holds assets at a custodian
    url = "https://custodian.example/api/balances"

Every asset's configured source count (the N of the confidence score) is its router feeds,
plus the router's aggregate if enabled, plus its HTTP references.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from publisher._exceptions import ConfigError
from publisher.deployment import Deployment
from publisher.sources.http import HttpPriceRef, HttpSourceConfig
from publisher.sources.offexchange import OffExchangeConfig

STABLECOINS = frozenset({"USD", "USDT", "USDC"})


class AssetSettings(BaseModel, frozen=True):
    """Per-asset settings of the sources file."""

    address: str | None = None
    router_feeds: bool = True
    router: bool = False
    http: list[dict[str, object]] = Field(default_factory=list)
    haircut: Decimal = Decimal(0)

    @field_validator("haircut")
    @classmethod
    def _haircut(cls, v: Decimal) -> Decimal:
        if not Decimal(0) <= v <= Decimal(1):
            raise ValueError("haircut must be between 0 and 1")
        return v


class FxSettings(BaseModel, frozen=True):
    http: list[dict[str, object]] = Field(default_factory=list)


class SourcesFile(BaseModel, frozen=True):
    """The content of the sources file."""

    http_sources: dict[str, HttpSourceConfig] = Field(default_factory=dict)
    assets: dict[str, AssetSettings] = Field(default_factory=dict)
    fx: dict[str, FxSettings] = Field(default_factory=dict)
    offexchange: dict[int, OffExchangeConfig] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _source_ids(cls, data: Any) -> Any:
        """A source's id is its table name ([http_sources.coinbase] → "coinbase")."""
        if isinstance(data, dict) and isinstance(data.get("http_sources"), dict):
            named = {k: {**v, "id": v.get("id", k)} if isinstance(v, dict) else v
                     for k, v in data["http_sources"].items()}  # fmt: skip
            data = {**data, "http_sources": named}
        return data

    @model_validator(mode="after")
    def _ids_match(self) -> SourcesFile:
        for key, cfg in self.http_sources.items():
            if cfg.id != key:
                raise ValueError(f"http_sources.{key} has id {cfg.id!r}; leave id out or make it {key!r}")
        return self


@dataclass(frozen=True)
class AssetSources:
    """One asset: its token (if on-chain), its price sources and its haircut."""

    symbol: str
    address: str | None
    decimals: int | None
    router_feeds: bool
    router: bool
    http: tuple[HttpPriceRef, ...]
    haircut: Decimal


@dataclass(frozen=True)
class Registry:
    assets: Mapping[str, AssetSources]
    http_sources: Mapping[str, HttpSourceConfig] = field(default_factory=dict)
    fx: Mapping[str, tuple[HttpPriceRef, ...]] = field(default_factory=dict)
    offexchange: Mapping[int, OffExchangeConfig] = field(default_factory=dict)

    def symbols_by_address(self) -> dict[str, str]:
        """Lower-cased token address → symbol."""
        return {a.address.lower(): s for s, a in self.assets.items() if a.address}

    def haircuts(self) -> dict[str, Decimal]:
        return {s: a.haircut for s, a in self.assets.items()}

    def get(self, symbol: str) -> AssetSources:
        try:
            return self.assets[symbol]
        except KeyError:
            known = ", ".join(sorted(self.assets)) or "none"
            raise ConfigError("asset", f"unknown asset {symbol!r} (known: {known})") from None


def load_sources_file(path: Path) -> SourcesFile:
    """Parses the sources file; any problem is a ConfigError naming the file and the field."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("NAVPUB_SOURCES_FILE", f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError("NAVPUB_SOURCES_FILE", f"{path} is not valid TOML: {exc}") from None
    try:
        return SourcesFile.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError("NAVPUB_SOURCES_FILE", f"{path}: {where}: {err['msg']}") from None


def build_registry(deployment: Deployment, sources: SourcesFile | None = None) -> Registry:
    """The deployment's tokens merged with the sources file's assets."""
    sources = sources or SourcesFile()
    symbols = set(deployment.tokens) | set(sources.assets)
    assets: dict[str, AssetSources] = {}
    for symbol in sorted(symbols):
        token = deployment.tokens.get(symbol)
        cfg = sources.assets.get(symbol, AssetSettings())
        refs = tuple(_ref(symbol, r, sources, f"assets.{symbol}.http") for r in cfg.http)
        # Stablecoins carry no haircut (portfolio-haircut seed), whatever the file says.
        haircut = Decimal(0) if symbol.upper() in STABLECOINS else cfg.haircut
        assets[symbol] = AssetSources(
            symbol=symbol,
            address=cfg.address or (token.address if token else None),
            decimals=token.decimals if token else None,
            router_feeds=cfg.router_feeds,
            router=cfg.router,
            http=refs,
            haircut=haircut,
        )
    fx = {
        cur: tuple(_ref(f"FX:{cur}", r, sources, f"fx.{cur}.http") for r in f.http)
        for cur, f in sources.fx.items()
    }
    return Registry(assets, sources.http_sources, fx, sources.offexchange)


def _ref(asset: str, raw: Mapping[str, object], sources: SourcesFile, where: str) -> HttpPriceRef:
    try:
        ref = HttpPriceRef.model_validate({**raw, "asset": asset})
    except ValidationError as exc:
        raise ConfigError("NAVPUB_SOURCES_FILE", f"{where}: {exc.errors()[0]['msg']}") from None
    if ref.source not in sources.http_sources:
        known = ", ".join(sorted(sources.http_sources)) or "none"
        raise ConfigError(
            "NAVPUB_SOURCES_FILE", f"{where}: unknown http source {ref.source!r} (known: {known})"
        )
    return ref
