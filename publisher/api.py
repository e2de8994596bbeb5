"""`navpub serve`: the JSON API (FastAPI) and the dashboard page it serves.

Everything is read on request: the published NAVs from the chain (one `getFundSnapshots`
call), the last computed valuations, prices, FX rates and publications from the store the
keeper writes. Nothing here writes to the store or sends a transaction. Money fields are
exact decimal strings (`Money`, `Amount`), never JSON numbers.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from publisher._exceptions import InputError, NavPubError, RpcUnreachable, UnknownFund
from publisher.config import Settings
from publisher.engine import NavEngine
from publisher.gas import gas_overview
from publisher.metrics import views_exposition
from publisher.output import GasOut, gas_model
from publisher.snapshot import ChainSnapshot, read_snapshot
from publisher.status import KeeperOut, keeper_status
from publisher.verify import VerifyResult, parse_tolerance, verify_fund
from publisher.views import (
    USD,
    Display,
    FundsView,
    FundView,
    FxOut,
    HistoryView,
    currencies,
    funds_view,
    fx_view,
    history_view,
)

WEB_DIR = Path(__file__).parent / "web"
T = TypeVar("T")


class ErrorOut(BaseModel):
    detail: str


class ChainOut(BaseModel):
    ok: bool
    chain_id: int
    block_number: int | None
    block_timestamp: int | None
    error: str | None


class HealthOut(BaseModel):
    """Healthy: the chain answers, the keeper is alive, no fund overdue, no breaker open."""

    healthy: bool
    chain: ChainOut
    keeper: KeeperOut | None


class CurrenciesOut(BaseModel):
    default: str
    currencies: list[str]


Currency = Annotated[str, Query(description="Display currency: USD or one with an FX source (ZAR)")]
ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorOut, "description": "A bad parameter, named in `detail`"},
    404: {"model": ErrorOut, "description": "No such fund"},
    503: {"model": ErrorOut, "description": "The chain cannot be read"},
}


def create_app(settings: Settings, engine: NavEngine | None = None) -> FastAPI:
    """The app for one deployment; `engine` defaults to one built from `settings`."""
    eng = engine or NavEngine.from_settings(settings)
    fx_codes = sorted(eng.registry.fx)
    default_currency = settings.display_currency.upper()
    app = FastAPI(
        title="navpub",
        summary="Fund NAVs computed from vault holdings and several price oracles, as published on chain.",
        version="1",
    )

    @app.exception_handler(UnknownFund)
    def _unknown_fund(_: Request, exc: UnknownFund) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(RpcUnreachable)
    def _rpc(_: Request, exc: RpcUnreachable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(NavPubError)
    def _bad_input(_: Request, exc: NavPubError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    def chain_read(fn: Callable[[], T], what: str) -> T:
        return eng.rpc_call(fn, what)

    def snapshot(fund_ids: list[int] | None = None) -> ChainSnapshot:
        if fund_ids:
            count = chain_read(lambda: eng.vault.functions.fundCount().call(), "fund count")
            for fid in fund_ids:
                if not 1 <= fid <= count:
                    raise UnknownFund(f"no such fund {fid} (this vault has funds 1 to {count})")
        return chain_read(lambda: read_snapshot(eng.w3, eng.vault, fund_ids), "fund snapshot")

    def view(fund_ids: list[int] | None, currency: str | None) -> FundsView:
        snap = snapshot(fund_ids)
        now = max(eng.clock(), snap.block_timestamp)
        code = currency or default_currency
        return funds_view(eng.deployment, snap, eng.store, settings, fx_codes, code, now)

    # -- pages ------------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static")

    # -- funds ------------------------------------------------------------------------------

    @app.get("/api/funds", responses=ERRORS)
    def list_funds(currency: Currency | None = None) -> FundsView:
        """Every fund: published NAV and its age, peak and drawdown, AUM slices, collateral,
        liabilities, oracle health, banners (held, estimated, breaker) and the last transaction."""
        return view(None, currency)

    @app.get("/api/funds/{fund_id}", responses=ERRORS)
    def get_fund(fund_id: int, currency: Currency | None = None) -> FundView:
        """One fund (see /api/funds)."""
        return view([fund_id], currency).funds[0]

    @app.get("/api/funds/{fund_id}/history", responses=ERRORS)
    def get_history(
        fund_id: int,
        currency: Currency | None = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
    ) -> HistoryView:
        """The fund's published NAVs, oldest first, with the high-water mark as it stood then."""
        snap = snapshot([fund_id])
        now = max(eng.clock(), snap.block_timestamp)
        fx = fx_view(eng.store, settings, currency or default_currency, fx_codes, now)
        return history_view(eng.store, fund_id, Display(fx), limit)

    @app.get("/api/funds/{fund_id}/verify", responses=ERRORS)
    def get_verify(
        fund_id: int,
        reported: Annotated[str | None, Query(description="An external statement's USD figure")] = None,
        tolerance: Annotated[str, Query(description="USD (5) or relative (0.1%)")] = "5",
        basis: Annotated[Literal["nav", "net"], Query(description="Compared with `reported`")] = "nav",
    ) -> VerifyResult:
        """Recompute the NAV independently and reconcile it with the published one (and the
        statement): PASS or FAIL with the per-asset breakdown."""
        snapshot([fund_id])
        tol = parse_tolerance(tolerance)
        return verify_fund(eng, fund_id, reported=reported, tolerance=tol, basis=basis)

    # -- the rest ---------------------------------------------------------------------------

    @app.get("/api/fx", responses=ERRORS)
    def get_fx(currency: Currency | None = None) -> FxOut:
        """The display currency's rate (units per USD) from the last cycle, or why there is none."""
        now = eng.clock()
        return fx_view(eng.store, settings, currency or default_currency, fx_codes, now)

    @app.get("/api/currencies")
    def get_currencies() -> CurrenciesOut:
        """The display currencies: USD and every currency with an FX source."""
        known = currencies(fx_codes)
        return CurrenciesOut(default=default_currency if default_currency in known else USD, currencies=known)

    @app.get("/api/gas", responses=ERRORS)
    def get_gas() -> GasOut:
        """The gas ledger per fund and in total, and the monthly projection beside the seed's budget."""
        report, projection = gas_overview(eng)
        return gas_model(report, projection, settings.cadence_s)

    @app.get("/api/health", responses={503: {"model": HealthOut}})
    def get_health() -> JSONResponse:
        """200 when the chain answers, the keeper is alive, no fund is overdue and no breaker is
        open; 503 otherwise, with the reasons."""
        try:
            snap = snapshot()
        except RpcUnreachable as exc:
            chain = ChainOut(
                ok=False,
                chain_id=eng.deployment.chain_id,
                block_number=None,
                block_timestamp=None,
                error=str(exc),
            )
            health = HealthOut(healthy=False, chain=chain, keeper=None)
        else:
            keeper = keeper_status(settings, eng.store, snap)
            chain = ChainOut(
                ok=True,
                chain_id=eng.deployment.chain_id,
                block_number=snap.block_number,
                block_timestamp=snap.block_timestamp,
                error=None,
            )
            healthy = keeper.alive and not keeper.funds_overdue and not keeper.breakers_open
            health = HealthOut(healthy=healthy, chain=chain, keeper=keeper)
        return JSONResponse(health.model_dump(mode="json"), status_code=200 if health.healthy else 503)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        content, content_type = views_exposition(view(None, USD), eng.store.publications())
        return Response(content, media_type=content_type)

    return app


def serve(settings: Settings, host: str, port: int, *, on_ready: Callable[[str], None] | None = None) -> None:
    """Serves the app until Ctrl-C / SIGTERM (uvicorn)."""
    import uvicorn

    app = create_app(settings)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning")
    server = uvicorn.Server(config)
    if on_ready is not None:
        on_ready(f"http://{host}:{port}/")
    server.run()


def check_port_free(host: str, port: int) -> None:
    """A clear error now rather than uvicorn's after the demo has run."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise InputError(
                f"--port {port}: cannot listen on {host}:{port} ({exc.strerror}); pick another"
            ) from None
