"""The NAV engine's signing key: a keystore or a hex key, or anvil's dev key on the local chain.

No function here puts key material into a message, a log line or an exception.
"""

from __future__ import annotations

import json
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from publisher._exceptions import KeyConfigError
from publisher.config import ENV_PREFIX, Settings

PK = f"{ENV_PREFIX}PRIVATE_KEY"
KS = f"{ENV_PREFIX}KEYSTORE"
KS_PW = f"{ENV_PREFIX}KEYSTORE_PASSWORD"


def load_account(settings: Settings, *, dev_index: int = 0) -> LocalAccount:
    """The configured signer.

    A keystore wins over a hex key. With neither, anvil's dev account ``dev_index`` is used,
    but only when the configured chain id is the local one; a dev key is refused on any
    other chain because its private key is public.
    """
    if settings.keystore is not None:
        account = _from_keystore(settings)
    elif settings.private_key is not None:
        account = _from_hex(settings.private_key.get_secret_value())
    else:
        local = settings.anvil()
        if local is None or not settings.is_local_chain():
            raise KeyConfigError(
                PK, f"no signing key configured: set {KS} (with {KS_PW} or {KS_PW}_FILE) or {PK}"
            )
        return Account.from_key(local.dev_keys()[dev_index])
    _refuse_dev_key_off_local(settings, account)
    return account


def dev_account(settings: Settings, index: int) -> LocalAccount:
    """anvil's dev account ``index``; only on the local chain (demo actors: manager, investors)."""
    local = settings.anvil()
    if local is None or not settings.is_local_chain():
        raise KeyConfigError(PK, "dev accounts exist only on the local chain (anvil.env's chain id)")
    keys = local.dev_keys()
    if index >= len(keys):
        raise KeyConfigError("ANVIL_ACCOUNTS", f"needs at least {index + 1} accounts for the demo")
    return Account.from_key(keys[index])


def _from_hex(raw: str) -> LocalAccount:
    text = raw.strip()
    body = text[2:] if text.lower().startswith("0x") else text
    if len(body) != 64 or any(c not in "0123456789abcdefABCDEF" for c in body):
        raise KeyConfigError(PK, "is not a 32-byte hex private key (64 hex digits, optional 0x)")
    try:
        return Account.from_key("0x" + body)
    except ValueError:
        raise KeyConfigError(PK, "is not a valid secp256k1 private key") from None


def _from_keystore(settings: Settings) -> LocalAccount:
    path = settings.keystore
    assert path is not None
    if not path.is_file():
        raise KeyConfigError(KS, f"{path} does not exist")
    try:
        keyfile = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise KeyConfigError(KS, f"{path} is not a JSON keystore file") from None
    password = _keystore_password(settings)
    try:
        key = Account.decrypt(keyfile, password)
    except ValueError as exc:
        # eth-account says "MAC mismatch" for a wrong password; anything else is a bad file.
        if "MAC mismatch" in str(exc):
            raise KeyConfigError(KS_PW, f"does not decrypt {path} (wrong password)") from None
        raise KeyConfigError(KS, f"{path} is not a valid keystore") from None
    except (KeyError, TypeError):
        raise KeyConfigError(KS, f"{path} is not a valid keystore") from None
    return Account.from_key(key)


def _keystore_password(settings: Settings) -> str:
    if settings.keystore_password is not None:
        return settings.keystore_password.get_secret_value()
    pw_file: Path | None = settings.keystore_password_file
    if pw_file is not None:
        if not pw_file.is_file():
            raise KeyConfigError(f"{KS_PW}_FILE", f"{pw_file} does not exist")
        return pw_file.read_text().rstrip("\r\n")
    raise KeyConfigError(KS_PW, f"is needed to decrypt {settings.keystore} (or set {KS_PW}_FILE)")


def _refuse_dev_key_off_local(settings: Settings, account: LocalAccount) -> None:
    local = settings.anvil()
    if local is None or settings.is_local_chain():
        return
    if account.address in local.dev_addresses():
        raise KeyConfigError(
            PK,
            f"is one of anvil's public dev keys ({account.address}); it is refused on chain id "
            f"{settings.resolved_chain_id()} because anyone can sign with it",
        )
