// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IFundNavSource
/// @notice The NAV state a vault exposes to other contracts: the AnalyticsHub reads it to
///         answer "latest NAV" and to record the vault's own state, and a FundNavFeed reads it
///         to serve one fund's NAV per share as a Chainlink feed.
interface IFundNavSource {
    /// @notice Latest accepted NAV (18-decimal USD), its as-of time and its round (0 before
    ///         the first NAV).
    function latestNAV(uint256 fundId) external view returns (uint256 nav, uint256 asOf, uint256 round);

    /// @notice The latest NAV's per-share value (18 decimals, rounded down, over the share
    ///         supply it was published at; 0 without shares), as-of time, round, flags
    ///         (FLAG_ESTIMATED, FLAG_PAUSED) and whether the fund is paused.
    function navPerShareState(uint256 fundId)
        external
        view
        returns (uint256 navPerShare, uint256 asOf, uint256 round, uint256 flags, bool paused);

    /// @notice What a consumer may rely on: the latest NAV per share, its as-of time and round
    ///         — or, while the fund is paused, those of the last NAV before the pause, frozen.
    function feedData(uint256 fundId)
        external
        view
        returns (uint256 navPerShare, uint256 asOf, uint256 round, bool paused);

    /// @notice Whether the fund's ripcord is pulled: its NAV is not to be relied on.
    function isPaused(uint256 fundId) external view returns (bool);
}
