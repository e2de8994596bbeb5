"""Exact money: integers in token units or 18-decimal USD, shown as Decimal strings.

No float ever touches an amount or a price. Conversions are exact (Decimal.scaleb on an
integer loses nothing); rounding, where a division makes one necessary, is done by the
caller and says which way.
"""

from __future__ import annotations

from decimal import Decimal

USD_DECIMALS = 18
ONE_USD = 10**USD_DECIMALS


def units_to_decimal(raw: int, decimals: int) -> Decimal:
    """`raw` token units (or 18-decimal USD) as an exact Decimal, trailing zeros removed."""
    value = Decimal(raw).scaleb(-decimals)
    # normalize() would turn 100 into 1E+2; quantize to at least an integer keeps it readable.
    normal = value.normalize()
    return normal.quantize(Decimal(1)) if normal == normal.to_integral_value() else normal


def usd(raw: int) -> Decimal:
    """18-decimal USD integer → exact Decimal."""
    return units_to_decimal(raw, USD_DECIMALS)


def usd_str(raw: int) -> str:
    """18-decimal USD integer → exact decimal string (for JSON: never a float)."""
    return str(usd(raw))


def fmt_usd(raw: int, places: int = 2) -> str:
    """Human display with thousands separators, truncated toward zero to `places` decimals."""
    q = Decimal(1).scaleb(-places)
    return f"${usd(raw).quantize(q, rounding='ROUND_DOWN'):,}"


def fmt_price(raw: int) -> str:
    """A unit price for display: cents, or up to 6 decimals when the price is small ($0.118)."""
    exact = usd(raw).quantize(Decimal("0.000001"), rounding="ROUND_DOWN")
    text = f"{exact:,.6f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"${whole}.{frac.ljust(2, '0')}"
