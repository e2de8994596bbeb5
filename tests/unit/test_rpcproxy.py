"""The fault-injecting JSON-RPC proxy (tests/rpcproxy.py) in front of the session's real anvil.

Also pins down what a web3 HTTPProvider client sees for each fault, which is what the publisher
has to classify as transient: HTTP errors -> requests.HTTPError, reset -> requests ConnectionError,
hang -> requests ReadTimeout, down -> requests ConnectionError (ConnectionRefusedError inside).
"""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import requests
from eth_account import Account
from web3 import Web3
from web3.exceptions import TransactionNotFound

from publisher.localchain import AnvilNode
from tests.rpcproxy import RpcProxy

pytestmark = pytest.mark.anvil

DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"  # anvil's first account
# Bounds a client waiting on a request the test itself holds; it never expires in a passing run.
LONG_TIMEOUT_S = 30


@pytest.fixture
def direct(anvil: AnvilNode) -> Web3:
    """A client talking to anvil itself, bypassing the proxy."""
    return Web3(Web3.HTTPProvider(anvil.rpc_url))


def client(url: str, *, timeout: float | None = None, retries: bool = False) -> Web3:
    """A web3 client; without `retries`, web3's own retrying of HTTP errors and timeouts is off."""
    kwargs: dict[str, Any] = {"request_kwargs": {"timeout": timeout} if timeout else None}
    if not retries:
        kwargs["exception_retry_configuration"] = None
    return Web3(Web3.HTTPProvider(url, **kwargs))


def causes(exc: BaseException) -> list[type[BaseException]]:
    """The exception's type and those of its causes/contexts, outermost first."""
    found: list[type[BaseException]] = []
    seen: BaseException | None = exc
    while seen is not None:
        found.append(type(seen))
        seen = seen.__cause__ or seen.__context__
    return found


def rpc(method: str, id: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id, "method": method, "params": []}


# -- forwarding ----------------------------------------------------------------------------


def test_forwards_single_calls(proxy: RpcProxy, direct: Web3) -> None:
    w3 = client(proxy.url)
    assert w3.eth.chain_id == direct.eth.chain_id
    assert w3.eth.block_number == direct.eth.block_number
    assert proxy.requests == [("eth_chainId", "forwarded"), ("eth_blockNumber", "forwarded")]
    assert proxy.count("eth_chainId") == 1
    assert proxy.count("eth_blockNumber") == 1
    assert proxy.count("eth_call") == 0


def test_forwards_batches_verbatim(proxy: RpcProxy, direct: Web3) -> None:
    body = [rpc("eth_chainId", 1), rpc("eth_blockNumber", 2)]
    answer = httpx.post(proxy.url, json=body, timeout=LONG_TIMEOUT_S)
    assert answer.status_code == 200
    assert answer.json() == httpx.post(direct.provider.endpoint_uri, json=body).json()  # type: ignore[attr-defined]

    w3 = client(proxy.url)
    with w3.batch_requests() as batch:
        batch.add(w3.eth.get_block_number())
        batch.add(w3.eth.get_block("latest"))
        number, block = batch.execute()
    assert number == block["number"]

    assert proxy.requests == [
        (["eth_chainId", "eth_blockNumber"], "forwarded"),
        (["eth_blockNumber", "eth_getBlockByNumber"], "forwarded"),
    ]
    assert proxy.count("eth_blockNumber") == 2  # each call of a batch counts
    assert proxy.count("eth_chainId") == 1


# -- injected HTTP errors ------------------------------------------------------------------


@pytest.mark.parametrize("status", [503, 429])
def test_fail_next_answers_the_status_to_the_filtered_method_only(proxy: RpcProxy, status: int) -> None:
    w3 = client(proxy.url)
    proxy.fail_next(2, status=status, methods="eth_blockNumber")

    assert w3.eth.chain_id == 31337  # another method passes
    for _ in range(2):
        with pytest.raises(requests.exceptions.HTTPError) as caught:
            _ = w3.eth.block_number
        assert caught.value.response is not None
        assert caught.value.response.status_code == status
    assert w3.eth.block_number >= 0  # the two failures are used up

    assert proxy.requests == [
        ("eth_chainId", "forwarded"),
        ("eth_blockNumber", "failed"),
        ("eth_blockNumber", "failed"),
        ("eth_blockNumber", "forwarded"),
    ]
    assert proxy.count("eth_blockNumber") == 1


def test_fail_next_matches_a_batch_holding_the_method(proxy: RpcProxy) -> None:
    proxy.fail_next(1, methods=["eth_blockNumber", "eth_getLogs"])
    answer = httpx.post(proxy.url, json=[rpc("eth_chainId", 1), rpc("eth_blockNumber", 2)])
    assert answer.status_code == 503
    assert "injected" in answer.text
    assert proxy.requests == [(["eth_chainId", "eth_blockNumber"], "failed")]
    assert proxy.count("eth_chainId") == 0


def test_web3_retries_http_errors_itself_but_not_resets(proxy: RpcProxy) -> None:
    """web3's default HTTPProvider retries HTTP errors and timeouts of read-only methods (up to 5
    tries), so a test injecting those must turn retries off or inject more failures than that."""
    w3 = client(proxy.url, retries=True)
    proxy.fail_next(2, methods="eth_blockNumber")
    assert w3.eth.block_number >= 0
    assert [outcome for _, outcome in proxy.requests] == ["failed", "failed", "forwarded"]

    proxy.reset_next(1, methods="eth_blockNumber")
    with pytest.raises(requests.exceptions.ConnectionError):
        _ = w3.eth.block_number  # requests' ConnectionError is not the builtin one web3 retries
    assert proxy.requests[-1] == ("eth_blockNumber", "reset")


# -- connection reset ----------------------------------------------------------------------


def test_reset_next_is_a_connection_error(proxy: RpcProxy) -> None:
    w3 = client(proxy.url)
    proxy.reset_next(2)

    with pytest.raises(requests.exceptions.ConnectionError) as caught:
        _ = w3.eth.chain_id
    assert ConnectionResetError in causes(caught.value)
    with pytest.raises(httpx.ReadError):  # httpx: a TransportError too
        httpx.post(proxy.url, json=rpc("eth_chainId"))
    assert w3.eth.chain_id == 31337

    assert [outcome for _, outcome in proxy.requests] == ["reset", "reset", "forwarded"]
    assert proxy.count("eth_chainId") == 1


# -- hanging -------------------------------------------------------------------------------


def test_hang_next_times_the_client_out_and_forwards_once_released(proxy: RpcProxy) -> None:
    hold = proxy.hang_next(1, methods="eth_chainId")

    with pytest.raises(requests.exceptions.ReadTimeout):
        _ = client(proxy.url, timeout=0.5).eth.chain_id
    assert hold.hung == 1
    assert proxy.requests == [("eth_chainId", "hung")]
    assert proxy.count("eth_chainId") == 0

    hold.release()
    assert proxy.wait_idle()
    # Like a slow node, the proxy still forwards the request its client gave up on.
    assert proxy.count("eth_chainId") == 1
    assert client(proxy.url).eth.chain_id == 31337
    assert proxy.requests[-1] == ("eth_chainId", "forwarded")


def test_a_held_request_is_answered_once_released(proxy: RpcProxy) -> None:
    hold = proxy.hang_next(1)
    w3 = client(proxy.url, timeout=LONG_TIMEOUT_S)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(lambda: w3.eth.block_number)
        assert hold.wait_hung()
        assert not pending.done()
        hold.release()
        assert pending.result() >= 0
    assert proxy.requests == [("eth_blockNumber", "hung")]
    assert proxy.count("eth_blockNumber") == 1


def test_close_lets_go_of_held_requests(anvil: AnvilNode) -> None:
    proxy = RpcProxy(anvil.rpc_url)
    hold = proxy.hang_next(1)
    w3 = client(proxy.url, timeout=LONG_TIMEOUT_S)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(lambda: w3.eth.chain_id)
        assert hold.wait_hung()
        proxy.close()  # returns although the request was held
        with pytest.raises(requests.exceptions.ConnectionError):
            pending.result()
    assert proxy.count("eth_chainId") == 0


# -- down / up -----------------------------------------------------------------------------


def test_down_refuses_connections_and_up_serves_the_same_url(proxy: RpcProxy) -> None:
    w3 = client(proxy.url)
    url = proxy.url
    for _ in range(2):  # repeatable
        proxy.down()
        assert proxy.is_down
        with pytest.raises(requests.exceptions.ConnectionError) as caught:
            _ = w3.eth.chain_id
        assert ConnectionRefusedError in causes(caught.value)
        with pytest.raises(httpx.ConnectError):
            httpx.post(url, json=rpc("eth_chainId"))
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", proxy.port)).close()

        proxy.up()
        assert proxy.url == url
        assert w3.eth.chain_id == 31337
    # Refused connections never reached the proxy.
    assert proxy.requests == [("eth_chainId", "forwarded")] * 2


def test_a_request_held_when_the_proxy_goes_down_is_reset(proxy: RpcProxy) -> None:
    hold = proxy.hang_next(1)
    w3 = client(proxy.url, timeout=LONG_TIMEOUT_S)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(lambda: w3.eth.chain_id)
        assert hold.wait_hung()
        proxy.down()
        hold.release()
        with pytest.raises(requests.exceptions.ConnectionError) as caught:
            pending.result()
        assert ConnectionResetError in causes(caught.value)
    proxy.up()
    assert w3.eth.chain_id == 31337
    assert proxy.count("eth_chainId") == 1


# -- dropped calls -------------------------------------------------------------------------


def test_dropped_transaction_gets_its_hash_but_never_reaches_the_node(proxy: RpcProxy, direct: Web3) -> None:
    w3 = client(proxy.url)
    sender = Account.from_key(DEV_KEY)
    base_fee = int(direct.eth.get_block("latest")["baseFeePerGas"])
    signed = sender.sign_transaction(
        {
            "type": 2,
            "chainId": w3.eth.chain_id,
            "nonce": direct.eth.get_transaction_count(sender.address, "pending"),
            "to": direct.eth.accounts[1],
            "value": 1,
            "gas": 21_000,
            "maxFeePerGas": 2 * base_fee + 10**9,
            "maxPriorityFeePerGas": 10**9,
        }
    )
    snapshot = direct.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    try:
        proxy.drop_method("eth_sendRawTransaction")
        assert w3.eth.send_raw_transaction(signed.raw_transaction) == signed.hash
        with pytest.raises(TransactionNotFound):
            direct.eth.get_transaction(signed.hash)
        assert proxy.count("eth_sendRawTransaction") == 0
        assert proxy.requests[-1] == ("eth_sendRawTransaction", "dropped")
        assert proxy.dropped[0]["params"] == ["0x" + signed.raw_transaction.hex().removeprefix("0x")]

        # Undropped, the same bytes reach the node, which gives them the hash the proxy faked.
        proxy.undrop("eth_sendRawTransaction")
        assert w3.eth.send_raw_transaction(signed.raw_transaction) == signed.hash
        assert direct.eth.wait_for_transaction_receipt(signed.hash, timeout=LONG_TIMEOUT_S)["status"] == 1
        assert proxy.count("eth_sendRawTransaction") == 1
    finally:
        assert direct.provider.make_request("evm_revert", [snapshot])["result"] is True  # type: ignore[arg-type]


def test_dropped_method_in_a_batch_is_faked_while_the_rest_is_forwarded(proxy: RpcProxy) -> None:
    proxy.drop_method("eth_blockNumber", result="0x539")
    assert client(proxy.url).eth.block_number == 1337

    body = [rpc("eth_chainId", 7), rpc("eth_blockNumber", 8)]
    answer = httpx.post(proxy.url, json=body).json()
    assert answer == [
        {"jsonrpc": "2.0", "id": 7, "result": "0x7a69"},
        {"jsonrpc": "2.0", "id": 8, "result": "0x539"},
    ]
    assert proxy.count("eth_chainId") == 1
    assert proxy.count("eth_blockNumber") == 0
    assert proxy.requests == [("eth_blockNumber", "dropped"), (["eth_chainId", "eth_blockNumber"], "dropped")]

    proxy.undrop("eth_blockNumber")
    _ = client(proxy.url).eth.block_number
    assert proxy.count("eth_blockNumber") == 1
