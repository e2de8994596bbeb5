"""deployment.json: where every contract, demo token, demo feed and fund feed of a deployment lives.

Written by ``navpub deploy``; every other command reads it through :func:`load_deployment`.
"""

from __future__ import annotations

from pathlib import Path

from eth_utils import to_checksum_address
from pydantic import BaseModel, Field, ValidationError, field_validator
from web3 import Web3

from publisher._exceptions import DeploymentError
from publisher.chain import require_code
from publisher.config import Settings

CORE_CONTRACTS = ("FundVault", "AnalyticsHub", "PriceOracleRouter")


def _checksum(v: str) -> str:
    if not Web3.is_address(v):
        raise ValueError(f"{v!r} is not an address")
    return to_checksum_address(v)


class TokenInfo(BaseModel, frozen=True):
    """A demo ERC-20 token."""

    address: str
    decimals: int = Field(ge=0, le=36)
    name: str

    _addr = field_validator("address")(_checksum)


class FeedInfo(BaseModel, frozen=True):
    """A demo Chainlink-style price feed of one asset."""

    address: str
    decimals: int = Field(ge=0, le=36)
    max_age_s: int = Field(gt=0)

    _addr = field_validator("address")(_checksum)


class FundInfo(BaseModel, frozen=True):
    """A fund created by the deployment (the demo's), with a name for people."""

    fund_id: int = Field(gt=0)
    name: str
    manager: str
    assets: list[str]

    _addr = field_validator("manager")(_checksum)


class Deployment(BaseModel, frozen=True):
    """The content of deployment.json."""

    chain_id: int = Field(gt=0)
    deploy_block: int = Field(ge=0)
    deployer: str
    nav_engine: str
    contracts: dict[str, str]
    tokens: dict[str, TokenInfo] = Field(default_factory=dict)
    feeds: dict[str, list[FeedInfo]] = Field(default_factory=dict)
    funds: list[FundInfo] = Field(default_factory=list)
    # fund id -> its FundNavFeed (AggregatorV3 view of the fund's NAV per share); files
    # written before feeds existed have none
    fund_feeds: dict[int, str] = Field(default_factory=dict)
    # accounts granted GUARDIAN_ROLE at deployment (the demo's); files before them have none
    guardians: list[str] = Field(default_factory=list)

    _addrs = field_validator("deployer", "nav_engine")(_checksum)

    @field_validator("guardians")
    @classmethod
    def _guardians(cls, v: list[str]) -> list[str]:
        return [_checksum(a) for a in v]

    @field_validator("fund_feeds")
    @classmethod
    def _feeds(cls, v: dict[int, str]) -> dict[int, str]:
        bad = [fund_id for fund_id in v if fund_id <= 0]
        if bad:
            raise ValueError(f"fund_feeds: fund ids start at 1, got {bad}")
        return {fund_id: _checksum(a) for fund_id, a in sorted(v.items())}

    @field_validator("contracts")
    @classmethod
    def _core(cls, v: dict[str, str]) -> dict[str, str]:
        missing = [name for name in CORE_CONTRACTS if name not in v]
        if missing:
            raise ValueError(f"missing contracts: {', '.join(missing)}")
        return {k: _checksum(a) for k, a in v.items()}

    @property
    def vault(self) -> str:
        return self.contracts["FundVault"]

    @property
    def hub(self) -> str:
        return self.contracts["AnalyticsHub"]

    @property
    def router(self) -> str:
        return self.contracts["PriceOracleRouter"]

    def symbol_of(self, asset: str) -> str | None:
        """The demo symbol of a token address, if it is one of the deployment's tokens."""
        for symbol, token in self.tokens.items():
            if token.address.lower() == asset.lower():
                return symbol
        return None


def write_deployment(path: Path, deployment: Deployment) -> None:
    """Writes atomically (temporary file, then rename): a reader never sees half a file."""
    from publisher.statefiles import write_json_atomic  # statefiles reads views, which read this

    write_json_atomic(path, deployment.model_dump(mode="json"))


def load_deployment(settings: Settings, w3: Web3 | None = None) -> Deployment:
    """Reads deployment.json; checks its chain id, and with `w3` that every contract has code."""
    path = settings.deployment_path
    if not path.is_file():
        raise DeploymentError(f"{path} does not exist: run `navpub deploy` (or `navpub deploy --demo`) first")
    try:
        deployment = Deployment.model_validate_json(path.read_text())
    except (OSError, ValidationError) as exc:
        detail = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        raise DeploymentError(f"{path} is not a valid deployment file: {detail}") from None
    expected = settings.resolved_chain_id()
    if deployment.chain_id != expected:
        raise DeploymentError(
            f"{path} is for chain id {deployment.chain_id}, the settings expect {expected}: "
            "deploy again or point NAVPUB_STATE_DIR at the right deployment"
        )
    if w3 is not None:
        for name in CORE_CONTRACTS:
            require_code(w3, deployment.contracts[name], f"{name} from {path}")
    return deployment
