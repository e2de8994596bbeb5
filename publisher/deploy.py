"""Deploying the contracts, granting the NAV engine role, (locally) the demo funds, and the
per-fund Chainlink-shaped NAV-per-share feeds (FundNavFeed)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal

import rlp
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.contract import Contract

from publisher import demo
from publisher._exceptions import InputError
from publisher.artifacts import load_artifact
from publisher.chain import contract_at, send
from publisher.config import Settings
from publisher.deployment import Deployment, FeedInfo, FundInfo, TokenInfo, write_deployment
from publisher.keys import DEMO_GUARDIAN_INDEX, dev_account

NAV_ENGINE_ROLE = keccak(text="NAV_ENGINE_ROLE")
GUARDIAN_ROLE = keccak(text="GUARDIAN_ROLE")
USD = Decimal(10) ** 18

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def create_address(sender: str, nonce: int) -> str:
    """The address a CREATE from `sender` at `nonce` deploys to: keccak(rlp([sender, nonce]))[12:]."""
    return to_checksum_address(keccak(rlp.encode([bytes.fromhex(sender[2:]), nonce]))[12:])


def deploy_contract(w3: Web3, account: LocalAccount, name: str, *args: object) -> Contract:
    art = load_artifact(name)
    factory = w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
    receipt = send(w3, account, factory.constructor(*args), f"deploy {name}")
    return contract_at(w3, name, receipt["contractAddress"])


def deploy_fund_feed(
    w3: Web3, account: LocalAccount, vault_address: str, fund_id: int, decimals: int = 8
) -> str:
    """Deploys a FundNavFeed serving `fund_id` of the vault; returns its checksummed address.

    The feed answers the fund's NAV per share through Chainlink's AggregatorV2V3Interface with
    `decimals` decimals (8, Chainlink's USD convention, unless told). Its constructor reverts
    UnknownFund when the vault has no such fund (and NotAContract when `vault_address` has no
    code), so a feed can never point at nothing.
    """
    feed = deploy_contract(w3, account, "FundNavFeed", to_checksum_address(vault_address), fund_id, decimals)
    return to_checksum_address(feed.address)


def separate_roles(admin: str, engine: str, guardians: Sequence[str]) -> None:
    """Off the local chain the admin, the NAV engine and the guardians are different keys: one
    stolen key must not be able to publish, confirm and grant. Raises InputError naming the
    overlap (checked before any transaction)."""
    admin, engine = to_checksum_address(admin), to_checksum_address(engine)
    found = {to_checksum_address(g) for g in guardians}
    if engine == admin:
        raise InputError(
            f"off the local chain the NAV engine must not be the admin key {admin}: pass --engine ADDRESS"
        )
    if not found:
        raise InputError("off the local chain a guardian is required: pass --guardian ADDRESS")
    for g in sorted(found):
        if g in (admin, engine):
            role = "admin" if g == admin else "NAV engine"
            raise InputError(f"off the local chain the guardian {g} must not be the {role} key")


def deploy_core(
    w3: Web3,
    settings: Settings,
    deployer: LocalAccount,
    engine: str,
    progress: Progress = _quiet,
    guardians: Sequence[str] = (),
) -> Deployment:
    """Deploys AnalyticsHub, FundVault and PriceOracleRouter and grants `engine` the NAV role.

    The hub is deployed first at the vault's precomputed address so each can hold the other's
    address as an immutable (no storage read when a NAV is recorded); the vault's constructor
    checks the pairing and reverts HubVaultMismatch if the prediction was wrong.
    """
    start_block = w3.eth.block_number
    nonce = w3.eth.get_transaction_count(deployer.address, "pending")
    vault_address = create_address(deployer.address, nonce + 1)
    hub = deploy_contract(w3, deployer, "AnalyticsHub", vault_address)
    progress(f"AnalyticsHub       {hub.address}")
    vault = deploy_contract(
        w3, deployer, "FundVault", deployer.address, hub.address, settings.withdrawal_delay_s
    )
    progress(f"FundVault          {vault.address}")
    router = deploy_contract(
        w3,
        deployer,
        "PriceOracleRouter",
        deployer.address,
        settings.max_deviation_bps,
        settings.min_confidence,
    )
    progress(f"PriceOracleRouter  {router.address}")
    engine = to_checksum_address(engine)
    # Only the vault takes NAVs: the hub records what the vault accepts, nothing else.
    send(w3, deployer, vault.functions.grantRole(NAV_ENGINE_ROLE, engine), "grant NAV_ENGINE_ROLE")
    progress(f"NAV engine role -> {engine}")
    granted = [to_checksum_address(g) for g in guardians]
    for g in granted:
        send(w3, deployer, vault.functions.grantRole(GUARDIAN_ROLE, g), "grant GUARDIAN_ROLE")
        progress(f"guardian role   -> {g}")
    deployment = Deployment(
        chain_id=w3.eth.chain_id,
        deploy_block=start_block + 1,
        deployer=deployer.address,
        nav_engine=engine,
        contracts={
            "FundVault": vault.address,
            "AnalyticsHub": hub.address,
            "PriceOracleRouter": router.address,
        },
        guardians=granted,
    )
    write_deployment(settings.deployment_path, deployment)
    return deployment


def deploy_demo(
    w3: Web3,
    settings: Settings,
    deployer: LocalAccount,
    engine: str,
    progress: Progress = _quiet,
    guardians: Sequence[str] = (),
) -> Deployment:
    """deploy_core, then mock tokens, three feeds per asset, the three demo funds and one
    FundNavFeed per demo fund (recorded in ``fund_feeds``).

    Actors are anvil's dev accounts: the deployer (admin), #1 the funds' manager, #2 the
    investor who holds the shares and queues a withdrawal in every fund, #4 the guardian (a
    key of its own: the engine's ripcord is the engine's, a guardian's pause the guardian's).
    """
    guardian = dev_account(settings, DEMO_GUARDIAN_INDEX)
    core = deploy_core(w3, settings, deployer, engine, progress, [*guardians, guardian.address])
    manager = dev_account(settings, 1)
    investor = dev_account(settings, 2)
    router = contract_at(w3, "PriceOracleRouter", core.router)
    vault = contract_at(w3, "FundVault", core.vault)

    tokens: dict[str, TokenInfo] = {}
    feeds: dict[str, list[FeedInfo]] = {}
    for a in demo.ASSETS:
        token = deploy_contract(w3, deployer, "MockERC20", a.name, a.symbol, a.decimals)
        tokens[a.symbol] = TokenInfo(address=token.address, decimals=a.decimals, name=a.name)
        feeds[a.symbol] = [
            FeedInfo(
                address=deploy_contract(
                    w3, deployer, "MockV3Aggregator", dec, demo.feed_answer(a.price_usd, dec, skew)
                ).address,
                decimals=dec,
                max_age_s=demo.FEED_MAX_AGE_S,
            )
            for dec, skew in zip(demo.FEED_DECIMALS, demo.FEED_SKEW, strict=True)
        ]
        send(
            w3,
            deployer,
            router.functions.setSources(
                token.address, [f.address for f in feeds[a.symbol]], [f.max_age_s for f in feeds[a.symbol]]
            ),
            f"setSources {a.symbol}",
        )
        progress(f"token {a.symbol:<5} {token.address}  feeds x{len(feeds[a.symbol])}")

    funds: list[FundInfo] = []
    approved: set[str] = set()
    for spec in demo.FUNDS:
        fund_id = vault.functions.fundCount().call() + 1
        send(w3, deployer, vault.functions.createFund(manager.address), f"createFund {spec.name}")
        for symbol, amount in spec.holdings.items():
            _deposit(w3, vault, manager, investor, fund_id, tokens[symbol], symbol, amount, approved)
        send(w3, manager, vault.functions.accrueFee(fund_id, int(spec.fee_usd * USD)), "accrueFee")
        if spec.borrow is not None:
            symbol, amount, debt = spec.borrow
            units = demo.to_units(amount, tokens[symbol].decimals)
            _mint_and_approve(w3, manager, vault, tokens[symbol], units, approved)
            send(
                w3,
                manager,
                vault.functions.borrow(fund_id, tokens[symbol].address, units, int(debt * USD)),
                f"borrow {symbol}",
            )
        shares = vault.functions.sharesOf(fund_id, investor.address).call()
        queued = int(Decimal(shares) * spec.withdrawal_fraction)
        send(w3, investor, vault.functions.requestWithdrawal(fund_id, queued), "requestWithdrawal")
        funds.append(
            FundInfo(fund_id=fund_id, name=spec.name, manager=manager.address, assets=list(spec.holdings))
        )
        progress(f"fund {fund_id}: {spec.name} ({len(spec.holdings)} assets)")

    fund_feeds: dict[int, str] = {}
    for fund in funds:
        fund_feeds[fund.fund_id] = deploy_fund_feed(
            w3, deployer, vault.address, fund.fund_id, settings.feed_decimals
        )
        progress(f"fund {fund.fund_id} NAV feed   {fund_feeds[fund.fund_id]}")

    deployment = core.model_copy(
        update={
            "tokens": tokens,
            "feeds": feeds,
            "funds": funds,
            "fund_feeds": fund_feeds,
        }
    )
    write_deployment(settings.deployment_path, deployment)
    return deployment


def _mint_and_approve(
    w3: Web3, manager: LocalAccount, vault: Contract, token: TokenInfo, units: int, approved: set[str]
) -> None:
    erc20 = contract_at(w3, "MockERC20", token.address)
    send(w3, manager, erc20.functions.mint(manager.address, units), "mint")
    if token.address not in approved:
        send(w3, manager, erc20.functions.approve(vault.address, 2**256 - 1), "approve")
        approved.add(token.address)


def _deposit(
    w3: Web3,
    vault: Contract,
    manager: LocalAccount,
    investor: LocalAccount,
    fund_id: int,
    token: TokenInfo,
    symbol: str,
    amount: Decimal,
    approved: set[str],
) -> None:
    """Deposits `amount` of `symbol` and issues one share per dollar at the demo price."""
    units = demo.to_units(amount, token.decimals)
    _mint_and_approve(w3, manager, vault, token, units, approved)
    shares = int(amount * demo.asset(symbol).price_usd * USD)
    send(
        w3,
        manager,
        vault.functions.deposit(fund_id, token.address, units, shares, investor.address),
        f"deposit {symbol}",
    )
