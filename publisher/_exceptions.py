"""Every error the publisher raises on purpose, each with a message a person can act on.

    NavPubError                  base: ``str(err)`` is the whole user-facing message
    ├── ConfigError              a setting is missing or wrong (names the setting)
    │   └── KeyConfigError       the signing key is missing, malformed or not allowed here
    ├── ArtifactError            a compiled contract artifact is missing, malformed or stale
    ├── DeploymentError          deployment.json is missing, malformed or for another chain
    ├── InputError               a command-line or API parameter is wrong (names it)
    │   ├── UnknownFund          a fund id the vault does not have
    │   └── UnknownCurrency      a display currency without an FX source
    └── ChainError               the chain could not be used as configured
        ├── RpcUnreachable       no answer from the RPC URL
        ├── WrongChain           the node's chain id is not the configured one
        ├── NoCode               no contract code at a configured address
        └── TransactionFailed    a transaction reverted (decoded custom error when known)

The CLI prints ``str(err)`` and exits non-zero; it never shows a traceback for these.
Secrets (private keys, keystore passwords) never appear in any message.
"""

from __future__ import annotations

from typing import Any


class NavPubError(Exception):
    """Base of every deliberate error; the message is meant for the operator."""


class ConfigError(NavPubError):
    """A setting is missing or has a wrong value."""

    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        self.problem = problem
        super().__init__(f"{setting}: {problem}")


class KeyConfigError(ConfigError):
    """The signing key is missing, malformed, or a dev key on a non-local chain."""


class ArtifactError(NavPubError):
    """A compiled contract artifact is missing, malformed or stale."""


class DeploymentError(NavPubError):
    """deployment.json is missing, malformed or belongs to another chain."""


class InputError(NavPubError):
    """A command-line option or API parameter is wrong; the message names it."""


class UnknownFund(InputError):
    """A fund id the vault does not have."""


class UnknownCurrency(InputError):
    """A display currency without an FX source."""


class ChainError(NavPubError):
    """The chain could not be used as configured."""


class RpcUnreachable(ChainError):
    """The RPC endpoint did not answer."""


class WrongChain(ChainError):
    """The node reports another chain id than the configured one."""


class NoCode(ChainError):
    """There is no contract code at an address the configuration names."""


class TransactionFailed(ChainError):
    """A transaction or call reverted."""

    def __init__(self, message: str, *, error_name: str | None = None, args: tuple[Any, ...] = ()) -> None:
        self.error_name = error_name
        self.error_args = args
        super().__init__(message)
