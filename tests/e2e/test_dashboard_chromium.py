"""The dashboard in a real Chromium against `navpub serve`'s app on a real anvil: the NAV and
its age, the AUM donut, the history with the HWM, the currency switch, and the banners and
"FX unavailable" state when prices and rates go stale. A screenshot is saved to
test-artifacts/dashboard.png for a person to look at."""

from __future__ import annotations

import os
import shutil
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Page, sync_playwright

from publisher.api import create_app
from publisher.artifacts import REPO_ROOT
from publisher.config import Settings
from publisher.localchain import AnvilNode
from publisher.money import usd_str
from publisher.publish import Publisher
from tests.chainops import advance
from tests.demo_env import ZAR, fx_settings, market
from tests.httpserver import LocalHTTPServer

pytestmark = [pytest.mark.anvil, pytest.mark.browser]

ARTIFACTS = REPO_ROOT / "test-artifacts"
# Flags for a headless Chromium in a container without network access: no sandbox (no user
# namespaces there), no GPU, and none of the background calls home it would make.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    for name in (os.environ.get("NAVPUB_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and (found := shutil.which(name)):
            return found
    return None


@pytest.fixture
def chromium() -> str:
    """Chromium's path; skips without it, but fails in CI, where .ci/run installs it."""
    pytest.importorskip("playwright.sync_api")
    path = chromium_path()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("no chromium on PATH (set NAVPUB_CHROMIUM); .ci/run installs it with apt")
        pytest.skip("no chromium on PATH (set NAVPUB_CHROMIUM)")
    return path


@contextmanager
def open_page(chromium: str, url: str) -> Iterator[tuple[Page, list[str]]]:
    """A page at `url` and the script errors it raises. Opened after the chain work: Playwright's
    sync API holds an asyncio loop on this thread, and a publish cycle runs its own."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 1500})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            yield page, errors
        finally:
            browser.close()


@dataclass
class Served:
    url: str
    settings: Settings
    pub: Publisher


@pytest.fixture
def served(
    anvil: AnvilNode, demo_chain: Path, http_server: LocalHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Served]:
    """The app on a socket that listens before the server thread starts: the browser's first
    request waits in the backlog instead of racing the startup."""
    settings = fx_settings(anvil.rpc_url, demo_chain, http_server, monkeypatch)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield Served(
            f"http://127.0.0.1:{sock.getsockname()[1]}/", settings, Publisher.from_settings(settings)
        )
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def cents(raw: int, rate: Decimal = Decimal(1)) -> str:
    """How the page shows an 18-decimal USD amount: grouped, cut to the cent."""
    return f"{(Decimal(raw).scaleb(-18) * rate).quantize(Decimal('0.01'), rounding=ROUND_DOWN):,}"


def chart(page: Page, canvas_id: str, expr: str) -> object:
    return page.evaluate(f"Chart.getChart(document.getElementById('{canvas_id}')).{expr}")


def test_dashboard_shows_nav_donut_history_and_switches_currency(chromium: str, served: Served) -> None:
    pub, settings = served.pub, served.settings
    pub.cycle()
    advance(pub.engine.w3, 1800)
    market(pub, settings, {"ETH": Decimal("1.05")})
    pub.cycle()
    nav, _as_of, rnd, _flags, _estimated, hwm, *_ = pub.engine.vault.functions.navState(1).call()
    with open_page(chromium, served.url) as (page, errors):
        check_fund_1(page, errors, nav, rnd, hwm)


def check_fund_1(page: Page, errors: list[str], nav: int, rnd: int, hwm: int) -> None:
    nav_value = page.get_by_test_id("nav-value")
    nav_value.wait_for()
    page.wait_for_function("document.querySelector('[data-testid=nav-value]').textContent.startsWith('$')")

    assert nav_value.text_content() == f"${cents(nav)}"
    assert page.get_by_test_id("nav-age").text_content().startswith(("0 s ago", "1 s ago", "2 s ago"))
    assert page.get_by_test_id("nav-stale").is_hidden()
    assert f"round {rnd}" in page.get_by_test_id("nav-card").text_content()
    # The mark is per share, shown to 4 places cut from the exact USD.
    assert page.get_by_test_id("hwm").text_content() == f"${usd_str(hwm)[: usd_str(hwm).index('.') + 5]}"
    for banner in ("held", "estimated", "breaker", "paused", "failed"):
        assert page.get_by_test_id(f"banner-{banner}").is_hidden(), banner

    # The donut's slices are fund 1's assets, in the API's order, valued exactly.
    api = page.evaluate("fetch('api/funds/1').then(r => r.json())")
    assets = [a["asset"] for a in api["valuation"]["assets"]]
    assert sorted(assets) == ["BTC", "ETH", "USDC"]
    assert chart(page, "aum-donut", "data.labels") == assets
    assert chart(page, "aum-donut", "data.datasets[0].data") == [
        float(a["value"]["usd"]) for a in api["valuation"]["assets"]
    ]
    assert page.locator("#positions-body tr").count() == 3
    assert page.get_by_test_id("position-ETH").is_visible()

    # History: both published NAVs and the HWM as it stood at each.
    labels = chart(page, "nav-history", "data.datasets.map(d => d.label)")
    assert labels == ["NAV per share", "High-water mark"]
    assert chart(page, "nav-history", "data.datasets[1].data[1]") == float(usd_str(hwm))
    assert len(chart(page, "nav-history", "data.datasets[0].data")) == 2  # type: ignore[arg-type]

    page.get_by_test_id("currency-select").select_option("ZAR")
    page.wait_for_function("document.querySelector('[data-testid=nav-value]').textContent.startsWith('R')")
    assert nav_value.text_content() == f"R{cents(nav, ZAR)}"
    assert page.get_by_test_id("nav-usd").text_content() == f"${cents(nav)} USD"
    assert "1 USD = 18.245 ZAR" in page.get_by_test_id("fx-status").text_content()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    # The choice survives a reload.
    page.reload()
    page.wait_for_function("document.querySelector('[data-testid=nav-value]').textContent.startsWith('R')")
    assert errors == []


def test_stale_nav_and_fx_unavailable_held_banner(chromium: str, served: Served) -> None:
    pub, settings = served.pub, served.settings
    pub.cycle()
    advance(pub.engine.w3, 600)
    market(pub, settings, {"XAUT": Decimal("1.6")})  # +37 % on fund 2 with no activity: held
    (_, o2, _) = pub.cycle()
    assert o2.decision == "held"
    # Over an hour later: the NAVs are past their heartbeat and the ZAR rate past the cache limit.
    advance(pub.engine.w3, settings.cache_max_age_s + 60)
    nav2 = pub.engine.vault.functions.navState(2).call()[0]
    with open_page(chromium, served.url + "#fund-2") as (page, errors):
        check_fund_2_stale(page, errors, o2.nav, nav2)


def check_fund_2_stale(page: Page, errors: list[str], held_nav: int, nav2: int) -> None:
    page.get_by_test_id("nav-value").wait_for()
    page.wait_for_function(
        "document.querySelector('[data-testid=fund-title]').textContent.startsWith('Fund #2')"
    )

    held = page.get_by_test_id("banner-held")
    assert held.is_visible()
    assert f"${cents(held_nav)}" in held.text_content() and "navpub approve --fund 2" in held.text_content()
    stale = page.get_by_test_id("nav-stale")
    assert stale.is_visible() and "heartbeat" in stale.text_content()
    assert "held" in page.get_by_test_id("fund-tab-2").text_content()

    page.get_by_test_id("currency-select").select_option("ZAR")
    page.wait_for_function(
        "document.querySelector('[data-testid=fx-status]').textContent.includes('unavailable')"
    )
    assert "FX unavailable: the last ZAR rate is" in page.get_by_test_id("fx-status").text_content()
    # No rate is made up: amounts stay in USD.
    assert page.get_by_test_id("nav-value").text_content() == f"${cents(nav2)}"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-stale.png"), full_page=True)
    assert errors == []
