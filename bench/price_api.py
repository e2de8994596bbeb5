"""Two HTTP price APIs on 127.0.0.1 for the benchmark, each counting the requests it serves.

The engine reads them through the product's generic HTTP adapter, configured in a sources
file exactly as an operator would configure a real API (publisher/registry.py); the naive
cycle (bench/naive.py) asks them one request at a time.

    .venv/bin/python -m bench.cycle        # starts them, then measures (bench/cycle.py)
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

from publisher.localhttp import LocalJsonServer

PATH = "/v1/price/"
# Quoted to 8 decimals, as price APIs usually are.
QUANTUM = Decimal("0.00000001")


class PriceServer:
    """``GET /v1/price/<SYMBOL>`` → ``{"symbol": "BTC", "price": "42012.60000000"}``: the
    set mid price skewed by `skew` (two APIs never quote exactly alike); 404 for an unknown
    symbol. `requests` counts every request served."""

    def __init__(self, name: str, skew: Decimal) -> None:
        self.name = name
        self.skew = skew
        self.prices: dict[str, Decimal] = {}
        self._lock = threading.Lock()
        self._requests = 0
        self._server = LocalJsonServer(self._answer, f"price-{name}")
        self.url = self._server.url

    def _answer(self, path: str) -> tuple[int, bytes] | None:
        with self._lock:
            self._requests += 1
        symbol = path.removeprefix(PATH)
        price = self.quote(symbol) if path.startswith(PATH) else None
        if price is None:
            return None
        return 200, json.dumps({"symbol": symbol, "price": str(price)}).encode()

    @property
    def requests(self) -> int:
        with self._lock:
            return self._requests

    def quote(self, symbol: str) -> Decimal | None:
        with self._lock:
            mid = self.prices.get(symbol)
        return None if mid is None else (mid * (1 + self.skew)).quantize(QUANTUM, rounding=ROUND_DOWN)

    def set_prices(self, prices: Mapping[str, Decimal]) -> None:
        with self._lock:
            self.prices = dict(prices)

    def close(self) -> None:
        self._server.close()


def write_sources_file(
    target: Path, servers: Sequence[PriceServer], symbols: Sequence[str], *, router: bool
) -> Path:
    """A sources file (NAVPUB_SOURCES_FILE) pricing every symbol from every server through the
    generic adapter, plus the router's feeds and, with `router`, the router's own aggregate."""
    lines = ["# Written by bench/cycle.py: the benchmark's local price APIs.", ""]
    for s in servers:
        lines += [f"[http_sources.{s.name}]", 'adapter = "generic"', f'base_url = "{s.url}"', ""]
    for symbol in symbols:
        refs = ", ".join(
            f'{{ source = "{s.name}", instrument = "{symbol}", path = "{PATH}{{instrument}}", '
            'price_field = "price" }'
            for s in servers
        )
        lines += [f"[assets.{symbol}]", f"router = {'true' if router else 'false'}", f"http = [{refs}]", ""]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(lines), encoding="utf-8")
    return target
