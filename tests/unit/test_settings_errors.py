"""Every bad setting gives one clear message naming the setting, and never leaks a key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account

from publisher._exceptions import ConfigError, KeyConfigError, RpcUnreachable
from publisher.chain import connect
from publisher.cli import main
from publisher.config import load_settings
from publisher.keys import load_account
from publisher.localchain import REPO_ROOT, free_port, load_anvil_config

SECRET = "0x" + "ab" * 32
ANVIL_KEY0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No NAVPUB_* from the caller's shell, and no .env from the caller's directory."""
    import os

    for name in list(os.environ):
        if name.startswith("NAVPUB_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults_come_from_anvil_env() -> None:
    s = load_settings()
    local = load_anvil_config(REPO_ROOT / "anvil.env")
    assert s.resolved_rpc_url() == local.rpc_url
    assert s.resolved_chain_id() == local.chain_id == 31337
    assert s.min_confidence == 50 and s.max_deviation_bps == 1000 and s.cache_max_age_s == 3600
    assert s.deployment_path == Path("state") / "deployment.json"


@pytest.mark.parametrize(
    ("var", "value", "needle"),
    [
        ("NAVPUB_RPC_URL", "not a url", "NAVPUB_RPC_URL"),
        ("NAVPUB_CHAIN_ID", "mainnet", "NAVPUB_CHAIN_ID"),
        ("NAVPUB_CHAIN_ID", "0", "NAVPUB_CHAIN_ID"),
        ("NAVPUB_MIN_CONFIDENCE", "150", "NAVPUB_MIN_CONFIDENCE"),
        ("NAVPUB_MAX_DEVIATION_BPS", "-1", "NAVPUB_MAX_DEVIATION_BPS"),
    ],
)
def test_malformed_values_name_their_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, needle: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as exc:
        load_settings()
    assert str(exc.value).startswith(needle + ":")


def test_dot_env_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("NAVPUB_CHAIN_ID=8453\nNAVPUB_STATE_DIR=/tmp/elsewhere\n")
    s = load_settings()
    assert s.resolved_chain_id() == 8453 and s.state_dir == Path("/tmp/elsewhere")


def test_unreachable_rpc_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAVPUB_RPC_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("NAVPUB_RPC_TIMEOUT_S", "2")
    with pytest.raises(RpcUnreachable, match="NAVPUB_RPC_URL: no JSON-RPC answer"):
        connect(load_settings())


def test_missing_key_off_the_local_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAVPUB_CHAIN_ID", "1")
    with pytest.raises(KeyConfigError, match="NAVPUB_PRIVATE_KEY: no signing key configured"):
        load_account(load_settings())


def test_dev_key_is_used_only_on_the_local_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_account(load_settings()).key.hex() == ANVIL_KEY0[2:]
    monkeypatch.setenv("NAVPUB_CHAIN_ID", "1")
    monkeypatch.setenv("NAVPUB_PRIVATE_KEY", ANVIL_KEY0)
    with pytest.raises(KeyConfigError, match="public dev keys") as exc:
        load_account(load_settings())
    assert ANVIL_KEY0[2:] not in str(exc.value)


@pytest.mark.parametrize("bad", ["0x1234", "zz" * 32, SECRET + "00", "0x" + "00" * 32])
def test_malformed_private_key_never_echoes_it(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("NAVPUB_PRIVATE_KEY", bad)
    with pytest.raises(KeyConfigError) as exc:
        load_account(load_settings())
    assert str(exc.value).startswith("NAVPUB_PRIVATE_KEY:")
    assert bad not in str(exc.value) and bad[2:] not in str(exc.value)


def test_keystore_with_right_wrong_and_missing_password(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    account = Account.from_key(SECRET)
    ks = tmp_path / "engine.json"
    # Light scrypt parameters: the test checks the plumbing, not the KDF's cost.
    ks.write_text(json.dumps(Account.encrypt(SECRET, "correct horse", kdf="pbkdf2", iterations=2)))
    monkeypatch.setenv("NAVPUB_KEYSTORE", str(ks))
    with pytest.raises(KeyConfigError, match="NAVPUB_KEYSTORE_PASSWORD: is needed"):
        load_account(load_settings())
    monkeypatch.setenv("NAVPUB_KEYSTORE_PASSWORD", "wrong")
    with pytest.raises(KeyConfigError, match="wrong password"):
        load_account(load_settings())
    monkeypatch.delenv("NAVPUB_KEYSTORE_PASSWORD")
    pw = tmp_path / "pw"
    pw.write_text("correct horse\n")
    monkeypatch.setenv("NAVPUB_KEYSTORE_PASSWORD_FILE", str(pw))
    assert load_account(load_settings()).address == account.address
    ks.write_text("{not json")
    with pytest.raises(KeyConfigError, match=r"NAVPUB_KEYSTORE: .* is not a JSON keystore"):
        load_account(load_settings())
    monkeypatch.setenv("NAVPUB_KEYSTORE", str(tmp_path / "missing.json"))
    with pytest.raises(KeyConfigError, match="does not exist"):
        load_account(load_settings())


def test_bad_anvil_env_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "anvil.env"
    bad.write_text('ANVIL_PORT=eighty\nANVIL_MNEMONIC="a b c"\n')
    monkeypatch.setenv("NAVPUB_ANVIL_ENV", str(bad))
    with pytest.raises(ConfigError, match="ANVIL_PORT in"):
        load_settings().resolved_rpc_url()


def test_cli_prints_one_line_and_no_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NAVPUB_RPC_URL", "ftp://nowhere")
    assert main(["status"]) == 2
    err = capsys.readouterr().err
    assert "NAVPUB_RPC_URL" in err and "Traceback" not in err
    monkeypatch.setenv("NAVPUB_RPC_URL", f"http://127.0.0.1:{free_port()}")
    assert main(["status"]) == 2
    assert "no JSON-RPC answer" in capsys.readouterr().err
