"""`navpub`: the command line. Every deliberate error prints one clear line, never a traceback."""

from __future__ import annotations

import math
import sys
import time
from json import dumps
from typing import Annotated

import click
import typer
from rich.console import Console
from web3 import Web3

from publisher._exceptions import NavPubError
from publisher.api import check_port_free
from publisher.api import serve as serve_app
from publisher.artifacts import REPO_ROOT
from publisher.chain import check_funds, connect, contract_at
from publisher.config import Settings, load_settings
from publisher.correct import correct_nav, parse_nav
from publisher.demo import RatesServer
from publisher.deploy import deploy_core, deploy_demo, separate_roles
from publisher.deployment import load_deployment
from publisher.engine import NavEngine
from publisher.gas import gas_overview, ledger
from publisher.keeper import TICK_S, Keeper, running_keeper, serve_http
from publisher.keys import load_account
from publisher.localchain import AnvilConfig, running_anvil, start_detached, stop_detached
from publisher.logs import setup_logging
from publisher.money import fmt_usd, usd_str
from publisher.output import (
    gas_model,
    nav_model,
    price_model,
    publish_model,
    render_gas,
    render_nav,
    render_price,
    render_publish,
)
from publisher.publish import Publisher
from publisher.rotate import rotate_engine
from publisher.snapshot import read_snapshot
from publisher.status import keeper_status, render_keeper, render_status, status_model
from publisher.store import Store
from publisher.story import Story

try:
    # typer >= 0.2x vendors its own copy of click: its usage errors are not click's classes.
    from typer._click.exceptions import ClickException as _TyperClickException
except ImportError:  # an older typer raises click's own
    _TyperClickException = click.ClickException
USAGE_ERRORS: tuple[type[Exception], ...] = (click.ClickException, _TyperClickException)

app = typer.Typer(
    help="NAV oracle publisher: compute, guard and publish fund NAVs on-chain.", no_args_is_help=True
)
chain_app = typer.Typer(help="The local anvil chain described by anvil.env.", no_args_is_help=True)
app.add_typer(chain_app, name="chain")

out = Console()
err = Console(stderr=True)


@app.command()
def deploy(
    demo: Annotated[
        bool, typer.Option("--demo", help="Also deploy mock tokens, feeds and three demo funds")
    ] = False,
    engine: Annotated[
        str | None, typer.Option(help="Address granted the NAV engine role (default: the signing key's)")
    ] = None,
    guardian: Annotated[
        list[str] | None,
        typer.Option(help="Address granted the guardian role (repeatable); required off the local chain"),
    ] = None,
) -> None:
    """Deploy the contracts to the configured RPC and write deployment.json."""
    settings = load_settings()
    _deploy(settings, demo=demo, engine=engine, guardians=guardian or [])


def _deploy(
    settings: Settings, *, demo: bool, engine: str | None, guardians: list[str] | None = None
) -> None:
    guardians = list(guardians or [])
    for name, value in [("--engine", engine), *(("--guardian", g) for g in guardians)]:
        if value is not None and not Web3.is_address(value):
            raise NavPubError(f"{name}: {value!r} is not an address (0x followed by 40 hex digits)")
    account = load_account(settings)
    target = engine or account.address
    if not settings.is_local_chain():
        # Before any transaction: one key must not hold every role off the local chain.
        separate_roles(account.address, target, guardians)
    w3 = connect(settings)
    run = deploy_demo if demo else deploy_core
    with out.status("deploying..."):
        deployment = run(
            w3, settings, account, target, progress=lambda line: out.print(f"  {line}"), guardians=guardians
        )
    out.print(f"[green]deployed[/] on chain {deployment.chain_id}; wrote {settings.deployment_path}")


@app.command()
def status(
    json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
    fund: Annotated[list[int] | None, typer.Option(help="Only these fund ids (repeatable)")] = None,
) -> None:
    """Print every fund's on-chain state: holdings, liabilities, last NAV, asOf, HWM."""
    settings = load_settings()
    _status(settings, as_json=json, fund_ids=fund)


def _status(settings: Settings, *, as_json: bool, fund_ids: list[int] | None = None) -> None:
    w3 = connect(settings)
    deployment = load_deployment(settings, w3)
    vault = contract_at(w3, "FundVault", deployment.vault)
    check_funds(vault, fund_ids or [])
    snap = read_snapshot(w3, vault, fund_ids)
    keeper_state = keeper_status(settings, Store.for_settings(settings), snap)
    if as_json:
        model = status_model(deployment, snap).model_copy(update={"keeper": keeper_state})
        sys.stdout.write(model.model_dump_json(indent=2) + "\n")
    else:
        render_status(out, deployment, snap)
        render_keeper(out, keeper_state)


@app.command()
def demo(
    keep_running: Annotated[
        bool, typer.Option("--keep-running", help="Leave anvil running in the background afterwards")
    ] = False,
    serve_dashboard: Annotated[
        bool,
        typer.Option("--serve/--no-serve", help="Serve the dashboard until Ctrl-C at the end"),
    ] = True,
    port: Annotated[int, typer.Option(help="Dashboard port (127.0.0.1)", min=1, max=65535)] = 8000,
) -> None:
    """Start anvil, deploy the demo funds, run the keeper through simulated hours, serve the dashboard."""
    settings = load_settings()
    local = _local_chain(settings)
    if serve_dashboard:
        check_port_free("127.0.0.1", port)
    rates = RatesServer()
    try:
        # The demo's haircuts and its local FX rates API, unless the operator brings a sources file.
        sources = settings.sources_file or rates.sources_file(
            REPO_ROOT / "scripts" / "demo-sources.toml", settings.state_dir / "demo-sources.toml"
        )
        # Simulated hours are anvil's hours: ages on the dashboard are read on the chain's clock.
        settings = load_settings(
            rpc_url=local.rpc_url, chain_id=local.chain_id, sources_file=sources, clock="chain"
        )
        out.print(f"[bold]local chain[/] {local.rpc_url} (chain id {local.chain_id})")
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        if keep_running:
            start_detached(local, settings.state_dir)
            _demo_story(settings, serve_dashboard, port)
            out.print(f"anvil keeps running at {local.rpc_url}; stop it with `navpub chain stop`")
            return
        with running_anvil(local, log_path=settings.state_dir / "anvil.log"):
            _demo_story(settings, serve_dashboard, port)
        out.print("anvil stopped (use --keep-running to keep it)")
    finally:
        rates.close()


def _demo_story(settings: Settings, serve_dashboard: bool, port: int) -> None:
    _deploy(settings, demo=True, engine=None)
    _nav_preview(settings)
    _demo_publish(settings)
    if serve_dashboard:
        out.rule("Dashboard")
        serve_app(settings, "127.0.0.1", port, on_ready=_announce)


def _announce(url: str) -> None:
    out.print(f"dashboard: [bold]{url}[/]  API: {url}docs  (Ctrl-C stops)")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on", min=1, max=65535)] = 8000,
) -> None:
    """Serve the JSON API (/api, /docs), /metrics and the dashboard page until Ctrl-C."""
    settings = load_settings()
    check_port_free(host, port)
    serve_app(settings, host, port, on_ready=_announce)


@app.command()
def price(
    asset: Annotated[str, typer.Argument(help="Asset symbol (BTC) or FX rate (FX:ZAR)")],
    json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Show every source's quote for ASSET, the dropped ones and why, the median and the confidence."""
    engine = NavEngine.from_settings(load_settings())
    agg, resolved = engine.price(asset)
    if json:
        sys.stdout.write(price_model(agg, resolved).model_dump_json(indent=2) + "\n")
    else:
        render_price(out, agg, resolved)


@app.command()
def nav(
    fund: Annotated[list[int], typer.Option(help="Fund id (repeatable)")],
    json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
    emergency: Annotated[bool, typer.Option(help="Decide as an emergency trigger would")] = False,
) -> None:
    """Compute a fund's NAV with its full breakdown and the decision, without publishing or recording."""
    engine = NavEngine.from_settings(load_settings())
    check_funds(engine.vault, fund)
    cycle = engine.run(fund, "emergency" if emergency else "manual", persist=False)
    if json:
        payload = [nav_model(cycle, f).model_dump(mode="json") for f in cycle.funds]
        sys.stdout.write(dumps(payload, indent=2) + "\n")
    else:
        for f in cycle.funds:
            render_nav(out, cycle, f)


def _demo_publish(settings: Settings) -> None:
    """The keeper through simulated hours, then every fund's state and the gas spent."""
    story = Story(settings, out)
    story.run()
    out.rule("Where every fund stands")
    _status(settings, as_json=False)
    report = ledger(story.publisher.store.publications())
    out.print(f"gas: {report.gas:,} for {report.updates} NAV updates in {report.transactions} transaction(s)")


def _nav_preview(settings: Settings) -> None:
    """Every fund's NAV as the engine computes it now (nothing published or recorded)."""
    out.rule("NAV engine preview")
    engine = NavEngine.from_settings(settings)
    cycle = engine.run(None, "manual", persist=False)
    for f in cycle.funds:
        render_nav(out, cycle, f)


@app.command()
def publish(
    fund: Annotated[
        list[int] | None, typer.Option(help="Only these fund ids (repeatable; default: all)")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Publish even a change below 1 % (never a held jump)")
    ] = False,
    json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Run one cycle now: reconcile the outbox, compute, and publish what passes the guard."""
    publisher = Publisher.from_settings(load_settings())
    if fund:
        check_funds(publisher.engine.vault, fund)
    outcomes = publisher.cycle(fund, force=force, trigger="manual")
    if json:
        sys.stdout.write(dumps([publish_model(o).model_dump(mode="json") for o in outcomes], indent=2) + "\n")
    else:
        render_publish(out, outcomes)


@app.command()
def gas(json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False) -> None:
    """Gas spent per fund and in total, and the monthly projection beside the seed's budget."""
    settings = load_settings()
    engine = NavEngine.from_settings(settings)
    report, projection = gas_overview(engine)
    if json:
        sys.stdout.write(gas_model(report, projection, settings.cadence_s).model_dump_json(indent=2) + "\n")
    else:
        render_gas(out, report, projection, settings.cadence_s)


def _positive_seconds(value: float) -> float:
    # A zero, negative or NaN tick would spin the loop without pause (or not wait at all).
    if not math.isfinite(value) or value <= 0:
        raise typer.BadParameter(f"{value} is not a positive number of seconds")
    return value


@app.command()
def keeper(
    tick: Annotated[float, typer.Option(help="Seconds between ticks", callback=_positive_seconds)] = TICK_S,
    http_port: Annotated[
        int | None,
        typer.Option(help="Serve /health and /metrics on this port (127.0.0.1)", min=1, max=65535),
    ] = None,
    json_logs: Annotated[bool, typer.Option("--json-logs", help="One JSON object per log line")] = False,
) -> None:
    """Run until SIGTERM/SIGINT: hourly (or 15-minute) publication, emergency publish on vault activity."""
    setup_logging(json_lines=json_logs)
    k = Keeper(Publisher.from_settings(load_settings()), tick_s=tick)
    if http_port is not None:
        serve_http(k, "127.0.0.1", http_port)
        out.print(
            f"health: http://127.0.0.1:{http_port}/health  metrics: http://127.0.0.1:{http_port}/metrics"
        )
    out.print(f"keeper running (tick {tick} s); SIGTERM or Ctrl-C stops it after the tick in flight")
    k.run()


@app.command()
def trigger(fund: Annotated[int, typer.Option(help="Fund whose NAV to publish now")]) -> None:
    """Emergency publish for one fund: handed to the running keeper, or run here when none runs."""
    publisher = Publisher.from_settings(load_settings())
    check_funds(publisher.engine.vault, [fund])
    pid = running_keeper(publisher)
    if pid is not None:
        publisher.store.add_trigger(fund, publisher.engine.clock())
        out.print(f"trigger for fund {fund} handed to the running keeper (pid {pid})")
        return
    render_publish(out, publisher.cycle([fund], trigger="emergency", emergency={fund}))


@app.command()
def verify(
    fund: Annotated[int, typer.Option(help="Fund whose published NAV to check")],
    reported: Annotated[
        str | None, typer.Option(help="An external statement's figure in USD (custodian, exchange)")
    ] = None,
    tolerance: Annotated[
        str, typer.Option(help="Allowed difference: USD (5) or relative to the NAV (0.1%)")
    ] = "5",
    basis: Annotated[
        str, typer.Option(help="What --reported is compared with: nav, or net (collateral − borrowed)")
    ] = "nav",
    json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Recompute a fund's NAV independently and reconcile it with the published one: PASS or FAIL."""
    from publisher.verify import parse_tolerance, render_verify, verify_fund

    engine = NavEngine.from_settings(load_settings())
    check_funds(engine.vault, [fund])
    result = verify_fund(engine, fund, reported=reported, tolerance=parse_tolerance(tolerance), basis=basis)
    if json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    else:
        render_verify(out, result)
    if not result.passed:
        raise typer.Exit(1)


@app.command()
def approve(
    fund: Annotated[int, typer.Option(help="Fund id whose held NAV to approve")],
    by: Annotated[str, typer.Option(help="Who approves (recorded with the report)")] = "operator",
) -> None:
    """Approve a fund's held NAV (a jump with no activity): it becomes pending, to be published."""
    settings = load_settings()
    store = Store.for_settings(settings)
    report = store.approve(fund, by, int(time.time()))
    out.print(
        f"approved report {report.id} of fund {fund}: NAV {fmt_usd(report.nav or 0)} ({report.reason}); "
        "it is published by the next publish cycle",
        soft_wrap=True,
    )


@app.command()
def correct(
    fund: Annotated[int, typer.Option(help="Fund id to correct")],
    nav: Annotated[str, typer.Option(help="The hand-computed NAV in USD, exact (e.g. 690000.25)")],
    reason: Annotated[str, typer.Option(help="Why, logged on chain in NAVCorrected")],
    reset_mark: Annotated[
        bool,
        typer.Option("--reset-mark", help="Also set the per-share high-water mark to this NAV per share"),
    ] = False,
) -> None:
    """Publish a hand-computed NAV as a guardian (the seed's "Recalculate manually"), signed with
    the guardian's own key; --reset-mark repairs a high-water mark a bad NAV pushed up."""
    settings = load_settings()
    c = correct_nav(settings, fund, parse_nav(nav), reason, reset_mark=reset_mark)
    mark = ""
    if c.old_mark is not None and c.new_mark is not None:
        mark = f"; high-water mark reset from ${usd_str(c.old_mark)} to ${usd_str(c.new_mark)} a share"
    out.print(
        f"corrected fund {c.fund_id}: NAV {fmt_usd(c.nav)} (${usd_str(c.nav_per_share)} a share) as of "
        f"{c.as_of}, by guardian {c.guardian} in {c.tx_hash}{mark}",
        soft_wrap=True,
    )


@app.command("rotate-engine")
def rotate_engine_command(
    new: Annotated[str, typer.Option("--new", help="Address of the new NAV engine key")],
) -> None:
    """Rotate the NAV engine key, signed with the admin's key: settle the old key's transactions,
    grant the new key, revoke the old one, update deployment.json (stop the keeper first)."""
    settings = load_settings()
    r = rotate_engine(settings, new)
    revoked = f"revoked {r.old} in {r.revoke_tx}" if r.revoke_tx else f"{r.old} held no role any more"
    out.print(
        f"NAV engine rotated: granted {r.new} in {r.grant_tx}; {revoked}; {r.settled} publication(s) of "
        f"the old key settled, {r.waiting} NAV(s) waiting in the outbox for the new key. Next: set "
        "NAVPUB_KEYSTORE (or NAVPUB_PRIVATE_KEY) to the new key and start the keeper.",
        soft_wrap=True,
    )


def _local_chain(settings: Settings) -> AnvilConfig:
    local = settings.anvil()
    if local is None:
        raise NavPubError("no anvil.env found: run from the repository or set NAVPUB_ANVIL_ENV")
    return local


@chain_app.command("start")
def chain_start() -> None:
    """Start anvil in the background with anvil.env's settings."""
    settings = load_settings()
    local = _local_chain(settings)
    node = start_detached(local, settings.state_dir)
    out.print(f"anvil running at {local.rpc_url} (pid {node.process.pid}, log {node.log_path})")


@chain_app.command("stop")
def chain_stop() -> None:
    """Stop the anvil started by `navpub chain start`."""
    settings = load_settings()
    local = _local_chain(settings)
    if stop_detached(local, settings.state_dir):
        out.print("anvil stopped")
    else:
        out.print("no anvil was running from this state directory")


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: runs the app, turning NavPubError into one readable line."""
    try:
        # Without standalone mode click returns a typer.Exit's code instead of exiting.
        rc = app(args=argv, standalone_mode=False)
    except NavPubError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 2
    except typer.Abort:
        err.print("aborted")
        return 130
    except USAGE_ERRORS as exc:  # usage errors carry their own exit code (2) and message
        exc.show()  # type: ignore[attr-defined]
        return int(exc.exit_code)  # type: ignore[attr-defined]
    except OSError as exc:
        # The environment refused a file the settings name (a state directory that is a file,
        # a path too long, no permission, a full disk): one line naming the file, not a traceback.
        where = f"{exc.filename}: " if exc.filename else ""
        err.print(f"[red]error:[/] {where}{exc.strerror or exc}", highlight=False, soft_wrap=True)
        return 2
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(main())
