"""`navpub verify`: recompute a fund's NAV now and reconcile it with the published NAV and a statement."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from publisher._exceptions import InputError, UnknownFund
from publisher.money import USD_DECIMALS, fmt_price, fmt_usd, units_to_decimal
from publisher.output import Amount
from publisher.snapshot import NavOnChain
from publisher.store import Report
from publisher.value import Valuation

if TYPE_CHECKING:
    from publisher.engine import NavEngine

Basis = Literal["nav", "net"]
BASES: tuple[Basis, ...] = ("nav", "net")
LIABILITY_KINDS = ("pending_fees", "pending_withdrawals", "borrowed", "offexchange_borrowed")
DEFAULT_TOLERANCE = "5"
BASIS_LABEL = {"nav": "NAV", "net": "net collateral (collateral after haircuts − borrowed)"}
# Custodian statements write thousands with commas; only well-formed groups are accepted so
# that a European "1,5" is refused rather than read as 15.
_GROUPED = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")


class VerifyInputError(InputError):
    """A `verify` option (--tolerance, --reported, --basis, --fund) has a value it cannot use."""


# -- parsing the operator's input (pure) ---------------------------------------------------------


@dataclass(frozen=True)
class Tolerance:
    """How far a figure may be from its reference: USD (`absolute`) or a percentage of the NAV."""

    text: str  # as given
    absolute: int | None = None  # 18-decimal USD
    percent: Decimal | None = None  # 0.1 for "0.1%"

    def usd(self, reference: int) -> int:
        """The tolerance in 18-decimal USD; a percentage of |reference|, rounded down (stricter)."""
        if self.absolute is not None:
            return self.absolute
        assert self.percent is not None
        num, den = self.percent.as_integer_ratio()
        return abs(reference) * num // (den * 100)


def _decimal(text: str) -> Decimal | None:
    body = text.strip().removeprefix("$").strip()
    if _GROUPED.match(body):
        body = body.replace(",", "")
    try:
        value = Decimal(body)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def to_usd_units(value: Decimal) -> int | None:
    """Exact 18-decimal USD integer of `value`; None when it has more than 18 decimals."""
    num, den = value.as_integer_ratio()
    scaled = num * 10**USD_DECIMALS
    # as_integer_ratio avoids Decimal's 28-digit context, which would round large amounts.
    return scaled // den if scaled % den == 0 else None


def parse_tolerance(text: str) -> Tolerance:
    """Parses "5" or "$5" (= $5) and "0.1%" (= 0.1 % of the published NAV). Raises VerifyInputError."""
    raw = text.strip()
    hint = "give USD (5) or a percentage of the NAV (0.1%)"
    if raw.endswith("%"):
        pct = _decimal(raw[:-1])
        if pct is None or raw[:-1].strip().startswith("$"):
            raise VerifyInputError(f"--tolerance: {text!r} is not a percentage; {hint}")
        if not Decimal(0) <= pct <= Decimal(100):
            raise VerifyInputError(f"--tolerance: {text!r} must be between 0% and 100%")
        return Tolerance(text=raw, percent=pct)
    amount = _decimal(raw)
    if amount is None:
        raise VerifyInputError(f"--tolerance: {text!r} is not an amount; {hint}")
    if amount < 0:
        raise VerifyInputError(f"--tolerance: {text!r} is negative; {hint}")
    units = to_usd_units(amount)
    if units is None:
        raise VerifyInputError(f"--tolerance: {text!r} has more than {USD_DECIMALS} decimals")
    return Tolerance(text=raw, absolute=units)


def parse_reported(text: str) -> int:
    """A statement's USD figure ("690000.00", "$690,000.00") → 18-decimal USD. May be negative
    (a net balance can be). Raises VerifyInputError."""
    amount = _decimal(text)
    if amount is None:
        raise VerifyInputError(f"--reported: {text!r} is not a USD amount (e.g. 690000.00)")
    units = to_usd_units(amount)
    if units is None:
        raise VerifyInputError(f"--reported: {text!r} has more than {USD_DECIMALS} decimals")
    return units


def parse_basis(text: str) -> Basis:
    basis = text.strip().lower()
    for b in BASES:
        if basis == b:
            return b
    raise VerifyInputError(
        f"--basis: {text!r} is not one of nav (the NAV) or net (collateral after haircuts − borrowed)"
    )


# -- the breakdown (pure) ------------------------------------------------------------------------


@dataclass(frozen=True)
class Position:
    """One holding as valued on one side (published report or recomputation)."""

    asset: str
    venue: str
    amount: int  # token units
    decimals: int
    price: int  # 18-decimal USD
    value: int  # 18-decimal USD
    sources: tuple[str, ...] = ()
    estimated: bool = False


@dataclass(frozen=True)
class AssetDiff:
    """An asset's difference, recomputed − published, split into amount and price effects that
    add up to it exactly."""

    asset: str
    venue: str
    then: Position | None
    now: Position | None
    difference: int
    amount_effect: int  # the new amount at the published price, less the published value
    price_effect: int  # the rest: the new amount revalued from the published to today's price

    @property
    def nav_effect(self) -> int:
        return self.difference


@dataclass(frozen=True)
class LiabilityDiff:
    kind: str
    then: int | None
    now: int
    difference: int | None  # recomputed − published (a rise lowers the NAV)

    @property
    def nav_effect(self) -> int:
        return -(self.difference or 0)


def diff_asset(then: Position | None, now: Position | None) -> AssetDiff:
    """The difference of one asset and its split. Rounding follows valuation (down per holding):
    revaluing at the published price keeps the amount effect exactly 0 when the amount did not
    change, and the price effect exactly 0 when the price did not."""
    ref = then or now
    assert ref is not None
    value_then = then.value if then else 0
    value_now = now.value if now else 0
    if then is None or now is None:
        # A new or a closed holding: all of it is the amount's doing.
        return AssetDiff(ref.asset, ref.venue, then, now, value_now - value_then, value_now - value_then, 0)
    # Off-exchange quantities may carry different decimals on each side; compare on one scale.
    scale = max(then.decimals, now.decimals)
    at_old_price = now.amount * 10 ** (scale - now.decimals) * then.price // 10**scale
    return AssetDiff(
        ref.asset,
        ref.venue,
        then,
        now,
        value_now - value_then,
        at_old_price - value_then,
        value_now - at_old_price,
    )


def diff_assets(then: Sequence[Position], now: Sequence[Position]) -> list[AssetDiff]:
    """Matches holdings by (asset, venue): today's order first, then those no longer held."""
    before = {(p.asset, p.venue): p for p in then}
    rows = [diff_asset(before.pop((p.asset, p.venue), None), p) for p in now]
    return rows + [diff_asset(p, None) for p in before.values()]


def diff_liabilities(then: Mapping[str, int] | None, now: Mapping[str, int]) -> list[LiabilityDiff]:
    return [
        LiabilityDiff(
            k,
            None if then is None else then.get(k, 0),
            now.get(k, 0),
            None if then is None else now.get(k, 0) - then.get(k, 0),
        )
        for k in LIABILITY_KINDS
    ]


def largest(
    assets: Sequence[AssetDiff], liabilities: Sequence[LiabilityDiff]
) -> AssetDiff | LiabilityDiff | None:
    """The row with the largest absolute effect on the NAV (the first on a tie); None when all are 0."""
    rows: list[AssetDiff | LiabilityDiff] = [*assets, *liabilities]
    best = max(rows, key=lambda r: abs(r.nav_effect), default=None)
    return best if best is not None and best.nav_effect != 0 else None


def signed_usd(raw: int) -> str:
    """+$1.50 / −$1.50 / $0.00; amounts below a cent keep their exact digits rather than read $0.00."""
    sign = "+" if raw > 0 else "−" if raw < 0 else ""
    return sign + money(abs(raw))


def money(raw: int) -> str:
    """$1,234.56 (cents, truncated as fmt_usd does), or the exact digits of a nonzero sub-cent amount."""
    sign = "-" if raw < 0 else ""
    if raw != 0 and abs(raw) < 10**16:
        return f"{sign}${units_to_decimal(abs(raw), USD_DECIMALS):f}"
    return sign + fmt_usd(abs(raw))


def _qty(p: Position) -> str:
    return f"{units_to_decimal(p.amount, p.decimals):,}"


def describe(row: AssetDiff | LiabilityDiff) -> str:
    """`ETH +$100.00 (price $2,200.00 → $2,201.00)`: a row's NAV effect and what moved."""
    if isinstance(row, LiabilityDiff):
        then = "?" if row.then is None else money(row.then)
        return (
            f"{row.kind.replace('_', ' ')} {signed_usd(row.nav_effect)} (liability {then} → {money(row.now)})"
        )
    if row.then is None:
        assert row.now is not None
        why = f"not in the published NAV; {_qty(row.now)} {row.asset} held now"
    elif row.now is None:
        why = f"{_qty(row.then)} {row.asset} published, not held now"
    else:
        parts = []
        if row.then.amount * 10**row.now.decimals != row.now.amount * 10**row.then.decimals:
            parts.append(f"amount {_qty(row.then)} → {_qty(row.now)}")
        if row.then.price != row.now.price:
            parts.append(f"price {fmt_price(row.then.price)} → {fmt_price(row.now.price)}")
        why = ", ".join(parts) or "rounding"
    return f"{row.asset} {signed_usd(row.nav_effect)} ({why})"


def _units(text: Any) -> int:
    """An 18-decimal USD decimal string from a report's inputs → integer, exactly."""
    value = to_usd_units(Decimal(str(text)))
    if value is None:
        raise ValueError(f"{text!r} has more than {USD_DECIMALS} decimals")
    return value


def published_breakdown(inputs: Mapping[str, Any]) -> tuple[list[Position], dict[str, int] | None]:
    """The holdings and liabilities a stored report's inputs (engine.report_inputs) recorded."""
    prices = inputs.get("prices") or {}
    positions = [
        Position(
            asset=a["asset"],
            venue=a.get("venue", "on-chain"),
            amount=int(a["amount"]),
            decimals=int(a["decimals"]),
            price=_units(a["price"]),
            value=_units(a["value"]),
            sources=tuple(prices.get(a["asset"], {}).get("sources", ())),
            estimated=bool(a.get("estimated", False)),
        )
        for a in inputs.get("assets") or ()
    ]
    li = inputs.get("liabilities")
    return positions, None if li is None else {k: _units(li.get(k, "0")) for k in LIABILITY_KINDS}


def recomputed_breakdown(v: Valuation) -> tuple[list[Position], dict[str, int]]:
    positions = [
        Position(a.asset, a.venue, a.amount, a.decimals, a.price, a.value, a.sources, a.estimated)
        for a in v.assets
    ]
    li = v.liabilities
    return positions, {
        "pending_fees": li.pending_fees,
        "pending_withdrawals": li.pending_withdrawals,
        "borrowed": li.borrowed,
        "offexchange_borrowed": li.offexchange_borrowed,
    }


# -- the result ----------------------------------------------------------------------------------


class ToleranceOut(BaseModel):
    given: str
    kind: Literal["absolute", "relative"]
    percent: str | None  # "0.1" for 0.1 %
    usd: Amount  # what it means: relative to the published NAV (the recomputed one if none)


class PublishedOut(BaseModel):
    """The NAV on chain now, and the stored report it came from when this store has it."""

    nav: Amount
    as_of: int
    age_s: int
    round: int
    estimated: bool
    report_id: int | None
    block_number: int | None  # the block its holdings were read at (from the report)


class RecomputedOut(BaseModel):
    nav: Amount
    gross: Amount
    liabilities: Amount
    collateral: Amount
    net_collateral: Amount
    block_number: int
    at: int
    estimated: bool


class ReportedOut(BaseModel):
    """The external statement's comparison; difference = reported − compared_with."""

    reported: Amount
    basis: Basis
    compared_with: Amount | None
    difference: Amount | None
    within: bool | None


class SideOut(BaseModel):
    amount: Amount
    price: Amount
    value: Amount
    sources: list[str]
    estimated: bool


class AssetRowOut(BaseModel):
    """One asset; difference = recomputed − published = amount_effect + price_effect."""

    asset: str
    venue: str
    published: SideOut | None
    recomputed: SideOut | None
    difference: Amount | None
    amount_effect: Amount | None
    price_effect: Amount | None


class LiabilityRowOut(BaseModel):
    """One liability; difference = recomputed − published, nav_effect = −difference."""

    kind: str
    published: Amount | None
    recomputed: Amount
    difference: Amount | None
    nav_effect: Amount | None


class VerifyResult(BaseModel):
    fund_id: int
    passed: bool
    verdict: Literal["PASS", "FAIL"]
    reason: str
    tolerance: ToleranceOut
    published: PublishedOut | None
    recomputed: RecomputedOut | None
    difference: Amount | None  # recomputed NAV − published NAV
    within: bool | None
    reported: ReportedOut | None
    breakdown_available: bool
    largest: str | None  # the asset or liability with the largest absolute difference
    assets: list[AssetRowOut]
    liabilities: list[LiabilityRowOut]
    warnings: list[str]


def _side(p: Position | None) -> SideOut | None:
    if p is None:
        return None
    return SideOut(
        amount=Amount.of(p.amount, p.decimals),
        price=Amount.of(p.price),
        value=Amount.of(p.value),
        sources=list(p.sources),
        estimated=p.estimated,
    )


def _opt(raw: int | None) -> Amount | None:
    return None if raw is None else Amount.of(raw)


@dataclass(frozen=True)
class Recomputed:
    """What the fresh cycle found for the fund: a valuation, or why there is none."""

    valuation: Valuation | None
    failure: str | None
    block_number: int
    at: int


def reconcile(
    fund_id: int,
    on_chain: NavOnChain,
    recomputed: Recomputed,
    report: Report | None,
    *,
    tolerance: Tolerance,
    reported: int | None = None,
    basis: Basis = "nav",
    stale_after_s: int | None = None,
) -> VerifyResult:
    """The verdict from plain data: the chain's NAV state, the recomputation, the stored report
    the published NAV came from (None when this store lacks it) and the statement."""
    v = recomputed.valuation
    published = on_chain.nav if on_chain.published else None
    reference = published if published is not None else (v.nav if v else 0)
    tol = tolerance.usd(reference)
    warnings: list[str] = []
    failures: list[str] = []
    passes: list[str] = []

    if v is None:
        failures.append(f"the NAV cannot be recomputed now: {recomputed.failure or 'no valuation'}")
    elif v.estimated:
        cached = ", ".join(a.asset for a in v.assets if a.estimated)
        warnings.append(
            f"the recomputation used cached prices ({cached}): the NAV is estimated, so this check "
            "is weaker than one on live prices"
        )
    if published is None:
        failures.append(f"fund {fund_id} has no published NAV yet")
    elif on_chain.estimated:
        warnings.append("the published NAV is flagged estimated (cached prices when it was computed)")
    age = recomputed.at - on_chain.as_of
    if published is not None and stale_after_s is not None and age > stale_after_s:
        warnings.append(
            f"the published NAV is {age} s old (cadence {stale_after_s} s): prices and holdings may "
            "have moved since, legitimately"
        )

    # The breakdown: the stored report's holdings against today's.
    asset_rows: list[AssetDiff] = []
    liability_rows: list[LiabilityDiff] = []
    breakdown = False
    if v is not None:
        now_pos, now_li = recomputed_breakdown(v)
        then_pos: list[Position] = []
        then_li: dict[str, int] | None = None
        if report is not None and published is not None:
            try:
                then_pos, then_li = published_breakdown(report.inputs)
            except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
                # A report written by another navpub version: say so and compare totals only.
                warnings.append(f"the stored report {report.id}'s breakdown cannot be read ({exc!r})")
            breakdown = then_li is not None
            if report.nav != published:
                warnings.append(
                    f"the stored report {report.id} for asOf {on_chain.as_of} has NAV "
                    f"{money(report.nav or 0)}, the chain {money(published)}: its breakdown may not "
                    "explain the difference"
                )
        elif published is not None:
            warnings.append(
                f"published breakdown unavailable: this store has no confirmed report of fund {fund_id} "
                f"as of {on_chain.as_of} (verify run on another machine?); totals compared only"
            )
        if breakdown:
            asset_rows = diff_assets(then_pos, now_pos)
            liability_rows = diff_liabilities(then_li, now_li)
        else:
            asset_rows = [AssetDiff(p.asset, p.venue, None, p, 0, 0, 0) for p in now_pos]
            liability_rows = diff_liabilities(None, now_li)
    top = largest(asset_rows, liability_rows) if breakdown else None

    difference = within = None
    if v is not None and published is not None:
        difference = v.nav - published
        within = abs(difference) <= tol
        line = f"recomputed NAV {money(v.nav)} {{}} the published {money(published)}"
        if within:
            passes.append(
                line.format("matches") + f" within {money(tol)} (difference {signed_usd(difference)})"
            )
        else:
            failures.append(
                line.format("differs from")
                + f" by {signed_usd(difference)} (tolerance {money(tol)})"
                + (f"; largest difference {describe(top)}" if top else "")
            )

    reported_out = None
    if reported is not None:
        compared = None if v is None else (v.nav if basis == "nav" else v.net_collateral)
        label = BASIS_LABEL[basis]
        gap = None if compared is None else reported - compared
        ok = None if gap is None else abs(gap) <= tol
        reported_out = ReportedOut(
            reported=Amount.of(reported),
            basis=basis,
            compared_with=_opt(compared),
            difference=_opt(gap),
            within=ok,
        )
        if gap is None or compared is None:
            failures.append(f"the statement's {money(reported)} cannot be compared: no recomputed {label}")
        elif ok:
            passes.append(
                f"the statement's {money(reported)} matches the recomputed {label} {money(compared)} "
                f"within {money(tol)} (difference {signed_usd(gap)})"
            )
        else:
            failures.append(
                f"the statement's {money(reported)} differs from the recomputed {label} {money(compared)} "
                f"by {signed_usd(gap)} (tolerance {money(tol)})"
            )

    passed = not failures
    reason = ("PASS: " + "; ".join(passes)) if passed else ("FAIL: " + "; ".join(failures))
    return VerifyResult(
        fund_id=fund_id,
        passed=passed,
        verdict="PASS" if passed else "FAIL",
        reason=reason,
        tolerance=ToleranceOut(
            given=tolerance.text,
            kind="absolute" if tolerance.absolute is not None else "relative",
            percent=None if tolerance.percent is None else str(tolerance.percent),
            usd=Amount.of(tol),
        ),
        published=None
        if published is None
        else PublishedOut(
            nav=Amount.of(published),
            as_of=on_chain.as_of,
            age_s=age,
            round=on_chain.round,
            estimated=on_chain.estimated,
            report_id=report.id if report else None,
            block_number=report.block_number if report else None,
        ),
        recomputed=None
        if v is None
        else RecomputedOut(
            nav=Amount.of(v.nav),
            gross=Amount.of(v.gross),
            liabilities=Amount.of(v.liabilities.total),
            collateral=Amount.of(v.collateral),
            net_collateral=Amount.of(v.net_collateral),
            block_number=recomputed.block_number,
            at=recomputed.at,
            estimated=v.estimated,
        ),
        difference=_opt(difference),
        within=within,
        reported=reported_out,
        breakdown_available=breakdown,
        largest=describe(top) if top else None,
        assets=[
            AssetRowOut(
                asset=r.asset,
                venue=r.venue,
                published=_side(r.then),
                recomputed=_side(r.now),
                difference=Amount.of(r.difference) if breakdown else None,
                amount_effect=Amount.of(r.amount_effect) if breakdown else None,
                price_effect=Amount.of(r.price_effect) if breakdown else None,
            )
            for r in asset_rows
        ],
        liabilities=[
            LiabilityRowOut(
                kind=r.kind,
                published=_opt(r.then),
                recomputed=Amount.of(r.now),
                difference=_opt(r.difference),
                nav_effect=None if r.difference is None else Amount.of(r.nav_effect),
            )
            for r in liability_rows
        ],
        warnings=warnings,
    )


# -- I/O: the engine and the store ---------------------------------------------------------------


def verify_fund(
    engine: NavEngine,
    fund_id: int,
    *,
    reported: str | None = None,
    tolerance: Tolerance | str = DEFAULT_TOLERANCE,
    basis: str = "nav",
) -> VerifyResult:
    """Recomputes `fund_id`'s NAV now (fresh snapshot and prices, nothing written) and reconciles
    it with the published NAV and, when given, a statement's figure. The HTTP API can pass its
    query strings as they are; a bad one raises VerifyInputError before anything is read."""
    tol = parse_tolerance(tolerance) if isinstance(tolerance, str) else tolerance
    statement = None if reported is None else parse_reported(reported)
    base = parse_basis(basis)
    count = engine.rpc_call(lambda: engine.vault.functions.fundCount().call(), "fundCount")
    if not 1 <= fund_id <= count:
        raise UnknownFund(f"--fund {fund_id}: no such fund (this vault has funds 1 to {count})")
    cycle = engine.run([fund_id], "manual", persist=False)
    (f,) = cycle.funds
    on_chain = f.snapshot.nav
    report = engine.store.confirmed_report(fund_id, on_chain.as_of) if on_chain.published else None
    return reconcile(
        fund_id,
        on_chain,
        Recomputed(f.valuation, f.failure.message if f.failure else None, cycle.block_number, cycle.now),
        report,
        tolerance=tol,
        reported=statement,
        basis=base,
        stale_after_s=engine.settings.cadence_s,
    )


# -- output --------------------------------------------------------------------------------------


def _d(a: Amount | None, *, signed: bool = False) -> str:
    if a is None:
        return "—"
    raw = int(a.raw)
    return signed_usd(raw) if signed else money(raw)


def _change(then: str | None, now: str | None) -> str:
    """`a → b`, or just `a` when it did not change; — for a missing side."""
    if then is None or now is None:
        return f"{then or '—'} → {now or '—'}"
    return then if then == now else f"{then} → {now}"


def _side_qty(side: SideOut | None) -> str | None:
    return None if side is None else f"{Decimal(side.amount.value):,}"


def _side_price(side: SideOut | None) -> str | None:
    return None if side is None else fmt_price(int(side.price.raw))


def render_verify(console: Console, r: VerifyResult) -> None:
    """The reconciliation as tables and a PASS (green) / FAIL (red) line."""
    rc = r.recomputed
    at = f"  block {rc.block_number}  at {rc.at}" if rc else ""
    console.print(
        f"[bold]Fund {r.fund_id}[/] verify{at}  tolerance {escape(r.tolerance.given)} = {_d(r.tolerance.usd)}"
    )

    totals = Table(box=box.SIMPLE, pad_edge=False)
    for col in ("", "published", "recomputed", "difference", ""):
        totals.add_column(col, justify="left" if col == "" else "right")
    p = r.published
    mark = "" if r.within is None else ("[green]ok[/]" if r.within else "[red]over[/]")
    totals.add_row(
        "NAV", _d(p.nav) if p else "never", _d(rc.nav) if rc else "—", _d(r.difference, signed=True), mark
    )
    if rc:
        for name, amount in (
            ("gross", rc.gross),
            ("liabilities", rc.liabilities),
            ("collateral after haircuts", rc.collateral),
            ("net collateral", rc.net_collateral),
        ):
            totals.add_row(name, "", _d(amount), "", "")
    if r.reported:
        s = r.reported
        ok = "" if s.within is None else ("[green]ok[/]" if s.within else "[red]over[/]")
        totals.add_row(
            f"statement vs {s.basis}", _d(s.reported), _d(s.compared_with), _d(s.difference, signed=True), ok
        )
    console.print(totals)
    if p:
        est = " [yellow](estimated)[/]" if p.estimated else ""
        rep = f", report {p.report_id} (block {p.block_number})" if p.report_id else ""
        console.print(f"  published as of {p.as_of} ({p.age_s} s ago), round {p.round}{est}{rep}")

    if r.assets:
        table = Table(box=box.SIMPLE, pad_edge=False)
        cols = ("", "amount", "price", "value then", "value now", "difference", "amount eff.", "price eff.")
        for col in cols:
            table.add_column(col, justify="left" if col in {"", "amount", "price"} else "right")
        for a in r.assets:
            then, now = a.published, a.recomputed
            cached = " (cached)" if now is not None and now.estimated else ""
            table.add_row(
                a.asset + ("" if a.venue == "on-chain" else " (off-exchange)"),
                _change(_side_qty(then), _side_qty(now)) if r.breakdown_available else _side_qty(now) or "—",
                (
                    _change(_side_price(then), _side_price(now))
                    if r.breakdown_available
                    else _side_price(now) or "—"
                )
                + cached,
                _d(then.value) if then else "—",
                _d(now.value) if now else "—",
                _d(a.difference, signed=True),
                _d(a.amount_effect, signed=True),
                _d(a.price_effect, signed=True),
            )
        for li in r.liabilities:
            table.add_row(
                f"− {li.kind.replace('_', ' ')}",
                "",
                "",
                _d(li.published),
                _d(li.recomputed),
                _d(li.nav_effect, signed=True),
                "",
                "",
            )
        console.print(table)
    for w in r.warnings:
        console.print(f"  [yellow]warning[/] {escape(w)}", soft_wrap=True)
    colour = "green" if r.passed else "red"
    console.print(f"[bold {colour}]{escape(r.reason)}[/]", soft_wrap=True, highlight=False)
