"""Off the local chain `navpub deploy` keeps the roles apart: the admin (the signing key), the
NAV engine and the guardian are three keys, checked before any transaction is sent."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account

from publisher._exceptions import InputError
from publisher.cli import main
from publisher.deploy import separate_roles
from publisher.localchain import free_port
from tests.unit.test_settings_errors import clean_env  # noqa: F401  (autouse: no NAVPUB_* from the shell)

ADMIN = Account.create().address
ENGINE = Account.create().address
GUARDIAN = Account.create().address


@pytest.mark.parametrize(
    ("engine", "guardians", "message"),
    [
        (ADMIN, [GUARDIAN], "NAV engine must not be the admin key"),
        (ENGINE, [], "a guardian is required"),
        (ENGINE, [ADMIN], f"guardian {ADMIN} must not be the admin key"),
        (ENGINE, [GUARDIAN, ENGINE.lower()], f"guardian {ENGINE} must not be the NAV engine key"),
    ],
)
def test_overlapping_roles_are_refused_and_named(engine: str, guardians: list[str], message: str) -> None:
    with pytest.raises(InputError, match=message):
        separate_roles(ADMIN, engine, guardians)


def test_three_keys_pass() -> None:
    separate_roles(ADMIN, ENGINE, [GUARDIAN, Account.create().address])


def test_deploy_off_the_local_chain_refuses_one_key_before_any_rpc(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    admin = Account.create()
    # Chain id 1 is not anvil.env's: not the local chain. Nothing listens on the RPC URL, so an
    # answer about roles (not about the node) proves the check runs before any request.
    monkeypatch.setenv("NAVPUB_CHAIN_ID", "1")
    monkeypatch.setenv("NAVPUB_RPC_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("NAVPUB_PRIVATE_KEY", admin.key.hex())
    monkeypatch.setenv("NAVPUB_STATE_DIR", str(tmp_path / "state"))
    assert main(["deploy"]) == 2
    assert "NAV engine must not be the admin key" in capsys.readouterr().err
    assert main(["deploy", "--engine", ENGINE]) == 2
    assert "a guardian is required" in capsys.readouterr().err
    assert main(["deploy", "--engine", ENGINE, "--guardian", admin.address]) == 2
    assert "must not be the admin key" in capsys.readouterr().err
    # Three keys: the roles are fine, and the deploy goes on to the node (which is not there).
    assert main(["deploy", "--engine", ENGINE, "--guardian", GUARDIAN]) == 2
    err = capsys.readouterr().err
    assert "must not be" not in err and "required" not in err
    assert not (tmp_path / "state" / "deployment.json").exists()
