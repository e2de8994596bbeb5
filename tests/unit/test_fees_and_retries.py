"""Fees (EIP-1559 and legacy, floors and caps, ≥ 12.5 % bumps), transient errors, fund shares."""

from __future__ import annotations

import pytest
import requests
from web3.exceptions import Web3RPCError

from publisher.fees import FeeRules, Fees, bumped, initial_fees
from publisher.publish import fund_shares
from publisher.rpc import RpcPool, is_transient

GWEI = 10**9
RULES = FeeRules(base_fee_multiplier=2, priority_floor=GWEI // 100, priority_cap=5 * GWEI, max_fee_floor=0,
                 max_fee_cap=500 * GWEI)  # fmt: skip


def test_eip1559_fee_is_base_times_multiplier_plus_tip_within_bounds() -> None:
    assert initial_fees(30 * GWEI, 2 * GWEI, 0, RULES) == Fees(max_fee=62 * GWEI, priority_fee=2 * GWEI)
    assert initial_fees(30 * GWEI, 1, 0, RULES).priority_fee == GWEI // 100  # floor
    assert initial_fees(30 * GWEI, 50 * GWEI, 0, RULES).priority_fee == 5 * GWEI  # cap
    assert initial_fees(400 * GWEI, GWEI, 0, RULES).max_fee == 500 * GWEI  # cap


def test_legacy_chain_uses_a_gas_price() -> None:
    fees = initial_fees(None, 0, 7 * GWEI, RULES)
    assert fees.legacy and fees.tx_fields() == {"gasPrice": 7 * GWEI}


def test_replacement_raises_both_fees_by_at_least_an_eighth() -> None:
    prev = Fees(max_fee=62 * GWEI, priority_fee=2 * GWEI)
    nxt = bumped(prev, initial_fees(30 * GWEI, 2 * GWEI, 0, RULES), RULES)
    assert nxt is not None
    assert nxt.max_fee * 8 >= prev.max_fee * 9 and nxt.priority_fee * 8 >= prev.priority_fee * 9
    # Today's fees win when they are higher than the bump.
    spiked = bumped(prev, initial_fees(100 * GWEI, 2 * GWEI, 0, RULES), RULES)
    assert spiked is not None and spiked.max_fee == 202 * GWEI


def test_no_replacement_beyond_the_caps() -> None:
    assert bumped(Fees(max_fee=480 * GWEI, priority_fee=GWEI), Fees(max_fee=1, priority_fee=1), RULES) is None
    assert (
        bumped(Fees(max_fee=10 * GWEI, priority_fee=5 * GWEI), Fees(max_fee=1, priority_fee=1), RULES) is None
    )
    assert bumped(Fees(gas_price=450 * GWEI), Fees(gas_price=1), RULES) is None
    assert bumped(Fees(gas_price=8 * GWEI), Fees(gas_price=1), RULES) == Fees(gas_price=9 * GWEI)


def _http_error(status: int) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    return requests.HTTPError(response=response)


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (requests.ConnectionError("refused"), True),
        (requests.ReadTimeout("slow"), True),
        (_http_error(503), True),
        (_http_error(429), True),
        (_http_error(400), False),
        (Web3RPCError("limit", rpc_response={"error": {"code": -32005, "message": "limit exceeded"}}), True),
        (
            Web3RPCError(
                "nonce too low", rpc_response={"error": {"code": -32000, "message": "nonce too low"}}
            ),
            False,
        ),
        (ValueError("boom"), False),
    ],
)
def test_only_transient_errors_are_retried(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


def test_pool_retries_transient_errors_on_the_next_url_then_gives_up() -> None:
    pool = RpcPool(["http://a", "http://b"], 1, 1.0)
    pool._clients = {"http://a": object(), "http://b": object()}  # type: ignore[dict-item]
    seen: list[str] = []

    def flaky(_: object) -> str:
        seen.append(pool.url)
        if len(seen) < 3:
            raise requests.ConnectionError("refused")
        return "ok"

    assert pool.call(flaky, attempts=3, backoff_s=0) == "ok"
    assert seen == ["http://a", "http://b", "http://a"]

    def never(_: object) -> None:
        raise requests.ConnectionError("refused")

    from publisher._exceptions import RpcUnreachable

    with pytest.raises(RpcUnreachable, match="after 3 attempts"):
        pool.call(never, attempts=3, backoff_s=0)

    calls: list[int] = []

    def answer(_: object) -> None:
        calls.append(1)
        raise ValueError("an answer, not a network failure")

    with pytest.raises(ValueError):
        pool.call(answer, attempts=3, backoff_s=0)
    assert calls == [1]  # never retried blindly


def test_fund_shares_add_up_exactly() -> None:
    assert fund_shares(100, 3) == [34, 33, 33]
    assert sum(fund_shares(10**18 + 7, 7)) == 10**18 + 7
