// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IAnalyticsHub
/// @notice What the FundVault needs from the AnalyticsHub: recording, in the same
///         transaction, every NAV it has accepted. Only the hub's vault may record.
interface IAnalyticsHub {
    /// @notice One accepted NAV as the hub records it. `nav` and `navPerShare` are 18-decimal
    ///         USD; `flags` carries FLAG_ESTIMATED (1) and FLAG_PAUSED (2).
    struct NavRecord {
        uint256 fundId;
        uint256 round;
        uint256 nav;
        uint256 navPerShare;
        uint256 asOf;
        uint256 flags;
    }

    /// @notice The vault this hub records for; fixed at deployment.
    function vault() external view returns (address);

    /// @notice The seed's call: records the vault's latest NAV of `fundId`, which must be
    ///         `nav` as of `timestamp` (the hub reads round, NAV per share and flags from the
    ///         vault, so a record cannot disagree with it).
    function recordNAV(uint256 fundId, uint256 nav, uint256 timestamp) external;

    /// @notice Records NAVs the vault has just accepted, one `NAVRecorded` event each.
    function recordNAVs(NavRecord[] calldata records) external;
}
