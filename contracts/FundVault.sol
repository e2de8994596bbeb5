// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IAnalyticsHub} from "./interfaces/IAnalyticsHub.sol";
import {IFundNavSource} from "./interfaces/IFundNavSource.sol";

/// @title FundVault
/// @notice Holds the assets of many funds and the NAV the off-chain engine publishes for each.
///
///         Every fund has ERC-20 holdings, a share supply, and three kinds of liabilities in
///         18-decimal USD: pending fees, pending (priced, unpaid) withdrawals and borrowed.
///         Every trade, deposit, withdrawal pricing and payment, fee and loan bumps the fund's
///         activity counter and emits its own event: the engine publishes on them and its jump
///         guard uses the counter to tell a moved market from an unexplained NAV jump. A
///         withdrawal request emits its event but does not count: it cannot change the NAV, and
///         anyone holding a share may make one — counting it would let a 1-wei request
///         "explain" a pumped NAV.
///
///         Withdrawals are forward-priced: a request escrows shares and becomes payable
///         only at a NAV published at least `withdrawalDelay` after it. A manager who
///         inflates the NAV just before a withdrawal therefore gains nothing: the price
///         used is one published later by the NAV engine.
///
///         Each fund also has a pause flag, the "ripcord" of Chainlink's NAV reports: a
///         guardian or the NAV engine pulls it when the fund's NAV should not be relied on.
///         It lives in the NAV slot, so NAV state and paused are read together, in one slot.
///         A pause freezes what the fund's feed answers at the last NAV before it.
///
///         NAV per share is the figure investors and fees live on, so it is fixed when a NAV
///         is accepted — the NAV over the share supply it was computed for — and flows between
///         two NAVs do not move it. The high-water mark and the drawdown are per share: a
///         deposit or a redemption never reads as a gain or a loss.
///
///         Every accepted NAV emits the seed's `NAVUpdated(fundId, oldNAV, newNAV, timestamp)`
///         here and a full record (`NAVRecorded`: round, NAV, NAV per share, asOf, flags) in
///         the AnalyticsHub, alone or in a batch alike, both with the fund id as a topic.
/// @dev NAV storage is one slot per fund (see NavSlot), rewritten on every update, plus the
///      fund's share slot (supply and share version), read. The per-share high-water mark is
///      implied by the NAV slot while the NAV is at its peak (_AT_PEAK) and lives in the
///      fund's ShareMarks slot, read only when the NAV per share rises, once it falls below.
///      The first share change after a NAV saves that NAV's share supply in the same slot
///      (_SHARES_SAVED), so the flow pays for keeping NAV per share fixed, not the update.
contract FundVault is AccessControl, Pausable, ReentrancyGuard, IFundNavSource {
    using SafeERC20 for IERC20;

    /// @notice Accounts allowed to publish NAVs.
    bytes32 public constant NAV_ENGINE_ROLE = keccak256("NAV_ENGINE_ROLE");
    /// @notice Accounts allowed to pause and unpause a fund's NAV (so is the NAV engine).
    bytes32 public constant GUARDIAN_ROLE = keccak256("GUARDIAN_ROLE");

    /// @notice Flag bit of a NAV computed with at least one cached price.
    uint16 public constant FLAG_ESTIMATED = 1;
    /// @notice Flag bit of a paused fund (the ripcord): its NAV should not be relied on. Set
    ///         and cleared only by `setFundPaused`; NAV updates keep it as it is.
    uint16 public constant FLAG_PAUSED = 1 << 1;
    /// @notice Flag bit set with FLAG_PAUSED when the pause is the NAV engine's own ripcord; a
    ///         pause without it is a guardian's, which only a guardian may lift.
    uint16 public constant FLAG_ENGINE_PAUSE = 1 << 2;
    /// @dev Set when a flow changed the share supply after the slot's NAV was accepted: that
    ///      NAV's supply is then `_marks[fundId].navShares`, not `totalShares`. Cleared by the
    ///      next NAV, which is over the current supply.
    uint16 private constant _SHARES_SAVED = 1 << 13;
    /// @dev Flags the NAV engine may pass to `updateNAV`; anything else is refused rather than
    ///      stored unexplained. They are replaced by every update.
    uint16 private constant _PUBLIC_FLAGS = FLAG_ESTIMATED;
    /// @dev Flags views report (`navState`, `getFundSnapshots`).
    uint16 private constant _VISIBLE_FLAGS = FLAG_ESTIMATED | FLAG_PAUSED | FLAG_ENGINE_PAUSE;
    /// @dev Set at fund creation so `updateNAV` learns that the fund exists from the slot it
    ///      reads anyway, instead of paying a cold SLOAD (2,100 gas) on a second one.
    uint16 private constant _EXISTS = 1 << 15;
    /// @dev Bits a NAV update carries over from the slot it replaces.
    uint16 private constant _STICKY_FLAGS = _EXISTS | FLAG_PAUSED | FLAG_ENGINE_PAUSE;
    /// @dev Set while the slot's NAV per share is the high-water mark. The mark is then implied
    ///      by the slot and `_marks` is neither read nor written: a run of new peaks (a rising
    ///      market, published hourly) costs no second cold slot per update. The mark gets its
    ///      own slot when the NAV per share first falls below it.
    uint16 private constant _AT_PEAK = 1 << 14;

    /// @notice A fund may hold at most this many distinct assets, which bounds the gas of
    ///         every view that lists holdings.
    uint256 public constant MAX_ASSETS_PER_FUND = 64;

    /// @dev NAV state: 128 + 48 + 64 + 16 bits = one slot (see `_navWords`). uint128 holds
    ///      3.4e20 USD at 18 decimals; uint48 seconds last until the year 8.9 million.
    struct NavSlot {
        uint128 nav;
        uint48 asOf;
        uint64 round;
        uint16 flags;
    }

    /// @dev Fund bookkeeping other than holdings and NAV. The share supply and its version
    ///      share a slot: a NAV update reads both with one cold SLOAD (2,100 gas).
    struct Fund {
        address manager;
        uint64 activity;
        uint128 totalShares;
        uint64 shareVersion; // +1 on every change of totalShares (deposit, priced withdrawal)
        uint128 pendingFees;
        uint128 pendingWithdrawals;
        uint128 borrowed;
        uint128 queuedShares;
    }

    /// @dev Per-share state read only when needed: the high-water mark (NAV per share, 18
    ///      decimals) once the NAV per share has fallen below it, and the share supply of the
    ///      latest NAV once a flow has changed the supply since (_SHARES_SAVED).
    struct ShareMarks {
        uint128 highWaterMark;
        uint128 navShares;
    }

    /// @dev What the fund's feed answers while it is paused: the last NAV before the pause.
    struct Frozen {
        uint128 navPerShare;
        uint48 asOf;
        uint64 round;
    }

    /// @notice Lifecycle of a withdrawal request.
    enum WithdrawalStatus {
        None,
        Queued,
        Priced,
        Settled
    }

    /// @notice One withdrawal request.
    struct WithdrawalRequest {
        address owner;
        WithdrawalStatus status;
        uint48 requestedAt;
        uint48 claimableAt;
        uint128 shares;
        uint128 usd;
    }

    /// @notice NAV state of one fund, as any consumer reads it. `navPerShare` is the NAV
    ///         over `navShares`, the share supply it was published at; `highWaterMark` is the
    ///         highest NAV per share accepted.
    struct NavView {
        uint256 nav;
        uint256 asOf;
        uint256 round;
        uint256 flags;
        bool estimated;
        uint256 highWaterMark;
        uint256 totalShares;
        uint256 navPerShare;
        bool paused;
        uint256 navShares;
    }

    /// @notice Everything the NAV engine needs about one fund, read in one call for many.
    ///         `flags` carries FLAG_ESTIMATED and FLAG_PAUSED.
    struct FundSnapshot {
        uint256 fundId;
        address manager;
        address[] assets;
        uint8[] decimals;
        uint256[] amounts;
        uint256 pendingFees;
        uint256 pendingWithdrawals;
        uint256 borrowed;
        uint256 totalShares;
        uint256 queuedShares;
        uint256 activity;
        uint256 nav;
        uint256 asOf;
        uint256 round;
        uint256 flags;
        uint256 highWaterMark;
        uint256 navShares;
        uint256 navPerShare;
        uint256 shareVersion;
    }

    /// @notice Layout of one packed NAV update (`updateNAVBatch`, `packNavUpdate`): the NAV in
    ///         the low 128 bits, then flags (16), asOf (48), the share version the NAV was
    ///         computed at (32, its low bits) and the fund id (32) on top. One 32-byte word per
    ///         fund instead of five ABI words: calldata is a large part of a batch's marginal
    ///         cost after the storage.
    uint256 private constant _FLAGS_SHIFT = 128;
    /// @dev Bit offsets of a NAV slot word (`_navWords`), as the compiler would pack NavSlot.
    uint256 private constant _SLOT_ASOF = 128;
    uint256 private constant _SLOT_ROUND = 176;
    uint256 private constant _SLOT_FLAGS = 240;
    uint256 private constant _ASOF_SHIFT = 144;
    uint256 private constant _VERSION_SHIFT = 192;
    uint256 private constant _FUND_SHIFT = 224;

    /// @dev Decimals of an asset, read from the token once when a fund first holds it.
    struct AssetInfo {
        bool known;
        uint8 decimals;
    }

    /// @notice Shares are worth NAV / totalShares, with 18 decimals.
    uint256 public constant SHARE_PRICE_SCALE = 1e18;

    /// @notice The hub every accepted NAV is recorded in, in the same transaction.
    IAnalyticsHub public immutable hub;

    /// @notice Minimum time between a withdrawal request and the NAV that prices it.
    uint48 public withdrawalDelay;

    /// @notice Number of funds created; fund ids run from 1 to fundCount.
    uint256 public fundCount;

    /// @dev NavSlot packed by hand (nav | asOf << 128 | round << 176 | flags << 240): one
    ///      SLOAD and one SSTORE per update, where the compiler reads and writes each field.
    mapping(uint256 fundId => uint256) private _navWords;
    mapping(uint256 fundId => ShareMarks) private _marks;
    mapping(uint256 fundId => Frozen) private _frozen;
    mapping(uint256 fundId => Fund) private _funds;
    mapping(uint256 fundId => address[]) private _assets;
    mapping(uint256 fundId => mapping(address asset => uint256)) private _holdings;
    mapping(uint256 fundId => mapping(address investor => uint256)) private _shares;
    mapping(uint256 fundId => WithdrawalRequest[]) private _withdrawals;
    mapping(address asset => AssetInfo) private _assetInfo;

    // ------------------------------------------------------------------ errors

    /// @notice The hub was deployed for another vault.
    error HubVaultMismatch(address hub, address hubVault, address vault);
    /// @notice No fund has this id.
    error UnknownFund(uint256 fundId);
    /// @notice Only the fund's manager may do this.
    error NotFundManager(uint256 fundId, address caller, address manager);
    /// @notice The manager address is zero.
    error ZeroManager();
    /// @notice `asOf` is not newer than the fund's last NAV.
    error StaleAsOf(uint256 fundId, uint256 asOf, uint256 lastAsOf);
    /// @notice `asOf` lies in the future.
    error FutureAsOf(uint256 fundId, uint256 asOf, uint256 blockTimestamp);
    /// @notice The NAV does not fit the 128-bit storage.
    error NavOutOfRange(uint256 fundId, uint256 nav);
    /// @notice A fund id above 2^32 - 1 cannot be packed into a batch word.
    error FundIdOutOfRange(uint256 fundId);
    /// @notice NAV per share above 2^128 - 1 (a large NAV over less than one whole share).
    error NavPerShareOutOfRange(uint256 fundId, uint256 navPerShare);
    /// @notice Flags outside the documented ones.
    error UnknownFlags(uint256 fundId, uint256 flags);
    /// @notice The fund holds less of the asset than the operation needs.
    error InsufficientHoldings(uint256 fundId, address asset, uint256 held, uint256 needed);
    /// @notice The investor owns fewer shares than requested.
    error InsufficientShares(uint256 fundId, address investor, uint256 owned, uint256 requested);
    /// @notice A liability would drop below zero.
    error LiabilityUnderflow(uint256 fundId, uint256 outstanding, uint256 reduction);
    /// @notice A zero amount where a positive one is needed.
    error ZeroAmount();
    /// @notice The fund already holds the maximum number of distinct assets.
    error TooManyAssets(uint256 fundId, uint256 max);
    /// @notice The asset's decimals() could not be read or exceed 36.
    error UnsupportedAsset(address asset);
    /// @notice No such withdrawal request.
    error UnknownWithdrawal(uint256 fundId, uint256 requestId);
    /// @notice The request is not in the status the operation needs.
    error WrongWithdrawalStatus(uint256 fundId, uint256 requestId, WithdrawalStatus status);
    /// @notice The request's delay has not passed yet.
    error WithdrawalNotClaimable(uint256 fundId, uint256 requestId, uint256 claimableAt);
    /// @notice No NAV has been published at or after the request's claimable time.
    error WithdrawalAwaitsNav(uint256 fundId, uint256 requestId, uint256 claimableAt, uint256 navAsOf);
    /// @notice Amount does not fit the 128-bit bookkeeping.
    error AmountOutOfRange(uint256 amount);
    /// @notice Only a guardian or the NAV engine may pause or unpause a fund.
    error NotGuardianOrEngine(address caller);
    /// @notice The fund's pause is a guardian's: the NAV engine cannot lift it.
    error PauseHeldByGuardian(uint256 fundId, address caller);
    /// @notice The fund is paused (its NAV is not to be relied on), so nothing is priced at it.
    error FundIsPaused(uint256 fundId);
    /// @notice The fund's NAV was published while it had no shares: it prices no withdrawal.
    error NoSharesAtNav(uint256 fundId, uint256 round);

    // ------------------------------------------------------------------ events

    /// @notice A fund was created.
    event FundCreated(uint256 indexed fundId, address indexed manager);
    /// @notice A fund's manager changed.
    event ManagerChanged(uint256 indexed fundId, address indexed manager);
    /// @notice The seed's event: an accepted NAV (18-decimal USD) replaced `oldNAV` (0 before
    ///         the first); `timestamp` is its asOf, the time it was computed for. Emitted once
    ///         per fund per accepted NAV, by `updateNAV` and `updateNAVBatch` alike. The round,
    ///         NAV per share and flags are in the hub's `NAVRecorded` of the same transaction.
    event NAVUpdated(uint256 indexed fundId, uint256 oldNAV, uint256 newNAV, uint256 timestamp);
    /// @notice The seed's event: the fund's NAV per share (18 decimals, the figure fees
    ///         crystallise on) rose above its previous high-water mark; `newNAV` is the new
    ///         mark, a NAV per share.
    event HighWaterMarkUpdated(uint256 indexed fundId, uint256 newNAV);
    /// @notice A guardian published a hand-computed NAV (`correctNAV`), naming itself and why;
    ///         the seed's `NAVUpdated` and the hub's record of it are emitted as for any NAV.
    event NAVCorrected(
        uint256 indexed fundId, address indexed guardian, uint256 oldNAV, uint256 newNAV, uint256 navPerShare, string reason
    );
    /// @notice A guardian reset the per-share high-water mark from `oldMark` to `newMark` with a
    ///         correction (the only way the mark falls).
    event HighWaterMarkReset(uint256 indexed fundId, uint256 oldMark, uint256 newMark, address indexed guardian);
    /// @notice A batch entry was not applied: the fund's shares changed (a deposit or a priced
    ///         withdrawal) after the NAV was computed, so the NAV is not over today's supply.
    ///         `shareVersion` is the word's (low 32 bits), `currentShareVersion` the fund's share
    ///         version now. The engine publishes a fresh NAV.
    event NAVSkipped(uint256 indexed fundId, uint256 shareVersion, uint256 currentShareVersion);
    /// @notice Assets came in and shares were issued.
    event Deposited(
        uint256 indexed fundId, address indexed asset, uint256 amount, address indexed receiver, uint256 shares, uint256 activity
    );
    /// @notice The manager exchanged one asset for another.
    event Traded(
        uint256 indexed fundId,
        address indexed assetSold,
        uint256 amountSold,
        address indexed assetBought,
        uint256 amountBought,
        uint256 activity
    );
    /// @notice A management or performance fee was accrued as a liability.
    event FeeAccrued(uint256 indexed fundId, uint256 usd, uint256 pendingFees, uint256 activity);
    /// @notice Accrued fees were paid out in an asset.
    event FeeCollected(uint256 indexed fundId, address indexed asset, uint256 amount, uint256 usd, uint256 activity);
    /// @notice The fund borrowed an asset against a USD debt.
    event Borrowed(uint256 indexed fundId, address indexed asset, uint256 amount, uint256 debtUsd, uint256 activity);
    /// @notice The fund repaid debt with an asset.
    event Repaid(uint256 indexed fundId, address indexed asset, uint256 amount, uint256 debtUsd, uint256 activity);
    /// @notice An investor queued a withdrawal; `activity` is the fund's counter, not bumped.
    event WithdrawalRequested(
        uint256 indexed fundId, uint256 indexed requestId, address indexed owner, uint256 shares, uint256 claimableAt, uint256 activity
    );
    /// @notice A queued withdrawal was priced at a NAV published after its delay.
    event WithdrawalPriced(uint256 indexed fundId, uint256 indexed requestId, uint256 shares, uint256 usd, uint256 activity);
    /// @notice A priced withdrawal was paid out.
    event WithdrawalSettled(
        uint256 indexed fundId, uint256 indexed requestId, address indexed asset, uint256 amount, uint256 activity
    );
    /// @notice The withdrawal delay changed.
    event WithdrawalDelaySet(uint48 delay);
    /// @notice A guardian or the NAV engine paused (`paused` true) or unpaused a fund's NAV.
    event FundPaused(uint256 indexed fundId, bool paused, string reason);

    // ------------------------------------------------------------------ setup

    /// @param admin Account allowed to create funds, grant roles, pause and set the delay.
    /// @param hub_ AnalyticsHub deployed for this vault (its `vault()` must be this contract).
    /// @param withdrawalDelay_ Seconds between a withdrawal request and the NAV that prices it.
    constructor(address admin, IAnalyticsHub hub_, uint48 withdrawalDelay_) {
        // Both sides hold the other's address as an immutable, so recording a NAV costs no
        // storage read; the hub is deployed first, at the vault's precomputed address.
        if (hub_.vault() != address(this)) revert HubVaultMismatch(address(hub_), hub_.vault(), address(this));
        hub = hub_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        withdrawalDelay = withdrawalDelay_;
        emit WithdrawalDelaySet(withdrawalDelay_);
    }

    /// @notice Creates a fund managed by `manager`.
    /// @return fundId The new fund's id (ids start at 1).
    function createFund(address manager) external onlyRole(DEFAULT_ADMIN_ROLE) returns (uint256 fundId) {
        if (manager == address(0)) revert ZeroManager();
        fundId = ++fundCount;
        _funds[fundId].manager = manager;
        _navWords[fundId] = uint256(_EXISTS) << _SLOT_FLAGS;
        emit FundCreated(fundId, manager);
    }

    /// @notice Hands a fund to another manager.
    function setManager(uint256 fundId, address manager) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _requireFund(fundId);
        if (manager == address(0)) revert ZeroManager();
        _funds[fundId].manager = manager;
        emit ManagerChanged(fundId, manager);
    }

    /// @notice Sets the withdrawal delay for requests made from now on.
    function setWithdrawalDelay(uint48 delay) external onlyRole(DEFAULT_ADMIN_ROLE) {
        withdrawalDelay = delay;
        emit WithdrawalDelaySet(delay);
    }

    /// @notice Stops deposits, trades and withdrawals (NAV publication goes on).
    function pause() external onlyRole(DEFAULT_ADMIN_ROLE) {
        _pause();
    }

    /// @notice Resumes deposits, trades and withdrawals.
    function unpause() external onlyRole(DEFAULT_ADMIN_ROLE) {
        _unpause();
    }

    /// @notice Pulls (`paused` true) or releases the ripcord of one fund: while paused, its
    ///         NAV is not to be relied on. Readers see it in `navState`, `isPaused`, the
    ///         FLAG_PAUSED bit of snapshot flags and the fund's FundNavFeed `paused()`; the
    ///         feed freezes at the last NAV before the pause (answer and updatedAt), so a
    ///         consumer that checks only staleness stops using it too. The NAV engine keeps
    ///         publishing and every update keeps the flag; withdrawals are not priced while it
    ///         is set. Other flows are stopped by `pause()` only.
    ///         The pause belongs to whoever pulled it: the engine's own is marked
    ///         FLAG_ENGINE_PAUSE and the engine may lift only that one; a guardian's pause
    ///         (pulled over the engine's too) only a guardian lifts (`PauseHeldByGuardian`). A
    ///         caller holding both roles acts as a guardian.
    /// @dev Idempotent: setting the current state again rewrites nothing and emits the event
    ///      again, so a guardian and the engine can both pull it without one of them failing.
    /// @param fundId The fund.
    /// @param paused True to pause, false to resume.
    /// @param reason Why, for people and logs (only emitted, never stored).
    function setFundPaused(uint256 fundId, bool paused, string calldata reason) external {
        bool guardian = hasRole(GUARDIAN_ROLE, msg.sender);
        if (!guardian && !hasRole(NAV_ENGINE_ROLE, msg.sender)) revert NotGuardianOrEngine(msg.sender);
        NavSlot memory s = _loadNav(fundId);
        uint16 flags = s.flags;
        if (flags & _EXISTS == 0) revert UnknownFund(fundId);
        uint16 updated;
        if (paused) {
            if (guardian) {
                // A guardian's pause is the guardian's, over the engine's ripcord too.
                updated = (flags | FLAG_PAUSED) & ~FLAG_ENGINE_PAUSE;
            } else {
                // The engine's ripcord over a pause in force changes nothing: it stays its holder's.
                updated = flags & FLAG_PAUSED != 0 ? flags : flags | FLAG_PAUSED | FLAG_ENGINE_PAUSE;
            }
        } else {
            if (!guardian && flags & FLAG_PAUSED != 0 && flags & FLAG_ENGINE_PAUSE == 0) {
                revert PauseHeldByGuardian(fundId, msg.sender);
            }
            updated = flags & ~(FLAG_PAUSED | FLAG_ENGINE_PAUSE);
        }
        if (updated != flags) {
            if (updated & FLAG_PAUSED != 0 && flags & FLAG_PAUSED == 0) {
                _frozen[fundId] = Frozen({
                    navPerShare: uint128(_perShare(s.nav, _navShares(fundId, flags))), asOf: s.asOf, round: s.round
                });
            }
            _setFlags(fundId, updated);
        }
        emit FundPaused(fundId, paused, reason);
    }

    // ------------------------------------------------------------------ NAV publication

    /// @notice The seed's call: publishes `nav` as of this block's time, not estimated, and
    ///         records it with the seed's `hub.recordNAV`. Same checks and events as the
    ///         four-argument form; the NAV is taken to be over the fund's current share supply
    ///         (the batch form checks that, see `updateNAVBatch`).
    /// @param fundId The fund.
    /// @param nav NAV in USD with 18 decimals.
    function updateNAV(uint256 fundId, uint256 nav) external onlyRole(NAV_ENGINE_ROLE) {
        IAnalyticsHub.NavRecord memory unused;
        _applyNav(fundId, nav, uint48(block.timestamp), 0, _funds[fundId].totalShares, unused);
        hub.recordNAV(fundId, nav, block.timestamp);
    }

    /// @notice Publishes the NAV of one fund and records it in the hub.
    /// @param fundId The fund.
    /// @param nav NAV in USD with 18 decimals, over the fund's current share supply.
    /// @param asOf Time the NAV was computed for; newer than the last one, not in the future.
    /// @param flags FLAG_ESTIMATED when a cached price was used (anything else: UnknownFlags).
    ///        The fund's FLAG_PAUSED is kept as it is: the engine publishes while paused.
    function updateNAV(uint256 fundId, uint256 nav, uint48 asOf, uint16 flags)
        external
        onlyRole(NAV_ENGINE_ROLE)
    {
        hub.recordNAVs(_applyOne(fundId, nav, asOf, flags));
    }

    /// @dev One NAV over today's supply, as the hub's one-record array.
    function _applyOne(uint256 fundId, uint256 nav, uint48 asOf, uint16 flags)
        private
        returns (IAnalyticsHub.NavRecord[] memory records)
    {
        records = new IAnalyticsHub.NavRecord[](1);
        _applyNav(fundId, nav, asOf, flags, _funds[fundId].totalShares, records[0]);
    }

    /// @notice Publishes the NAVs of many funds in one transaction; each accepted one emits
    ///         `NAVUpdated` and is recorded in the hub, exactly as a single update is.
    /// @param updates One word per fund, packed as `packNavUpdate` does (fund id, share
    ///        version, asOf, flags, NAV); the same checks as `updateNAV` apply to each.
    /// @dev A bad entry reverts the batch with that entry's error. An entry whose share version
    ///      is not the fund's (a deposit or a priced withdrawal landed after the engine read the
    ///      fund) is skipped with `NAVSkipped` instead: the rest of the batch is still right.
    function updateNAVBatch(uint256[] calldata updates) external onlyRole(NAV_ENGINE_ROLE) {
        uint256 n = updates.length;
        IAnalyticsHub.NavRecord[] memory records = new IAnalyticsHub.NavRecord[](n);
        uint256 accepted;
        for (uint256 i; i < n; ++i) {
            uint256 w = updates[i];
            uint256 fundId = w >> _FUND_SHIFT;
            Fund storage f = _funds[fundId];
            (uint256 shares, uint256 version) = (f.totalShares, f.shareVersion);
            // The word carries the version's low 32 bits: 4e9 share changes between a read and
            // its NAV's inclusion cannot happen.
            uint32 expected = uint32(w >> _VERSION_SHIFT);
            if (expected != uint32(version)) {
                _requireFund(fundId);
                emit NAVSkipped(fundId, expected, version);
                continue;
            }
            // Each field is masked by its cast; a NAV is at most 128 bits by construction.
            _applyNav(
                fundId, uint128(w), uint48(w >> _ASOF_SHIFT), uint16(w >> _FLAGS_SHIFT), shares, records[accepted++]
            );
        }
        if (accepted != 0) {
            assembly ("memory-safe") {
                mstore(records, accepted) // drop the skipped entries' empty tail
            }
            hub.recordNAVs(records);
        }
    }

    /// @notice The seed's "Recalculate manually", as a guardian's transaction: publishes a
    ///         hand-computed NAV with its reason, under the same checks as an engine update,
    ///         and with `resetMark` sets the per-share high-water mark to this NAV per share —
    ///         the audited way to repair a mark a bad NAV pushed up (it never falls otherwise).
    /// @param fundId The fund.
    /// @param nav NAV in USD with 18 decimals, over the fund's current share supply.
    /// @param asOf Time the NAV was computed for; newer than the last one, not in the future.
    /// @param flags FLAG_ESTIMATED or 0.
    /// @param resetMark True to set the high-water mark to this NAV per share.
    /// @param reason Why, for people and auditors (emitted in `NAVCorrected`, never stored).
    function correctNAV(uint256 fundId, uint256 nav, uint48 asOf, uint16 flags, bool resetMark, string calldata reason)
        external
        onlyRole(GUARDIAN_ROLE)
    {
        (uint256 oldNav, uint256 perShare) = _correct(fundId, nav, asOf, flags, resetMark);
        emit NAVCorrected(fundId, msg.sender, oldNav, nav, perShare, reason);
    }

    function _correct(uint256 fundId, uint256 nav, uint48 asOf, uint16 flags, bool resetMark)
        private
        returns (uint256 oldNav, uint256 perShare)
    {
        oldNav = uint128(_navWords[fundId]);
        uint256 oldMark = _currentMark(fundId);
        IAnalyticsHub.NavRecord[] memory records = _applyOne(fundId, nav, asOf, flags);
        perShare = records[0].navPerShare;
        if (resetMark && perShare != 0) {
            // The mark is implied by the slot while at the peak: setting the bit makes this NAV
            // per share the mark, whatever was stored before.
            _setFlags(fundId, _flagsOf(fundId) | _AT_PEAK);
            emit HighWaterMarkReset(fundId, oldMark, perShare, msg.sender);
        }
        hub.recordNAVs(records);
    }

    /// @notice The word `updateNAVBatch` expects for one fund. Bits 0-127: the NAV; 128-143:
    ///         flags; 144-191: asOf; 192-223: the low 32 bits of `shareVersion`, the fund's
    ///         share version when its holdings were read (`getFundSnapshots`); 224-255: the
    ///         fund id.
    /// @dev Reverts FundIdOutOfRange / NavOutOfRange rather than truncate.
    function packNavUpdate(uint256 fundId, uint256 nav, uint48 asOf, uint16 flags, uint256 shareVersion)
        external
        pure
        returns (uint256)
    {
        if (fundId > type(uint32).max) revert FundIdOutOfRange(fundId);
        if (nav > type(uint128).max) revert NavOutOfRange(fundId, nav);
        return fundId << _FUND_SHIFT | uint256(uint32(shareVersion)) << _VERSION_SHIFT | uint256(asOf) << _ASOF_SHIFT
            | uint256(flags) << _FLAGS_SHIFT | nav;
    }

    /// @dev Checks and stores one NAV over `shares`, moves the per-share mark, emits the seed's
    ///      events and fills `r`, the hub's record (allocated once by the caller).
    function _applyNav(
        uint256 fundId,
        uint256 nav,
        uint48 asOf,
        uint16 flags,
        uint256 shares,
        IAnalyticsHub.NavRecord memory r
    ) private {
        NavSlot memory last = _loadNav(fundId);
        uint16 lastFlags = last.flags;
        if (lastFlags & _EXISTS == 0) revert UnknownFund(fundId);
        if (flags & ~_PUBLIC_FLAGS != 0) revert UnknownFlags(fundId, flags);
        if (nav > type(uint128).max) revert NavOutOfRange(fundId, nav);
        if (asOf <= last.asOf) revert StaleAsOf(fundId, asOf, last.asOf);
        if (asOf > block.timestamp) revert FutureAsOf(fundId, asOf, block.timestamp);
        uint256 perShare = _perShare(nav, shares);
        if (perShare > type(uint128).max) revert NavPerShareOutOfRange(fundId, perShare);
        uint16 peak; // _AT_PEAK when this NAV per share is the mark
        if (shares != 0) {
            // Without shares there is no NAV per share, and no mark moves.
            uint256 lastPerShare = _perShare(last.nav, _navShares(fundId, lastFlags, shares));
            if (lastFlags & _AT_PEAK != 0) {
                if (perShare >= lastPerShare) {
                    peak = _AT_PEAK;
                    if (perShare > lastPerShare) emit HighWaterMarkUpdated(fundId, perShare);
                } else {
                    // Leaving the peak: the mark, implied by the slot so far, is stored now.
                    _marks[fundId].highWaterMark = uint128(lastPerShare);
                }
            } else if (perShare > lastPerShare) {
                // Below the mark a fall or a flat NAV per share cannot reach it: only a rise
                // reads it.
                uint256 mark = _marks[fundId].highWaterMark;
                if (perShare >= mark) {
                    peak = _AT_PEAK;
                    if (perShare > mark) emit HighWaterMarkUpdated(fundId, perShare);
                }
            }
        } else if (lastFlags & _AT_PEAK != 0) {
            // A NAV without shares has no NAV per share, but it ends the peak the slot implied:
            // the mark is stored before the slot stops implying it.
            _marks[fundId].highWaterMark = uint128(_perShare(last.nav, _navShares(fundId, lastFlags, shares)));
        }
        uint64 round = last.round + 1;
        // Existence and pause are carried over from the slot read above: no extra SLOAD. The
        // new NAV is over today's supply, so no saved supply applies to it.
        uint16 stored = flags | (lastFlags & _STICKY_FLAGS) | peak;
        _navWords[fundId] =
            nav | uint256(asOf) << _SLOT_ASOF | uint256(round) << _SLOT_ROUND | uint256(stored) << _SLOT_FLAGS;
        emit NAVUpdated(fundId, last.nav, nav, asOf);
        r.fundId = fundId;
        r.round = round;
        r.nav = nav;
        r.navPerShare = perShare;
        r.asOf = asOf;
        r.flags = stored & _VISIBLE_FLAGS;
    }

    // ------------------------------------------------------------------ fund activity

    /// @notice Brings `amount` of `asset` into the fund and issues `shares` to `receiver`.
    /// @dev The manager prices the subscription; the tokens come from the manager.
    function deposit(uint256 fundId, address asset, uint256 amount, uint256 shares, address receiver)
        external
        whenNotPaused
        nonReentrant
    {
        Fund storage f = _managed(fundId);
        if (amount == 0) revert ZeroAmount();
        IERC20(asset).safeTransferFrom(msg.sender, address(this), amount);
        _credit(fundId, asset, amount);
        _beforeSharesChange(fundId, f);
        f.totalShares = _u128(f.totalShares + shares);
        _shares[fundId][receiver] += shares;
        emit Deposited(fundId, asset, amount, receiver, shares, _bump(f));
    }

    /// @notice Exchanges `amountSold` of `assetSold` for `amountBought` of `assetBought`, with
    ///         the manager as counterparty (the execution venue is off this contract).
    function trade(uint256 fundId, address assetSold, uint256 amountSold, address assetBought, uint256 amountBought)
        external
        whenNotPaused
        nonReentrant
    {
        Fund storage f = _managed(fundId);
        if (amountSold == 0 || amountBought == 0) revert ZeroAmount();
        _debit(fundId, assetSold, amountSold);
        _credit(fundId, assetBought, amountBought);
        IERC20(assetBought).safeTransferFrom(msg.sender, address(this), amountBought);
        IERC20(assetSold).safeTransfer(msg.sender, amountSold);
        emit Traded(fundId, assetSold, amountSold, assetBought, amountBought, _bump(f));
    }

    /// @notice Accrues `usd` (18 decimals) of fees as a liability of the fund.
    function accrueFee(uint256 fundId, uint256 usd) external {
        Fund storage f = _managed(fundId);
        if (usd == 0) revert ZeroAmount();
        f.pendingFees = _u128(f.pendingFees + usd);
        emit FeeAccrued(fundId, usd, f.pendingFees, _bump(f));
    }

    /// @notice Pays `usd` of accrued fees to the manager as `amount` of `asset`.
    function collectFee(uint256 fundId, address asset, uint256 amount, uint256 usd) external nonReentrant {
        Fund storage f = _managed(fundId);
        if (usd > f.pendingFees) revert LiabilityUnderflow(fundId, f.pendingFees, usd);
        f.pendingFees -= uint128(usd);
        _debit(fundId, asset, amount);
        IERC20(asset).safeTransfer(msg.sender, amount);
        emit FeeCollected(fundId, asset, amount, usd, _bump(f));
    }

    /// @notice Borrows `amount` of `asset` from the manager's credit line, owing `debtUsd`.
    function borrow(uint256 fundId, address asset, uint256 amount, uint256 debtUsd) external nonReentrant {
        Fund storage f = _managed(fundId);
        if (amount == 0 || debtUsd == 0) revert ZeroAmount();
        IERC20(asset).safeTransferFrom(msg.sender, address(this), amount);
        _credit(fundId, asset, amount);
        f.borrowed = _u128(f.borrowed + debtUsd);
        emit Borrowed(fundId, asset, amount, debtUsd, _bump(f));
    }

    /// @notice Repays `debtUsd` of debt with `amount` of `asset`, sent to the manager.
    function repay(uint256 fundId, address asset, uint256 amount, uint256 debtUsd) external nonReentrant {
        Fund storage f = _managed(fundId);
        if (debtUsd > f.borrowed) revert LiabilityUnderflow(fundId, f.borrowed, debtUsd);
        f.borrowed -= uint128(debtUsd);
        _debit(fundId, asset, amount);
        IERC20(asset).safeTransfer(msg.sender, amount);
        emit Repaid(fundId, asset, amount, debtUsd, _bump(f));
    }

    // ------------------------------------------------------------------ withdrawals

    /// @notice Queues a withdrawal of `shares`; they are escrowed until the request is priced.
    /// @return requestId Index of the request in the fund's queue.
    function requestWithdrawal(uint256 fundId, uint256 shares) external whenNotPaused returns (uint256 requestId) {
        Fund storage f = _fund(fundId);
        if (shares == 0) revert ZeroAmount();
        uint256 owned = _shares[fundId][msg.sender];
        if (shares > owned) revert InsufficientShares(fundId, msg.sender, owned, shares);
        _shares[fundId][msg.sender] = owned - shares;
        f.queuedShares = _u128(f.queuedShares + shares);
        uint48 claimableAt = uint48(block.timestamp) + withdrawalDelay;
        requestId = _withdrawals[fundId].length;
        _withdrawals[fundId].push(
            WithdrawalRequest({
                owner: msg.sender,
                status: WithdrawalStatus.Queued,
                requestedAt: uint48(block.timestamp),
                claimableAt: claimableAt,
                shares: uint128(shares),
                usd: 0
            })
        );
        // Not activity: escrowed shares change no NAV (see the contract's notice).
        emit WithdrawalRequested(fundId, requestId, msg.sender, shares, claimableAt, f.activity);
    }

    /// @notice Prices a queued withdrawal at the fund's NAV per share, once the delay has
    ///         passed and a NAV as of that time or later has been published. Anyone may call
    ///         it. The shares are burnt and the USD owed becomes a pending withdrawal.
    /// @dev The USD owed is NAV × shares / the supply that NAV was published at, so two
    ///      withdrawals priced at one NAV get the same price per share. Rounded down, in
    ///      favour of the investors who stay.
    function priceWithdrawal(uint256 fundId, uint256 requestId) external whenNotPaused returns (uint256 usd) {
        Fund storage f = _fund(fundId);
        WithdrawalRequest storage r = _request(fundId, requestId);
        if (r.status != WithdrawalStatus.Queued) revert WrongWithdrawalStatus(fundId, requestId, r.status);
        if (block.timestamp < r.claimableAt) revert WithdrawalNotClaimable(fundId, requestId, r.claimableAt);
        NavSlot memory s = _loadNav(fundId);
        if (s.flags & FLAG_PAUSED != 0) revert FundIsPaused(fundId);
        if (s.asOf < r.claimableAt) revert WithdrawalAwaitsNav(fundId, requestId, r.claimableAt, s.asOf);
        _beforeSharesChange(fundId, f);
        uint256 navShares = _marks[fundId].navShares;
        if (navShares == 0) revert NoSharesAtNav(fundId, s.round);
        usd = (uint256(s.nav) * r.shares) / navShares;
        r.status = WithdrawalStatus.Priced;
        r.usd = uint128(usd);
        f.totalShares -= r.shares;
        f.queuedShares -= r.shares;
        f.pendingWithdrawals = _u128(f.pendingWithdrawals + usd);
        emit WithdrawalPriced(fundId, requestId, r.shares, usd, _bump(f));
    }

    /// @notice Pays a priced withdrawal with `amount` of `asset` and clears its liability.
    function settleWithdrawal(uint256 fundId, uint256 requestId, address asset, uint256 amount)
        external
        nonReentrant
    {
        Fund storage f = _managed(fundId);
        WithdrawalRequest storage r = _request(fundId, requestId);
        if (r.status != WithdrawalStatus.Priced) revert WrongWithdrawalStatus(fundId, requestId, r.status);
        r.status = WithdrawalStatus.Settled;
        f.pendingWithdrawals -= r.usd;
        _debit(fundId, asset, amount);
        IERC20(asset).safeTransfer(r.owner, amount);
        emit WithdrawalSettled(fundId, requestId, asset, amount, _bump(f));
    }

    // ------------------------------------------------------------------ views (seed names)

    /// @notice Every asset the fund has held and its current amount (token units).
    function getAllHoldings(uint256 fundId) public view returns (address[] memory assets, uint256[] memory amounts) {
        _requireFund(fundId);
        assets = _assets[fundId];
        amounts = new uint256[](assets.length);
        for (uint256 i; i < assets.length; ++i) {
            amounts[i] = _holdings[fundId][assets[i]];
        }
    }

    /// @notice Fees accrued and not yet paid, 18-decimal USD.
    function getPendingFees(uint256 fundId) external view returns (uint256) {
        return _fund(fundId).pendingFees;
    }

    /// @notice Priced withdrawals not yet paid, 18-decimal USD.
    function getPendingWithdrawals(uint256 fundId) external view returns (uint256) {
        return _fund(fundId).pendingWithdrawals;
    }

    /// @notice Debt outstanding, 18-decimal USD.
    function getBorrowed(uint256 fundId) external view returns (uint256) {
        return _fund(fundId).borrowed;
    }

    /// @notice The fund's manager.
    function managerOf(uint256 fundId) external view returns (address) {
        return _fund(fundId).manager;
    }

    /// @notice Shares `investor` owns outright (escrowed shares excluded).
    function sharesOf(uint256 fundId, address investor) external view returns (uint256) {
        _requireFund(fundId);
        return _shares[fundId][investor];
    }

    /// @notice The fund's activity counter (bumped by every trade, deposit, withdrawal step,
    ///         fee and loan).
    function activityOf(uint256 fundId) external view returns (uint256) {
        return _fund(fundId).activity;
    }

    /// @notice Every withdrawal request of the fund, in order.
    function getWithdrawalRequests(uint256 fundId) external view returns (WithdrawalRequest[] memory) {
        _requireFund(fundId);
        return _withdrawals[fundId];
    }

    /// @notice The fund's NAV state: NAV, as-of time, round, flags (FLAG_ESTIMATED,
    ///         FLAG_PAUSED), estimated, per-share high-water mark, total shares, NAV per share
    ///         (over the supply the NAV was published at), paused, and that supply.
    function navState(uint256 fundId) public view returns (NavView memory v) {
        NavSlot memory s = _loadNav(fundId);
        if (s.flags & _EXISTS == 0) revert UnknownFund(fundId);
        uint256 navShares = _navShares(fundId, s.flags);
        v.nav = s.nav;
        v.asOf = s.asOf;
        v.round = s.round;
        v.flags = s.flags & _VISIBLE_FLAGS;
        v.estimated = s.flags & FLAG_ESTIMATED != 0;
        v.highWaterMark = _markOf(fundId, s, navShares);
        v.totalShares = _funds[fundId].totalShares;
        v.navPerShare = _perShare(s.nav, navShares);
        v.paused = s.flags & FLAG_PAUSED != 0;
        v.navShares = navShares;
    }

    /// @inheritdoc IFundNavSource
    function navPerShareState(uint256 fundId)
        external
        view
        returns (uint256 navPerShare, uint256 asOf, uint256 round, uint256 flags, bool paused)
    {
        NavSlot memory s = _loadNav(fundId);
        if (s.flags & _EXISTS == 0) revert UnknownFund(fundId);
        return (
            _perShare(s.nav, _navShares(fundId, s.flags)),
            s.asOf,
            s.round,
            s.flags & _VISIBLE_FLAGS,
            s.flags & FLAG_PAUSED != 0
        );
    }

    /// @inheritdoc IFundNavSource
    /// @dev Two storage reads (NAV slot, then the share supply or the frozen round).
    function feedData(uint256 fundId)
        external
        view
        returns (uint256 navPerShare, uint256 asOf, uint256 round, bool paused)
    {
        NavSlot memory s = _loadNav(fundId);
        if (s.flags & _EXISTS == 0) revert UnknownFund(fundId);
        if (s.flags & FLAG_PAUSED != 0) {
            Frozen memory z = _frozen[fundId];
            return (z.navPerShare, z.asOf, z.round, true);
        }
        return (_perShare(s.nav, _navShares(fundId, s.flags)), s.asOf, s.round, false);
    }

    /// @inheritdoc IFundNavSource
    function isPaused(uint256 fundId) external view returns (bool) {
        uint16 flags = _flagsOf(fundId);
        if (flags & _EXISTS == 0) revert UnknownFund(fundId);
        return flags & FLAG_PAUSED != 0;
    }

    /// @inheritdoc IFundNavSource
    function latestNAV(uint256 fundId) external view returns (uint256 nav, uint256 asOf, uint256 round) {
        NavSlot memory s = _loadNav(fundId);
        if (s.flags & _EXISTS == 0) revert UnknownFund(fundId);
        return (s.nav, s.asOf, s.round);
    }

    /// @notice Everything the NAV engine needs for many funds in one call.
    function getFundSnapshots(uint256[] calldata fundIds) external view returns (FundSnapshot[] memory snaps) {
        snaps = new FundSnapshot[](fundIds.length);
        for (uint256 i; i < fundIds.length; ++i) {
            snaps[i] = _snapshot(fundIds[i]);
        }
    }

    // ------------------------------------------------------------------ internals

    function _snapshot(uint256 fundId) private view returns (FundSnapshot memory s) {
        Fund storage f = _fund(fundId);
        NavSlot memory n = _loadNav(fundId);
        s.fundId = fundId;
        s.manager = f.manager;
        (s.assets, s.amounts) = getAllHoldings(fundId);
        s.decimals = new uint8[](s.assets.length);
        for (uint256 i; i < s.assets.length; ++i) {
            s.decimals[i] = _assetInfo[s.assets[i]].decimals;
        }
        s.pendingFees = f.pendingFees;
        s.pendingWithdrawals = f.pendingWithdrawals;
        s.borrowed = f.borrowed;
        s.totalShares = f.totalShares;
        s.queuedShares = f.queuedShares;
        s.activity = f.activity;
        s.nav = n.nav;
        s.asOf = n.asOf;
        s.round = n.round;
        s.flags = n.flags & _VISIBLE_FLAGS;
        s.navShares = _navShares(fundId, n.flags);
        s.navPerShare = _perShare(n.nav, s.navShares);
        s.highWaterMark = _markOf(fundId, n, s.navShares);
        s.shareVersion = f.shareVersion;
    }

    function _loadNav(uint256 fundId) private view returns (NavSlot memory s) {
        uint256 w = _navWords[fundId];
        s.nav = uint128(w);
        s.asOf = uint48(w >> _SLOT_ASOF);
        s.round = uint64(w >> _SLOT_ROUND);
        s.flags = uint16(w >> _SLOT_FLAGS);
    }

    function _flagsOf(uint256 fundId) private view returns (uint16) {
        return uint16(_navWords[fundId] >> _SLOT_FLAGS);
    }

    function _setFlags(uint256 fundId, uint16 flags) private {
        uint256 w = _navWords[fundId];
        _navWords[fundId] = (w & ~(uint256(type(uint16).max) << _SLOT_FLAGS)) | uint256(flags) << _SLOT_FLAGS;
    }

    function _currentMark(uint256 fundId) private view returns (uint256) {
        NavSlot memory n = _loadNav(fundId);
        return _markOf(fundId, n, _navShares(fundId, n.flags));
    }

    /// @dev The per-share high-water mark: the slot's NAV per share while it is the peak, else
    ///      the stored mark.
    function _markOf(uint256 fundId, NavSlot memory n, uint256 navShares) private view returns (uint256) {
        return n.flags & _AT_PEAK != 0 ? _perShare(n.nav, navShares) : _marks[fundId].highWaterMark;
    }

    /// @dev The share supply the slot's NAV was published at.
    function _navShares(uint256 fundId, uint16 flags) private view returns (uint256) {
        return _navShares(fundId, flags, _funds[fundId].totalShares);
    }

    /// @dev The same, with today's supply already read.
    function _navShares(uint256 fundId, uint16 flags, uint256 totalShares) private view returns (uint256) {
        return flags & _SHARES_SAVED != 0 ? _marks[fundId].navShares : totalShares;
    }

    /// @dev Called before every change of the share supply: the first one since the latest NAV
    ///      saves the supply that NAV is over (so its NAV per share stays what it was), and
    ///      every one bumps the share version (so a NAV computed before it is skipped).
    function _beforeSharesChange(uint256 fundId, Fund storage f) private {
        uint16 flags = _flagsOf(fundId);
        if (flags & _SHARES_SAVED == 0) {
            _marks[fundId].navShares = f.totalShares;
            _setFlags(fundId, flags | _SHARES_SAVED);
        }
        ++f.shareVersion;
    }

    /// @dev NAV per share with 18 decimals, rounded down; 0 while there are no shares.
    function _perShare(uint256 nav, uint256 shares) private pure returns (uint256) {
        return shares == 0 ? 0 : (nav * SHARE_PRICE_SCALE) / shares;
    }

    function _bump(Fund storage f) private returns (uint256) {
        return ++f.activity;
    }

    function _requireFund(uint256 fundId) private view {
        if (_flagsOf(fundId) & _EXISTS == 0) revert UnknownFund(fundId);
    }

    function _fund(uint256 fundId) private view returns (Fund storage) {
        _requireFund(fundId);
        return _funds[fundId];
    }

    function _managed(uint256 fundId) private view returns (Fund storage f) {
        f = _fund(fundId);
        if (msg.sender != f.manager) revert NotFundManager(fundId, msg.sender, f.manager);
    }

    function _request(uint256 fundId, uint256 requestId) private view returns (WithdrawalRequest storage) {
        if (requestId >= _withdrawals[fundId].length) revert UnknownWithdrawal(fundId, requestId);
        return _withdrawals[fundId][requestId];
    }

    function _credit(uint256 fundId, address asset, uint256 amount) private {
        if (!_assetInfo[asset].known) {
            // Read once and cached: the engine needs decimals for every holding every cycle.
            try IERC20Metadata(asset).decimals() returns (uint8 d) {
                if (d > 36) revert UnsupportedAsset(asset);
                _assetInfo[asset] = AssetInfo({known: true, decimals: d});
            } catch {
                revert UnsupportedAsset(asset);
            }
        }
        mapping(address => uint256) storage held = _holdings[fundId];
        if (held[asset] == 0 && !_listed(fundId, asset)) {
            if (_assets[fundId].length >= MAX_ASSETS_PER_FUND) revert TooManyAssets(fundId, MAX_ASSETS_PER_FUND);
            _assets[fundId].push(asset);
        }
        held[asset] += amount;
    }

    function _debit(uint256 fundId, address asset, uint256 amount) private {
        uint256 held = _holdings[fundId][asset];
        if (amount > held) revert InsufficientHoldings(fundId, asset, held, amount);
        _holdings[fundId][asset] = held - amount;
    }

    /// @dev Linear scan, bounded by MAX_ASSETS_PER_FUND; only on the first credit of an asset
    ///      since its balance was last zero.
    function _listed(uint256 fundId, address asset) private view returns (bool) {
        address[] storage list = _assets[fundId];
        for (uint256 i; i < list.length; ++i) {
            if (list[i] == asset) return true;
        }
        return false;
    }

    function _u128(uint256 v) private pure returns (uint128) {
        if (v > type(uint128).max) revert AmountOutOfRange(v);
        return uint128(v);
    }
}
