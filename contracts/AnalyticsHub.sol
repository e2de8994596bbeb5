// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IAnalyticsHub} from "./interfaces/IAnalyticsHub.sol";
import {IFundNavSource} from "./interfaces/IFundNavSource.sol";

/// @title AnalyticsHub
/// @notice NAV history for charts and indexers: one `NAVRecorded` event per accepted NAV,
///         with the fund id as a topic, whether the NAV came alone or in a batch. Only its
///         vault records, in the transaction that accepted the NAV, so the hub's history is
///         the vault's and can never disagree with it.
/// @dev History lives in events, not storage: an event costs ~2,400 gas per NAV where a
///      storage write costs 5,000-22,100, and nothing on chain reads old NAVs. The latest NAV
///      is read from the vault, which stores it anyway.
contract AnalyticsHub is IAnalyticsHub {
    /// @inheritdoc IAnalyticsHub
    address public immutable vault;

    /// @notice Only the hub's vault records NAVs.
    error NotVault(address caller, address vault);
    /// @notice `recordNAV` named a NAV that is not the vault's latest for the fund.
    error NotVaultState(uint256 fundId, uint256 nav, uint256 timestamp, uint256 vaultNav, uint256 vaultAsOf);
    /// @notice No NAV has been accepted for this fund.
    error NoNav(uint256 fundId);

    /// @notice A NAV the vault accepted: its round (1 for the fund's first NAV, +1 each), the
    ///         NAV and NAV per share (18-decimal USD, per share rounded down over the share
    ///         supply it was published at), its as-of time and its flags (1 = estimated, a
    ///         cached price was used; 2 = the fund was paused).
    event NAVRecorded(
        uint256 indexed fundId, uint256 round, uint256 nav, uint256 navPerShare, uint256 asOf, uint256 flags
    );

    /// @param vault_ The FundVault that records every NAV it accepts (its future address when
    ///        the hub is deployed first).
    constructor(address vault_) {
        vault = vault_;
    }

    /// @inheritdoc IAnalyticsHub
    function recordNAV(uint256 fundId, uint256 nav, uint256 timestamp) external {
        _onlyVault();
        (uint256 perShare, uint256 asOf, uint256 round, uint256 flags,) = IFundNavSource(vault).navPerShareState(fundId);
        (uint256 vaultNav,,) = IFundNavSource(vault).latestNAV(fundId);
        if (vaultNav != nav || asOf != timestamp) revert NotVaultState(fundId, nav, timestamp, vaultNav, asOf);
        emit NAVRecorded(fundId, round, nav, perShare, asOf, flags);
    }

    /// @inheritdoc IAnalyticsHub
    function recordNAVs(NavRecord[] calldata records) external {
        _onlyVault();
        for (uint256 i; i < records.length; ++i) {
            NavRecord calldata r = records[i];
            emit NAVRecorded(r.fundId, r.round, r.nav, r.navPerShare, r.asOf, r.flags);
        }
    }

    /// @notice Latest NAV of `fundId` and its as-of time, read from the vault.
    function latestNAV(uint256 fundId) external view returns (uint256 nav, uint256 timestamp) {
        uint256 round;
        (nav, timestamp, round) = IFundNavSource(vault).latestNAV(fundId);
        if (round == 0) revert NoNav(fundId);
    }

    function _onlyVault() private view {
        if (msg.sender != vault) revert NotVault(msg.sender, vault);
    }
}
