// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AggregatorV3Interface} from "../interfaces/AggregatorV3Interface.sol";

/// @title MorphoStyleOracle
/// @notice A consumer that reads a feed the way Morpho's MorphoChainlinkOracleV2 does, for
///         tests, with one base feed and no quote feed or vault: `latestRoundData()`'s answer
///         (refused when negative, no staleness check), scaled by the feed's `decimals()` and
///         both tokens' decimals into the price of one raw collateral unit in raw loan units,
///         times 1e36.
/// @dev Written from the public description of MorphoChainlinkOracleV2 and its
///      ChainlinkDataFeedLib, not copied: SCALE_FACTOR = 10^(36 + loan decimals - collateral
///      decimals - feed decimals), price = SCALE_FACTOR * answer.
contract MorphoStyleOracle {
    /// @notice The feed pricing the collateral (one fund share) in USD.
    AggregatorV3Interface public immutable BASE_FEED;

    /// @notice What the answer is multiplied by.
    uint256 public immutable SCALE_FACTOR;

    /// @notice The feed answered a negative price.
    error NegativeAnswer(int256 answer);

    /// @param baseFeed The collateral's feed.
    /// @param collateralDecimals Decimals of the collateral token (a fund share: 18).
    /// @param loanDecimals Decimals of the loan token (USDC: 6), taken to be worth $1.
    constructor(AggregatorV3Interface baseFeed, uint8 collateralDecimals, uint8 loanDecimals) {
        BASE_FEED = baseFeed;
        SCALE_FACTOR = 10 ** (36 + uint256(loanDecimals) - collateralDecimals - baseFeed.decimals());
    }

    /// @notice Price of one raw collateral unit in raw loan units, scaled by 1e36.
    function price() external view returns (uint256) {
        (, int256 answer,,,) = BASE_FEED.latestRoundData();
        if (answer < 0) revert NegativeAnswer(answer);
        return SCALE_FACTOR * uint256(answer);
    }
}
