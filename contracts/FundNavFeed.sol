// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {Strings} from "@openzeppelin/contracts/utils/Strings.sol";
import {AggregatorV3Interface} from "./interfaces/AggregatorV3Interface.sol";
import {IFundNavSource} from "./interfaces/IFundNavSource.sol";

/// @title FundNavFeed
/// @notice One fund's NAV per share as a Chainlink AggregatorV3 feed, so any contract or tool
///         that reads a Chainlink feed reads the fund's published NAV per share unchanged.
///
///         - `answer`: NAV per share in USD with 18 decimals, rounded down, exactly as the
///           vault's `navState` reports it.
///         - `roundId` / `answeredInRound`: the vault's NAV round for the fund (1 for the
///           first published NAV, +1 for each update).
///         - `startedAt` / `updatedAt`: the NAV's `asOf`, the time it was computed for (not the
///           block it landed in); check staleness against the engine's heartbeat.
///         - `paused()`: the fund's ripcord. The feed keeps answering while it is pulled (the
///           engine keeps publishing), so a consumer that must not use a paused NAV checks it.
///
///         The vault stores only the latest round: `getRoundData` answers the latest round and
///         reverts `NoDataPresent` for every other one. The NAV history is in the
///         AnalyticsHub's `NAVRecorded` and `NAVBatchRecorded` events, read from logs.
/// @dev Holds no state of its own: every call reads the vault (two storage reads there).
contract FundNavFeed is AggregatorV3Interface {
    /// @inheritdoc AggregatorV3Interface
    uint256 public constant override version = 1;

    /// @inheritdoc AggregatorV3Interface
    uint8 public constant override decimals = 18;

    /// @notice The vault the fund lives in.
    IFundNavSource public immutable vault;

    /// @notice The fund this feed serves.
    uint256 public immutable fundId;

    /// @notice No NAV of the fund for `roundId`: none published yet (`roundId` 0 from the
    ///         latest-round getters), or a round other than the latest (only it is stored).
    error NoDataPresent(uint256 fundId, uint256 roundId);
    /// @notice A NAV is published but the fund has no shares, so there is no NAV per share.
    error NoSharesOutstanding(uint256 fundId, uint256 roundId);
    /// @notice The vault address has no contract code.
    error NotAContract(address vault);

    /// @param vault_ The FundVault (any IFundNavSource) holding the fund.
    /// @param fundId_ The fund; the vault must know it (else its `UnknownFund` reverts here).
    constructor(IFundNavSource vault_, uint256 fundId_) {
        if (address(vault_).code.length == 0) revert NotAContract(address(vault_));
        vault_.isPaused(fundId_); // reverts UnknownFund(fundId_) for a fund the vault lacks
        vault = vault_;
        fundId = fundId_;
    }

    /// @inheritdoc AggregatorV3Interface
    /// @return "Fund <id> NAV per share / USD".
    function description() external view override returns (string memory) {
        return string.concat("Fund ", Strings.toString(fundId), " NAV per share / USD");
    }

    /// @inheritdoc AggregatorV3Interface
    /// @dev Only the latest round is stored: any other `roundId` (and any round before the
    ///      first NAV) reverts `NoDataPresent(fundId, roundId)`. A consumer that reads the
    ///      latest round id and then asks for it may find it replaced by a newer NAV meanwhile.
    function getRoundData(uint80 roundId)
        external
        view
        override
        returns (uint80, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        (uint256 navPerShare, uint256 asOf, uint256 round,) = vault.navPerShareState(fundId);
        if (round == 0 || roundId != round) revert NoDataPresent(fundId, roundId);
        return _roundData(navPerShare, asOf, round);
    }

    /// @inheritdoc AggregatorV3Interface
    /// @dev Reverts `NoDataPresent(fundId, 0)` before the fund's first NAV, like Chainlink's
    ///      "No data present", and `NoSharesOutstanding` when the fund has no shares.
    function latestRoundData()
        external
        view
        override
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        (uint256 navPerShare, uint256 asOf, uint256 round,) = vault.navPerShareState(fundId);
        if (round == 0) revert NoDataPresent(fundId, 0);
        return _roundData(navPerShare, asOf, round);
    }

    /// @notice Whether the fund's ripcord is pulled: its NAV is not to be relied on.
    function paused() external view returns (bool) {
        return vault.isPaused(fundId);
    }

    /// @notice Latest NAV per share (legacy Chainlink getter); reverts like `latestRoundData`.
    function latestAnswer() external view returns (int256) {
        (uint256 navPerShare,, uint256 round,) = vault.navPerShareState(fundId);
        if (round == 0) revert NoDataPresent(fundId, 0);
        if (navPerShare == 0) revert NoSharesOutstanding(fundId, round);
        return SafeCast.toInt256(navPerShare);
    }

    /// @notice `asOf` of the latest NAV (legacy Chainlink getter); reverts before the first NAV.
    function latestTimestamp() external view returns (uint256) {
        (, uint256 asOf, uint256 round,) = vault.navPerShareState(fundId);
        if (round == 0) revert NoDataPresent(fundId, 0);
        return asOf;
    }

    /// @notice Latest round id (legacy Chainlink getter); 0 before the first NAV.
    function latestRound() external view returns (uint256) {
        (,, uint256 round,) = vault.navPerShareState(fundId);
        return round;
    }

    function _roundData(uint256 navPerShare, uint256 asOf, uint256 round)
        private
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        if (navPerShare == 0) revert NoSharesOutstanding(fundId, round);
        roundId = SafeCast.toUint80(round);
        return (roundId, SafeCast.toInt256(navPerShare), asOf, asOf, roundId);
    }
}
