// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AggregatorV3Interface} from "../interfaces/AggregatorV3Interface.sol";

/// @title StalenessCheckedConsumer
/// @notice A consumer that reads a feed the way Chainlink's documentation tells integrators
///         to, for tests: `latestRoundData()`, refused when the answer is not positive, when
///         the round is incomplete (`updatedAt` 0) or when `updatedAt` is older than the feed's
///         heartbeat.
contract StalenessCheckedConsumer {
    /// @notice The feed read.
    AggregatorV3Interface public immutable FEED;

    /// @notice Longest accepted age of an answer, in seconds.
    uint256 public immutable HEARTBEAT;

    /// @notice The answer is zero or negative.
    error InvalidAnswer(int256 answer);
    /// @notice The round has no update time.
    error IncompleteRound(uint80 roundId);
    /// @notice The answer is older than the heartbeat.
    error StaleAnswer(uint256 updatedAt, uint256 now_, uint256 heartbeat);

    constructor(AggregatorV3Interface feed, uint256 heartbeat) {
        FEED = feed;
        HEARTBEAT = heartbeat;
    }

    /// @notice The feed's answer, if it may be used.
    function read() external view returns (int256 answer, uint256 updatedAt) {
        uint80 roundId;
        (roundId, answer,, updatedAt,) = FEED.latestRoundData();
        if (answer <= 0) revert InvalidAnswer(answer);
        if (updatedAt == 0) revert IncompleteRound(roundId);
        if (block.timestamp - updatedAt > HEARTBEAT) revert StaleAnswer(updatedAt, block.timestamp, HEARTBEAT);
    }
}
