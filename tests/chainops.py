"""Moving a local chain the way tests need: time, and the demo's price feeds."""

from __future__ import annotations

from decimal import Decimal

from eth_account.signers.local import LocalAccount
from web3 import Web3

from publisher.chain import contract_at, send
from publisher.deployment import Deployment


def advance(w3: Web3, seconds: int) -> None:
    """Moves the chain's clock forward and mines a block at the new time."""
    w3.provider.make_request("evm_increaseTime", [seconds])
    w3.provider.make_request("evm_mine", [])


def move_market(w3: Web3, deployment: Deployment, oracle: LocalAccount, moves: dict[str, Decimal]) -> None:
    """Every demo feed answers again (they are hourly feeds), those of `moves` times the factor."""
    for symbol, feeds in deployment.feeds.items():
        for feed in feeds:
            mock = contract_at(w3, "MockV3Aggregator", feed.address)
            answer = mock.functions.latestAnswer().call()
            moved = int(answer * moves.get(symbol, Decimal(1)))
            send(w3, oracle, mock.functions.updateAnswer(moved), "feed")
