"""On-chain price sources, read for every asset of a cycle in one JSON-RPC batch pinned to one block.

Two kinds, both served by the PriceOracleRouter:
- each Chainlink-style feed configured in the router for the asset (``getSourceDataBatch``:
  raw answer, decimals, updatedAt, max age), each a separate source ``feed:<address>``;
- optionally the router's own aggregate (``getPrices``: median price and confidence), the
  source ``router``.

A feed answer ≤ 0, a round that never completed (updatedAt = 0, or answeredInRound behind
roundId) or a reverting feed is a SourceFailure here; staleness and future timestamps are
judged by the aggregation, which knows the cycle's clock.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

from eth_utils.abi import get_abi_output_types
from web3 import Web3
from web3.contract import Contract

from publisher.quotes import Quote, SourceFailure, SourceResult, scale_to_e18

ROUTER_SOURCE = "router"
# The router's answer is computed from feeds it found fresh at the block read, so it is as
# fresh as that block; an hour matches the cache limit it could otherwise stand in for.
ROUTER_MAX_AGE_S = 3600
_STATUS = {1: "the router has no sources for this asset", 2: "the router found no fresh source"}

_readers: weakref.WeakKeyDictionary[Web3, Web3] = weakref.WeakKeyDictionary()


def reader(w3: Web3) -> Web3:
    """A client on `w3`'s provider without web3's default middleware, for reads.

    web3's validation middleware asks the node for eth_chainId before every eth_call (and
    every batch) — one more round trip each, to check a chainId field calls never carry; the
    RPC pool checks the chain id when it connects. Results and errors are formatted as usual
    (a revert raises ContractLogicError); blocks come as plain dicts.
    """
    client = _readers.get(w3)
    if client is None:
        client = _readers[w3] = Web3(w3.provider, middleware=[])
    return client


def batch_call(w3: Web3, calls: Sequence[tuple[Contract, str, list[Any]]], block: int | str) -> list[Any]:
    """eth_calls of several view functions in one JSON-RPC batch at `block`, decoded."""
    if not calls:
        return []
    client = reader(w3)
    with client.batch_requests() as batch:
        for contract, name, args in calls:
            batch.add(
                client.eth.call({"to": contract.address, "data": contract.encode_abi(name, args)}, block)
            )
        raw = batch.execute()
    out = []
    for (contract, name, args), data in zip(calls, raw, strict=True):
        fn = contract.get_function_by_name(name)(*args)
        decoded = w3.codec.decode(get_abi_output_types(fn.abi), bytes(data))
        out.append(decoded[0] if len(decoded) == 1 else decoded)
    return out


def feed_source_id(address: str) -> str:
    return f"feed:{address}"


def feed_result(symbol: str, data: Sequence[Any]) -> SourceResult:
    """One router SourceData tuple → a Quote, or a SourceFailure saying what is wrong with it."""
    feed, ok, decimals, max_age, round_id, answer, _started, updated_at, answered_in = data
    source = feed_source_id(Web3.to_checksum_address(feed))
    if not ok:
        return SourceFailure(symbol, source, "latestRoundData() reverted or the feed has no code")
    if answer <= 0:
        return SourceFailure(symbol, source, f"answer {answer} is not positive")
    if updated_at == 0:
        return SourceFailure(symbol, source, f"round {round_id} is incomplete (updatedAt is 0)")
    if answered_in < round_id:
        return SourceFailure(symbol, source, f"round {round_id} was answered in older round {answered_in}")
    return Quote(symbol, scale_to_e18(answer, decimals), 100, updated_at, source, max_age)


def read_onchain_quotes(
    w3: Web3,
    router: Contract,
    assets: Sequence[tuple[str, str, bool, bool]],
    block: int,
    block_time: int,
) -> dict[str, list[SourceResult]]:
    """Quotes of every (symbol, token address, use router feeds, use router aggregate) at `block`."""
    results: dict[str, list[SourceResult]] = {symbol: [] for symbol, *_ in assets}
    feed_assets = [(s, a) for s, a, feeds, _ in assets if feeds]
    agg_assets = [(s, a) for s, a, _, agg in assets if agg]
    calls: list[tuple[Contract, str, list[Any]]] = []
    if feed_assets:
        calls.append((router, "getSourceDataBatch", [[a for _, a in feed_assets]]))
    if agg_assets:
        calls.append((router, "getPrices", [[a for _, a in agg_assets]]))
    answers = batch_call(w3, calls, block)
    if feed_assets:
        for (symbol, _), sources in zip(feed_assets, answers.pop(0), strict=True):
            results[symbol].extend(feed_result(symbol, d) for d in sources)
    if agg_assets:
        prices, confidences, status = answers.pop(0)
        for (symbol, _), p, c, st in zip(agg_assets, prices, confidences, status, strict=True):
            if st == 0:
                results[symbol].append(Quote(symbol, p, c, block_time, ROUTER_SOURCE, ROUTER_MAX_AGE_S))
            else:
                results[symbol].append(SourceFailure(symbol, ROUTER_SOURCE, _STATUS.get(st, f"status {st}")))
    return results
