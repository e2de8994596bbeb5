"""Fuzzing the edges where outside data enters: settings, command-line arguments, ABI-decoded
chain data and HTTP answers. Each property is "a result or the product's own clear error,
never another exception". No anvil: chain answers come from an in-process fake node, and
every command that needs a chain is pointed at a closed local port.

Example counts are explicit (`max_examples`) so a run's total is known: settings 600, argv 400,
commands under fuzzed settings 250, snapshot rows 300, undecodable snapshots 150, pack/unpack
500, packing range 300, decode_revert on bytes 400, on known selectors 300, on strings 200 (an
expected failure: it stops at its first failing example), HTTP answers 300, dot paths 300,
HTTP source configs 300 = 4,400 generated examples per run, plus the explicit @example cases
(the failing inputs of the bugs fixed, kept).
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
import typer.main
from eth_abi import encode as abi_encode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from web3 import Web3
from web3.providers import JSONBaseProvider

from publisher import cli
from publisher._exceptions import ChainError, ConfigError, NavPubError
from publisher.artifacts import load_artifact
from publisher.chain import DecodedRevert, _error_table, decode_revert
from publisher.config import ENV_PREFIX, Settings, load_settings
from publisher.publish import pack_nav_update, unpack_nav_update
from publisher.snapshot import ChainSnapshot, read_snapshot
from publisher.sources.http import (
    MAX_PRICE_BODY_BYTES,
    FetchError,
    HttpPriceRef,
    HttpSourceConfig,
    PayloadError,
    SourceError,
    get_json,
    lookup,
    request_for,
)

FUZZ = settings(
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def fuzz(max_examples: int) -> settings:
    """Every fuzz test states its number of examples (counted in the module docstring)."""
    return settings(FUZZ, max_examples=max_examples)


# Environment values: any text an operator's shell could hold (no NUL, no lone surrogates),
# numbers of every size and sign, and the shapes each kind of setting expects.
env_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40
)
env_values = st.one_of(
    env_text,
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from(
        [
            "",
            " ",
            "0",
            "-1",
            "1e3",
            "1.5",
            "nan",
            "inf",
            "-inf",
            "1e309",
            "true",
            "chain",
            "wall",
            "WALL",
            "http://127.0.0.1:1",
            "https://rpc.example",
            "ftp://x",
            "http://",
            "http://[::1",
            "a,b,,",
            "http://a.example, http://b.example",
            "[1, 2]",
            '{"a": 1}',
            "sqlite://",
            "sqlite:///x.db",
            "postgresql://u:p@h/db",
            "nosuchdialect://x",
            "junk",
            "0x" + "ab" * 32,
            "x" * 300,
            "/" + "d" * 300 + "/x",
            "state",
            "./nowhere/anvil.env",
            "USD",
            "ZAR",
        ]
    ),
)
SETTING_VARS = sorted(f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields)
# (A database URL may carry its password.)
SECRET_VARS = {f"{ENV_PREFIX}PRIVATE_KEY", f"{ENV_PREFIX}KEYSTORE_PASSWORD", f"{ENV_PREFIX}DATABASE_URL"}


@pytest.fixture(autouse=True)
def _quiet_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No .env of the caller's directory is read."""
    monkeypatch.chdir(tmp_path)


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Exactly these NAVPUB_* variables (the caller's shell's are hidden)."""
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith(ENV_PREFIX)}
    with mock.patch.dict(os.environ, {**clean, **values}, clear=True):
        yield


def check_config_error(exc: ConfigError, env: dict[str, str]) -> None:
    """A ConfigError names a variable that was set (the one to fix) and leaks no secret."""
    assert exc.setting in env or exc.setting.split(" ")[0] in env, (exc.setting, sorted(env))
    assert str(exc).startswith(exc.setting + ":")
    for var in SECRET_VARS & env.keys():
        secret = env[var]
        # (A secret that is also another variable's value may of course be shown as that one.)
        if len(secret.strip()) >= 8 and not any(secret in v for k, v in env.items() if k != var):
            assert secret not in str(exc)


# -- settings ---------------------------------------------------------------------------------


@fuzz(600)
@given(env=st.dictionaries(st.sampled_from(SETTING_VARS), env_values, max_size=6))
@example(env={f"{ENV_PREFIX}ANVIL_ENV": "a" * 300})  # ENAMETOOLONG from is_file(): was an OSError
def test_settings_are_read_or_name_the_variable(env: dict[str, str]) -> None:
    with environment(env):
        try:
            s = load_settings()
        except ConfigError as exc:
            check_config_error(exc, env)
            return
        assert isinstance(s, Settings)
        # What every command derives next: each a value or a ConfigError naming its variable.
        for derive in (s.resolved_rpc_url, s.resolved_chain_id, s.is_local_chain, s.anvil):
            try:
                derive()
            except ConfigError as exc:
                check_config_error(exc, env)
        assert s.store_url and s.deployment_path.name == "deployment.json"


# -- the command line -------------------------------------------------------------------------


def _commands() -> dict[tuple[str, ...], list[str]]:
    """Every command path of the real CLI and its option names (flags and secondary flags)."""
    out: dict[tuple[str, ...], list[str]] = {}

    def walk(cmd: Any, path: tuple[str, ...]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, (*path, name))
            return
        out[path] = [o for p in cmd.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")]

    walk(typer.main.get_command(cli.app), ())
    return out


COMMANDS = _commands()
ALL_OPTIONS = sorted({o for opts in COMMANDS.values() for o in opts} | {"--help", "--json"})
arg_values = st.one_of(
    st.integers(min_value=-5, max_value=5).map(str),
    st.integers().map(str),
    st.sampled_from(
        [
            "",
            "-",
            "--",
            "x",
            "BTC",
            "FX:ZAR",
            "0.1%",
            "5",
            "nan",
            "inf",
            "-1e400",
            "1" * 30,
            "70000",
            "0",
            "65535",
            "0x" + "00" * 20,
            "0xdead",
            "nav",
            "net",
            "127.0.0.1",
            "::1",
            "256.0.0.1",
            "a b",
            "--fund=1",
            "--fund=x",
            "-h",
            "--no-such-option",
        ]
    ),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12),
)


@st.composite
def argvs(draw: st.DrawFn) -> list[str]:
    path = draw(st.sampled_from([(), *COMMANDS]))
    own = COMMANDS.get(path, [])
    tokens = draw(
        st.lists(
            st.one_of(
                st.sampled_from(own) if own else st.nothing(),
                st.sampled_from(ALL_OPTIONS),
                arg_values,
                st.tuples(st.sampled_from(own or ALL_OPTIONS), arg_values).map(lambda t: f"{t[0]}={t[1]}"),
            ),
            max_size=6,
        )
    )
    return [*path, *tokens]


@pytest.fixture(scope="module")
def closed_port() -> Iterator[int]:
    """A port that refuses connections for the whole module: bound, never listening, so no other
    test's anvil or proxy can take it meanwhile (a command would then talk to that node)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@pytest.fixture
def cli_env(tmp_path: Path, closed_port: int, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Every command pointed at a closed local port; a fresh state dir; no anvil.env (so `demo`
    and `chain start` stop at their settings, before starting anything)."""
    env = {
        f"{ENV_PREFIX}RPC_URL": f"http://127.0.0.1:{closed_port}",
        f"{ENV_PREFIX}CHAIN_ID": "31337",
        f"{ENV_PREFIX}STATE_DIR": str(tmp_path / "state"),
        f"{ENV_PREFIX}ANVIL_ENV": str(tmp_path / "no-anvil.env"),
        f"{ENV_PREFIX}RPC_TIMEOUT_S": "2",
        f"{ENV_PREFIX}RETRY_BACKOFF_S": "0",
    }
    # `serve` would serve until Ctrl-C and `keeper` replaces the root log handlers: the one
    # blocking call and the one process-wide side effect are stubbed; parsing, settings and
    # every check before them run for real.
    monkeypatch.setattr(cli, "serve_app", _refuse_to_serve)
    monkeypatch.setattr(cli, "setup_logging", lambda **_: None)
    return env


class ServeReached(NavPubError):
    pass


def _refuse_to_serve(*_: object, **__: object) -> None:
    raise ServeReached("serve would start here (stubbed by the fuzzer)")


@contextlib.contextmanager
def only_local_connections(allowed_port: int) -> Iterator[list[tuple[Any, ...]]]:
    """Records every outgoing connection; anything but the closed local port fails the test."""
    seen: list[tuple[Any, ...]] = []
    real = socket.socket.connect

    def connect(sock: socket.socket, address: Any) -> Any:
        seen.append(address)
        assert address[0] in ("127.0.0.1", "::1", "localhost") and address[1] == allowed_port, address
        return real(sock, address)

    with mock.patch.object(socket.socket, "connect", connect):
        yield seen


def run_cli(argv: list[str], env: dict[str, str], port: int) -> tuple[int, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with (
        environment(env),
        only_local_connections(port),
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
    ):
        rc = cli.main(argv)
    return rc, stdout.getvalue() + stderr.getvalue()


def check_cli(argv: list[str], env: dict[str, str], port: int) -> None:
    rc, output = run_cli(argv, env, port)
    assert rc in (0, 1, 2), (argv, rc, output)
    assert "Traceback" not in output, (argv, output)
    if rc == 2:
        assert output.strip(), argv  # an error says what is wrong


@fuzz(400)
@given(argv=argvs())
@example(argv=[])  # no arguments: was NoArgsIsHelpError's traceback (typer vendors click)
@example(argv=["nav", "--fund", "x"])  # was typer's BadParameter traceback
@example(argv=["serve", "--port", "70000"])  # was OverflowError from socket.bind
@example(argv=["demo", "--port", "-1"])
@example(argv=["keeper", "--tick", "-1"])
def test_any_argv_exits_0_1_or_2_without_a_traceback(
    argv: list[str], cli_env: dict[str, str], closed_port: int
) -> None:
    check_cli(argv, cli_env, closed_port)


SAFE_COMMANDS = [["status"], ["gas", "--json"], ["approve", "--fund", "1"], ["nav", "--fund", "1"],
                 ["publish"], ["verify", "--fund", "1"], ["trigger", "--fund", "2"], ["deploy"]]  # fmt: skip
# Everything but where the commands connect to: the fuzzed RPC URL must stay the closed port.
# (Nor how long they wait for it: a valid 60 s backoff or timeout would only slow the fuzzer;
# test_settings_are_read_or_name_the_variable covers those values.)
ENV_FUZZED = [v for v in SETTING_VARS if v not in {
    f"{ENV_PREFIX}RPC_URL", f"{ENV_PREFIX}RPC_FALLBACK_URLS", f"{ENV_PREFIX}ALERT_WEBHOOKS",
    f"{ENV_PREFIX}CHAIN_ID", f"{ENV_PREFIX}RPC_TIMEOUT_S", f"{ENV_PREFIX}RETRY_BACKOFF_S",
    f"{ENV_PREFIX}PUBLISH_ATTEMPTS"}]  # fmt: skip


@fuzz(250)
@given(
    argv=st.sampled_from(SAFE_COMMANDS),
    env=st.dictionaries(st.sampled_from(ENV_FUZZED), env_values, max_size=4),
)
# The failing inputs of the bugs this test found, kept:
@example(argv=["approve", "--fund", "1"], env={f"{ENV_PREFIX}DATABASE_URL": "junk"})  # was ArgumentError
@example(argv=["approve", "--fund", "1"], env={f"{ENV_PREFIX}DATABASE_URL": "nosuchdialect://x"})
@example(argv=["approve", "--fund", "1"], env={f"{ENV_PREFIX}STATE_DIR": "/" + "d" * 300 + "/x"})  # OSError
@example(
    argv=["nav", "--fund", "1"], env={f"{ENV_PREFIX}RETRY_BACKOFF_S": "1e30"}
)  # was OverflowError in sleep
@example(argv=["nav", "--fund", "1"], env={f"{ENV_PREFIX}RETRY_BACKOFF_S": "inf"})
@example(argv=["status"], env={f"{ENV_PREFIX}RPC_TIMEOUT_S": "1e30"})  # was "no answer (OverflowError)"
def test_commands_with_any_settings_exit_cleanly(
    argv: list[str], env: dict[str, str], cli_env: dict[str, str], closed_port: int
) -> None:
    check_cli(argv, {**cli_env, **env}, closed_port)


# -- ABI-decoded chain data: getFundSnapshots rows --------------------------------------------

VAULT = to_checksum_address("0x" + "11" * 20)
FUND_COUNT = function_signature_to_4byte_selector("fundCount()")
SNAPSHOTS = function_signature_to_4byte_selector("getFundSnapshots(uint256[])")
# (fundId, manager, assets, decimals, amounts, then 14 uint256: pendingFees ... highWaterMark,
# navShares, navPerShare, shareVersion)
ROW_TYPE = "(uint256,address,address[],uint8[],uint256[]" + ",uint256" * 14 + ")"


class FakeVaultNode(JSONBaseProvider):
    """Answers the reads of publisher.snapshot like a node would, with whatever bytes it is given
    for getFundSnapshots (and fundCount): a vault that is buggy, malicious, or not a vault."""

    def __init__(self, count: int, snapshot_bytes: bytes) -> None:
        super().__init__()
        self.count = count
        self.snapshot_bytes = snapshot_bytes

    def _answer(self, method: str, params: list[Any]) -> Any:
        if method == "eth_chainId":
            return hex(31337)
        if method == "eth_getBlockByNumber":
            return {"number": "0x10", "timestamp": hex(1_700_000_000), "hash": "0x" + "00" * 32,
                    "parentHash": "0x" + "00" * 32, "transactions": []}  # fmt: skip
        if method == "eth_call":
            data = bytes.fromhex(params[0]["data"][2:])
            if data[:4] == FUND_COUNT:
                return "0x" + abi_encode(["uint256"], [self.count]).hex()
            if data[:4] == SNAPSHOTS:
                return "0x" + self.snapshot_bytes.hex()
        raise AssertionError(f"unexpected call {method} {params}")

    def make_request(self, method: Any, params: Any) -> Any:
        return {"jsonrpc": "2.0", "id": 1, "result": self._answer(method, params)}

    def make_batch_request(self, requests: Any) -> Any:
        return [
            {"jsonrpc": "2.0", "id": i, "result": self._answer(m, p)} for i, (m, p) in enumerate(requests)
        ]


def snapshot_of(count: int, data: bytes, fund_ids: list[int] | None) -> ChainSnapshot:
    w3 = Web3(FakeVaultNode(count, data))
    vault = w3.eth.contract(address=VAULT, abi=load_artifact("FundVault").abi)
    return read_snapshot(w3, vault, fund_ids)


uint256 = st.integers(min_value=0, max_value=2**256 - 1)
small = st.integers(min_value=0, max_value=2**64)
addresses = st.binary(min_size=20, max_size=20).map(lambda b: to_checksum_address(b))


@st.composite
def snapshot_rows(draw: st.DrawFn, fund_id: int) -> tuple[Any, ...]:
    n = draw(st.integers(min_value=0, max_value=4))
    # Usually consistent arrays (a correct vault), sometimes not (a buggy or hostile one).
    lengths = draw(st.just((n, n, n)) | st.tuples(*[st.integers(min_value=0, max_value=4)] * 3))
    scalars = draw(st.lists(uint256 | small, min_size=14, max_size=14))
    return (
        draw(st.just(fund_id) | uint256),
        draw(addresses),
        draw(st.lists(addresses, min_size=lengths[0], max_size=lengths[0])),
        draw(st.lists(st.integers(min_value=0, max_value=255), min_size=lengths[1], max_size=lengths[1])),
        draw(st.lists(uint256, min_size=lengths[2], max_size=lengths[2])),
        *scalars,
    )


@st.composite
def snapshot_answers(draw: st.DrawFn) -> tuple[list[int], list[tuple[Any, ...]]]:
    ids = draw(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=4, unique=True))
    # Usually one row per fund asked, sometimes more or fewer.
    row_ids = draw(st.just(ids) | st.lists(st.integers(min_value=1, max_value=40), max_size=5))
    return ids, [draw(snapshot_rows(fid)) for fid in row_ids]


@fuzz(300)
@given(answer=snapshot_answers())
def test_snapshot_rows_decode_or_fail_clearly(answer: tuple[list[int], list[tuple[Any, ...]]]) -> None:
    ids, rows = answer
    data = abi_encode([f"{ROW_TYPE}[]"], [rows])
    consistent = len(rows) == len(ids) and all(
        r[0] == fid and len(r[2]) == len(r[3]) == len(r[4]) for fid, r in zip(ids, rows, strict=False)
    )
    try:
        snap = snapshot_of(len(ids), data, ids)
    except ChainError as exc:
        assert not consistent, exc
        assert "getFundSnapshots" in str(exc)
        return
    assert consistent
    assert [f.fund_id for f in snap.funds] == ids
    for f, r in zip(snap.funds, rows, strict=True):
        # (Addresses compare without their checksum case: the codec answers lower case.)
        assert [(h.asset.lower(), h.decimals, h.amount) for h in f.holdings] == list(
            zip([a.lower() for a in r[2]], r[3], r[4], strict=True)
        )
        assert (f.nav.nav, f.nav.as_of, f.nav.round, f.nav.flags, f.nav.high_water_mark) == r[11:16]
        assert (f.nav.nav_shares, f.nav.nav_per_share, f.share_version) == r[16:19]
        assert (f.pending_fees, f.pending_withdrawals, f.borrowed, f.total_shares, f.queued_shares,
                f.activity) == r[5:11]  # fmt: skip


@fuzz(150)
@given(data=st.binary(max_size=300), count=st.integers(min_value=0, max_value=3), every=st.booleans())
@example(data=b"", count=1, every=False)  # an address with code but no getFundSnapshots: empty answer
def test_undecodable_snapshot_answers_are_chain_errors(data: bytes, count: int, every: bool) -> None:
    try:
        snapshot_of(count, data, None if every else [1])
    except ChainError as exc:
        assert "getFundSnapshots" in str(exc) or "fundCount" in str(exc)


# -- packed NAV words ---------------------------------------------------------------------------


@fuzz(500)
@given(
    fund_id=st.integers(min_value=0, max_value=2**32 - 1),
    nav=st.integers(min_value=0, max_value=2**128 - 1),
    as_of=st.integers(min_value=0, max_value=2**48 - 1),
    flags=st.integers(min_value=0, max_value=2**16 - 1),
    version=st.integers(min_value=0, max_value=2**32 - 1),
    high=st.integers(min_value=0, max_value=2**40),
    word=uint256,
)
def test_pack_and_unpack_are_inverse(
    fund_id: int, nav: int, as_of: int, flags: int, version: int, high: int, word: int
) -> None:
    packed = pack_nav_update(fund_id, nav, as_of, flags, version)
    assert 0 <= packed < 2**256
    assert unpack_nav_update(packed) == (fund_id, nav, as_of, flags, version)
    # Bits 0-127 NAV, 128-143 flags, 144-191 asOf, 192-223 share version, 224-255 fund id.
    assert packed == nav | flags << 128 | as_of << 144 | version << 192 | fund_id << 224
    # Only the share version's low 32 bits travel: a larger one packs as its low bits.
    assert pack_nav_update(fund_id, nav, as_of, flags, high << 32 | version) == packed
    assert pack_nav_update(*unpack_nav_update(word)) == word  # any word reads back exactly


@fuzz(300)
@given(values=st.tuples(*[st.integers(min_value=-(2**130), max_value=2**260)] * 5))
def test_pack_refuses_what_does_not_fit(values: tuple[int, int, int, int, int]) -> None:
    fund_id, nav, as_of, flags, version = values
    fits = 0 <= fund_id < 2**32 and 0 <= nav < 2**128 and 0 <= as_of < 2**48 and 0 <= flags < 2**16
    try:
        word = pack_nav_update(fund_id, nav, as_of, flags, version)
    except ValueError as exc:
        assert (not fits and "does not fit" in str(exc)) or (fits and version < 0 and "negative" in str(exc))
        return
    assert fits and version >= 0
    assert unpack_nav_update(word) == (fund_id, nav, as_of, flags, version % 2**32)


# -- revert data ---------------------------------------------------------------------------------


def check_decoded(result: DecodedRevert | None) -> None:
    if result is not None:
        assert isinstance(result, DecodedRevert) and result.name
        assert str(result)  # renders, whatever the arguments


@fuzz(400)
@given(data=st.binary(max_size=200))
def test_decode_revert_of_random_bytes(data: bytes) -> None:
    check_decoded(decode_revert(data))
    check_decoded(decode_revert("0x" + data.hex()))


KNOWN_SELECTORS = sorted(_error_table())


@fuzz(300)
@given(
    selector=st.sampled_from(KNOWN_SELECTORS),
    tail=st.binary(max_size=200),
    words=st.lists(uint256, max_size=6),
)
def test_decode_revert_of_known_errors_with_random_arguments(
    selector: bytes, tail: bytes, words: list[int]
) -> None:
    check_decoded(decode_revert(selector + tail))
    check_decoded(decode_revert(selector + b"".join(w.to_bytes(32, "big") for w in words)))


@fuzz(200)
@given(text=st.text(max_size=40))
@example(text="Reverted 0x08c379a0")
def test_decode_revert_of_any_string(text: str) -> None:
    check_decoded(decode_revert(text))


# -- HTTP: what tests/unit/test_http_sources.py does not fuzz yet ---------------------------------
# There: the adapters' parsers on any JSON and decode_json on any bytes. Here: the transport
# (any status, headers and body through get_json), dot paths and the source configuration.

headers = st.dictionaries(
    st.sampled_from(["Retry-After", "Location", "Content-Type", "Content-Encoding", "X-Junk"]),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=20),
    max_size=3,
)
bodies = st.one_of(
    st.binary(max_size=80),
    st.sampled_from(
        [
            b'{"msg": "Invalid symbol.", "code": -1121}',
            b'{"error": ["EQuery:Unknown asset pair"]}',
            b'{"status": {"error_message": "rate"}}',
            b"<html>502</html>",
            b'{"a": 1',
            b"[]",
            b'{"errors": [{"message": "x"}]}',
            b'{"message": 12}',
            b"null",
            b"\xef\xbb\xbf{}",
        ]
    ),
)


@fuzz(300)
@given(status=st.integers(min_value=100, max_value=599), hdrs=headers, body=bodies)
@example(status=200, hdrs={"Content-Encoding": "gzip"}, body=b"not gzip")  # a lying server
def test_any_http_answer_is_json_or_a_source_error(status: int, hdrs: dict[str, str], body: bytes) -> None:
    import asyncio

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers=hdrs, content=body)

    async def fetch() -> Any:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await get_json(
                client, "http://prices.invalid/x", timeout_s=5, max_bytes=MAX_PRICE_BODY_BYTES
            )

    try:
        asyncio.run(fetch())
    except (FetchError, PayloadError) as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert status < 300


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=10,
)


@fuzz(300)
@given(payload=json_like, path=st.lists(st.text(max_size=5) | st.integers(0, 5).map(str), min_size=1,
                                        max_size=4).map(".".join))  # fmt: skip
def test_dot_paths_find_a_value_or_name_the_missing_step(payload: Any, path: str) -> None:
    with contextlib.suppress(PayloadError):
        lookup(payload, path)


@fuzz(300)
@given(
    adapter=st.sampled_from(["coinbase", "kraken", "binance", "coingecko", "generic", "other"]),
    base_url=st.sampled_from(["https://api.example", "http://127.0.0.1:1/p/", "http://h/?q=1", "x"])
    | env_text,
    instrument=env_text,
    path=st.none() | env_text.map(lambda t: "/" + t) | env_text,
    price_field=st.none() | env_text,
    time_field=st.none() | env_text,
    invert=st.booleans(),
)
def test_source_configs_validate_and_build_requests(
    adapter: str, base_url: str, instrument: str, path: str | None, price_field: str | None,
    time_field: str | None, invert: bool,
) -> None:  # fmt: skip
    try:
        cfg = HttpSourceConfig(id="s", adapter=adapter, base_url=base_url)  # type: ignore[arg-type]
        ref = HttpPriceRef(source="s", asset="BTC", instrument=instrument, path=path,
                           price_field=price_field, time_field=time_field, invert=invert)  # fmt: skip
    except ValidationError:
        return
    try:
        url, params = request_for(cfg, ref)
    except SourceError as exc:
        assert str(exc)
        return
    # The request goes out the way get_json sends it: an answer, or a FetchError for a URL
    # httpx cannot request — nothing else escapes.
    import asyncio

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": {"amount": "1"}})

    async def fetch() -> Any:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await get_json(client, url, params=params, timeout_s=5, max_bytes=MAX_PRICE_BODY_BYTES)

    with contextlib.suppress(FetchError):
        asyncio.run(fetch())


@pytest.mark.parametrize(
    ("var", "value"),
    [("RETRY_BACKOFF_S", "1e30"), ("RETRY_BACKOFF_S", "inf"), ("RPC_TIMEOUT_S", "1e30"),
     ("RPC_TIMEOUT_S", "nan"), ("RECEIPT_TIMEOUT_S", "inf"), ("PUBLISH_ATTEMPTS", "1000000")],
)  # fmt: skip
def test_durations_and_retries_are_bounded(var: str, value: str) -> None:
    """Found by the fuzzer: `inf` or 1e30 seconds passed validation and then crashed in
    time.sleep (OverflowError), and a million attempts held a dead RPC's cycle for minutes."""
    with environment({f"{ENV_PREFIX}{var}": value}), pytest.raises(ConfigError) as exc:
        load_settings()
    assert exc.value.setting == f"{ENV_PREFIX}{var}"


@pytest.mark.parametrize(
    "url", ["junk", "nosuchdialect://x", "sqlite://h:port/x", "postgresql://navpub:s3cretpw@db/navpub"]
)
def test_database_url_is_checked_when_read_and_never_shown(url: str) -> None:
    """Found by the fuzzer: a bad URL surfaced as SQLAlchemy's traceback when the store opened
    (postgresql: its driver is not installed here). The URL may hold a password: never shown."""
    with environment({f"{ENV_PREFIX}DATABASE_URL": url}), pytest.raises(ConfigError) as exc:
        load_settings()
    assert exc.value.setting == f"{ENV_PREFIX}DATABASE_URL"
    assert url not in str(exc.value) and "s3cretpw" not in str(exc.value)


def test_an_unreadable_anvil_env_is_named() -> None:
    """Found by the fuzzer: a path the OS refuses to stat (too long) raised OSError."""
    with environment({f"{ENV_PREFIX}ANVIL_ENV": "a" * 300}), pytest.raises(ConfigError) as exc:
        load_settings().resolved_rpc_url()
    assert exc.value.setting == f"{ENV_PREFIX}ANVIL_ENV" and "too long" in str(exc.value)


def test_a_state_dir_that_is_a_file_is_one_line(
    tmp_path: Path, cli_env: dict[str, str], closed_port: int
) -> None:
    """Found by the fuzzer: the store's mkdir raised FileExistsError out of the CLI."""
    (tmp_path / "afile").write_text("x")
    env = {**cli_env, f"{ENV_PREFIX}STATE_DIR": str(tmp_path / "afile")}
    rc, output = run_cli(["approve", "--fund", "1"], env, closed_port)
    assert rc == 2 and "Traceback" not in output and "afile" in output


def test_snapshot_rows_that_contradict_themselves_are_chain_errors() -> None:
    """Found by the fuzzer: arrays of different lengths raised zip()'s ValueError, and an empty
    answer (an address that is not a vault) eth_abi's InsufficientDataBytes."""
    row = (1, VAULT, [VAULT], [18, 6], [1], *[0] * 14)
    with pytest.raises(ChainError, match="1 assets but 2 decimals and 1 amounts"):
        snapshot_of(1, abi_encode([f"{ROW_TYPE}[]"], [[row]]), [1])
    with pytest.raises(ChainError, match="answered fund 2 where 1 was asked"):
        snapshot_of(1, abi_encode([f"{ROW_TYPE}[]"], [[(2, *row[1:2], [], [], [], *[0] * 14)]]), [1])
    with pytest.raises(ChainError, match="does not decode"):
        snapshot_of(1, b"", [1])
