// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IAnalyticsHub
/// @notice What the FundVault needs from the AnalyticsHub: recording NAVs it has accepted.
interface IAnalyticsHub {
    /// @notice One NAV to record.
    struct NavRecord {
        uint256 fundId;
        uint256 nav;
        uint256 timestamp;
    }

    /// @notice The vault this hub trusts to record NAVs; fixed at deployment.
    function vault() external view returns (address);

    /// @notice Records one NAV (18-decimal USD) of `fundId` as of `timestamp`.
    function recordNAV(uint256 fundId, uint256 nav, uint256 timestamp) external;

    /// @notice Records many NAVs in one call.
    function recordNAVBatch(NavRecord[] calldata records) external;
}
