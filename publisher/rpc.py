"""Several RPC URLs behind one handle, with retries for transient errors only.

Transient: the node could not be reached or did not answer in time (connection refused or
reset, timeouts, HTTP 5xx and 429, JSON-RPC "limit exceeded"). Anything else — a revert,
"nonce too low", a malformed request — is an answer, and retrying it blindly would only
repeat it. After a transient failure the pool moves to the next URL; a node reporting
another chain id is refused, never used.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter
from web3 import Web3
from web3.exceptions import ProviderConnectionError, Web3RPCError

from publisher._exceptions import ChainError, RpcUnreachable, WrongChain
from publisher.config import ENV_PREFIX, Settings

log = logging.getLogger("navpub.rpc")
T = TypeVar("T")

# JSON-RPC error codes nodes use for "try again later" (EIP-1474 limit exceeded, and the
# rate-limit code of common providers).
_TRANSIENT_RPC_CODES = {-32005, 429}


def is_transient(exc: BaseException) -> bool:
    """True for failures that say nothing about the request itself: retry them."""
    if isinstance(exc, requests.HTTPError):
        status = exc.response.status_code if exc.response is not None else 0
        return status == 429 or status >= 500
    if isinstance(
        exc, requests.ConnectionError | requests.Timeout | ProviderConnectionError | RpcUnreachable
    ):
        return True
    if isinstance(exc, Web3RPCError) and isinstance(exc.rpc_response, dict):
        err = exc.rpc_response.get("error")
        return isinstance(err, dict) and err.get("code") in _TRANSIENT_RPC_CODES
    return False


class RpcPool:
    """The configured RPC URLs; `w3` is the one in use, `rotate()` moves to the next."""

    def __init__(self, urls: Sequence[str], chain_id: int, timeout_s: float) -> None:
        if not urls:
            raise ChainError(f"{ENV_PREFIX}RPC_URL: no RPC URL configured")
        self.urls = list(urls)
        self.chain_id = chain_id
        self.timeout_s = timeout_s
        self._index = 0
        self._clients: dict[str, Web3] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> RpcPool:
        urls = [settings.resolved_rpc_url(), *settings.rpc_fallback_urls]
        return cls(list(dict.fromkeys(urls)), settings.resolved_chain_id(), settings.rpc_timeout_s)

    @property
    def url(self) -> str:
        return self.urls[self._index]

    @property
    def w3(self) -> Web3:
        """A client for the current URL, its chain id checked on first use."""
        url = self.url
        client = self._clients.get(url)
        if client is None:
            # Our own retries decide; web3's built-in ones would hide failures and add delay.
            provider = Web3.HTTPProvider(
                url, request_kwargs={"timeout": self.timeout_s}, exception_retry_configuration=None
            )
            client = Web3(provider)
            # web3's validation middleware asks the node for eth_chainId before every call and
            # transaction: a round trip each, for a check done here once per URL (transactions
            # are signed locally with the chain id in them).
            client.middleware_onion.remove("validation")
            try:
                actual = client.eth.chain_id
            except Exception as exc:
                raise RpcUnreachable(
                    f"{ENV_PREFIX}RPC_URL: no JSON-RPC answer from {url} ({type(exc).__name__})"
                ) from exc
            if actual != self.chain_id:
                raise WrongChain(
                    f"{ENV_PREFIX}CHAIN_ID: the node at {url} reports chain id {actual}, the settings expect "
                    f"{self.chain_id}; it is not used"
                )
            self._clients[url] = client
        return client

    def rotate(self) -> None:
        """Moves to the next URL (wrapping around)."""
        if len(self.urls) > 1:
            self._index = (self._index + 1) % len(self.urls)
            log.warning("switching RPC to %s", self.url)

    def call(self, fn: Callable[[Web3], T], *, attempts: int = 3, backoff_s: float = 1.0,
             what: str = "RPC call") -> T:  # fmt: skip
        """fn(w3) with up to `attempts` tries on transient errors (exponential backoff with jitter,
        next URL after each failure). A wrong chain id moves on as well but is never retried on
        the same URL. Raises RpcUnreachable after the last try."""

        def before_retry(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning("%s failed (%s), attempt %d of %d", what, _short(exc), state.attempt_number, attempts)
            self.rotate()

        retrying = Retrying(
            stop=stop_after_attempt(attempts),
            wait=wait_exponential_jitter(multiplier=backoff_s, max=30 * backoff_s, jitter=backoff_s),
            retry=retry_if_exception(lambda e: is_transient(e) or isinstance(e, WrongChain)),
            before_sleep=before_retry,
            reraise=True,
        )
        try:
            return retrying(lambda: fn(self.w3))
        except WrongChain:
            raise
        except Exception as exc:
            if is_transient(exc):
                urls = ", ".join(self.urls)
                raise RpcUnreachable(
                    f"{ENV_PREFIX}RPC_URL: {what}: no usable answer from {urls} after {attempts} attempts "
                    f"({_short(exc)})"
                ) from exc
            raise


def _short(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:160]}" if text else type(exc).__name__
