// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IFundNavSource
/// @notice The NAV state a vault exposes to other contracts (the AnalyticsHub reads it
///         to answer "latest NAV" without paying to store the NAV twice).
interface IFundNavSource {
    /// @notice Latest published NAV (18-decimal USD), its as-of time and its round.
    function latestNAV(uint256 fundId) external view returns (uint256 nav, uint256 asOf, uint256 round);
}
