// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AggregatorInterface} from "../interfaces/AggregatorV2V3Interface.sol";

/// @title AaveStyleOracle
/// @notice A consumer that reads a feed the way Aave v3's AaveOracle does, for tests: the
///         legacy `latestAnswer()`, taken raw as a price in the market's base currency unit
///         (1e8 for a USD market, Chainlink's USD convention), with no decimals() call and no
///         staleness check; an answer <= 0 sends the read to a fallback oracle.
/// @dev Written from the public description of AaveOracle.getAssetPrice, not copied.
contract AaveStyleOracle {
    /// @notice The base currency unit the market assumes every source answers in.
    uint256 public immutable BASE_CURRENCY_UNIT;

    /// @notice Source of each asset's price.
    mapping(address asset => AggregatorInterface) public sources;

    /// @notice What the fallback oracle answers for every asset (0: no fallback price).
    uint256 public fallbackPrice;

    /// @notice The fallback was asked, and had no price either.
    error NoPrice(address asset);

    constructor(uint256 baseCurrencyUnit) {
        BASE_CURRENCY_UNIT = baseCurrencyUnit;
    }

    /// @notice Sets the source of `asset` (test helper: no access control).
    function setSource(address asset, AggregatorInterface source) external {
        sources[asset] = source;
    }

    /// @notice Sets the fallback oracle's price (test helper).
    function setFallbackPrice(uint256 price) external {
        fallbackPrice = price;
    }

    /// @notice The price of `asset` in base currency units, as AaveOracle computes it.
    /// @return price The price.
    /// @return fromFallback True when the source answered <= 0 and the fallback was used.
    function getAssetPrice(address asset) external view returns (uint256 price, bool fromFallback) {
        int256 answer = sources[asset].latestAnswer();
        if (answer > 0) return (uint256(answer), false);
        if (fallbackPrice == 0) revert NoPrice(asset);
        return (fallbackPrice, true);
    }
}
