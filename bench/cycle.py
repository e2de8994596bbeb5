"""One full keeper cycle over N funds × A assets (default 100 × 20), measured beside the naive way.

On its own anvil (a free port, a temporary state directory, always stopped) the benchmark
deploys the product's contracts with N funds each holding A assets (bench/setup_chain.py),
three on-chain feeds per asset plus the router's aggregate and two local HTTP price APIs
(bench/price_api.py), runs a warm-up cycle (every fund's first NAV), moves time an hour and
every price +2 %, then measures:

- engine: ``Publisher.from_settings(settings).cycle()`` with settings from NAVPUB_* environment
  variables, its RPC behind a counting JSON-RPC proxy (tests/rpcproxy.py; a JSON-RPC batch is
  one HTTP round trip). Round trips are split by when they happen: ``read`` inside
  ``NavEngine.run`` (snapshot and on-chain quotes), ``publish`` after it (simulate, fees,
  nonce, send, receipt, accounting). Stages: snapshot / price / value from
  ``CycleResult.timings``, publish the time from the end of ``NavEngine.run`` to the state
  files, which are timed apart; building the Publisher (chain id and code checks) too.
- naive: the same cycle one request at a time (bench/naive.py) on the same chain state
  (anvil's evm_snapshot / evm_revert), through its own proxy.
- ratio: naive ÷ engine.

HTTP price requests are counted by the price servers. Setup time (deploying, the deposits,
the warm-up cycle) is reported apart and is not part of any figure.

    .venv/bin/python -m bench.cycle [--funds 100] [--assets 20] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from web3 import Web3

from bench.naive import naive_cycle
from bench.price_api import PATH, PriceServer, write_sources_file
from bench.setup_chain import deploy_bench, move_feeds
from publisher.artifacts import REPO_ROOT
from publisher.chain import contract_at
from publisher.config import ENV_PREFIX, Settings, load_settings
from publisher.deployment import Deployment
from publisher.keys import load_account
from publisher.localchain import free_port, load_anvil_config, start_anvil
from publisher.publish import FundOutcome, Publisher
from publisher.snapshot import read_snapshot
from tests.rpcproxy import LoggedRequest, RpcProxy

F = TypeVar("F", bound=Callable[..., Any])

FEEDS_PER_ASSET = 3
# The two APIs quote a few basis points either side of the feeds, as real ones do.
API_SKEWS = (("alpha", Decimal("0.0003")), ("beta", Decimal("-0.0002")))
# +2 %: above the 1 % skip rule, far below the 30 % jump guard, so every fund publishes.
PRICE_MOVE = Decimal("1.02")
HOUR_S = 3600


def _progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _seconds(x: float) -> str:
    return f"{x:.3f}"


def _ratio(naive: float, engine: float) -> str:
    return f"{naive / engine:.1f}" if engine else "n/a"


# -- settings from the environment -----------------------------------------------------------


@contextlib.contextmanager
def _navpub_env(values: Mapping[str, str]) -> Iterator[None]:
    """Exactly `values` as the NAVPUB_* environment for the block (the caller's own are put back)."""
    saved = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)}
    for k in saved:
        del os.environ[k]
    os.environ.update(values)
    try:
        yield
    finally:
        for k in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
            del os.environ[k]
        os.environ.update(saved)


def settings_from_env(rpc_url: str, state: Path, sources: Path | None) -> Settings:
    """The settings a keeper on this chain would be started with, read from the environment."""
    env = {
        "NAVPUB_RPC_URL": rpc_url,
        "NAVPUB_STATE_DIR": str(state),
        "NAVPUB_ANVIL_ENV": str(REPO_ROOT / "anvil.env"),  # chain id and dev keys
        # The local chain's time moves by evm_increaseTime: the chain is the clock.
        "NAVPUB_CLOCK": "chain",
        "NAVPUB_RETRY_BACKOFF_S": "0",
        # anvil mines a moment after the send; poll for the receipt as often as web3's default
        # (the naive keeper's), not once a second as suits 12 s mainnet blocks.
        "NAVPUB_RECEIPT_POLL_S": "0.1",
    }
    if sources is not None:
        env["NAVPUB_SOURCES_FILE"] = str(sources)
    with _navpub_env(env):
        return load_settings(_env_file=None)  # no stray .env in the working directory


# -- counting ----------------------------------------------------------------------------------


def _calls(requests: Sequence[LoggedRequest]) -> dict[str, int]:
    """JSON-RPC calls by method (every call of a batch counts)."""
    counts: Counter[str] = Counter()
    for r in requests:
        methods = r.method if isinstance(r.method, list) else [r.method or "?"]
        counts.update(methods)
    return dict(sorted(counts.items()))


def _rpc_figures(requests: Sequence[LoggedRequest]) -> dict[str, Any]:
    return {
        "round_trips": len(requests),
        "calls": sum(_calls(requests).values()),
        "by_method": _calls(requests),
    }


def _gas(direct: Web3, tx_hashes: Sequence[str]) -> tuple[int, int]:
    """Gas used and wei paid by these transactions, from their receipts (read past the proxies)."""
    gas = cost = 0
    for h in tx_hashes:
        r = direct.eth.get_transaction_receipt(h)  # type: ignore[arg-type]
        gas += int(r["gasUsed"])
        cost += int(r["gasUsed"]) * int(r["effectiveGasPrice"])
    return gas, cost


def _rounds(direct: Web3, deployment: Deployment) -> dict[int, int]:
    vault = contract_at(direct, "FundVault", deployment.vault)
    return {f.fund_id: f.nav.round for f in read_snapshot(direct, vault).funds}


def _require_published(outcomes: Sequence[FundOutcome], what: str) -> None:
    bad = [f"fund {o.fund_id}: {o.decision} ({o.reason})" for o in outcomes if o.decision != "published"]
    if bad:
        raise RuntimeError(f"{what}: not every fund was published: " + "; ".join(bad[:5]))


def _rpc(direct: Web3, method: str, params: list[Any]) -> Any:
    answer = direct.provider.make_request(method, params)  # type: ignore[arg-type]
    if "error" in answer:
        raise RuntimeError(f"{method}: {answer['error']}")
    return answer["result"]


# -- the two cycles ------------------------------------------------------------------------------


def measure_engine(
    settings: Settings, proxy: RpcProxy, servers: Sequence[PriceServer], direct: Web3, deployment: Deployment
) -> dict[str, Any]:
    """One steady engine cycle: `Publisher.from_settings(settings).cycle()`, counted and timed."""
    http_before = sum(s.requests for s in servers)
    start = len(proxy.requests)
    t0 = time.perf_counter()
    pub = Publisher.from_settings(settings)
    t1 = time.perf_counter()
    built = len(proxy.requests)

    # Where NavEngine.run and the state files begin and end: (requests so far, time). The
    # wrappers only observe; the cycle runs exactly as `navpub publish` runs it.
    marks: dict[str, tuple[int, float]] = {}

    def observed(name: str, fn: F) -> F:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            marks[f"{name}:start"] = (len(proxy.requests), time.perf_counter())
            try:
                return fn(*args, **kwargs)
            finally:
                marks[f"{name}:end"] = (len(proxy.requests), time.perf_counter())

        return wrapper  # type: ignore[return-value]

    pub.engine.run = observed("run", pub.engine.run)  # type: ignore[method-assign]
    if hasattr(pub, "write_state_files"):  # timed apart: disk, not publishing
        pub.write_state_files = observed("state", pub.write_state_files)  # type: ignore[method-assign]
    t2 = time.perf_counter()
    outcomes = pub.cycle()
    t3 = time.perf_counter()
    log = proxy.requests
    end = len(log)
    _require_published(outcomes, "engine cycle")
    cycle = pub.last_cycle
    assert cycle is not None

    (run_i, run_t0), (run_j, run_t1) = marks["run:start"], marks["run:end"]
    (_, st_t0), (_, st_t1) = marks.get("state:start", (0, t3)), marks.get("state:end", (0, t3))
    stages = {
        "reconcile": run_t0 - t2,
        "snapshot": cycle.timings.get("snapshot", 0.0),
        "price": cycle.timings.get("price", 0.0),
        "value": cycle.timings.get("value", 0.0),
        "publish": st_t0 - run_t1,
        "state_files": st_t1 - st_t0,
    }
    hashes = sorted({o.tx_hash for o in outcomes if o.tx_hash})
    gas, cost = _gas(direct, hashes)
    vault = contract_at(direct, "FundVault", deployment.vault)
    # Every fund in a single call, to see how close that comes to the nodes' eth_call gas caps.
    ids = [f.fund_id for f in cycle.funds]
    snapshot_gas = vault.functions.getFundSnapshots(ids).estimate_gas(block_identifier=cycle.block_number)
    reads = _rpc_figures(log[run_i:run_j])
    return {
        "round_trips": end - built,
        "read_round_trips": reads["round_trips"],
        "publish_round_trips": end - run_j,
        "reconcile_round_trips": run_i - built,
        "calls_by_method": _calls(log[built:end]),
        "read_calls_by_method": reads["by_method"],
        "publish_calls_by_method": _calls(log[run_j:end]),
        "http_price_requests": sum(s.requests for s in servers) - http_before,
        "wall_s": _seconds(t3 - t2),
        "stages_s": {k: _seconds(v) for k, v in stages.items()},
        "transactions": len(hashes),
        "gas_used": gas,
        "cost_wei": cost,
        "published": sum(o.decision == "published" for o in outcomes),
        "snapshot_call_gas": snapshot_gas,
        "startup": {**_rpc_figures(log[start:built]), "wall_s": _seconds(t1 - t0)},
        "_navs": {o.fund_id: o.nav for o in outcomes},
    }


def measure_naive(
    proxy: RpcProxy, servers: Sequence[PriceServer], direct: Web3, deployment: Deployment, settings: Settings
) -> dict[str, Any]:
    """The same cycle the naive way (bench/naive.py), counted and timed the same way."""
    http_before = sum(s.requests for s in servers)
    urls = {symbol: [f"{s.url}{PATH}{symbol}" for s in servers] for symbol in deployment.tokens}
    start = len(proxy.requests)
    publish_from = start

    def reads_done() -> None:
        nonlocal publish_from
        publish_from = len(proxy.requests)

    result = naive_cycle(
        proxy.url, deployment, load_account(settings), urls, router=True, on_publish=reads_done
    )
    log = proxy.requests
    hashes = ["0x" + bytes(r["transactionHash"]).hex() for r in result.receipts]
    gas, cost = _gas(direct, hashes)
    return {
        "round_trips": len(log) - start,
        "read_round_trips": publish_from - start,
        "publish_round_trips": len(log) - publish_from,
        "calls_by_method": _calls(log[start:]),
        "read_calls_by_method": _calls(log[start:publish_from]),
        "publish_calls_by_method": _calls(log[publish_from:]),
        "http_price_requests": sum(s.requests for s in servers) - http_before,
        "wall_s": _seconds(result.timings["total"]),
        "stages_s": {k: _seconds(v) for k, v in result.timings.items() if k != "total"},
        "transactions": len(hashes),
        "gas_used": gas,
        "cost_wei": cost,
        "published": len(result.navs),
        "_navs": result.navs,
    }


# -- the run -------------------------------------------------------------------------------------


def run_bench(n_funds: int, n_assets: int, progress: Callable[[str], None] = _progress) -> dict[str, Any]:
    """Sets up, warms up, measures both cycles; returns the figures (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="navpub-bench-") as tmp:
        root = Path(tmp)
        state = root / "state"
        config = load_anvil_config(REPO_ROOT / "anvil.env").model_copy(update={"port": free_port()})
        node = start_anvil(config, log_path=root / "anvil.log")
        servers: list[PriceServer] = []
        proxies: list[RpcProxy] = []
        try:
            servers += [PriceServer(name, skew) for name, skew in API_SKEWS]
            t0 = time.perf_counter()
            direct = Web3(Web3.HTTPProvider(node.rpc_url))
            deployment, assets, sent = deploy_bench(
                direct,
                settings_from_env(node.rpc_url, state, None),
                node.rpc_url,
                n_funds,
                n_assets,
                progress,
            )
            prices = {a.symbol: a.price for a in assets}
            for s in servers:
                s.set_prices(prices)
            sources = write_sources_file(root / "sources.toml", servers, list(prices), router=True)
            proxies += [RpcProxy(node.rpc_url), RpcProxy(node.rpc_url)]
            engine_proxy, naive_proxy = proxies
            settings = settings_from_env(engine_proxy.url, state, sources)

            _require_published(Publisher.from_settings(settings).cycle(), "warm-up cycle")
            progress("warm-up cycle: every fund published")
            _rpc(direct, "evm_increaseTime", [HOUR_S])
            _rpc(direct, "evm_mine", [])
            prices = {k: v * PRICE_MOVE for k, v in prices.items()}
            sent += move_feeds(direct, node.rpc_url, settings, deployment, prices)
            for s in servers:
                s.set_prices(prices)
            setup_s = time.perf_counter() - t0
            progress(f"setup done in {setup_s:.1f} s ({sent} transactions + the warm-up cycle)")

            before = _rounds(direct, deployment)
            pristine = _rpc(direct, "evm_snapshot", [])
            engine = measure_engine(settings, engine_proxy, servers, direct, deployment)
            after = _rounds(direct, deployment)
            engine["rounds_advanced_once"] = sum(after[f] == before[f] + 1 for f in before)
            progress(f"engine cycle: {engine['wall_s']} s, {engine['round_trips']} round trips")

            # The naive keeper starts from the very state the engine started from.
            if _rpc(direct, "evm_revert", [pristine]) is not True:
                raise RuntimeError("evm_revert failed")
            naive = measure_naive(naive_proxy, servers, direct, deployment, settings)
            after = _rounds(direct, deployment)
            naive["rounds_advanced_once"] = sum(after[f] == before[f] + 1 for f in before)
            progress(f"naive cycle: {naive['wall_s']} s, {naive['round_trips']} round trips")
        finally:
            for p in proxies:
                p.close()
            for s in servers:
                s.close()
            node.stop()

    engine_navs: dict[int, int | None] = engine.pop("_navs")
    naive_navs: dict[int, int] = naive.pop("_navs")
    diffs = [abs(n - naive_navs[f]) for f, n in engine_navs.items() if n is not None and f in naive_navs]
    ratio_keys = ("round_trips", "read_round_trips", "publish_round_trips", "transactions", "gas_used")
    ratio = {k: _ratio(naive[k], engine[k]) for k in ratio_keys}
    ratio["wall_s"] = _ratio(float(naive["wall_s"]), float(engine["wall_s"]))
    for stage in ("snapshot", "price", "publish"):
        ratio[f"{stage}_s"] = _ratio(float(naive["stages_s"][stage]), float(engine["stages_s"][stage]))
    return {
        "funds": n_funds,
        "assets": n_assets,
        "feeds_per_asset": FEEDS_PER_ASSET,
        "http_sources_per_asset": len(API_SKEWS),
        "router_aggregate_per_asset": True,
        "setup_s": _seconds(setup_s),
        "setup_transactions": sent,
        "nav_max_diff_wei": max(diffs, default=0),
        "engine": engine,
        "naive": naive,
        "ratio": ratio,
    }


# -- output --------------------------------------------------------------------------------------


def table(r: Mapping[str, Any]) -> str:
    """The figures for people: one row per measure, engine | naive | ratio."""
    e, n, x = r["engine"], r["naive"], r["ratio"]
    rows: list[tuple[str, str, str, str]] = [
        ("RPC round trips (HTTP)", str(e["round_trips"]), str(n["round_trips"]), x["round_trips"]),
        ("  reads", str(e["read_round_trips"]), str(n["read_round_trips"]), x["read_round_trips"]),
        ("  publish (send, confirm)", str(e["publish_round_trips"]), str(n["publish_round_trips"]),
         x["publish_round_trips"]),
        ("JSON-RPC calls", str(sum(e["calls_by_method"].values())), str(sum(n["calls_by_method"].values())),
         ""),
        ("HTTP price requests", str(e["http_price_requests"]), str(n["http_price_requests"]), ""),
        ("transactions", str(e["transactions"]), str(n["transactions"]), x["transactions"]),
        ("gas used", f"{e['gas_used']:,}", f"{n['gas_used']:,}", x["gas_used"]),
        ("wall time (s)", e["wall_s"], n["wall_s"], x["wall_s"]),
    ]  # fmt: skip
    for stage in ("reconcile", "snapshot", "price", "value", "publish", "state_files"):
        ratio = x.get(f"{stage}_s", "")
        rows.append((f"  {stage} (s)", e["stages_s"].get(stage, "-"), n["stages_s"].get(stage, "-"), ratio))
    width = max(len(row[0]) for row in rows)
    lines = [
        f"{r['funds']} funds × {r['assets']} assets; per asset {r['feeds_per_asset']} feeds + the router's "
        f"aggregate + {r['http_sources_per_asset']} HTTP APIs. Setup {r['setup_s']} s "
        f"({r['setup_transactions']} transactions, warm-up cycle), not in the figures.",
        "",
        f"{'':<{width}}  {'engine':>12}  {'naive':>12}  {'naive/engine':>12}",
    ]
    lines += [f"{a:<{width}}  {b:>12}  {c:>12}  {d:>12}" for a, b, c, d in rows]
    lines += [
        "",
        f"engine reads by method:   {e['read_calls_by_method']}",
        f"engine publish by method: {e['publish_calls_by_method']}",
        f"naive calls by method:    {n['calls_by_method']}",
        f"engine startup (Publisher.from_settings): {e['startup']['round_trips']} round trips, "
        f"{e['startup']['wall_s']} s",
        f"getFundSnapshots of every fund: {e['snapshot_call_gas']:,} gas in one eth_call",
        f"funds published once on chain: engine {e['rounds_advanced_once']}, "
        f"naive {n['rounds_advanced_once']}; largest NAV difference: {r['nav_max_diff_wei']} wei",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cycle", description=__doc__.split("\n")[0])
    parser.add_argument("--funds", type=int, default=100, help="funds (default 100)")
    parser.add_argument("--assets", type=int, default=20, help="assets per fund (default 20)")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    args = parser.parse_args(argv)
    if args.funds < 1 or not 1 <= args.assets <= 64:
        parser.error("--funds must be at least 1 and --assets between 1 and 64 (the vault's limit)")
    result = run_bench(args.funds, args.assets)
    print(json.dumps(result, indent=2) if args.json else table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
