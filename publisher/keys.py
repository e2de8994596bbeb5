"""The signing keys: the NAV engine's, a guardian's and the admin's, each a keystore or a hex key
of its own, or anvil's dev key on the local chain.

No function here puts key material into a message, a log line or an exception.
"""

from __future__ import annotations

import json
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from pydantic import SecretStr

from publisher._exceptions import KeyConfigError
from publisher.config import ENV_PREFIX, Settings

PK = f"{ENV_PREFIX}PRIVATE_KEY"
# anvil's dev account that is the demo's guardian (#0 deploys and is the NAV engine).
DEMO_GUARDIAN_INDEX = 4


def load_account(settings: Settings, *, dev_index: int = 0) -> LocalAccount:
    """The configured signer.

    A keystore wins over a hex key. With neither, anvil's dev account ``dev_index`` is used,
    but only when the configured chain id is the local one; a dev key is refused on any
    other chain because its private key is public.
    """
    return _role_key(settings, "", dev_index)


def load_guardian(settings: Settings) -> LocalAccount:
    """A guardian's signer: its own keystore or hex key (NAVPUB_GUARDIAN_*), else on the local
    chain the demo's guardian (dev account #4). Never the engine's key: a stolen engine key
    must not be able to confirm or correct its own NAVs."""
    return _role_key(settings, "guardian", DEMO_GUARDIAN_INDEX)


def load_admin(settings: Settings) -> LocalAccount:
    """The admin's signer (role grants): its own keystore or hex key (NAVPUB_ADMIN_*), else on
    the local chain the demo's deployer (dev account #0). Never the engine's key off the local
    chain."""
    return _role_key(settings, "admin", 0)


def _role_key(settings: Settings, role: str, dev_index: int) -> LocalAccount:
    """The key of `role` ("" for the NAV engine) from its own settings (`<role>_keystore`,
    `<role>_private_key`, …), else anvil's dev key `dev_index` on the local chain."""
    prefix = f"{role}_" if role else ""
    var = f"{ENV_PREFIX}{prefix.upper()}PRIVATE_KEY"
    ks_var = f"{ENV_PREFIX}{prefix.upper()}KEYSTORE"
    keystore: Path | None = getattr(settings, f"{prefix}keystore")
    private_key: SecretStr | None = getattr(settings, f"{prefix}private_key")
    if keystore is not None:
        account = _from_keystore(
            keystore,
            getattr(settings, f"{prefix}keystore_password"),
            getattr(settings, f"{prefix}keystore_password_file"),
            ks_var,
            f"{ks_var}_PASSWORD",
        )
    elif private_key is not None:
        account = _from_hex(private_key.get_secret_value(), var)
    else:
        local = settings.anvil()
        if local is None or not settings.is_local_chain():
            what = f"{role} key" if role else "signing key"
            password = f"{ks_var}_PASSWORD"
            raise KeyConfigError(
                var, f"no {what} configured: set {ks_var} (with {password} or {password}_FILE) or {var}"
            )
        return Account.from_key(local.dev_keys()[dev_index])
    _refuse_dev_key_off_local(settings, account, var)
    if role:
        engine = _configured_engine(settings)
        if engine == account.address and (role == "guardian" or not settings.is_local_chain()):
            raise KeyConfigError(
                var, f"is the NAV engine's key ({account.address}); the {role} signs with its own"
            )
    return account


def _configured_engine(settings: Settings) -> str | None:
    """The engine's address when a key of its own is configured (never a dev key)."""
    if settings.keystore is None and settings.private_key is None:
        return None
    try:
        return load_account(settings).address
    except KeyConfigError:
        return None


def dev_account(settings: Settings, index: int) -> LocalAccount:
    """anvil's dev account ``index``; only on the local chain (demo actors: manager, investors)."""
    local = settings.anvil()
    if local is None or not settings.is_local_chain():
        raise KeyConfigError(PK, "dev accounts exist only on the local chain (anvil.env's chain id)")
    keys = local.dev_keys()
    if index >= len(keys):
        raise KeyConfigError("ANVIL_ACCOUNTS", f"needs at least {index + 1} accounts for the demo")
    return Account.from_key(keys[index])


def _from_hex(raw: str, var: str) -> LocalAccount:
    text = raw.strip()
    body = text[2:] if text.lower().startswith("0x") else text
    if len(body) != 64 or any(c not in "0123456789abcdefABCDEF" for c in body):
        raise KeyConfigError(var, "is not a 32-byte hex private key (64 hex digits, optional 0x)")
    try:
        return Account.from_key("0x" + body)
    except ValueError:
        raise KeyConfigError(var, "is not a valid secp256k1 private key") from None


def _from_keystore(
    path: Path, password: SecretStr | None, password_file: Path | None, var: str, pw_var: str
) -> LocalAccount:
    if not path.is_file():
        raise KeyConfigError(var, f"{path} does not exist")
    try:
        keyfile = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise KeyConfigError(var, f"{path} is not a JSON keystore file") from None
    secret = _keystore_password(path, password, password_file, pw_var)
    try:
        key = Account.decrypt(keyfile, secret)
    except ValueError as exc:
        # eth-account says "MAC mismatch" for a wrong password; anything else is a bad file.
        if "MAC mismatch" in str(exc):
            raise KeyConfigError(pw_var, f"does not decrypt {path} (wrong password)") from None
        raise KeyConfigError(var, f"{path} is not a valid keystore") from None
    except (KeyError, TypeError):
        raise KeyConfigError(var, f"{path} is not a valid keystore") from None
    return Account.from_key(key)


def _keystore_password(
    path: Path, password: SecretStr | None, password_file: Path | None, pw_var: str
) -> str:
    if password is not None:
        return password.get_secret_value()
    if password_file is not None:
        if not password_file.is_file():
            raise KeyConfigError(f"{pw_var}_FILE", f"{password_file} does not exist")
        return password_file.read_text().rstrip("\r\n")
    raise KeyConfigError(pw_var, f"is needed to decrypt {path} (or set {pw_var}_FILE)")


def _refuse_dev_key_off_local(settings: Settings, account: LocalAccount, var: str = PK) -> None:
    local = settings.anvil()
    if local is None or settings.is_local_chain():
        return
    if account.address in local.dev_addresses():
        raise KeyConfigError(
            var,
            f"is one of anvil's public dev keys ({account.address}); it is refused on chain id "
            f"{settings.resolved_chain_id()} because anyone can sign with it",
        )
