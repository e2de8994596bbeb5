"""HTTP price APIs, queried concurrently through httpx, each request bounded by its source's timeout.

Adapters and the exact request each makes (``{base}`` is the source's ``base_url`` without a
trailing slash, ``{instrument}`` the ref's instrument, percent-encoded in paths):

- coinbase: ``GET {base}/v2/prices/{instrument}/spot``
  ``{"data": {"amount": "42000.12", "base": "BTC", "currency": "USD"}}`` → ``data.amount``.
  Coinbase sends no timestamp: the fetch time is used.
- kraken: ``GET {base}/0/public/Ticker?pair={instrument}``
  ``{"error": [], "result": {"XXBTZUSD": {"c": ["42000.1", "0.001"], ...}}}`` → ``c[0]`` (last
  trade price) of the single result entry; a non-empty ``error`` list is a failure.
- binance: ``GET {base}/api/v3/ticker/price?symbol={instrument}``
  ``{"symbol": "BTCUSDT", "price": "42000.00000000"}`` → ``price``; an error body
  ``{"code": -1121, "msg": "Invalid symbol."}`` (or another symbol than asked) is a failure.
- coingecko:
  ``GET {base}/api/v3/simple/price?ids={instrument}&vs_currencies=usd&include_last_updated_at=true``
  ``{"bitcoin": {"usd": 42000.5, "last_updated_at": 1711111111}}`` → ``usd`` and
  ``last_updated_at`` (JSON numbers; without a timestamp the fetch time is used).
- generic: ``GET {base}{path}`` with ``{instrument}`` in the ref's ``path`` replaced; the price
  is at the dot path ``price_field`` (``"data.rates.ZAR"``, ``"result.0.price"``: integer steps
  index lists), the timestamp at ``time_field`` when one is configured (then it must be there).

Numbers: bodies are decoded with ``json.loads(parse_float=Decimal, parse_int=int)``, so no
float ever exists. Prices may be JSON numbers or decimal strings ("42000.10"); booleans, NaN
and infinities (as JSON literals or strings), empty strings, zero, negatives, values beyond
``MAX_PRICE_E18`` and numbers of more than ``MAX_DIGITS`` digits are refused. The 18-decimal
price is the exact value truncated toward zero (:func:`to_e18`).

``invert=True`` (a pair quoted the other way round): price = 1 / value, computed with 40
significant digits truncated toward zero, then truncated to 18 decimals like every price.
For any result below 10^22 that is exactly the truncation of the true quotient.

FX rates for display come through the same mechanism: a ref whose asset is ``"FX:<CCY>"``
means "units of <CCY> per 1 USD" (e.g. ``FX:ZAR`` = 18.25). A source quoting USD per ZAR
(0.0548) is read with ``invert=True``.

Timestamps are unix seconds (JSON number or decimal string, a fraction truncated); values
above 10^12 are milliseconds and are divided by 1000; anything else not in (0, 10^11] seconds
is a failure. Freshness is not judged here: every
Quote carries its source's ``max_age_s`` and the aggregation decides.

Failures: every problem (HTTP status >= 400, 429 rate limiting, redirects, timeouts, refused
connections, truncated, oversized (> 1 MiB) or non-JSON bodies, missing or malformed fields,
an unknown source id)
becomes a :class:`~publisher.quotes.SourceFailure` whose reason says what was wrong;
:func:`fetch_quotes` never raises for a source's misbehaviour. Request headers (they may hold
API keys) never appear in a reason.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from decimal import ROUND_DOWN, Context, Decimal, localcontext
from typing import Annotated, Any, Literal
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from publisher._exceptions import NavPubError
from publisher.quotes import BadPrice, Quote, SourceFailure, SourceResult, decimal_to_e18

Adapter = Literal["coinbase", "kraken", "binance", "coingecko", "generic"]

# A price answer is a few hundred bytes; anything past a megabyte is a misbehaving server.
MAX_PRICE_BODY_BYTES = 1 << 20

# No real price or amount has more significant digits; the cap keeps every Decimal
# operation below exact and fast, whatever a server sends.
MAX_DIGITS = 100

# Wide enough that scaling a number of at most MAX_DIGITS digits by 10^18 never rounds
# (the default context keeps 28 digits and would round half-even).
EXACT_CONTEXT = Context(prec=2 * MAX_DIGITS, rounding=ROUND_DOWN)

# 1/x for invert=True: 40 significant digits, truncated toward zero.
INVERT_CONTEXT = Context(prec=40, rounding=ROUND_DOWN)

# Above this a "unix seconds" value is milliseconds (10^12 s would be the year 33658).
MS_THRESHOLD = 10**12
# Seconds beyond this (year 5138) are neither seconds nor milliseconds of a real clock.
MAX_TIMESTAMP_S = 10**11

_DECIMAL_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NON_FINITE = frozenset({"nan", "snan", "inf", "infinity"})
_INDEX_RE = re.compile(r"[0-9]{1,9}")
_ID_RE = re.compile(r"[A-Za-z0-9_.-]+")


# -- errors ----------------------------------------------------------------------------


class SourceError(NavPubError):
    """A source gave no usable answer; the message is the reason shown to the operator."""


class FetchError(SourceError):
    """The request itself failed: no connection, timeout, HTTP error status, cut-off body."""


class PayloadError(SourceError):
    """The answer arrived but holds no usable value (not JSON, missing or malformed field)."""


# -- configuration ---------------------------------------------------------------------


def check_http_url(value: str, *, base: bool) -> str:
    """An absolute http(s) URL; a `base` (paths get appended) has no query and loses its trailing slash."""
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ValueError(f"{value!r} is not a URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"{value!r} is not an http(s) URL with a host")
    if url.fragment:
        raise ValueError(f"{value!r} must not have a #fragment")
    if not base:
        return value
    if url.query:
        raise ValueError(f"{value!r} must not have a ?query (paths are appended to it)")
    return value.rstrip("/")


def check_dot_path(value: str | None) -> str | None:
    """A dot path with no empty step ("data.rates.ZAR", "result.0.price")."""
    if value is not None and (not value or any(not part for part in value.split("."))):
        raise ValueError(f"{value!r} is not a dot path (empty step)")
    return value


class HttpSourceConfig(BaseModel):
    """One HTTP price API: where it is, how to read it, and how far to trust its answers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description='Stable id, e.g. "coinbase"; quotes are labelled "http:<id>"')
    adapter: Adapter
    base_url: str = Field(description="Scheme, host and optional path prefix; no trailing slash needed")
    # 5 s: a healthy price API answers in well under a second; a slower one is not
    # worth holding up a whole cycle for.
    timeout_s: Annotated[float, Field(gt=0)] = 5.0
    # 5 minutes: spot APIs update every few seconds, so anything older is a stuck source.
    max_age_s: Annotated[int, Field(gt=0)] = 300
    # These APIs report no confidence of their own: the operator states how much to trust them.
    confidence: Annotated[int, Field(ge=0, le=100)] = 100
    # repr=False: headers often carry API keys, and models end up in logs.
    headers: dict[str, str] = Field(default_factory=dict, repr=False)

    @field_validator("id")
    @classmethod
    def _check_id(cls, v: str) -> str:
        if not _ID_RE.fullmatch(v):
            raise ValueError(f"{v!r}: use letters, digits, '_', '-' or '.' only")
        return v

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, v: str) -> str:
        return check_http_url(v, base=True)


class HttpPriceRef(BaseModel):
    """Which instrument of which HTTP source prices one asset."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = Field(description="An HttpSourceConfig id")
    asset: str = Field(description='Our symbol, e.g. "BTC", or "FX:ZAR" for ZAR per 1 USD')
    instrument: str = Field(description="The source's own id: BTC-USD, XBTUSD, BTCUSDT, bitcoin, ...")
    path: str | None = Field(None, description='generic only: path template, e.g. "/v1/rates/{instrument}"')
    price_field: str | None = Field(
        None, description='generic only: dot path of the price, e.g. "data.rates.ZAR"'
    )
    time_field: str | None = Field(None, description="generic only: dot path of a unix timestamp")
    invert: bool = Field(False, description="price = 1 / value (a pair quoted the other way round)")

    @field_validator("source", "asset", "instrument")
    @classmethod
    def _check_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v

    @field_validator("path")
    @classmethod
    def _check_path(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("/"):
            raise ValueError(f"{v!r} must start with '/' (it is appended to the source's base_url)")
        return v

    @field_validator("price_field", "time_field")
    @classmethod
    def _check_fields(cls, v: str | None) -> str | None:
        return check_dot_path(v)


# -- exact numbers and JSON ---------------------------------------------------------------


def short_repr(value: Any, limit: int = 60) -> str:
    """A short repr of a value for a message (server text can be long)."""
    # Decimals read as numbers ("-1"), not as "Decimal('-1')".
    text = str(value) if isinstance(value, Decimal) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def json_kind(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | Decimal | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def parse_number(value: Any, where: str) -> Decimal:
    """A JSON number or decimal string → exact finite Decimal; PayloadError naming `where` otherwise."""
    if isinstance(value, bool):
        # bool is an int subclass: without this check true would read as 1.
        raise PayloadError(f"{where}: expected a number, got a boolean ({str(value).lower()})")
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, Decimal):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise PayloadError(f"{where}: empty string, expected a number")
        if text.lstrip("+-").lower() in _NON_FINITE:
            raise PayloadError(f"{where}: {short_repr(value)} is not a finite number")
        if not _DECIMAL_RE.fullmatch(text):
            raise PayloadError(f"{where}: {short_repr(value)} is not a decimal number")
        number = Decimal(text)
    elif isinstance(value, float):
        # Only reachable when a caller hands in a payload decoded without parse_float=Decimal.
        raise PayloadError(f"{where}: got a binary float {value!r}; decode JSON with parse_float=Decimal")
    elif value is None:
        raise PayloadError(f"{where}: null, expected a number")
    else:
        raise PayloadError(f"{where}: expected a number, got {json_kind(value)}")
    if not number.is_finite():
        raise PayloadError(f"{where}: {short_repr(value)} is not a finite number")
    if len(number.as_tuple().digits) > MAX_DIGITS or abs(number.adjusted()) > MAX_DIGITS:
        raise PayloadError(f"{where}: {short_repr(value)} is out of any plausible range")
    return number


def to_e18(value: Decimal) -> int:
    """decimal_to_e18 in a context wide enough that it truncates exactly (the default 28 digits round)."""
    with localcontext(EXACT_CONTEXT):
        return decimal_to_e18(value)


def _price(raw: Any, where: str, invert: bool) -> Decimal:
    """A validated positive price from a JSON value, inverted when asked."""
    value = parse_number(raw, where)
    if value <= 0:
        raise PayloadError(f"{where}: {short_repr(raw)} is not positive")
    if invert:
        value = INVERT_CONTEXT.divide(Decimal(1), value)
    try:
        to_e18(value)
    except BadPrice:
        # Positive and finite already, so the value is either too large or too small.
        problem = "is beyond any plausible price" if value > 1 else "is below 1e-18, zero at 18 decimals"
        shown = f"1/{short_repr(raw)} = {value}" if invert else short_repr(raw)
        raise PayloadError(f"{where}: {shown} {problem}") from None
    return value


def parse_timestamp(raw: Any, where: str) -> int:
    """Unix seconds (or milliseconds, > 10^12) as a number or decimal string → whole seconds."""
    number = parse_number(raw, where)
    seconds = int(number)  # toward zero: a fraction of a second does not matter here
    if seconds > MS_THRESHOLD:
        seconds //= 1000
    if not 0 < seconds <= MAX_TIMESTAMP_S:
        raise PayloadError(f"{where}: {short_repr(raw)} is not a unix timestamp (seconds or milliseconds)")
    return seconds


def lookup(payload: Any, path: str, prefix: str = "") -> Any:
    """The value at a dot path; integer steps index lists. PayloadError naming the missing step."""
    node = payload
    done = prefix
    for part in path.split("."):
        here = f"{done}.{part}" if done else part
        if isinstance(node, dict):
            if part not in node:
                raise PayloadError(f"missing field {here!r}")
            node = node[part]
        elif isinstance(node, list):
            if not _INDEX_RE.fullmatch(part):
                raise PayloadError(f"{done or 'the answer'}: is a list, {part!r} is not an index")
            if int(part) >= len(node):
                raise PayloadError(f"missing field {here!r} (list of {len(node)})")
            node = node[int(part)]
        else:
            raise PayloadError(f"{done or 'the answer'}: expected an object or list, got {json_kind(node)}")
        done = here
    return node


def decode_json(body: bytes) -> Any:
    """A response body → JSON with Decimals for every non-integer number; PayloadError otherwise."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise PayloadError(f"answer is not UTF-8 text: {short_repr(body[:40])}") from None
    stripped = text.strip()
    if not stripped:
        raise PayloadError("answer is empty, expected JSON")
    try:
        # parse_constant: NaN / Infinity literals become Decimal NaN / Infinity (refused where
        # a number is read), never a float.
        return json.loads(text, parse_float=Decimal, parse_int=int, parse_constant=Decimal)
    except json.JSONDecodeError as exc:
        snippet = short_repr(" ".join(stripped.split()))
        if stripped.startswith("<"):
            raise PayloadError(f"answer is not JSON but looks like an HTML page: {snippet}") from None
        if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated"):
            raise PayloadError(f"answer is truncated JSON ({exc.msg} at char {exc.pos}): {snippet}") from None
        raise PayloadError(f"answer is not JSON ({exc.msg} at char {exc.pos}): {snippet}") from None
    except (ValueError, RecursionError) as exc:
        # Integers beyond Python's digit limit, or nesting deeper than the parser's stack.
        raise PayloadError(f"answer is not usable JSON: {short_repr(str(exc))}") from None


def _text(value: Any) -> str:
    """A server's message for display on one line: strings as they are (shortened), else a repr."""
    # Whitespace collapsed: a server's newlines must not forge extra lines in our logs.
    text = " ".join(value.split()) if isinstance(value, str) else short_repr(value, 200)
    return text if len(text) <= 200 else text[:199] + "…"


def _error_detail(payload: Any) -> str | None:
    """The message an API put in its error body (Binance, Kraken, Coinbase, CoinGecko, common forms)."""
    if not isinstance(payload, dict):
        return None
    if "msg" in payload:
        code = f" (code {short_repr(payload['code'], 20)})" if "code" in payload else ""
        return f"{_text(payload['msg'])}{code}"
    error = payload.get("error")
    if isinstance(error, list) and error:
        return _text("; ".join(str(e) for e in error))
    if isinstance(error, str) and error:
        return _text(error)
    for container in (error, payload.get("status")):
        if isinstance(container, dict):
            for key in ("message", "error_message"):
                if key in container:
                    return _text(container[key])
    errors = payload.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict) and "message" in errors[0]:
        return _text(errors[0]["message"])
    if "message" in payload:
        return _text(payload["message"])
    return None


# -- the request ---------------------------------------------------------------------------


def make_client() -> httpx.AsyncClient:
    """The client used when the caller passes none: redirects are reported, not followed."""
    return httpx.AsyncClient(headers={"User-Agent": "navpub"}, follow_redirects=False)


def _connect_reason(exc: BaseException) -> str:
    """The operating system's reason behind a connect failure ("Connection refused"), if any."""
    # httpx wraps the OSError twice and says only "All connection attempts failed".
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.errno:
            return os.strerror(seen.errno)
        seen = seen.__cause__ or seen.__context__
    return str(exc) or type(exc).__name__


def _where(url: httpx.URL) -> str:
    """host:port/path of a URL, for messages (no query: it may carry keys; no user info)."""
    port = f":{url.port}" if url.port else ""
    return f"{url.host}{port}{url.path}"


async def get_json(
    client: httpx.AsyncClient,
    url: str,
    *,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout_s: float,
    max_bytes: int,
) -> Any:
    """GET `url` and decode its JSON body exactly; FetchError or PayloadError saying why not."""
    try:
        request = client.build_request(
            "GET", url, params=params, headers=headers, timeout=httpx.Timeout(timeout_s)
        )
    except httpx.InvalidURL as exc:
        raise FetchError(f"cannot request {short_repr(url)}: {exc}") from None
    where = _where(request.url)
    try:
        # httpx's timeout bounds each phase (connect, each read); this bounds the whole exchange,
        # so a server trickling bytes cannot hold the cycle beyond the source's budget.
        async with asyncio.timeout(timeout_s):
            response = await client.send(request, stream=True)
            try:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > max_bytes:
                        raise FetchError(f"answer from {where} is larger than {max_bytes} bytes")
            finally:
                await response.aclose()
    except (TimeoutError, httpx.TimeoutException):
        raise FetchError(f"timed out after {timeout_s:g} s ({where})") from None
    except httpx.ConnectError as exc:
        raise FetchError(f"could not connect to {where}: {_connect_reason(exc)}") from None
    except httpx.RemoteProtocolError as exc:
        raise FetchError(f"connection to {where} broke off before a full answer: {exc}") from None
    except httpx.HTTPError as exc:
        raise FetchError(f"request to {where} failed: {type(exc).__name__}: {exc}") from None

    status = response.status_code
    if 300 <= status < 400:
        location = response.headers.get("Location", "nowhere")
        raise FetchError(f"HTTP {status} redirect from {where} to {short_repr(location)}, not followed")
    try:
        payload = decode_json(bytes(body))
    except PayloadError as exc:
        if status < 400:
            raise PayloadError(f"{exc} ({where})") from None
        payload = None
    if status >= 400:
        label = f"HTTP {status} {httpx.codes.get_reason_phrase(status)}".rstrip()
        if status == 429:
            retry = response.headers.get("Retry-After")
            # Retry-After is seconds or an HTTP date.
            after = "" if not retry else f", retry after {retry}{' s' if retry.isdigit() else ''}"
            label = f"rate-limited ({label}{after})"
        detail = _error_detail(payload)
        raise FetchError(f"{label} from {where}{f': {detail}' if detail else ''}")
    return payload


# -- adapters: pure functions of the decoded answer -------------------------------------------


def _object(payload: Any, where: str = "the answer") -> dict[str, Any]:
    """The payload as a JSON object, or a PayloadError."""
    if not isinstance(payload, dict):
        raise PayloadError(f"{where}: expected an object, got {json_kind(payload)}")
    return payload


def parse_coinbase(payload: Any, ref: HttpPriceRef) -> tuple[Decimal, int | None]:
    """Coinbase spot price: ``data.amount`` (a decimal string); Coinbase sends no timestamp."""
    root = _object(payload)
    if "data" not in root and (detail := _error_detail(root)):
        raise PayloadError(f"Coinbase error: {detail}")
    return _price(lookup(root, "data.amount"), "data.amount", ref.invert), None


def parse_kraken(payload: Any, ref: HttpPriceRef) -> tuple[Decimal, int | None]:
    """Kraken ticker: ``c[0]`` (last trade) of the single ``result`` entry; ``error`` entries fail."""
    root = _object(payload)
    errors = root.get("error", [])
    if not isinstance(errors, list):
        raise PayloadError(f"error: expected a list, got {json_kind(errors)}")
    if errors:
        raise PayloadError(f"Kraken error: {_text('; '.join(str(e) for e in errors))}")
    result = _object(lookup(root, "result"), "result")
    if len(result) != 1:
        names = ", ".join(sorted(result)[:5])
        raise PayloadError(
            f"result: expected exactly one pair for {ref.instrument!r}, got {len(result)} ({names})"
        )
    (name, entry), *_ = result.items()
    where = f"result.{name}"
    return _price(lookup(entry, "c.0", where), f"{where}.c.0", ref.invert), None


def parse_binance(payload: Any, ref: HttpPriceRef) -> tuple[Decimal, int | None]:
    """Binance ticker price: ``price`` (a decimal string); an error body ``{code, msg}`` fails."""
    root = _object(payload)
    if "price" not in root and "msg" in root:
        raise PayloadError(f"Binance error: {_error_detail(root)}")
    symbol = root.get("symbol")
    # A symbol mismatch means a proxy or cache answered for another instrument.
    if symbol is not None and symbol != ref.instrument:
        raise PayloadError(f"symbol: answer is for {short_repr(symbol)}, asked for {ref.instrument!r}")
    return _price(lookup(root, "price"), "price", ref.invert), None


def parse_coingecko(payload: Any, ref: HttpPriceRef) -> tuple[Decimal, int | None]:
    """CoinGecko simple price: ``<id>.usd`` (a JSON number) and ``<id>.last_updated_at`` (unix seconds)."""
    root = _object(payload)
    coin = ref.instrument
    if coin not in root:
        if detail := _error_detail(root):
            raise PayloadError(f"CoinGecko error: {detail}")
        raise PayloadError(f"no entry for coin id {coin!r} (not a CoinGecko id?)")
    entry = _object(root[coin], coin)
    if "usd" not in entry:
        raise PayloadError(f"missing field '{coin}.usd'")
    price = _price(entry["usd"], f"{coin}.usd", ref.invert)
    stamp = entry.get("last_updated_at")
    return price, None if stamp is None else parse_timestamp(stamp, f"{coin}.last_updated_at")


def parse_generic(payload: Any, ref: HttpPriceRef) -> tuple[Decimal, int | None]:
    """Any JSON API: the price at ``price_field``, the timestamp at ``time_field`` if configured."""
    if not ref.price_field:
        raise PayloadError("the price ref of a generic source needs price_field")
    price = _price(lookup(payload, ref.price_field), ref.price_field, ref.invert)
    if ref.time_field is None:
        return price, None
    return price, parse_timestamp(lookup(payload, ref.time_field), ref.time_field)


PARSERS: dict[str, Callable[[Any, HttpPriceRef], tuple[Decimal, int | None]]] = {
    "coinbase": parse_coinbase,
    "kraken": parse_kraken,
    "binance": parse_binance,
    "coingecko": parse_coingecko,
    "generic": parse_generic,
}


def request_for(cfg: HttpSourceConfig, ref: HttpPriceRef) -> tuple[str, dict[str, str] | None]:
    """The URL and query parameters one ref asks its source for."""
    base = cfg.base_url.rstrip("/")
    instrument = quote(ref.instrument, safe="")
    if cfg.adapter != "generic" and (ref.path or ref.price_field or ref.time_field):
        # Refused rather than ignored: the operator meant something that would not happen.
        raise SourceError(
            f"path, price_field and time_field apply only to generic sources, not {cfg.adapter}"
        )
    match cfg.adapter:
        case "coinbase":
            return f"{base}/v2/prices/{instrument}/spot", None
        case "kraken":
            return f"{base}/0/public/Ticker", {"pair": ref.instrument}
        case "binance":
            return f"{base}/api/v3/ticker/price", {"symbol": ref.instrument}
        case "coingecko":
            params = {"ids": ref.instrument, "vs_currencies": "usd", "include_last_updated_at": "true"}
            return f"{base}/api/v3/simple/price", params
        case "generic":
            if ref.path is None or ref.price_field is None:
                raise SourceError(f"the price ref of generic source {cfg.id!r} needs path and price_field")
            return base + ref.path.replace("{instrument}", instrument), None
    raise SourceError(f"unknown adapter {cfg.adapter!r}")  # unreachable: the Literal is validated


# -- fetching ------------------------------------------------------------------------------------


async def _fetch_one(
    client: httpx.AsyncClient,
    sources: Mapping[str, HttpSourceConfig],
    ref: HttpPriceRef,
    now: Callable[[], int],
) -> SourceResult:
    """One ref's quote, or a failure saying why; never raises."""
    cfg = sources.get(ref.source)
    if cfg is None:
        known = ", ".join(sorted(sources)) or "none"
        return SourceFailure(
            ref.asset, f"http:{ref.source}", f"unknown HTTP source {ref.source!r} (configured: {known})"
        )
    source = f"http:{cfg.id}"
    try:
        url, params = request_for(cfg, ref)
        payload = await get_json(
            client,
            url,
            params=params,
            headers=cfg.headers,
            timeout_s=cfg.timeout_s,
            max_bytes=MAX_PRICE_BODY_BYTES,
        )
        fetched_at = now()
        price, observed_at = PARSERS[cfg.adapter](payload, ref)
        return Quote(
            asset=ref.asset,
            price=to_e18(price),
            confidence=cfg.confidence,
            observed_at=fetched_at if observed_at is None else observed_at,
            source=source,
            max_age_s=cfg.max_age_s,
        )
    except SourceError as exc:
        return SourceFailure(ref.asset, source, str(exc))
    except Exception as exc:
        # A bug or an unforeseen library error costs this one quote, not the whole cycle.
        return SourceFailure(
            ref.asset, source, f"unexpected {type(exc).__name__}: {short_repr(str(exc), 200)}"
        )


async def fetch_quotes(
    sources: Mapping[str, HttpSourceConfig],
    refs: Sequence[HttpPriceRef],
    *,
    now: Callable[[], int],
    client: httpx.AsyncClient | None = None,
) -> list[SourceResult]:
    """One concurrent request per ref, each bounded by its source's timeout; results in the refs' order."""
    if client is None:
        async with make_client() as own:
            return await fetch_quotes(sources, refs, now=now, client=own)
    return list(await asyncio.gather(*(_fetch_one(client, sources, ref, now) for ref in refs)))


def fetch_quotes_blocking(
    sources: Mapping[str, HttpSourceConfig], refs: Sequence[HttpPriceRef], *, now: Callable[[], int]
) -> list[SourceResult]:
    """fetch_quotes for synchronous callers (runs its own event loop; not from inside a running one)."""
    return asyncio.run(fetch_quotes(sources, refs, now=now))
