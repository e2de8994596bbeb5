"""Off-exchange balances: every haircut field form, exact USD amounts, every refusal naming row and field."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from publisher.quotes import SourceFailure
from publisher.sources.http import decode_json
from publisher.sources.offexchange import (
    OffExchangeAccount,
    OffExchangeBalance,
    OffExchangeConfig,
    OffExchangeError,
    fetch_offexchange,
    fetch_offexchange_blocking,
    parse_offexchange,
)
from tests import httpserver
from tests.httpserver import refused_url

# The fixture, bound here so this module runs before tests/conftest.py imports it too.
http_server = httpserver.http_server

NOW = 1_711_111_200
E18 = 10**18

STATEMENT = """{
  "as_of": 1711111111,
  "balances": [
    {"asset": "BTC", "quantity": "1.5", "market_value": "63000.12", "haircut": "0.0625", "borrowed": "0"},
    {"asset": "eth", "quantity": 20, "market_value": 62000.5, "collateral_ratio": "0.1"},
    {"asset": "BONK", "quantity": "1000000000", "discount": "0.5", "borrowed": "12.345678901234567890123"},
    {"asset": "ALGO", "quantity": "100", "haircut_rate": 0.3333},
    {"asset": "USDC", "quantity": "20000", "market_value": "20000", "haircut": "0.5"},
    {"asset": "SOL", "quantity": "0", "market_value": null, "haircut": "--"}
  ]
}"""


def now() -> int:
    return NOW


def parse(payload, **kw) -> OffExchangeAccount:
    return parse_offexchange(payload, now_s=NOW, source="offexchange", **kw)


def one_row(**row) -> OffExchangeBalance:
    [balance] = parse(
        {"as_of": 1_711_111_111, "balances": [{"asset": "BTC", "quantity": "1", **row}]}
    ).balances
    return balance


def refused(payload, **kw) -> str:
    with pytest.raises(OffExchangeError) as info:
        parse(payload, **kw)
    return str(info.value)


def row_refused(**row) -> str:
    return refused({"as_of": 1, "balances": [{"asset": "BTC", "quantity": "1", **row}]})


# -- the documented shape, through a real HTTP server -------------------------------------------------


def test_fetch_full_statement(http_server):
    http_server.route("GET", "/v1/custody/balances", body=STATEMENT, headers={"X-Request-Id": "1"})
    cfg = OffExchangeConfig(
        url=http_server.url + "/v1/custody/balances", headers={"Authorization": "Bearer k"}
    )
    account = fetch_offexchange_blocking(cfg, now=now)
    assert account == OffExchangeAccount(
        balances=(
            OffExchangeBalance("BTC", Decimal("1.5"), 63_000_120_000_000_000_000_000, Decimal("0.0625"), 0),
            OffExchangeBalance("ETH", Decimal(20), 62_000_500_000_000_000_000_000, Decimal("0.1"), 0),
            OffExchangeBalance(
                "BONK", Decimal(1_000_000_000), None, Decimal("0.5"), 12_345_678_901_234_567_890
            ),  # borrowed truncated toward zero at 18 decimals
            OffExchangeBalance("ALGO", Decimal(100), None, Decimal("0.3333"), 0),
            OffExchangeBalance("USDC", Decimal(20_000), 20_000 * E18, Decimal(0), 0),
            OffExchangeBalance("SOL", Decimal(0), None, Decimal(0), 0),
        ),
        observed_at=1_711_111_111,
        source="offexchange",
    )
    [req] = http_server.requests
    assert req.target == "/v1/custody/balances" and req.headers["authorization"] == "Bearer k"


def test_fetch_with_a_given_client(http_server):
    http_server.route("GET", "/b", body='{"as_of": 1711111111, "balances": []}')
    cfg = OffExchangeConfig(url=http_server.url + "/b")

    async def run():
        async with httpx.AsyncClient() as client:
            return await fetch_offexchange(cfg, now=now, client=client), client.is_closed

    account, closed = asyncio.run(run())
    assert account == OffExchangeAccount((), 1_711_111_111, "offexchange") and closed is False


@pytest.mark.parametrize(
    ("route_kw", "reason"),
    [
        (
            {"status": 502, "body": "<html>Bad Gateway</html>", "content_type": "text/html"},
            "HTTP 502 Bad Gateway",
        ),
        ({"body": "<html>maintenance</html>", "content_type": "text/html"}, "looks like an HTML page"),
        ({"status": 429, "body": "{}"}, "rate-limited (HTTP 429"),
        ({"body": '{"as_of": 1, "balances": [{"asset": "BTC", "quan'}, "truncated JSON"),
        ({"body": '{"as_of": 1, "balances": []}', "truncate_at": 10}, "broke off before a full answer"),
        (
            {"body": '{"as_of": 1, "balances": [{"asset": "BTC", "quantity": "1", "haircut": "2"}]}'},
            "balances[0].haircut: '2' is outside [0, 1]",
        ),
    ],
)
def test_fetch_failures_are_source_failures(http_server, route_kw, reason):
    http_server.route("GET", "/b", **route_kw)
    result = fetch_offexchange_blocking(OffExchangeConfig(url=http_server.url + "/b"), now=now)
    assert isinstance(result, SourceFailure) and (result.asset, result.source) == ("*", "offexchange")
    assert reason in result.reason


def test_fetch_timeout(http_server):
    http_server.route("GET", "/b", hang=True)
    result = fetch_offexchange_blocking(OffExchangeConfig(url=http_server.url + "/b", timeout_s=0.3), now=now)
    assert isinstance(result, SourceFailure) and result.reason.startswith("timed out after 0.3 s")


def test_fetch_connection_refused():
    with refused_url() as url:
        result = fetch_offexchange_blocking(OffExchangeConfig(url=url + "/b"), now=now)
    assert isinstance(result, SourceFailure) and "could not connect" in result.reason
    assert "refused" in result.reason.lower()


# -- haircut ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["haircut", "collateral_ratio", "discount", "haircut_rate"])
@pytest.mark.parametrize("raw", ["0.0625", Decimal("0.0625"), " 0.0625 "])
def test_every_haircut_field_name(field, raw):
    assert one_row(**{field: raw}).haircut == Decimal("0.0625")


@pytest.mark.parametrize(
    ("row", "haircut"),
    [
        ({}, Decimal(0)),
        ({"haircut": "--"}, Decimal(0)),
        ({"haircut": " -- "}, Decimal(0)),
        ({"haircut": None}, Decimal(0)),
        ({"haircut": None, "collateral_ratio": None, "discount": None, "haircut_rate": None}, Decimal(0)),
        ({"haircut": None, "collateral_ratio": "0.5"}, Decimal("0.5")),  # the first non-null one counts
        ({"haircut": "0.1", "discount": "0.5"}, Decimal("0.1")),
        ({"discount": "0.2", "haircut_rate": "0.9"}, Decimal("0.2")),
        ({"haircut": "--", "discount": "0.5"}, Decimal(0)),  # "--" is a value: no haircut
        ({"haircut": "0"}, Decimal(0)),
        ({"haircut": "1"}, Decimal(1)),
        ({"haircut": 1}, Decimal(1)),
        ({"haircut": "-0"}, Decimal(0)),
    ],
)
def test_haircut_resolution(row, haircut):
    assert one_row(**row).haircut == haircut


@pytest.mark.parametrize("symbol", ["USD", "USDT", "USDC", "usdc", "Usdt"])
@pytest.mark.parametrize("row", [{"haircut": "0.5"}, {"discount": "0.9"}, {"haircut": "7"}, {}])
def test_stablecoins_never_have_a_haircut(symbol, row):
    payload = {"as_of": 1, "balances": [{"asset": symbol, "quantity": "100", **row}]}
    [balance] = parse(payload).balances
    assert balance.asset == symbol.upper() and balance.haircut == Decimal(0)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"haircut": "1.5"}, "balances[0].haircut: '1.5' is outside [0, 1]"),
        ({"collateral_ratio": "1.0000001"}, "balances[0].collateral_ratio: '1.0000001' is outside [0, 1]"),
        ({"discount": "-0.1"}, "balances[0].discount: '-0.1' is negative"),
        ({"haircut_rate": "6.25%"}, "balances[0].haircut_rate: '6.25%' is not a decimal number"),
        ({"haircut": ""}, "balances[0].haircut: empty string, expected a number"),
        ({"haircut": True}, "balances[0].haircut: expected a number, got a boolean (true)"),
        ({"haircut": "NaN"}, "balances[0].haircut: 'NaN' is not a finite number"),
        ({"haircut": Decimal("NaN")}, "balances[0].haircut: NaN is not a finite number"),
        ({"haircut": [0.1]}, "balances[0].haircut: expected a number, got a list"),
    ],
)
def test_bad_haircuts(row, reason):
    assert row_refused(**row) == reason


# -- amounts -------------------------------------------------------------------------------------------


def test_amounts_are_exact_and_truncated_toward_zero():
    balance = one_row(
        quantity="0.123456789012345678901234567890",
        market_value="63000.1234567890123456789",
        borrowed="0.0000000000000000019",
    )
    assert balance.quantity == Decimal("0.123456789012345678901234567890")  # quantity stays exact
    assert balance.market_value_e18 == 63_000_123_456_789_012_345_678
    assert balance.borrowed_e18 == 1


@pytest.mark.parametrize(
    ("row", "market", "borrowed"),
    [
        ({}, None, 0),
        ({"market_value": None, "borrowed": None}, None, 0),
        ({"market_value": "0", "borrowed": "0"}, 0, 0),
        ({"market_value": 0, "borrowed": "-0"}, 0, 0),
        ({"market_value": Decimal("1.5"), "borrowed": 2}, 1_500_000_000_000_000_000, 2 * E18),
    ],
)
def test_optional_amounts(row, market, borrowed):
    balance = one_row(**row)
    assert (balance.market_value_e18, balance.borrowed_e18) == (market, borrowed)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"quantity": "-1"}, "balances[0].quantity: '-1' is negative"),
        ({"market_value": "-63000"}, "balances[0].market_value: '-63000' is negative"),
        ({"borrowed": -5}, "balances[0].borrowed: -5 is negative"),
        ({"quantity": None}, "balances[0].quantity: missing"),
        ({"quantity": "abc"}, "balances[0].quantity: 'abc' is not a decimal number"),
        ({"quantity": False}, "balances[0].quantity: expected a number, got a boolean (false)"),
        ({"quantity": "Infinity"}, "balances[0].quantity: 'Infinity' is not a finite number"),
        ({"quantity": "1e41"}, "balances[0].quantity: '1e41' is beyond any real supply"),
        ({"market_value": "1e16"}, "balances[0].market_value: '1e16' is beyond any plausible USD amount"),
        ({"market_value": "--"}, "balances[0].market_value: '--' is not a decimal number"),
        ({"borrowed": {}}, "balances[0].borrowed: expected a number, got an object"),
    ],
)
def test_bad_amounts(row, reason):
    assert row_refused(**row) == reason


def test_missing_quantity():
    assert (
        refused({"as_of": 1, "balances": [{"asset": "BTC", "market_value": "1"}]})
        == "balances[0].quantity: missing"
    )


# -- rows, assets, layout --------------------------------------------------------------------------------


def test_duplicate_asset_is_refused_whatever_its_case():
    payload = {
        "as_of": 1,
        "balances": [
            {"asset": "BTC", "quantity": "1"},
            {"asset": "ETH", "quantity": "1"},
            {"asset": "btc", "quantity": "2"},
        ],
    }
    assert refused(payload) == "balances[2].asset: BTC appears twice (also balances[0])"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ([], "the answer: expected an object, got a list"),
        ({"as_of": 1}, "missing field 'balances'"),
        ({"as_of": 1, "balances": {"BTC": "1"}}, "balances: expected a list, got an object"),
        ({"as_of": 1, "balances": ["BTC"]}, "balances[0]: expected an object, got a string"),
        ({"as_of": 1, "balances": [{"quantity": "1"}]}, "balances[0].asset: missing"),
        (
            {"as_of": 1, "balances": [{"asset": 7, "quantity": "1"}]},
            "balances[0].asset: expected a symbol string",
        ),
        (
            {"as_of": 1, "balances": [{"asset": " ", "quantity": "1"}]},
            "balances[0].asset: ' ' is not an asset symbol",
        ),
        ({"as_of": 1, "balances": [{"asset": "B TC", "quantity": "1"}]}, "'B TC' is not an asset symbol"),
        ({"balances": []}, "missing field 'as_of'"),
        ({"as_of": None, "balances": []}, "as_of: null, expected a number"),
        (
            {"as_of": "2024-03-22T12:00:00Z", "balances": []},
            "as_of: '2024-03-22T12:00:00Z' is not a decimal number",
        ),
        ({"as_of": 0, "balances": []}, "as_of: 0 is not a unix timestamp"),
        ({"as_of": 10**16, "balances": []}, "is not a unix timestamp (seconds or milliseconds)"),
    ],
)
def test_bad_layout(payload, reason):
    assert reason in refused(payload)


@pytest.mark.parametrize(
    ("as_of", "seconds"),
    [
        (1_711_111_111_123, 1_711_111_111),
        ("1711111111123", 1_711_111_111),
        (Decimal("1711111111.9"), 1_711_111_111),
    ],
)
def test_timestamp_in_milliseconds_or_with_fraction(as_of, seconds):
    assert parse({"as_of": as_of, "balances": []}).observed_at == seconds


def test_without_time_field_the_fetch_time_is_used():
    assert parse({"balances": []}, time_field=None).observed_at == NOW


def test_configured_field_paths():
    payload = {"data": {"ts": 1_711_111_111, "accounts": [{"asset": "BTC", "quantity": "2"}]}}
    account = parse(payload, balances_field="data.accounts", time_field="data.ts")
    assert account.observed_at == 1_711_111_111 and account.balances[0].quantity == 2


def test_numbers_decoded_from_json_stay_exact():
    payload = decode_json(
        b'{"as_of": 1711111111, "balances": [{"asset": "BTC", "quantity": 0.1, "market_value": 0.3}]}'
    )
    [balance] = parse(payload).balances
    assert balance.quantity == Decimal("0.1") and balance.market_value_e18 == 3 * 10**17


# -- configuration -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {"url": "file:///etc/passwd"},
        {"url": "not a url"},
        {"timeout_s": 0},
        {"max_age_s": -1},
        {"balances_field": ""},
        {"time_field": "a."},
        {"extra": 1},
    ],
)
def test_bad_config(kw):
    with pytest.raises(ValidationError):
        OffExchangeConfig(**{"url": "https://custody.example/v1/balances", **kw})


def test_url_query_is_kept_and_sent(http_server):
    http_server.route("GET", "/v1/balances", body='{"as_of": 1711111111, "balances": []}')
    cfg = OffExchangeConfig(url=http_server.url + "/v1/balances?account=fund-1")
    assert isinstance(fetch_offexchange_blocking(cfg, now=now), OffExchangeAccount)
    assert http_server.requests[0].target == "/v1/balances?account=fund-1"


def test_config_defaults_and_secret_headers():
    cfg = OffExchangeConfig(
        url="https://custody.example/v1/balances", headers={"Authorization": "Bearer s3cret"}
    )
    assert (cfg.timeout_s, cfg.max_age_s, cfg.balances_field, cfg.time_field) == (
        5.0,
        900,
        "balances",
        "as_of",
    )
    assert "s3cret" not in repr(cfg)


# -- properties --------------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.decimals()
    | st.text(max_size=10)
    | st.sampled_from(["--", "0.0625", "1.5", "-1", "NaN", "", "usdc", "BTC", "1711111111123", "1e999999999"])
)
json_like = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)
FIELDS = [
    "asset",
    "quantity",
    "market_value",
    "borrowed",
    "haircut",
    "collateral_ratio",
    "discount",
    "haircut_rate",
]
rows = st.dictionaries(
    st.sampled_from(FIELDS), json_like | st.sampled_from(["BTC", "usdt", "1", "0.5", "--"])
)
statements = st.fixed_dictionaries({"as_of": json_like, "balances": st.lists(rows | json_like, max_size=4)})


@settings(max_examples=300, deadline=None)
@given(payload=json_like | statements)
def test_parse_returns_an_account_or_its_own_error(payload):
    try:
        account = parse(payload)
    except OffExchangeError as exc:
        assert str(exc)
        return
    assert 0 < account.observed_at <= 10**11
    assert len({b.asset for b in account.balances}) == len(account.balances)
    for b in account.balances:
        assert b.asset == b.asset.upper() and b.asset.strip() == b.asset and b.asset
        assert b.quantity >= 0 and 0 <= b.haircut <= 1 and b.borrowed_e18 >= 0
        assert b.market_value_e18 is None or b.market_value_e18 >= 0
        if b.asset in {"USD", "USDT", "USDC"}:
            assert b.haircut == 0


@settings(max_examples=200, deadline=None)
@given(
    haircut=st.decimals(min_value=0, max_value=1, allow_nan=False, places=6),
    field=st.sampled_from(["haircut", "collateral_ratio", "discount", "haircut_rate"]),
    as_text=st.booleans(),
)
def test_any_haircut_in_range_reads_exactly(haircut, field, as_text):
    assert one_row(**{field: str(haircut) if as_text else haircut}).haircut == haircut
