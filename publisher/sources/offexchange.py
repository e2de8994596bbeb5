"""Optional off-exchange holdings: balances a fund keeps with a custodian or in an exchange account.

One ``GET <url>`` returns JSON of this shape (field names of the balances list and the timestamp
are configurable as dot paths):

    {"as_of": 1711111111,
     "balances": [{"asset": "BTC", "quantity": "1.5", "market_value": "63000.12",
                   "haircut": "0.0625", "borrowed": "0"},
                  {"asset": "USDC", "quantity": "20000"}]}

Per row:

- ``asset`` (required): the symbol, upper-cased. The same symbol twice is an error.
- ``quantity`` (required): whole tokens, an exact Decimal >= 0.
- ``market_value`` (optional, USD): absent or null means "price it by quantity" (the engine
  does); otherwise >= 0, kept as an 18-decimal integer.
- ``borrowed`` (optional, USD): absent or null means 0; otherwise >= 0, 18-decimal integer.
- haircut: the first of ``haircut``, ``collateral_ratio``, ``discount``, ``haircut_rate``
  present with a non-null value (the field names of seed portfolio-haircut.md; each is read
  as the haircut fraction, so collateral = value x (1 - haircut)). ``"--"`` (how Crypto.com
  shows "none") or no such field means 0. A haircut outside [0, 1] is an error. Stablecoins
  USD, USDT and USDC (any case) always have haircut 0, whatever the row says.

Numbers may be JSON numbers or decimal strings; booleans, NaN, infinities and floats are
refused. USD amounts are truncated toward zero beyond 18 decimals. ``as_of`` is unix seconds
(milliseconds above 10^12 are converted); with ``time_field = None`` the fetch time is used.
Freshness is for the caller to judge against ``OffExchangeConfig.max_age_s``.

Any problem makes the whole answer unusable: a half-read account would understate (or
overstate) the fund, so :func:`fetch_offexchange` returns a SourceFailure naming the row
index and field instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, localcontext
from typing import Annotated, Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from publisher.money import USD_DECIMALS
from publisher.quotes import SourceFailure
from publisher.sources.http import (
    EXACT_CONTEXT,
    PayloadError,
    SourceError,
    check_dot_path,
    check_http_url,
    get_json,
    json_kind,
    lookup,
    make_client,
    parse_number,
    parse_timestamp,
    short_repr,
)

SOURCE = "offexchange"
STABLECOINS = frozenset({"USD", "USDT", "USDC"})
HAIRCUT_FIELDS = ("haircut", "collateral_ratio", "discount", "haircut_rate")

# A custodian's statement for a few hundred assets is tens of kilobytes; 10 MiB is a broken server.
MAX_OFFEXCHANGE_BODY_BYTES = 10 << 20
# No single holding is worth more than $10^15 (world GDP is about $10^14): beyond is a unit error.
MAX_USD_E18 = 10**15 * 10**USD_DECIMALS
# 10^40 tokens: beyond any real supply, even of meme coins with 10^15 units.
MAX_QUANTITY = Decimal(10) ** 40


class OffExchangeError(PayloadError):
    """An off-exchange answer that cannot be used; the message names the row and field."""


class OffExchangeConfig(BaseModel):
    """Where the off-exchange balances are and how to read them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(description="Full http(s) URL of the balances endpoint")
    # 5 s: as for price APIs, a slow custodian must not hold up the cycle.
    timeout_s: Annotated[float, Field(gt=0)] = 5.0
    # 15 minutes: custodial statements refresh less often than spot prices.
    max_age_s: Annotated[int, Field(gt=0)] = 900
    balances_field: str = Field("balances", description="Dot path of the balances list")
    time_field: str | None = Field("as_of", description="Dot path of the unix timestamp; None: fetch time")
    # repr=False: custodial APIs authenticate with headers, and models end up in logs.
    headers: dict[str, str] = Field(default_factory=dict, repr=False)

    @field_validator("url")
    @classmethod
    def _check_url(cls, v: str) -> str:
        return check_http_url(v, base=False)

    @field_validator("balances_field", "time_field")
    @classmethod
    def _check_fields(cls, v: str | None) -> str | None:
        return check_dot_path(v)


@dataclass(frozen=True)
class OffExchangeBalance:
    """One asset held off-exchange."""

    asset: str  # upper-cased symbol
    quantity: Decimal  # whole tokens, exact, >= 0
    market_value_e18: int | None  # USD, 18 decimals; None: price it by quantity
    haircut: Decimal  # fraction in [0, 1]; collateral = value x (1 - haircut)
    borrowed_e18: int  # USD, 18 decimals


@dataclass(frozen=True)
class OffExchangeAccount:
    """Every off-exchange balance as of one moment."""

    balances: tuple[OffExchangeBalance, ...]
    observed_at: int  # unix seconds
    source: str


def _non_negative(raw: Any, where: str) -> Decimal:
    """An exact Decimal >= 0 (negative zero reads as 0)."""
    try:
        value = parse_number(raw, where)
    except PayloadError as exc:
        raise OffExchangeError(str(exc)) from None
    if value < 0:
        raise OffExchangeError(f"{where}: {short_repr(raw)} is negative")
    return value if value else Decimal(0)


def _usd_e18(raw: Any, where: str) -> int:
    """A USD amount >= 0 as an 18-decimal integer, truncated toward zero."""
    value = _non_negative(raw, where)
    with localcontext(EXACT_CONTEXT):
        # EXACT_CONTEXT is wide enough that scaling never rounds; only the explicit truncation does.
        scaled = int(value.scaleb(USD_DECIMALS).to_integral_value(rounding=ROUND_DOWN))
    if scaled > MAX_USD_E18:
        raise OffExchangeError(f"{where}: {short_repr(raw)} is beyond any plausible USD amount")
    return scaled


def _haircut(row: dict[str, Any], where: str) -> Decimal:
    """The row's haircut: the first non-null haircut field, "--" or none at all meaning 0."""
    for name in HAIRCUT_FIELDS:
        raw = row.get(name)
        if raw is None:
            continue
        if isinstance(raw, str) and raw.strip() == "--":
            return Decimal(0)
        value = _non_negative(raw, f"{where}.{name}")
        if value > 1:
            raise OffExchangeError(f"{where}.{name}: {short_repr(raw)} is outside [0, 1]")
        return value
    return Decimal(0)


def _symbol(raw: Any, where: str) -> str:
    """An asset symbol: a non-blank string without whitespace, upper-cased."""
    if not isinstance(raw, str):
        raise OffExchangeError(f"{where}: expected a symbol string, got {json_kind(raw)}")
    symbol = raw.strip().upper()
    if not symbol or len(symbol) > 32 or any(c.isspace() for c in symbol):
        raise OffExchangeError(f"{where}: {short_repr(raw)} is not an asset symbol")
    return symbol


def _balance(row: Any, where: str) -> OffExchangeBalance:
    """One row of the balances list."""
    if not isinstance(row, dict):
        raise OffExchangeError(f"{where}: expected an object, got {json_kind(row)}")
    if "asset" not in row:
        raise OffExchangeError(f"{where}.asset: missing")
    asset = _symbol(row["asset"], f"{where}.asset")
    if row.get("quantity") is None:
        raise OffExchangeError(f"{where}.quantity: missing")
    quantity = _non_negative(row["quantity"], f"{where}.quantity")
    if quantity > MAX_QUANTITY:
        raise OffExchangeError(f"{where}.quantity: {short_repr(row['quantity'])} is beyond any real supply")
    market = row.get("market_value")
    borrowed = row.get("borrowed")
    return OffExchangeBalance(
        asset=asset,
        quantity=quantity,
        market_value_e18=None if market is None else _usd_e18(market, f"{where}.market_value"),
        # Stablecoins carry no haircut (seed): the row's own fields are not even read.
        haircut=Decimal(0) if asset in STABLECOINS else _haircut(row, where),
        borrowed_e18=0 if borrowed is None else _usd_e18(borrowed, f"{where}.borrowed"),
    )


def parse_offexchange(
    payload: Any,
    *,
    now_s: int,
    source: str,
    balances_field: str = "balances",
    time_field: str | None = "as_of",
) -> OffExchangeAccount:
    """A decoded off-exchange answer → OffExchangeAccount; OffExchangeError naming row and field."""
    if not isinstance(payload, dict):
        raise OffExchangeError(f"the answer: expected an object, got {json_kind(payload)}")
    try:
        rows = lookup(payload, balances_field)
        observed_at = (
            now_s if time_field is None else parse_timestamp(lookup(payload, time_field), time_field)
        )
    except OffExchangeError:
        raise
    except PayloadError as exc:
        raise OffExchangeError(str(exc)) from None
    if not isinstance(rows, list):
        raise OffExchangeError(f"{balances_field}: expected a list, got {json_kind(rows)}")
    balances: list[OffExchangeBalance] = []
    first_row: dict[str, int] = {}
    for i, row in enumerate(rows):
        where = f"{balances_field}[{i}]"
        balance = _balance(row, where)
        if balance.asset in first_row:
            # Summing or picking one would both be guesses about what the custodian meant.
            earlier = f"{balances_field}[{first_row[balance.asset]}]"
            raise OffExchangeError(f"{where}.asset: {balance.asset} appears twice (also {earlier})")
        first_row[balance.asset] = i
        balances.append(balance)
    return OffExchangeAccount(balances=tuple(balances), observed_at=observed_at, source=source)


async def fetch_offexchange(
    cfg: OffExchangeConfig, *, now: Callable[[], int], client: httpx.AsyncClient | None = None
) -> OffExchangeAccount | SourceFailure:
    """GET the balances and parse them; any problem is a SourceFailure (asset "*") saying what."""
    if client is None:
        async with make_client() as own:
            return await fetch_offexchange(cfg, now=now, client=own)
    try:
        payload = await get_json(
            client,
            cfg.url,
            headers=cfg.headers,
            timeout_s=cfg.timeout_s,
            max_bytes=MAX_OFFEXCHANGE_BODY_BYTES,
        )
        return parse_offexchange(
            payload, now_s=now(), source=SOURCE, balances_field=cfg.balances_field, time_field=cfg.time_field
        )
    except SourceError as exc:
        return SourceFailure("*", SOURCE, str(exc))
    except Exception as exc:
        # A bug or an unforeseen library error must not take the cycle down with it.
        return SourceFailure("*", SOURCE, f"unexpected {type(exc).__name__}: {short_repr(str(exc), 200)}")


def fetch_offexchange_blocking(
    cfg: OffExchangeConfig, *, now: Callable[[], int]
) -> OffExchangeAccount | SourceFailure:
    """fetch_offexchange for synchronous callers (runs its own event loop)."""
    return asyncio.run(fetch_offexchange(cfg, now=now))
