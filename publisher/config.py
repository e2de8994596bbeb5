"""The one settings object: environment (``NAVPUB_*``), a ``.env`` file, and anvil.env defaults.

Precedence, highest first: environment variables, ``.env`` in the working directory, then
for the RPC URL and chain id only, the local chain described by anvil.env. Every threshold
the engine uses lives here, each with the reason for its default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AnyHttpUrl, Field, SecretStr, TypeAdapter, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from publisher._exceptions import ConfigError
from publisher.localchain import AnvilConfig, find_anvil_env, load_anvil_config

ENV_PREFIX = "NAVPUB_"
DEPLOYMENT_FILE = "deployment.json"

_URL = TypeAdapter(AnyHttpUrl)


class Settings(BaseSettings):
    """Every setting of the publisher. Read with :func:`load_settings`, not directly."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    # -- chain -------------------------------------------------------------------------
    rpc_url: str | None = Field(None, description="JSON-RPC endpoint; default: the anvil.env chain")
    chain_id: Annotated[int, Field(gt=0)] | None = Field(
        None, description="Chain id the RPC must report; default: anvil.env's"
    )
    anvil_env: Path | None = Field(
        None, description="anvil.env to take local defaults from; default: ./anvil.env, then the repo's"
    )
    state_dir: Path = Field(Path("state"), description="Directory of deployment.json and the store")

    # -- signing key (never logged) ----------------------------------------------------
    private_key: SecretStr | None = Field(None, description="Hex private key of the NAV engine")
    keystore: Path | None = Field(None, description="Encrypted JSON keystore of the NAV engine")
    keystore_password: SecretStr | None = Field(None, description="Password of the keystore")
    keystore_password_file: Path | None = Field(None, description="File holding the keystore password")
    # The guardian's own key (corrections, approvals): never the engine's. On the local chain,
    # without one, anvil's dev account #4, the demo's guardian.
    guardian_private_key: SecretStr | None = Field(None, description="Hex private key of a guardian")
    guardian_keystore: Path | None = Field(None, description="Encrypted JSON keystore of a guardian")
    guardian_keystore_password: SecretStr | None = Field(None, description="Password of that keystore")
    guardian_keystore_password_file: Path | None = Field(None, description="File holding that password")
    # The admin's key (role grants: engine key rotation). On the local chain, without one, anvil's
    # dev account #0, the demo's deployer.
    admin_private_key: SecretStr | None = Field(None, description="Hex private key of the admin")
    admin_keystore: Path | None = Field(None, description="Encrypted JSON keystore of the admin")
    admin_keystore_password: SecretStr | None = Field(None, description="Password of that keystore")
    admin_keystore_password_file: Path | None = Field(None, description="File holding that password")

    sources_file: Path | None = Field(
        None, description="TOML file of HTTP price sources, haircuts, FX and off-exchange accounts"
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of the store; default: SQLite in state_dir"
    )
    # How long a store write waits for another connection's lock (see store.BUSY_TIMEOUT_MS).
    store_busy_timeout_ms: Annotated[int, Field(ge=0, le=600_000)] = 5000
    # "wall": the machine's clock (production). "chain": the latest block's time, for local
    # chains whose time is moved by evm_increaseTime (demo, tests).
    clock: Literal["wall", "chain"] = "wall"

    # -- RPC behaviour -----------------------------------------------------------------
    rpc_fallback_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="More RPC URLs, comma-separated, tried in turn when one fails"
    )
    # Every duration is finite and bounded: an infinite or astronomic one cannot be slept or
    # waited for (time.sleep raises OverflowError) and would only hang the keeper.
    # 10 s: long enough for a loaded public RPC, short enough that a dead one is noticed
    # well inside a 15-minute high-volatility cadence.
    rpc_timeout_s: Annotated[float, Field(gt=0, le=600, allow_inf_nan=False)] = 10.0
    # First backoff of the retries (then doubling, with as much jitter): 1 s rides out a node
    # restart without stretching a failed cycle past a few seconds. At most a minute: the
    # waits grow to 30 times this, half an hour.
    retry_backoff_s: Annotated[float, Field(ge=0, le=60, allow_inf_nan=False)] = 1.0

    # -- sending ---------------------------------------------------------------------------
    # max fee = base fee × 2 + tip: covers six consecutive full blocks (+12.5 % each) before
    # the transaction stops being includable — the usual wallet default.
    base_fee_multiplier: Annotated[int, Field(ge=1)] = 2
    # Tip bounds in wei: 0.01 gwei keeps L2s and quiet mainnet blocks cheap, 5 gwei stops a
    # spiking eth_maxPriorityFeePerGas from overpaying a NAV update.
    priority_fee_floor_wei: Annotated[int, Field(ge=0)] = 10_000_000
    priority_fee_cap_wei: Annotated[int, Field(ge=0)] = 5_000_000_000
    # Max fee bounds in wei: the cap (500 gwei) is the most one update may ever pay per gas.
    max_fee_floor_wei: Annotated[int, Field(ge=0)] = 0
    max_fee_cap_wei: Annotated[int, Field(gt=0)] = 500_000_000_000
    # Gas limit = estimate × 1.25: the estimate is the least that succeeded in simulation.
    gas_margin_pct: Annotated[int, Field(ge=100)] = 125
    # Two minutes is ten mainnet blocks: long enough not to replace a transaction that is
    # merely queued, short enough that a stuck one is bumped within a high-volatility cycle.
    receipt_timeout_s: Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)] = 120.0
    receipt_poll_s: Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)] = 1.0
    # Fee bumps (each ≥ 12.5 %, the minimum nodes accept for a replacement) before giving up
    # for this cycle; the publication stays in the outbox and is reconciled next cycle.
    max_replacements: Annotated[int, Field(ge=0)] = 3
    confirmations: Annotated[int, Field(ge=1)] = 1
    # Native coin of the chain, priced by the oracles to put gas costs in USD.
    native_symbol: str = "ETH"
    # The dashboard's and API's default display currency: USD or one with an FX source.
    display_currency: str = "USD"

    # -- alerts ----------------------------------------------------------------------------
    alert_webhooks: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Webhook URLs (Slack-compatible JSON POST), comma-separated"
    )
    # An hour: a condition that persists is re-notified once per standard cycle, not per tick.
    alert_cooldown_s: Annotated[int, Field(ge=0)] = 3600
    # 0.05 ETH pays ~2,000 batched updates at 1 gwei: days of warning before publishing stops.
    low_balance_wei: Annotated[int, Field(ge=0)] = 5 * 10**16

    # -- deploy ------------------------------------------------------------------------
    # One hour between a withdrawal request and the NAV that prices it: one standard
    # publication cycle, so a NAV inflated before the request can never price it
    # (seed nav-update-process.md, "NAV Inflation Before Withdrawal").
    withdrawal_delay_s: Annotated[int, Field(ge=0)] = 3600
    # Decimals of each FundNavFeed's answer: 8 is Chainlink's USD convention, which Aave v3's
    # AaveOracle assumes without reading decimals() (an 18-decimal NAV per share of $0.998
    # read there is $9.98 billion). At most the vault's 18.
    feed_decimals: Annotated[int, Field(ge=0, le=18)] = 8

    # -- engine thresholds (DESIGN.md "Default thresholds") ------------------------------
    # Seed: "Price confidence < 50%" is an oracle failure.
    min_confidence: Annotated[int, Field(ge=0, le=100)] = 50
    # Seed: "deviation > 10%" marks a manipulated or broken source.
    max_deviation_bps: Annotated[int, Field(gt=0, lt=10_000)] = 1000
    # Seed: "Use cached price (max 1 hour old)"; beyond that the fund cannot be valued.
    cache_max_age_s: Annotated[int, Field(gt=0)] = 3600
    # Seed: "NAV suddenly changes > 30% without trades" is held for a person.
    jump_threshold_bps: Annotated[int, Field(gt=0)] = 3000
    # Seed: "May skip update (non-critical if < 1% change)".
    skip_change_bps: Annotated[int, Field(ge=0)] = 100
    # Seed: "Retry 3 times with exponential backoff". At most 20: every RPC call of a cycle
    # retries this often, so a huge count would hold a dead RPC's cycle for hours.
    publish_attempts: Annotated[int, Field(ge=1, le=20)] = 3
    # Seed "Frequency": standard hourly, every 15 minutes in high volatility.
    cadence_s: Annotated[int, Field(gt=0)] = 3600
    high_volatility_cadence_s: Annotated[int, Field(gt=0)] = 900
    # Seed: "Trigger circuit breaker if persists": three cycles is three hours at the
    # standard cadence, long enough to ride out one flaky source, short enough to stop
    # publishing estimates before a trading day passes on cached prices.
    breaker_after: Annotated[int, Field(ge=1)] = 3
    # After an outage the last NAV is an old baseline: past 6 h (six standard cycles) the
    # jump guard allows 5 % per hour elapsed instead of a flat 30 %, so a fund is not locked
    # forever by a move that accumulated while nothing could be published.
    jump_baseline_max_age_s: Annotated[int, Field(gt=0)] = 6 * 3600
    jump_hourly_bps: Annotated[int, Field(ge=0)] = 500
    # ... but never beyond 100 % (a doubling, or a halving: falls count as the rise back). Without
    # a cap a three-day-old baseline let through +360 % or any fall at all, so a pump timed
    # after an outage would publish unheld (found by tests/reliability/test_adversarial_anvil.py).
    jump_max_bps: Annotated[int, Field(gt=0)] = 10_000

    @field_validator("rpc_fallback_urls", "alert_webhooks", mode="before")
    @classmethod
    def _split_urls(cls, v: object) -> object:
        if isinstance(v, str):
            return [u.strip() for u in v.split(",") if u.strip()]
        return v

    @field_validator("rpc_fallback_urls")
    @classmethod
    def _check_urls(cls, v: list[str]) -> list[str]:
        for url in v:
            _URL.validate_python(url)
        return v

    @field_validator("rpc_url")
    @classmethod
    def _check_url(cls, v: str | None) -> str | None:
        if v is not None:
            _URL.validate_python(v)
        return v

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, v: str | None) -> str | None:
        """A URL SQLAlchemy can open: checked here so a typo is named by its variable rather than
        surfacing as a driver traceback when the store is first opened. Messages never repeat the
        URL (it may hold the database password)."""
        if v is None:
            return v
        try:
            dialect = make_url(v).get_dialect()
        except ArgumentError as exc:  # unparsable, or an unknown dialect/driver
            raise ValueError(f"not a database URL SQLAlchemy knows: {exc}") from None
        except ValueError:  # e.g. a port that is not a number
            raise ValueError("not a database URL (dialect://user:password@host:port/database)") from None
        try:
            dialect.import_dbapi()
        except ImportError as exc:
            raise ValueError(f"its driver is not installed ({exc.name or exc})") from None
        return v

    # -- derived -----------------------------------------------------------------------

    @property
    def store_url(self) -> str:
        """The store's SQLAlchemy URL: NAVPUB_DATABASE_URL, else SQLite in the state directory."""
        return self.database_url or f"sqlite:///{self.state_dir / 'navpub.sqlite3'}"

    @property
    def deployment_path(self) -> Path:
        """Where ``navpub deploy`` writes and every other command reads the deployment."""
        return self.state_dir / DEPLOYMENT_FILE

    def anvil(self) -> AnvilConfig | None:
        """The local chain's settings, or None when no anvil.env is found."""
        path = self.anvil_env or find_anvil_env()
        if path is None:
            return None
        try:
            return load_anvil_config(path)
        except OSError as exc:  # a path the OS refuses to look at (too long, no permission, ...)
            raise ConfigError(
                f"{ENV_PREFIX}ANVIL_ENV", f"cannot read {path}: {exc.strerror or exc}"
            ) from None
        except UnicodeDecodeError:
            raise ConfigError(f"{ENV_PREFIX}ANVIL_ENV", f"{path} is not UTF-8 text") from None

    def resolved_rpc_url(self) -> str:
        """The RPC URL, defaulting to the local anvil chain."""
        if self.rpc_url:
            return self.rpc_url
        local = self.anvil()
        if local is None:
            raise ConfigError(f"{ENV_PREFIX}RPC_URL", "is not set and there is no anvil.env to default to")
        return local.rpc_url

    def resolved_chain_id(self) -> int:
        """The expected chain id, defaulting to the local anvil chain's."""
        if self.chain_id is not None:
            return self.chain_id
        local = self.anvil()
        if local is None:
            raise ConfigError(f"{ENV_PREFIX}CHAIN_ID", "is not set and there is no anvil.env to default to")
        return local.chain_id

    def is_local_chain(self) -> bool:
        """True when the configured chain id is the anvil.env one (dev keys allowed)."""
        local = self.anvil()
        return local is not None and self.resolved_chain_id() == local.chain_id


def load_settings(**overrides: object) -> Settings:
    """Reads the settings; a bad value raises ConfigError naming its environment variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "settings"
        value = err.get("input")
        shown = "" if _is_secret(field) or not isinstance(value, str | int | float) else f" (got {value!r})"
        raise ConfigError(f"{ENV_PREFIX}{field.upper()}", f"{err['msg']}{shown}") from None


def _is_secret(field: str) -> bool:
    # A database URL may carry its password (postgresql://user:password@host/db).
    return field in {
        "private_key",
        "keystore_password",
        "guardian_private_key",
        "guardian_keystore_password",
        "admin_private_key",
        "admin_keystore_password",
        "database_url",
    }
