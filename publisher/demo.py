"""The demo's assets, feeds and funds (local chain only).

Fund 1 is the seed's example (nav-update-process.md): 10 BTC, 100 ETH and 50,000 USDC at
$42,000 and $2,200, i.e. $690,000 gross. Fund 2 is gold and stablecoins, fund 3 holds
21 assets so the batched reads are exercised at a realistic width.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from publisher.localhttp import LocalJsonServer


@dataclass(frozen=True)
class DemoAsset:
    symbol: str
    name: str
    decimals: int
    price_usd: Decimal


@dataclass(frozen=True)
class DemoFund:
    name: str
    holdings: dict[str, Decimal]  # symbol -> amount in whole tokens
    fee_usd: Decimal
    borrow: tuple[str, Decimal, Decimal] | None  # (symbol, amount, debt in USD)
    withdrawal_fraction: Decimal  # share of the investor's shares queued for withdrawal


ASSETS: tuple[DemoAsset, ...] = (
    DemoAsset("BTC", "Wrapped Bitcoin", 8, Decimal("42000")),
    DemoAsset("ETH", "Wrapped Ether", 18, Decimal("2200")),
    DemoAsset("USDC", "USD Coin", 6, Decimal("1")),
    DemoAsset("XAUT", "Tether Gold", 6, Decimal("2650")),
    DemoAsset("USDT", "Tether USD", 6, Decimal("1")),
    DemoAsset("DAI", "Dai Stablecoin", 18, Decimal("1")),
    DemoAsset("SOL", "Wrapped SOL", 9, Decimal("145.20")),
    DemoAsset("LINK", "Chainlink", 18, Decimal("14.35")),
    DemoAsset("UNI", "Uniswap", 18, Decimal("7.82")),
    DemoAsset("AAVE", "Aave", 18, Decimal("92.50")),
    DemoAsset("ARB", "Arbitrum", 18, Decimal("0.78")),
    DemoAsset("OP", "Optimism", 18, Decimal("1.65")),
    DemoAsset("POL", "Polygon Ecosystem Token", 18, Decimal("0.52")),
    DemoAsset("AVAX", "Wrapped AVAX", 18, Decimal("27.40")),
    DemoAsset("DOT", "Polkadot", 10, Decimal("5.95")),
    DemoAsset("ATOM", "Cosmos Hub", 6, Decimal("6.10")),
    DemoAsset("DOGE", "Dogecoin", 8, Decimal("0.118")),
    DemoAsset("LTC", "Litecoin", 8, Decimal("71.30")),
    DemoAsset("XRP", "XRP", 6, Decimal("0.52")),
    DemoAsset("MKR", "Maker", 18, Decimal("1510")),
    DemoAsset("LDO", "Lido DAO", 18, Decimal("1.85")),
)

# Three feeds per asset, like three independent oracle networks: different decimals (so
# scaling is exercised) and answers a few basis points apart (as real feeds are).
FEED_DECIMALS: tuple[int, ...] = (8, 18, 6)
FEED_SKEW: tuple[Decimal, ...] = (Decimal("-0.0005"), Decimal("0"), Decimal("0.0007"))
# An hourly heartbeat plus 5 minutes of slack, as Chainlink's 1 h feeds are usually read.
FEED_MAX_AGE_S = 3900

_WIDE = {
    "BTC": Decimal("2.5"),
    "ETH": Decimal("40"),
    "USDC": Decimal("120000"),
    "XAUT": Decimal("12"),
    "USDT": Decimal("80000"),
    "DAI": Decimal("60000"),
    "SOL": Decimal("900"),
    "LINK": Decimal("5000"),
    "UNI": Decimal("7000"),
    "AAVE": Decimal("300"),
    "ARB": Decimal("40000"),
    "OP": Decimal("20000"),
    "POL": Decimal("50000"),
    "AVAX": Decimal("1200"),
    "DOT": Decimal("4000"),
    "ATOM": Decimal("3500"),
    "DOGE": Decimal("250000"),
    "LTC": Decimal("400"),
    "XRP": Decimal("60000"),
    "MKR": Decimal("15"),
    "LDO": Decimal("12000"),
}

FUNDS: tuple[DemoFund, ...] = (
    DemoFund(
        name="Digital Assets Core (BTC/ETH/USDC)",
        holdings={"BTC": Decimal("10"), "ETH": Decimal("100"), "USDC": Decimal("50000")},
        fee_usd=Decimal("1250"),
        borrow=("USDC", Decimal("20000"), Decimal("20000")),
        withdrawal_fraction=Decimal("0.02"),
    ),
    DemoFund(
        name="Gold & Stablecoin Reserve (XAUT/USDC)",
        holdings={"XAUT": Decimal("100"), "USDC": Decimal("200000")},
        fee_usd=Decimal("640"),
        borrow=None,
        withdrawal_fraction=Decimal("0.05"),
    ),
    DemoFund(
        name="Diversified 21-Asset Index",
        holdings=_WIDE,
        fee_usd=Decimal("2100"),
        borrow=("USDT", Decimal("15000"), Decimal("15000")),
        withdrawal_fraction=Decimal("0.01"),
    ),
)


def asset(symbol: str) -> DemoAsset:
    for a in ASSETS:
        if a.symbol == symbol:
            return a
    raise KeyError(symbol)


def to_units(amount: Decimal, decimals: int) -> int:
    """Whole tokens to token units; the demo's amounts are exact at every asset's decimals."""
    units = amount.scaleb(decimals)
    if units != units.to_integral_value():
        raise ValueError(f"{amount} has more than {decimals} decimals")
    return int(units)


def feed_answer(price: Decimal, decimals: int, skew: Decimal) -> int:
    """A feed's integer answer for `price`, skewed, truncated to the feed's decimals."""
    return int((price * (1 + skew)).scaleb(decimals))


# -- the demo's FX rates API ---------------------------------------------------------------

# Display rates per 1 USD, quoted like a rates API would (JSON numbers, parsed as Decimal).
DEMO_FX: dict[str, Decimal] = {"ZAR": Decimal("18.2450"), "EUR": Decimal("0.9210")}


class RatesServer:
    """A tiny rates API on 127.0.0.1 (the demo has no internet): ``GET /v1/latest`` answers
    ``{"base": "USD", "rates": {...}}``; the engine reads it through the generic HTTP adapter,
    exactly as it would read a real one. `rates` can be changed, or set to None (an outage)."""

    def __init__(self) -> None:
        self.rates: dict[str, Decimal] | None = dict(DEMO_FX)
        self._server = LocalJsonServer(self._answer, "demo-rates")
        self.url = self._server.url

    def _answer(self, path: str) -> tuple[int, bytes] | None:
        if path != "/v1/latest":
            return None
        rates = self.rates
        if rates is None:
            return 503, b""
        # Rates as JSON numbers, as real rates APIs send them (the adapter parses them exactly).
        numbers = ", ".join(f'"{k}": {v}' for k, v in sorted(rates.items()))
        return 200, f'{{"base": "USD", "rates": {{{numbers}}}}}'.encode()

    def close(self) -> None:
        self._server.close()

    def sources_file(self, base: Path, target: Path) -> Path:
        """`base` (the demo's haircuts) plus this API as the FX source of every demo currency."""
        lines = [
            base.read_text(encoding="utf-8"),
            "",
            "# Added by `navpub demo`: its local rates API.",
            "[http_sources.rates]",
            'adapter = "generic"',
            f'base_url = "{self.url}"',
            "",
        ]
        for code in sorted(DEMO_FX):
            lines += [
                f"[fx.{code}]",
                f'http = [{{ source = "rates", instrument = "USD", path = "/v1/latest", '
                f'price_field = "rates.{code}" }}]',
                "",
            ]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\n".join(lines), encoding="utf-8")
        return target
