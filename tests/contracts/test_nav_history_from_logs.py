"""Every fund's NAV history rebuilt from logs alone, as an indexer would: raw `eth_getLogs` on the
hub's NAVRecorded and the vault's NAVUpdated, filtered by topic0 and the fund id topic, decoded with
eth_abi (no publisher code). Singles (both overloads), batches, flows, a pause and an estimated NAV."""

from __future__ import annotations

from dataclasses import dataclass, field

from eth_abi import decode
from eth_utils import keccak

from tests.conftest import Local
from tests.contracts.test_fund_vault import make_fund, token

USD = 10**18
USDC = 10**6
FLAG_ESTIMATED = 1
FLAG_PAUSED = 2
FLAG_ENGINE_PAUSE = 4  # the pause is the engine's own ripcord
NAV_RECORDED = keccak(text="NAVRecorded(uint256,uint256,uint256,uint256,uint256,uint256)")
NAV_UPDATED = keccak(text="NAVUpdated(uint256,uint256,uint256,uint256)")


def word(fund_id: int, nav: int, as_of: int, flags: int, share_version: int) -> int:
    """FundVault's batch word, packed here from its documented layout."""
    return fund_id << 224 | (share_version & 0xFFFFFFFF) << 192 | as_of << 144 | flags << 128 | nav


@dataclass
class Model:
    """What the history must say, kept as the scenario runs: per fund, (nav, asOf, flags, supply)."""

    shares: dict[int, int] = field(default_factory=dict)
    paused: dict[int, bool] = field(default_factory=dict)
    navs: dict[int, list[tuple[int, int, int, int]]] = field(default_factory=dict)

    def accepted(self, fund_id: int, nav: int, as_of: int, flags: int) -> None:
        visible = flags | (FLAG_PAUSED | FLAG_ENGINE_PAUSE if self.paused.get(fund_id) else 0)
        self.navs.setdefault(fund_id, []).append((nav, as_of, visible, self.shares.get(fund_id, 0)))

    def records(self, fund_id: int) -> list[tuple[int, int, int, int, int]]:
        """(round, nav, navPerShare, asOf, flags) of every NAV, from first principles."""
        return [
            (i + 1, nav, nav * 10**18 // shares if shares else 0, as_of, flags)
            for i, (nav, as_of, flags, shares) in enumerate(self.navs.get(fund_id, []))
        ]


class Scenario:
    def __init__(self, c: Local) -> None:
        self.c = c
        self.model = Model()
        self.usdc = token(c, "USDC", 6)

    def fund(self) -> int:
        fid = make_fund(self.c)
        self.model.shares[fid] = 0
        return fid

    def deposit(self, fund_id: int, amount: int, shares: int) -> None:
        self.c.vault.functions.deposit(fund_id, self.usdc.address, amount, shares, self.c.investor).transact(
            {"from": self.c.manager}
        )
        self.model.shares[fund_id] += shares

    def seed_update(self, fund_id: int, nav: int) -> int:
        """The seed's two-argument updateNAV: asOf is the block's time."""
        fn = self.c.vault.get_function_by_signature("updateNAV(uint256,uint256)")
        receipt = self.c.w3.eth.wait_for_transaction_receipt(
            fn(fund_id, nav).transact({"from": self.c.engine})
        )
        as_of = int(self.c.w3.eth.get_block(receipt["blockNumber"])["timestamp"])
        self.model.accepted(fund_id, nav, as_of, 0)
        return as_of

    def update(self, fund_id: int, nav: int, flags: int = 0) -> int:
        as_of = self.c.now()
        fn = self.c.vault.get_function_by_signature("updateNAV(uint256,uint256,uint48,uint16)")
        self.c.w3.eth.wait_for_transaction_receipt(
            fn(fund_id, nav, as_of, flags).transact({"from": self.c.engine})
        )
        self.model.accepted(fund_id, nav, as_of, flags)
        return as_of

    def versions(self, fund_ids: list[int]) -> dict[int, int]:
        snaps = self.c.vault.functions.getFundSnapshots(fund_ids).call()
        return {s[0]: s[-1] for s in snaps}

    def batch(self, entries: list[tuple[int, int, int]]) -> int:
        """(fund id, nav, flags) each, one asOf, share versions read just before."""
        as_of = self.c.now()
        versions = self.versions([fid for fid, _, _ in entries])
        words = [word(fid, nav, as_of, flags, versions[fid]) for fid, nav, flags in entries]
        tx = self.c.vault.functions.updateNAVBatch(words).transact({"from": self.c.engine})
        self.c.w3.eth.wait_for_transaction_receipt(tx)
        for fid, nav, flags in entries:
            self.model.accepted(fid, nav, as_of, flags)
        return as_of

    def set_paused(self, fund_id: int, paused: bool) -> None:
        self.c.vault.functions.setFundPaused(fund_id, paused, "history").transact({"from": self.c.engine})
        self.model.paused[fund_id] = paused


# -- reading the logs ------------------------------------------------------------------------


def fund_topic(fund_id: int) -> str:
    return "0x" + fund_id.to_bytes(32, "big").hex()


def raw_logs(c: Local, address: str, topic0: bytes, fund_id: int) -> list[dict]:
    logs = c.w3.eth.get_logs(
        {
            "address": address,
            "fromBlock": 0,
            "toBlock": "latest",
            "topics": ["0x" + topic0.hex(), fund_topic(fund_id)],
        }
    )
    for log in logs:
        assert bytes(log["topics"][0]) == topic0
        assert int.from_bytes(bytes(log["topics"][1]), "big") == fund_id
    return sorted(logs, key=lambda log: (log["blockNumber"], log["logIndex"]))


def recorded(c: Local, fund_id: int) -> list[tuple[int, int, int, int, int]]:
    """(round, nav, navPerShare, asOf, flags) per hub NAVRecorded of the fund."""
    return [
        tuple(decode(["uint256"] * 5, bytes(log["data"])))
        for log in raw_logs(c, c.hub.address, NAV_RECORDED, fund_id)
    ]


def updated(c: Local, fund_id: int) -> list[tuple[int, int, int]]:
    """(oldNAV, newNAV, timestamp) per vault NAVUpdated of the fund."""
    return [
        tuple(decode(["uint256"] * 3, bytes(log["data"])))
        for log in raw_logs(c, c.vault.address, NAV_UPDATED, fund_id)
    ]


def check_history(c: Local, model: Model, fund_id: int) -> list[tuple[int, int, int, int, int]]:
    hub = recorded(c, fund_id)
    assert hub == model.records(fund_id)
    assert [r[0] for r in hub] == list(range(1, len(hub) + 1))  # rounds 1, 2, 3... no gap
    vault = updated(c, fund_id)
    assert [(new, ts) for _, new, ts in vault] == [(nav, as_of) for _, nav, _, as_of, _ in hub]
    assert [old for old, _, _ in vault] == [0] + [new for _, new, _ in vault[:-1]]  # oldNAV chains
    # Each NAV's two events come from one transaction.
    hub_txs = [log["transactionHash"] for log in raw_logs(c, c.hub.address, NAV_RECORDED, fund_id)]
    vault_txs = [log["transactionHash"] for log in raw_logs(c, c.vault.address, NAV_UPDATED, fund_id)]
    assert hub_txs == vault_txs
    # The last record is the vault's state.
    state = c.vault.functions.navState(fund_id).call()
    round_, nav, per_share, as_of, flags = hub[-1]
    assert (state[0], state[1], state[2], state[7], state[3]) == (nav, as_of, round_, per_share, flags)
    assert state[4] == bool(flags & FLAG_ESTIMATED)
    return hub


# -- tests ------------------------------------------------------------------------------------


def test_every_funds_history_is_rebuilt_from_logs_alone(local: Local) -> None:
    s = Scenario(local)
    a, b, c = s.fund(), s.fund(), s.fund()
    s.deposit(a, 1_000 * USDC, 1_000 * USD)
    s.deposit(b, 500 * USDC, 500 * USD)
    s.deposit(c, 2_000 * USDC, 3 * USD + 7)  # an odd supply: NAV per share rounds

    local.travel(60)
    s.seed_update(a, 1_000 * USD)  # the seed's overload
    s.update(b, 1_000 * USD)
    s.update(c, 2_000 * USD, FLAG_ESTIMATED)  # estimated

    local.travel(60)
    s.batch([(a, 1_010 * USD, 0), (b, 1_000 * USD, 0), (c, 2_001 * USD, 0)])

    # A deposit into A at its NAV per share ($1.01), then a NAV including it: same per share.
    s.deposit(a, 101 * USDC, 100 * USD)
    local.travel(60)
    s.update(a, 1_111 * USD)

    # A redemption from B: 100 of 500 shares priced at the first NAV after the delay.
    local.w3.eth.wait_for_transaction_receipt(
        local.vault.functions.requestWithdrawal(b, 100 * USD).transact({"from": local.investor})
    )
    local.travel(3_600)
    s.batch([(a, 1_122 * USD, 0), (b, 1_000 * USD, 0)])
    local.vault.functions.priceWithdrawal(b, 0).transact({"from": local.outsider})
    assert local.vault.functions.getPendingWithdrawals(b).call() == 200 * USD  # 1,000 × 100 / 500
    s.model.shares[b] -= 100 * USD
    local.travel(60)
    s.seed_update(b, 800 * USD)  # $2 per share, as before the redemption

    # C paused: the engine keeps publishing, singles and batches, estimated or not; then unpaused.
    s.set_paused(c, True)
    local.travel(60)
    s.update(c, 1_990 * USD)
    local.travel(60)
    s.batch([(c, 1_980 * USD, FLAG_ESTIMATED), (a, 1_133 * USD, 0)])
    s.set_paused(c, False)
    local.travel(60)
    s.seed_update(c, 2_002 * USD)

    histories = {fid: check_history(local, s.model, fid) for fid in (a, b, c)}
    assert local.vault.functions.fundCount().call() == 3
    assert [len(h) for h in histories.values()] == [5, 4, 5]
    paused = FLAG_PAUSED | FLAG_ENGINE_PAUSE
    assert [r[4] for r in histories[c]] == [FLAG_ESTIMATED, 0, paused, paused | FLAG_ESTIMATED, 0]
    assert [r[4] for r in histories[a]] == [0] * 5

    # The flows do not read as a change of NAV per share: A's deposit sits between two $1.01
    # NAVs, B's redemption between two $2 NAVs, while the NAV itself moved.
    per_share = {fid: [r[2] for r in h] for fid, h in histories.items()}
    assert [r[1] for r in histories[a]] == [1_000 * USD, 1_010 * USD, 1_111 * USD, 1_122 * USD, 1_133 * USD]
    assert per_share[a] == [
        USD,
        101 * 10**16,
        101 * 10**16,  # after the deposit: 1,111 over 1,100 shares
        1_122 * USD * 10**18 // (1_100 * USD),
        1_133 * USD * 10**18 // (1_100 * USD),
    ]
    assert [r[1] for r in histories[b]] == [1_000 * USD] * 3 + [800 * USD]
    assert per_share[b] == [2 * USD] * 4  # after the redemption: 800 over 400 shares
    assert per_share[c][0] == 2_000 * USD * 10**18 // (3 * USD + 7)


def test_a_fund_without_nav_has_no_history(local: Local) -> None:
    s = Scenario(local)
    a, b = s.fund(), s.fund()
    s.deposit(a, USDC, USD)
    local.travel(10)
    s.update(a, USD)
    assert recorded(local, b) == []
    assert updated(local, b) == []
    assert len(recorded(local, a)) == 1
    assert local.vault.functions.navState(b).call()[2] == 0


def test_a_batch_records_exactly_what_singles_record(local: Local) -> None:
    s = Scenario(local)
    batched, singles = [s.fund(), s.fund()], [s.fund(), s.fund()]
    for pair in (batched, singles):
        s.deposit(pair[0], 1_000 * USDC, 1_000 * USD)
        s.deposit(pair[1], 7 * USDC, 3 * USD)
    steps = [
        ((1_000 * USD, 0), (7 * USD, FLAG_ESTIMATED)),
        ((1_050 * USD, FLAG_ESTIMATED), (10 * USD, 0)),
        ((990 * USD, 0), (10 * USD + 1, 0)),
    ]
    for first, second in steps:
        local.travel(60)
        as_of = s.batch([(batched[0], *first), (batched[1], *second)])
        # The same NAVs as singles, at the very same asOf, for the twin funds.
        for fid, (nav, flags) in zip(singles, (first, second), strict=True):
            fn = local.vault.get_function_by_signature("updateNAV(uint256,uint256,uint48,uint16)")
            fn(fid, nav, as_of, flags).transact({"from": local.engine})
            s.model.accepted(fid, nav, as_of, flags)
        # One transaction recorded both batched funds.
        tx_of = {
            fid: raw_logs(local, local.hub.address, NAV_RECORDED, fid)[-1]["transactionHash"]
            for fid in batched
        }
        assert tx_of[batched[0]] == tx_of[batched[1]]

    for b, single in zip(batched, singles, strict=True):
        assert check_history(local, s.model, b) == check_history(local, s.model, single)
        assert updated(local, b) == updated(local, single)
    assert [r[2] for r in recorded(local, batched[1])] == [
        7 * USD * 10**18 // (3 * USD),
        10 * USD * 10**18 // (3 * USD),
        (10 * USD + 1) * 10**18 // (3 * USD),
    ]
