// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IAnalyticsHub
/// @notice What the FundVault needs from the AnalyticsHub: recording NAVs it has accepted.
interface IAnalyticsHub {
    /// @notice The vault this hub trusts to record NAVs; fixed at deployment.
    function vault() external view returns (address);

    /// @notice Records one NAV (18-decimal USD) of `fundId` as of `timestamp`.
    function recordNAV(uint256 fundId, uint256 nav, uint256 timestamp) external;

    /// @notice Records many NAVs in one call, one packed word each: the NAV in the low 128
    ///         bits, then flags (16), timestamp (48) and the fund id (64) on top.
    function recordNAVBatch(uint256[] calldata records) external;
}
