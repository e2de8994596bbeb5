"""The local nonce counter (reserve, release) and reading the calldata back from a signed tx."""

from __future__ import annotations

import pytest
from eth_account import Account

from publisher.sender import NonceManager, calldata_of

ADDRESS = "0x" + "ab" * 20


def test_reserve_takes_the_highest_of_counter_chain_and_outbox() -> None:
    nonces = NonceManager()
    assert nonces.reserve(ADDRESS, chain_pending=5) == 5
    assert nonces.reserve(ADDRESS, chain_pending=5) == 6  # the counter: the chain lags our sends
    assert nonces.reserve(ADDRESS, chain_pending=5, held=9) == 9  # the outbox holds up to 8


def test_release_gives_back_only_the_last_reserved_nonce() -> None:
    nonces = NonceManager()
    first, second = nonces.reserve(ADDRESS, 0), nonces.reserve(ADDRESS, 0)
    nonces.release(ADDRESS, first)  # not the last one: releasing it would reuse `second`
    assert nonces.peek(ADDRESS) == 2
    nonces.release(ADDRESS, second)
    assert nonces.peek(ADDRESS) == 1 and nonces.reserve(ADDRESS, 0) == second
    nonces.release("0x" + "cd" * 20, 0)  # a key never seen: nothing to give back
    assert nonces.peek("0x" + "cd" * 20) == 0


@pytest.mark.parametrize(
    "fees",
    [{"maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9}, {"gasPrice": 10**10}],
    ids=["eip1559", "legacy"],
)
def test_calldata_of_a_signed_transaction(fees: dict[str, int]) -> None:
    account = Account.create()
    data = bytes.fromhex("a9059cbb" + "00" * 31 + "01")
    tx = {
        "to": account.address,
        "data": data,
        "gas": 50_000,
        "nonce": 3,
        "chainId": 31337,
        "value": 0,
        **fees,
    }
    raw = "0x" + bytes(account.sign_transaction(tx).raw_transaction).hex()
    assert calldata_of(raw) == data
