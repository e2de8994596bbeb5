// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Strings} from "@openzeppelin/contracts/utils/Strings.sol";
import {AggregatorV2V3Interface} from "./interfaces/AggregatorV2V3Interface.sol";
import {AggregatorV3Interface} from "./interfaces/AggregatorV3Interface.sol";
import {AggregatorInterface} from "./interfaces/AggregatorV2V3Interface.sol";
import {IFundNavSource} from "./interfaces/IFundNavSource.sol";

/// @title FundNavFeed
/// @notice One fund's NAV per share as a Chainlink AggregatorV2V3 feed, read the way
///         Chainlink's consumers (Aave's AaveOracle, Morpho's Chainlink oracle, a staleness
///         check on `updatedAt`) read any Chainlink feed.
///
///         - `answer`: NAV per share in USD with `decimals` decimals (8 by default, Chainlink's
///           USD convention), rounded down from the vault's 18-decimal figure. It is fixed per
///           round: the NAV over the share supply it was published at.
///         - `roundId` / `answeredInRound`: the vault's NAV round for the fund (1 for the first
///           NAV, +1 for each).
///         - `startedAt` / `updatedAt`: the NAV's `asOf`, the time it was computed for.
///         - Paused fund: the feed answers the last round before the pause — answer, round and
///           `updatedAt` frozen — while the engine goes on publishing to the vault, so a
///           consumer that checks only staleness sees the feed go stale. `paused()` says so
///           directly.
///         - No data (before the first NAV, or a round the feed does not hold) answers as
///           Chainlink's current (OCR) aggregators do: zeros, never a revert. A NAV published
///           while the fund has no shares has no NAV per share: its answer is 0.
///
///         Only the latest round (or, while paused, the frozen one) is held on chain: an
///         earlier round answers like a round the feed does not hold. Every round is in the
///         AnalyticsHub's `NAVRecorded` events, filterable by fund id.
/// @dev Holds no state of its own beyond immutables: every call reads the vault (two storage
///      reads there). Emits no events (`AnswerUpdated`, `NewRound` are declared by the
///      interface): the vault's `NAVUpdated` and the hub's `NAVRecorded` are the log.
contract FundNavFeed is AggregatorV2V3Interface {
    /// @inheritdoc AggregatorV3Interface
    uint256 public constant override version = 2;

    /// @notice Decimals of the vault's NAV per share.
    uint8 public constant SOURCE_DECIMALS = 18;

    /// @inheritdoc AggregatorV3Interface
    uint8 public immutable override decimals;

    /// @notice The vault the fund lives in.
    IFundNavSource public immutable vault;

    /// @notice The fund this feed serves.
    uint256 public immutable fundId;

    /// @dev 10^(18 - decimals): what the vault's figure is divided by.
    uint256 private immutable _scale;

    /// @notice The vault address has no contract code.
    error NotAContract(address vault);
    /// @notice More decimals than the vault's 18 would invent digits.
    error UnsupportedDecimals(uint8 decimals);

    /// @param vault_ The FundVault (any IFundNavSource) holding the fund.
    /// @param fundId_ The fund; the vault must know it (else its `UnknownFund` reverts here).
    /// @param decimals_ Decimals of the answer, at most 18 (8 is Chainlink's USD convention).
    constructor(IFundNavSource vault_, uint256 fundId_, uint8 decimals_) {
        if (address(vault_).code.length == 0) revert NotAContract(address(vault_));
        if (decimals_ > SOURCE_DECIMALS) revert UnsupportedDecimals(decimals_);
        vault_.isPaused(fundId_); // reverts UnknownFund(fundId_) for a fund the vault lacks
        vault = vault_;
        fundId = fundId_;
        decimals = decimals_;
        _scale = 10 ** (SOURCE_DECIMALS - decimals_);
    }

    /// @inheritdoc AggregatorV3Interface
    /// @return "Fund <id> NAV per share / USD".
    function description() external view override returns (string memory) {
        return string.concat("Fund ", Strings.toString(fundId), " NAV per share / USD");
    }

    /// @inheritdoc AggregatorV3Interface
    /// @dev The held round answers its data; any other answers (roundId, 0, 0, 0, roundId), as
    ///      Chainlink's aggregators answer a round they do not hold.
    function getRoundData(uint80 roundId)
        external
        view
        override
        returns (uint80, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        (int256 a, uint256 asOf, uint256 round) = _latest();
        if (round == 0 || roundId != round) return (roundId, 0, 0, 0, roundId);
        return (roundId, a, asOf, asOf, roundId);
    }

    /// @inheritdoc AggregatorV3Interface
    /// @dev All zeros before the first NAV (Chainlink's OCR aggregators do not revert either).
    function latestRoundData()
        external
        view
        override
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        (int256 a, uint256 asOf, uint256 round) = _latest();
        roundId = uint80(round);
        return (roundId, a, asOf, asOf, roundId);
    }

    /// @inheritdoc AggregatorInterface
    function latestAnswer() external view override returns (int256 answer) {
        (answer,,) = _latest();
    }

    /// @inheritdoc AggregatorInterface
    function latestTimestamp() external view override returns (uint256 asOf) {
        (, asOf,) = _latest();
    }

    /// @inheritdoc AggregatorInterface
    function latestRound() external view override returns (uint256 round) {
        (,, round) = _latest();
    }

    /// @inheritdoc AggregatorInterface
    function getAnswer(uint256 roundId) external view override returns (int256) {
        (int256 a,, uint256 round) = _latest();
        return round != 0 && roundId == round ? a : int256(0);
    }

    /// @inheritdoc AggregatorInterface
    function getTimestamp(uint256 roundId) external view override returns (uint256) {
        (, uint256 asOf, uint256 round) = _latest();
        return round != 0 && roundId == round ? asOf : 0;
    }

    /// @notice Whether the fund's ripcord is pulled: the feed is frozen at the last NAV before
    ///         it, and the fund's NAV is not to be relied on.
    function paused() external view returns (bool) {
        return vault.isPaused(fundId);
    }

    /// @dev The round a consumer may rely on (frozen while paused), its answer scaled down to
    ///      `decimals` (rounded down) and its asOf. A round id fits uint80 for 10^16 years of
    ///      per-second NAVs, so the casts above cannot truncate.
    function _latest() private view returns (int256 answer, uint256 asOf, uint256 round) {
        uint256 perShare;
        (perShare, asOf, round,) = vault.feedData(fundId);
        // perShare < 2^128 (the vault refuses more), so it fits int256.
        answer = int256(perShare / _scale);
    }
}
