"""Transaction fees: EIP-1559 (max fee = base fee × multiplier + tip) or a legacy gas price, each
bounded by the settings' floor and cap, and the ≥ 12.5 % bumps a replacement needs."""

from __future__ import annotations

from dataclasses import dataclass

from publisher.config import Settings

# Nodes (geth, anvil, reth) accept a replacement at the same nonce only when both the fee cap
# and the tip rise by at least 10 %; 12.5 % leaves room for rounding and stricter pools.
BUMP_NUMERATOR, BUMP_DENOMINATOR = 9, 8


@dataclass(frozen=True)
class FeeRules:
    base_fee_multiplier: int = 2
    priority_floor: int = 10_000_000
    priority_cap: int = 5_000_000_000
    max_fee_floor: int = 0
    max_fee_cap: int = 500_000_000_000

    @classmethod
    def from_settings(cls, s: Settings) -> FeeRules:
        return cls(
            s.base_fee_multiplier, s.priority_fee_floor_wei, s.priority_fee_cap_wei, s.max_fee_floor_wei,
            s.max_fee_cap_wei,
        )  # fmt: skip


@dataclass(frozen=True)
class Fees:
    """EIP-1559 fees (max_fee, priority_fee) or a legacy gas_price."""

    max_fee: int | None = None
    priority_fee: int | None = None
    gas_price: int | None = None

    @property
    def legacy(self) -> bool:
        return self.gas_price is not None

    @property
    def cap(self) -> int:
        """The most this transaction may pay per gas."""
        return self.gas_price if self.gas_price is not None else self.max_fee or 0

    def tx_fields(self) -> dict[str, int]:
        if self.gas_price is not None:
            return {"gasPrice": self.gas_price}
        assert self.max_fee is not None and self.priority_fee is not None
        return {"maxFeePerGas": self.max_fee, "maxPriorityFeePerGas": self.priority_fee, "type": 2}


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(value, high))


def initial_fees(base_fee: int | None, suggested_tip: int, gas_price: int, rules: FeeRules) -> Fees:
    """Fees for a new transaction; `base_fee` None means the chain has no EIP-1559."""
    if base_fee is None:
        return Fees(gas_price=_clamp(gas_price, rules.max_fee_floor, rules.max_fee_cap))
    tip = _clamp(suggested_tip, rules.priority_floor, rules.priority_cap)
    max_fee = _clamp(base_fee * rules.base_fee_multiplier + tip, rules.max_fee_floor, rules.max_fee_cap)
    return Fees(max_fee=max_fee, priority_fee=min(tip, max_fee))


def _raised(old: int) -> int:
    return -(-old * BUMP_NUMERATOR // BUMP_DENOMINATOR)  # rounded up


def bumped(previous: Fees, fresh: Fees, rules: FeeRules) -> Fees | None:
    """Fees for a replacement: each at least 12.5 % above the previous and at least today's,
    within the caps. None when the caps leave no valid replacement."""
    if previous.legacy:
        assert previous.gas_price is not None
        price = max(_raised(previous.gas_price), fresh.cap)
        return Fees(gas_price=price) if price <= rules.max_fee_cap else None
    assert previous.max_fee is not None and previous.priority_fee is not None
    tip = max(_raised(previous.priority_fee), fresh.priority_fee or 0)
    max_fee = max(_raised(previous.max_fee), fresh.max_fee or 0, tip)
    if max_fee > rules.max_fee_cap or tip > rules.priority_cap:
        return None
    return Fees(max_fee=max_fee, priority_fee=tip)
