"""Per-asset price: validate quotes, take the median, drop outliers, score confidence; fall back
to the last good price. Pure functions of the quotes, the cache and a clock: no I/O.

The rules are the PriceOracleRouter's, so on-chain and off-chain answers agree:

1. A quote is valid when 0 < price ≤ MAX_PRICE_E18, its confidence is 0-100, it is not from
   the future (observed_at ≤ now) and not older than its source's max age
   (now − observed_at ≤ max_age_s; exactly max_age_s is still fresh).
2. m0 = median of the valid prices. Even count: floor of the mean of the two middle values.
3. A source farther than max_deviation_bps from m0 is dropped (distance in basis points of
   m0, rounded up; exactly the limit is kept). The price is the median of the kept ones.
4. confidence = ⌊ Σ_kept c_i · (2D − d) / (N · 2D) ⌋ where c_i is each kept source's own
   confidence (0-100), N the number of configured sources (live or not), D the deviation
   limit and d the largest deviation of a kept source from the price (bps, rounded up,
   capped at 2D). Three agreeing sources of three score 100; one live source of three at
   most 33, below the default minimum of 50; two agreeing of three score about 66.
5. Below min_confidence the asset has an oracle failure: the last good price is used if it
   was established at most cache_max_age_s ago (exactly the limit is still usable) and the
   fund's NAV is flagged estimated; otherwise the asset cannot be priced (PriceUnavailable).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from publisher._exceptions import NavPubError
from publisher.money import fmt_usd
from publisher.quotes import MAX_PRICE_E18, Quote, SourceFailure, SourceResult

BPS = 10_000

Status = Literal["used", "deviating", "invalid", "failed"]


@dataclass(frozen=True)
class PriceRules:
    """The thresholds aggregation uses (all from the one settings object)."""

    min_confidence: int = 50
    max_deviation_bps: int = 1000
    cache_max_age_s: int = 3600


@dataclass(frozen=True)
class SourceVerdict:
    """What became of one source's answer, and why."""

    source: str
    status: Status
    price: int | None = None
    confidence: int | None = None
    observed_at: int | None = None
    deviation_bps: int | None = None
    reason: str = ""


@dataclass(frozen=True)
class Aggregate:
    """The live answer of an asset's sources this cycle (price None when none was valid)."""

    asset: str
    price: int | None
    confidence: int
    configured: int
    verdicts: tuple[SourceVerdict, ...]

    @property
    def used(self) -> tuple[str, ...]:
        return tuple(v.source for v in self.verdicts if v.status == "used")


@dataclass(frozen=True)
class CachedPrice:
    """The last good price of an asset and when it was established."""

    asset: str
    price: int
    confidence: int
    as_of: int
    sources: tuple[str, ...]


@dataclass(frozen=True)
class AssetPrice:
    """The price a valuation uses: live, or cached (then `estimated`)."""

    asset: str
    price: int
    confidence: int  # the live confidence this cycle, even when the cache answered
    as_of: int
    sources: tuple[str, ...]
    estimated: bool
    aggregate: Aggregate


class PriceUnavailable(NavPubError):
    """No usable price for an asset: no confident live answer and no fresh enough cache."""

    def __init__(self, asset: str, aggregate: Aggregate | None, detail: str) -> None:
        self.asset = asset
        self.aggregate = aggregate
        states = "; ".join(describe(v) for v in aggregate.verdicts) if aggregate else "no sources configured"
        super().__init__(f"{asset}: cannot be priced: {detail} [{states}]")


def describe(v: SourceVerdict) -> str:
    """One source's state in a line, e.g. "feed:0x12…: deviating 5,000 bps ($3,000.00)"."""
    price = f" ({fmt_usd(v.price)})" if v.price is not None else ""
    if v.status == "used":
        return f"{v.source}: used{price}"
    return f"{v.source}: {v.status}{price}: {v.reason}"


def median(values: Sequence[int]) -> int:
    """Exact median; an even count gives the floor of the mean of the two middle values."""
    if not values:
        raise ValueError("median of nothing")
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) // 2


def deviation_bps(price: int, reference: int) -> int:
    """|price − reference| in basis points of reference, rounded up."""
    return -(-abs(price - reference) * BPS // reference)


def invalid_reason(q: Quote, now: int) -> str | None:
    """Why a quote cannot be used, or None when it is valid."""
    if q.price <= 0:
        return "price is not positive"
    if q.price > MAX_PRICE_E18:
        return "price is beyond any plausible value"
    if not 0 <= q.confidence <= 100:
        return f"confidence {q.confidence} is outside 0-100"
    if q.observed_at > now:
        return f"observed {q.observed_at - now} s in the future"
    age = now - q.observed_at
    if age > q.max_age_s:
        return f"stale: {age} s old, limit {q.max_age_s} s"
    return None


def aggregate(
    asset: str, results: Sequence[SourceResult], now: int, rules: PriceRules, configured: int | None = None
) -> Aggregate:
    """Median, deviation filter and confidence of one asset's source results."""
    n = configured if configured is not None else len(results)
    verdicts: dict[int, SourceVerdict] = {}
    valid: list[tuple[int, Quote]] = []
    for i, r in enumerate(results):
        if isinstance(r, SourceFailure):
            verdicts[i] = SourceVerdict(r.source, "failed", reason=r.reason)
            continue
        reason = invalid_reason(r, now)
        if reason is not None:
            verdicts[i] = SourceVerdict(
                r.source, "invalid", r.price, r.confidence, r.observed_at, reason=reason
            )
        else:
            valid.append((i, r))
    if not valid:
        return Aggregate(asset, None, 0, n, tuple(verdicts[i] for i in range(len(results))))

    limit = rules.max_deviation_bps
    first = median([q.price for _, q in valid])
    kept = [(i, q) for i, q in valid if deviation_bps(q.price, first) <= limit]
    if not kept:
        # Only possible with an even count whose two middle values are far apart.
        for i, q in valid:
            verdicts[i] = _deviating(q, first, limit)
        return Aggregate(asset, first, 0, n, tuple(verdicts[i] for i in range(len(results))))
    price = median([q.price for _, q in kept])
    spread = min(max(deviation_bps(q.price, price) for _, q in kept), 2 * limit)
    weight = sum(q.confidence for _, q in kept)
    confidence = weight * (2 * limit - spread) // (n * 2 * limit)
    kept_ids = {i for i, _ in kept}
    for i, q in valid:
        if i in kept_ids:
            verdicts[i] = SourceVerdict(
                q.source, "used", q.price, q.confidence, q.observed_at, deviation_bps(q.price, price)
            )
        else:
            verdicts[i] = _deviating(q, first, limit)
    return Aggregate(asset, price, confidence, n, tuple(verdicts[i] for i in range(len(results))))


def _deviating(q: Quote, reference: int, limit: int) -> SourceVerdict:
    d = deviation_bps(q.price, reference)
    return SourceVerdict(
        q.source, "deviating", q.price, q.confidence, q.observed_at, d,
        reason=f"{d} bps from the median {fmt_usd(reference)} (limit {limit} bps)",
    )  # fmt: skip


def resolve(agg: Aggregate, cached: CachedPrice | None, now: int, rules: PriceRules) -> AssetPrice:
    """The price to value with: the live one if confident, else a fresh enough cache."""
    if agg.price is not None and agg.confidence >= rules.min_confidence:
        return AssetPrice(agg.asset, agg.price, agg.confidence, now, agg.used, False, agg)
    why = (
        "no valid source"
        if agg.price is None
        else f"confidence {agg.confidence} below the minimum {rules.min_confidence}"
    )
    if cached is None:
        raise PriceUnavailable(agg.asset, agg, f"{why}, and no cached price")
    age = now - cached.as_of
    if age > rules.cache_max_age_s:
        raise PriceUnavailable(
            agg.asset, agg, f"{why}, and the cached price is {age} s old (limit {rules.cache_max_age_s} s)"
        )
    return AssetPrice(agg.asset, cached.price, agg.confidence, cached.as_of, cached.sources, True, agg)


def to_cache(price: AssetPrice) -> CachedPrice | None:
    """The cache entry a live, confident price establishes (None for a cached one)."""
    if price.estimated:
        return None
    return CachedPrice(price.asset, price.price, price.confidence, price.as_of, price.sources)
