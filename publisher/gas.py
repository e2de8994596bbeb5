"""The gas ledger: what every confirmed publication cost, per fund and in total, and what a
month will cost at the current cadence and gas price, beside the seed's budget.

A batch transaction's gas and cost are split equally between the funds it carried (the
remainder to the lowest fund id), so per-fund figures add up exactly to the ledger's total.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from publisher.engine import NavEngine
from publisher.publish import fund_shares
from publisher.store import Publication

# The seed's budget (nav-update-process.md, "Timing & Gas"): ~30,000 gas and ~$0.015 per
# update, ~720 hourly updates, ~$10.80 per fund per month.
SEED_GAS_PER_UPDATE = 30_000
SEED_COST_PER_UPDATE_USD = 15 * 10**15  # $0.015, 18 decimals
SEED_MONTHLY_PER_FUND_USD = 10_800 * 10**15  # $10.80
SECONDS_PER_MONTH = 30 * 24 * 3600


@dataclass
class FundGas:
    fund_id: int
    updates: int = 0
    gas: int = 0
    cost_wei: int = 0
    cost_usd: int = 0
    priced_updates: int = 0  # updates whose cost is known in USD

    @property
    def avg_gas(self) -> int | None:
        return self.gas // self.updates if self.updates else None


@dataclass
class GasReport:
    funds: dict[int, FundGas] = field(default_factory=dict)
    transactions: int = 0
    gas: int = 0
    cost_wei: int = 0
    cost_usd: int = 0

    @property
    def updates(self) -> int:
        return sum(f.updates for f in self.funds.values())

    @property
    def avg_gas_per_update(self) -> int | None:
        return self.gas // self.updates if self.updates else None


def ledger(publications: Sequence[Publication]) -> GasReport:
    """Totals of the confirmed publications, per fund and overall."""
    report = GasReport()
    for pub in publications:
        if pub.status != "confirmed" or pub.gas_used is None:
            continue
        report.transactions += 1
        report.gas += pub.gas_used
        report.cost_wei += pub.cost_wei or 0
        report.cost_usd += pub.cost_usd or 0
        ids = sorted(pub.fund_ids)
        if not ids:
            continue
        gas = fund_shares(pub.gas_used, len(ids))
        wei = fund_shares(pub.cost_wei or 0, len(ids))
        usd = fund_shares(pub.cost_usd or 0, len(ids))
        for i, fid in enumerate(ids):
            f = report.funds.setdefault(fid, FundGas(fid))
            f.updates += pub.kind == "nav"  # a ripcord transaction costs gas but is no NAV update
            f.gas += gas[i]
            f.cost_wei += wei[i]
            if pub.cost_usd is not None:
                f.cost_usd += usd[i]
                f.priced_updates += 1
    return report


@dataclass(frozen=True)
class Projection:
    updates_per_month: int
    gas_per_update: int
    gas_price_wei: int
    native_usd: int | None
    monthly_gas: int
    monthly_wei: int
    monthly_usd: int | None  # per fund, 18 decimals
    seed_monthly_usd: int = SEED_MONTHLY_PER_FUND_USD
    seed_gas_per_update: int = SEED_GAS_PER_UPDATE


def project(gas_per_update: int, cadence_s: int, gas_price_wei: int, native_usd: int | None) -> Projection:
    """One fund's monthly cost publishing every `cadence_s` at today's gas price."""
    updates = SECONDS_PER_MONTH // cadence_s
    gas = gas_per_update * updates
    wei = gas * gas_price_wei
    usd = wei * native_usd // 10**18 if native_usd is not None else None
    return Projection(updates, gas_per_update, gas_price_wei, native_usd, gas, wei, usd)


def gas_overview(engine: NavEngine) -> tuple[GasReport, Projection]:
    """The ledger from the store and the monthly projection at today's gas price (base fee plus
    the tip floor on EIP-1559 chains) and the last cached price of the native coin."""
    settings = engine.settings
    report = ledger(engine.store.publications())
    latest = engine.rpc_call(lambda: engine.w3.eth.get_block("latest"), "gas price")
    base = int(latest.get("baseFeePerGas") or 0)
    gas_price = (
        base + settings.priority_fee_floor_wei
        if base
        else engine.rpc_call(lambda: engine.w3.eth.gas_price, "gas price")
    )
    native = engine.store.cached_prices([settings.native_symbol]).get(settings.native_symbol)
    per_update = report.avg_gas_per_update or SEED_GAS_PER_UPDATE
    return report, project(per_update, settings.cadence_s, gas_price, native.price if native else None)
