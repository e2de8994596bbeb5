// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IFundNavSource
/// @notice The NAV state a vault exposes to other contracts: the AnalyticsHub reads it to
///         answer "latest NAV" without paying to store the NAV twice, and a FundNavFeed reads
///         it to serve one fund's NAV per share as a Chainlink-style feed.
interface IFundNavSource {
    /// @notice Latest published NAV (18-decimal USD), its as-of time and its round.
    function latestNAV(uint256 fundId) external view returns (uint256 nav, uint256 asOf, uint256 round);

    /// @notice Latest NAV per share (18 decimals, rounded down, 0 while the fund has no shares),
    ///         its as-of time, its round (0 before the first NAV) and whether the fund is paused.
    function navPerShareState(uint256 fundId)
        external
        view
        returns (uint256 navPerShare, uint256 asOf, uint256 round, bool paused);

    /// @notice Whether the fund's ripcord is pulled: its NAV is not to be relied on.
    function isPaused(uint256 fundId) external view returns (bool);
}
