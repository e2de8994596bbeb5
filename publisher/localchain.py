"""The local anvil chain: its settings (anvil.env), its dev accounts, starting and stopping it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import httpx
from dotenv import dotenv_values
from eth_account import Account
from pydantic import BaseModel, Field, ValidationError

from publisher._exceptions import ConfigError, NavPubError
from publisher.artifacts import REPO_ROOT

ANVIL_ENV = "anvil.env"
# anvil answers its first request within ~100 ms here; 30 s leaves room for a cold disk
# cache on a loaded CI machine without hanging a broken start forever.
START_TIMEOUT_S = 30.0


class AnvilConfig(BaseModel, frozen=True):
    """Settings of the local chain, as written in anvil.env."""

    host: str = Field("127.0.0.1", alias="ANVIL_HOST")
    port: int = Field(8545, ge=1, le=65535, alias="ANVIL_PORT")
    chain_id: int = Field(31337, gt=0, alias="ANVIL_CHAIN_ID")
    mnemonic: str = Field(alias="ANVIL_MNEMONIC")
    accounts: int = Field(10, ge=1, le=100, alias="ANVIL_ACCOUNTS")
    block_time: int = Field(0, ge=0, alias="ANVIL_BLOCK_TIME")
    hardfork: str = Field("prague", alias="ANVIL_HARDFORK")
    gas_limit: int = Field(30_000_000, gt=0, alias="ANVIL_GAS_LIMIT")

    @property
    def rpc_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def dev_keys(self) -> tuple[str, ...]:
        """Private keys (hex) of the chain's funded dev accounts, in anvil's order."""
        return _derive_keys(self.mnemonic, self.accounts)

    def dev_addresses(self) -> tuple[str, ...]:
        return tuple(Account.from_key(k).address for k in self.dev_keys())


@cache
def _derive_keys(mnemonic: str, count: int) -> tuple[str, ...]:
    Account.enable_unaudited_hdwallet_features()
    return tuple(
        Account.from_mnemonic(mnemonic, account_path=f"m/44'/60'/0'/0/{i}").key.hex() for i in range(count)
    )


def find_anvil_env() -> Path | None:
    """./anvil.env if present, else the repository's."""
    for candidate in (Path.cwd() / ANVIL_ENV, REPO_ROOT / ANVIL_ENV):
        if candidate.is_file():
            return candidate
    return None


def load_anvil_config(path: Path) -> AnvilConfig:
    """Parses anvil.env; a bad value is a ConfigError naming the variable."""
    if not path.is_file():
        raise ConfigError("NAVPUB_ANVIL_ENV", f"{path} does not exist")
    values = {k: v for k, v in dotenv_values(path).items() if v is not None}
    try:
        return AnvilConfig.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else "anvil.env"
        raise ConfigError(f"{name} in {path}", err["msg"]) from None


def anvil_binary() -> str:
    """The anvil executable: the npm package's (node_modules/.bin) first, then PATH."""
    local = REPO_ROOT / "node_modules" / ".bin" / "anvil"
    if local.exists():
        return str(local)
    found = shutil.which("anvil")
    if found:
        return found
    raise NavPubError("anvil not found: run `npm ci` in the repository (package @foundry-rs/anvil)")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def is_answering(rpc_url: str, timeout_s: float = 1.0) -> bool:
    """True when a JSON-RPC node answers eth_chainId at rpc_url."""
    try:
        r = httpx.post(rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}, timeout=timeout_s)
        return r.status_code == 200 and "result" in r.json()
    except (httpx.HTTPError, ValueError):
        return False


@dataclass
class AnvilNode:
    """A running anvil process started by this package."""

    config: AnvilConfig
    process: subprocess.Popen[bytes]
    log_path: Path | None

    @property
    def rpc_url(self) -> str:
        return self.config.rpc_url

    def stop(self) -> None:
        """Stops the node (SIGTERM, then SIGKILL after 5 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_anvil(
    config: AnvilConfig, *, log_path: Path | None = None, detach: bool = False, extra_args: Sequence[str] = ()
) -> AnvilNode:
    """Starts anvil with `config` (and `extra_args`) and waits until it answers; raises if it cannot."""
    if is_answering(config.rpc_url):
        raise NavPubError(f"something already answers at {config.rpc_url}: stop it or change ANVIL_PORT")
    args = [
        anvil_binary(),
        "--host", config.host,
        "--port", str(config.port),
        "--chain-id", str(config.chain_id),
        "--mnemonic", config.mnemonic,
        "--accounts", str(config.accounts),
        "--hardfork", config.hardfork,
        "--gas-limit", str(config.gas_limit),
    ]  # fmt: skip
    if config.block_time:
        args += ["--block-time", str(config.block_time)]
    args += list(extra_args)
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=detach
    )
    if log_path:
        out.close()  # type: ignore[union-attr]  # the child has its own descriptor of the log
    node = AnvilNode(config, proc, log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not is_answering(config.rpc_url, timeout_s=0.5):
        if proc.poll() is not None:
            raise NavPubError(
                f"anvil exited with code {proc.returncode} at start (log: {log_path or 'none'})"
            )
        if time.monotonic() > deadline:
            node.stop()
            raise NavPubError(f"anvil did not answer at {config.rpc_url} within {START_TIMEOUT_S:.0f} s")
        time.sleep(0.05)  # polling a process we just started; no chain-side control exists yet
    return node


@contextlib.contextmanager
def running_anvil(config: AnvilConfig, *, log_path: Path | None = None) -> Iterator[AnvilNode]:
    """Starts anvil for the duration of a `with` block and always stops it."""
    node = start_anvil(config, log_path=log_path)
    try:
        yield node
    finally:
        node.stop()


# -- a detached node for `navpub chain start|stop` ------------------------------------------


def pid_file(state_dir: Path) -> Path:
    return state_dir / "anvil.pid"


def start_detached(config: AnvilConfig, state_dir: Path) -> AnvilNode:
    """Starts anvil in the background and records its pid in the state directory."""
    state_dir.mkdir(parents=True, exist_ok=True)
    node = start_anvil(config, log_path=state_dir / "anvil.log", detach=True)
    pid_file(state_dir).write_text(str(node.process.pid))
    return node


def stop_detached(config: AnvilConfig, state_dir: Path) -> bool:
    """Stops the anvil started by :func:`start_detached`; False if none was running."""
    path = pid_file(state_dir)
    if not path.exists():
        return False
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, signal.SIGTERM)
    except (ValueError, ProcessLookupError):
        path.unlink(missing_ok=True)
        return False
    path.unlink(missing_ok=True)
    # Return once the port is free, so a `chain start` right after cannot collide with it.
    deadline = time.monotonic() + 5
    while is_answering(config.rpc_url, timeout_s=0.2) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True
