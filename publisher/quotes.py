"""What every price source yields: quotes, or a failure saying why there is none.

A quote's price is an integer in USD with 18 decimals, like every price the contracts store.
Sources convert exactly (see :func:`decimal_to_e18`); nothing here ever holds a float.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, InvalidOperation, localcontext

from publisher.money import USD_DECIMALS

# A price above $10^15 per unit is no market price: it is a unit error or an attack.
MAX_PRICE_E18 = 10**15 * 10**USD_DECIMALS


@dataclass(frozen=True)
class Quote:
    """One source's price for one asset.

    asset: the asset's symbol (the engine keys everything by symbol, e.g. "BTC").
    price: USD per whole token, 18 decimals.
    confidence: the source's own confidence 0-100 (100 when the source reports none).
    observed_at: unix seconds the source says the price is from (fetch time if it says nothing).
    source: stable id of the source, e.g. "feed:0xAbC…", "router", "http:coinbase".
    max_age_s: how old this source's quotes may be and still count as fresh.
    """

    asset: str
    price: int
    confidence: int
    observed_at: int
    source: str
    max_age_s: int


@dataclass(frozen=True)
class SourceFailure:
    """A source that gave no usable quote for `asset`, and why (shown to the operator)."""

    asset: str
    source: str
    reason: str


SourceResult = Quote | SourceFailure


class BadPrice(ValueError):
    """A price value that cannot be a price (not a number, not positive, absurdly large)."""


def decimal_to_e18(value: Decimal | str | int) -> int:
    """An exact decimal price → 18-decimal integer, rounding toward zero beyond 18 places.

    Refuses NaN, infinities, zero, negatives and values above MAX_PRICE_E18 with BadPrice.
    """
    try:
        d = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        raise BadPrice(f"{value!r} is not a number") from None
    if not d.is_finite():
        raise BadPrice(f"{value!r} is not a finite number")
    if d <= 0:
        raise BadPrice(f"{value!r} is not positive")
    # Enough digits for any input: the default 28-digit context would round a large price
    # with many decimals instead of truncating it.
    with localcontext() as ctx:
        ctx.prec = max(28, len(d.as_tuple().digits) + USD_DECIMALS + 2)
        scaled = int(d.scaleb(USD_DECIMALS).to_integral_value(rounding=ROUND_DOWN))
    if scaled == 0:
        raise BadPrice(f"{value!r} is below 1e-18")
    if scaled > MAX_PRICE_E18:
        raise BadPrice(f"{value!r} is beyond any plausible price")
    return scaled


def scale_to_e18(answer: int, decimals: int) -> int:
    """A feed's integer answer with `decimals` → 18 decimals (rounds toward zero when > 18)."""
    if decimals <= USD_DECIMALS:
        return answer * 10 ** (USD_DECIMALS - decimals)
    return answer // 10 ** (decimals - USD_DECIMALS)
