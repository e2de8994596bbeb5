// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AggregatorV3Interface} from "./AggregatorV3Interface.sol";

/// @title AggregatorInterface
/// @notice Chainlink's legacy (V2) feed getters and events, as its aggregators and proxies
///         still expose them. Aave v3's AaveOracle reads `latestAnswer` from this interface.
interface AggregatorInterface {
    /// @notice Answer of the latest round; 0 when there is none.
    function latestAnswer() external view returns (int256);

    /// @notice Update time of the latest round; 0 when there is none.
    function latestTimestamp() external view returns (uint256);

    /// @notice Id of the latest round; 0 when there is none.
    function latestRound() external view returns (uint256);

    /// @notice Answer of round `roundId`; 0 for a round the feed does not hold.
    function getAnswer(uint256 roundId) external view returns (int256);

    /// @notice Update time of round `roundId`; 0 for a round the feed does not hold.
    function getTimestamp(uint256 roundId) external view returns (uint256);

    /// @notice A round's answer was set.
    event AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt);

    /// @notice A round started.
    event NewRound(uint256 indexed roundId, address indexed startedBy, uint256 startedAt);
}

/// @title AggregatorV2V3Interface
/// @notice The full shape of a Chainlink feed: the legacy getters and the V3 round data.
interface AggregatorV2V3Interface is AggregatorInterface, AggregatorV3Interface {}
