// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AggregatorV3Interface} from "../interfaces/AggregatorV3Interface.sol";

/// @title MockV3Aggregator
/// @notice Local-only price feed that behaves like Chainlink's MockV3Aggregator: the
///         answer is whatever the last caller set. Never deploy it where real money is.
contract MockV3Aggregator is AggregatorV3Interface {
    /// @inheritdoc AggregatorV3Interface
    uint256 public constant override version = 4;

    /// @inheritdoc AggregatorV3Interface
    uint8 public immutable override decimals;

    /// @notice Latest answer, timestamp and round id (Chainlink's legacy getters).
    int256 public latestAnswer;
    uint256 public latestTimestamp;
    uint256 public latestRound;

    /// @notice Answer, update time and start time of every round set so far.
    mapping(uint256 roundId => int256) public getAnswer;
    mapping(uint256 roundId => uint256) public getTimestamp;
    mapping(uint256 roundId => uint256) private _startedAt;

    /// @notice Emitted on every new answer, like Chainlink's aggregators.
    event AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt);

    /// @param decimals_ Decimals of the answers.
    /// @param initialAnswer First answer, set as round 1 at deployment time.
    constructor(uint8 decimals_, int256 initialAnswer) {
        decimals = decimals_;
        updateAnswer(initialAnswer);
    }

    /// @notice Starts a new round with `answer`, updated and started now.
    function updateAnswer(int256 answer) public {
        uint256 roundId = latestRound + 1;
        _setRound(roundId, answer, block.timestamp, block.timestamp);
    }

    /// @notice Sets a round's data exactly as given (use it to fake stale or future rounds).
    function updateRoundData(uint80 roundId, int256 answer, uint256 timestamp, uint256 startedAt) public {
        _setRound(roundId, answer, timestamp, startedAt);
    }

    /// @inheritdoc AggregatorV3Interface
    function description() external pure override returns (string memory) {
        return "v0.8/tests/MockV3Aggregator.sol";
    }

    /// @inheritdoc AggregatorV3Interface
    function getRoundData(uint80 roundId)
        external
        view
        override
        returns (uint80, int256, uint256, uint256, uint80)
    {
        return (roundId, getAnswer[roundId], _startedAt[roundId], getTimestamp[roundId], roundId);
    }

    /// @inheritdoc AggregatorV3Interface
    function latestRoundData() external view override returns (uint80, int256, uint256, uint256, uint80) {
        uint80 roundId = uint80(latestRound);
        return (roundId, getAnswer[roundId], _startedAt[roundId], getTimestamp[roundId], roundId);
    }

    function _setRound(uint256 roundId, int256 answer, uint256 timestamp, uint256 startedAt) private {
        latestRound = roundId;
        latestAnswer = answer;
        latestTimestamp = timestamp;
        getAnswer[roundId] = answer;
        getTimestamp[roundId] = timestamp;
        _startedAt[roundId] = startedAt;
        emit AnswerUpdated(answer, roundId, timestamp);
    }
}
