"""Gas per NAV update, measured from receipts on a real anvil, and the monthly cost it implies.

    .venv/bin/python -m bench.gas [--json]

- one fund, as the engine publishes it: `updateNAVBatch` with one word (the vault checks the
  share version, stores the NAV, emits the seed's `NAVUpdated`, moves the per-share high-water
  mark, and the hub logs the full `NAVRecorded`, one transaction), beside the four-argument
  `updateNAV` and the seed's two-argument `updateNAV(fundId, nav)`, in steady state — the
  fund's slots already written — in each situation of the per-share high-water mark;
- batches of 10 and 100 funds (`updateNAVBatch`, every fund with the same events as a single
  update): the marginal gas per fund, (gas(N) - gas(1)) / (N - 1), in the same situations;
- the monthly cost of 100 funds published hourly at the seed's implied price per gas
  ($10.80 / (720 x 30,000 gas)), beside the seed's $1,080.

Every fund holds shares (a deposit first): NAV per share, the mark and the events are computed
as for a real fund. Only the product's own code is used: `deploy_core`, `pack_nav_update` and
`chain.send`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract

from publisher.chain import connect, contract_at, send
from publisher.config import load_settings
from publisher.deploy import deploy_contract, deploy_core
from publisher.gas import SEED_GAS_PER_UPDATE, SEED_MONTHLY_PER_FUND_USD
from publisher.keys import load_account
from publisher.localchain import REPO_ROOT, free_port, load_anvil_config, start_anvil
from publisher.publish import pack_nav_update

USD = 10**18
FUNDS = 100
BATCHES = (10, 100)
UPDATES_PER_MONTH = 720  # hourly, 30 days
# The seed's implied price of gas: $10.80 a month per fund for 720 updates of 30,000 gas.
SEED_USD_PER_GAS = Decimal(SEED_MONTHLY_PER_FUND_USD) / USD / (UPDATES_PER_MONTH * SEED_GAS_PER_UPDATE)
SHARES = 1_000_000 * USD  # per fund: NAV per share starts at $1
# Targets of the integrators' issue, printed beside the figures. Not met with every feature
# the same issue asks for (README, Performance: the floor of the seed's NAVUpdated, the hub's
# full record and the per-share read is above them); the ceilings below are what this build
# measures, a regression check.
TARGET_SINGLE = 37_000
TARGET_MARGINAL = 8_900
#: The engine's one-fund publish (updateNAVBatch with one word), below the peak, as measured.
CEILING_SINGLE = 42_600
#: Marginal gas per fund in a batch of 10 or 100, below the peak, as measured.
CEILING_MARGINAL = 14_800


@dataclass(frozen=True)
class Case:
    """Gas of one transaction publishing `funds` NAVs, in each situation of the high-water mark."""

    funds: int
    below_peak: int  # the NAV below its mark, as most of the time
    rising: int  # a new peak right after a peak (a rising market)
    leaving_peak: int  # the first NAV below a peak: the mark gets its own slot
    new_peak: int  # back above the mark after a drawdown


SITUATIONS = ("below_peak", "rising", "leaving_peak", "new_peak")


class Chain:
    """Anvil with the core contracts, `FUNDS` funds, and the engine's clock on chain time."""

    def __init__(self, w3: Web3, vault: Contract, engine: LocalAccount) -> None:
        self.w3, self.vault, self.engine = w3, vault, engine
        self.navs: dict[int, int] = {}

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def tick(self) -> int:
        """A new second, so every asOf is newer than the last."""
        self.w3.provider.make_request("evm_increaseTime", [60])
        self.w3.provider.make_request("evm_mine", [])
        return self.now()

    def publish(self, fund_ids: list[int], factor: Decimal, form: str = "batch") -> int:
        """Publishes every fund's NAV times `factor` (`form`: "batch" words, or one fund's
        "updateNAV/4" or the seed's "updateNAV/2"); the transaction's gas."""
        t = self.tick()
        for f in fund_ids:
            self.navs[f] = int(self.navs.get(f, SHARES) * factor)
        if form == "updateNAV/4":
            (f,) = fund_ids
            call = self.vault.get_function_by_signature("updateNAV(uint256,uint256,uint48,uint16)")(
                f, self.navs[f], t, 0
            )
        elif form == "updateNAV/2":
            (f,) = fund_ids
            call = self.vault.get_function_by_signature("updateNAV(uint256,uint256)")(f, self.navs[f])
        else:
            # Share version 1: the fund's one deposit.
            call = self.vault.functions.updateNAVBatch(
                [pack_nav_update(f, self.navs[f], t, 0, 1) for f in fund_ids]
            )
        receipt = send(self.w3, self.engine, call, f"NAV of {len(fund_ids)} fund(s)")
        return int(receipt["gasUsed"])


def measure(chain: Chain, ids: list[int], form: str = "batch") -> Case:
    # The first writes (zero → non-zero slots) are not steady state: a first NAV, a first fall
    # below the peak, a first recovery.
    for factor in ("1", "0.99", "1.02"):
        chain.publish(ids, Decimal(factor), form)
    rising = chain.publish(ids, Decimal("1.01"), form)
    leaving = chain.publish(ids, Decimal("0.99"), form)
    below = chain.publish(ids, Decimal("0.99"), form)
    new_peak = chain.publish(ids, Decimal("1.05"), form)
    return Case(len(ids), below, rising, leaving, new_peak)


def run(batches_of: tuple[int, ...] = BATCHES) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="navpub-bench-gas-") as tmp:
        config = load_anvil_config(REPO_ROOT / "anvil.env").model_copy(update={"port": free_port()})
        node = start_anvil(config, log_path=Path(tmp) / "anvil.log")
        try:
            settings = load_settings(rpc_url=node.rpc_url, state_dir=Path(tmp), chain_id=config.chain_id)
            w3 = connect(settings)
            # One account is admin and NAV engine: roles change no gas figure here.
            engine = load_account(settings)
            deployment = deploy_core(w3, settings, engine, engine.address)
            vault = contract_at(w3, "FundVault", deployment.vault)
            usdc = deploy_contract(w3, engine, "MockERC20", "USD Coin", "USDC", 6)
            send(w3, engine, usdc.functions.mint(engine.address, 10**30), "mint")
            send(w3, engine, usdc.functions.approve(vault.address, 2**256 - 1), "approve")
            forms = ("updateNAV/4", "updateNAV/2")
            for fund_id in range(1, 2 + len(forms) + sum(batches_of)):
                send(w3, engine, vault.functions.createFund(engine.address), "createFund")
                deposit = vault.functions.deposit(fund_id, usdc.address, 10**12, SHARES, engine.address)
                send(w3, engine, deposit, "deposit")
            chain = Chain(w3, vault, engine)
            single = measure(chain, [1])
            others = {form: measure(chain, [2 + i], form) for i, form in enumerate(forms)}
            batches = {}
            first = 2 + len(forms)
            for n in batches_of:
                batches[n] = measure(chain, list(range(first, first + n)))
                first += n
        finally:
            node.stop()
    return report(single, batches, others)


def marginal(batch: Case, single: Case, situation: str) -> int:
    return (getattr(batch, situation) - getattr(single, situation)) // (batch.funds - 1)


def report(single: Case, batches: dict[int, Case], others: dict[str, Case] | None = None) -> dict[str, Any]:
    biggest = batches[max(batches)]
    per_fund = marginal(biggest, single, "below_peak")
    # 100 funds published hourly in one batch: one transaction's gas, 720 times a month
    # (extrapolated from the largest batch measured when a run skips the batch of 100).
    batch_gas = biggest.below_peak if biggest.funds == FUNDS else single.below_peak + per_fund * (FUNDS - 1)
    monthly_usd = Decimal(batch_gas * UPDATES_PER_MONTH) * SEED_USD_PER_GAS
    seed_monthly = Decimal(SEED_MONTHLY_PER_FUND_USD) / USD * 100
    rising_gas = (
        biggest.rising
        if biggest.funds == FUNDS
        else single.rising + marginal(biggest, single, "rising") * (FUNDS - 1)
    )
    rising_usd = Decimal(rising_gas * UPDATES_PER_MONTH) * SEED_USD_PER_GAS
    return {
        "single": asdict(single),
        "single_forms": {form: asdict(c) for form, c in (others or {}).items()},
        "batches": {
            str(n): {**asdict(b), "marginal": {x: marginal(b, single, x) for x in SITUATIONS}}
            for n, b in batches.items()
        },
        "targets": {
            "single_max": TARGET_SINGLE,
            "single_ok": single.below_peak <= TARGET_SINGLE,
            "marginal_max": TARGET_MARGINAL,
            "marginal_ok": per_fund <= TARGET_MARGINAL,
            "single_ceiling": CEILING_SINGLE,
            "marginal_ceiling": CEILING_MARGINAL,
        },
        "monthly_100_funds_hourly": {
            "usd_per_gas": str(SEED_USD_PER_GAS),
            "gas_per_hour": batch_gas,
            "usd": str(monthly_usd.quantize(Decimal("0.01"))),
            "seed_usd": str(seed_monthly.quantize(Decimal("0.01"))),
            "share_of_seed_pct": str((monthly_usd * 100 / seed_monthly).quantize(Decimal("0.1"))),
            # Every hour a new peak: the costliest steady month.
            "usd_rising": str(rising_usd.quantize(Decimal("0.01"))),
            "share_of_seed_pct_rising": str((rising_usd * 100 / seed_monthly).quantize(Decimal("0.1"))),
        },
    }


def _row(label: str, values: dict[str, int]) -> str:
    return f"  {label:<44}" + "".join(f"{values[x]:>14,}" for x in SITUATIONS)


def render(r: dict[str, Any]) -> str:
    m = r["monthly_100_funds_hourly"]
    lines = [
        f"{'gas per NAV update (anvil receipts, steady state)':<46}"
        + "".join(f"{x.replace('_', ' '):>14}" for x in SITUATIONS),
        _row("one fund: updateNAVBatch([word]), the engine's (tx)", r["single"]),
        *(_row(f"one fund: {form} (tx)", c) for form, c in r.get("single_forms", {}).items()),
    ]
    for n, b in r["batches"].items():
        lines.append(_row(f"batch of {n} (tx)", b))
        lines.append(_row(f"batch of {n}: marginal per fund", b["marginal"]))
    t = r["targets"]
    lines.append(
        f"  targets: one fund <= {TARGET_SINGLE:,} ({'met' if t['single_ok'] else 'missed'}); marginal per"
        f" fund in a batch of 100 <= {TARGET_MARGINAL:,} ({'met' if t['marginal_ok'] else 'missed'})"
    )
    per_million = Decimal(m["usd_per_gas"]) * 10**6
    lines.append(
        f"monthly, 100 funds hourly at the seed's ${per_million:.2f} per million gas: "
        f"${m['usd']} vs the seed's ${m['seed_usd']} ({m['share_of_seed_pct']} % of it); "
        f"every hour a new peak: ${m['usd_rising']} ({m['share_of_seed_pct_rising']} %)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    r = run()
    print(json.dumps(r, indent=2) if args.json else render(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
