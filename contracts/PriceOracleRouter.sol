// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {AggregatorV3Interface} from "./interfaces/AggregatorV3Interface.sol";

/// @title PriceOracleRouter
/// @notice Per asset, a list of Chainlink-style feeds; `getPrice` answers the median of the
///         fresh ones with a confidence score, by the same rules as the off-chain engine:
///
///         1. A quote is valid when the call succeeds, answer > 0, 0 < updatedAt <= now and
///            now - updatedAt <= the source's maxAge.
///         2. m0 = median of valid quotes (even count: floor of the mean of the two middle ones).
///         3. Sources deviating from m0 by more than `maxDeviationBps` are dropped
///            (exactly the limit is kept); price = median of the kept ones, by the same rule.
///         4. confidence = floor(100 * kept * (2*D - d) / (configured * 2*D)) where D is
///            `maxDeviationBps` and d the largest deviation of a kept source from the price,
///            in basis points rounded up. Three agreeing sources of three score 100; one live
///            source of three scores at most 33, below the default minimum of 50.
/// @dev All prices are scaled to 18 decimals. Scaling down rounds toward zero.
contract PriceOracleRouter is AccessControl {
    /// @notice One configured price source of an asset. Packs into one slot (160 + 32 + 8 bits).
    struct Source {
        AggregatorV3Interface feed;
        uint32 maxAge;
        uint8 decimals;
    }

    /// @notice Raw answer of one source, for the off-chain engine and for audits.
    struct SourceData {
        address feed;
        bool ok;
        uint8 decimals;
        uint32 maxAge;
        uint80 roundId;
        int256 answer;
        uint256 startedAt;
        uint256 updatedAt;
        uint80 answeredInRound;
    }

    /// @notice Decimals of every price this router returns.
    uint8 public constant PRICE_DECIMALS = 18;
    /// @notice Deviation limits are in basis points of the median.
    uint256 public constant BPS = 10_000;
    /// @notice Feeds with more decimals than this are refused: scaling them would be lossy
    ///         beyond reason, and no real feed uses more.
    uint8 public constant MAX_FEED_DECIMALS = 36;
    /// @notice More sources than this per asset would make `getPrice` too costly to call.
    uint256 public constant MAX_SOURCES = 16;

    /// @notice `getPrices` status codes.
    uint8 public constant PRICE_OK = 0;
    uint8 public constant PRICE_UNKNOWN_ASSET = 1;
    uint8 public constant PRICE_NO_FRESH_SOURCE = 2;

    /// @notice A source farther than this from the first median is dropped (10 %, DESIGN.md).
    uint16 public maxDeviationBps;
    /// @notice Below this confidence `getPriceChecked` refuses to answer (50, DESIGN.md).
    uint8 public minConfidence;

    mapping(address asset => Source[]) private _sources;
    address[] private _assets;

    /// @notice The asset has no configured source.
    error UnknownAsset(address asset);
    /// @notice None of the asset's sources gave a valid, fresh answer.
    error NoFreshPrice(address asset, uint256 configured);
    /// @notice The price's confidence is below `minConfidence`.
    error LowConfidence(address asset, uint256 confidence, uint256 minConfidence);
    /// @notice Feed and maxAge lists differ in length, are empty or too long.
    error BadSourceList(uint256 feeds, uint256 maxAges);
    /// @notice A feed has a zero address, a zero maxAge or unusable decimals.
    error BadSource(address feed, uint32 maxAge, uint8 decimals);
    /// @notice A deviation or confidence setting is out of range.
    error BadThresholds(uint256 maxDeviationBps, uint256 minConfidence);

    /// @notice Emitted when an asset's sources are replaced.
    event SourcesSet(address indexed asset, address[] feeds, uint32[] maxAges);
    /// @notice Emitted when the deviation or confidence threshold changes.
    event ThresholdsSet(uint16 maxDeviationBps, uint8 minConfidence);

    /// @param admin Account allowed to configure sources and thresholds.
    /// @param maxDeviationBps_ Deviation limit in basis points (1000 = 10 %).
    /// @param minConfidence_ Minimum confidence for `getPriceChecked` (0-100).
    constructor(address admin, uint16 maxDeviationBps_, uint8 minConfidence_) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _setThresholds(maxDeviationBps_, minConfidence_);
    }

    // ------------------------------------------------------------------ configuration

    /// @notice Replaces the sources of `asset`.
    /// @param asset Token address the sources price (in USD).
    /// @param feeds AggregatorV3Interface feeds.
    /// @param maxAges Staleness limit of each feed in seconds (its heartbeat plus a margin).
    function setSources(address asset, address[] calldata feeds, uint32[] calldata maxAges)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        uint256 n = feeds.length;
        if (n == 0 || n != maxAges.length || n > MAX_SOURCES) revert BadSourceList(n, maxAges.length);
        Source[] storage list = _sources[asset];
        if (list.length == 0) _assets.push(asset);
        delete _sources[asset];
        for (uint256 i; i < n; ++i) {
            AggregatorV3Interface feed = AggregatorV3Interface(feeds[i]);
            // No code at the address would make the decimals() call revert without a reason.
            if (feeds[i].code.length == 0 || maxAges[i] == 0) revert BadSource(feeds[i], maxAges[i], 0);
            uint8 dec = feed.decimals();
            if (dec > MAX_FEED_DECIMALS) revert BadSource(feeds[i], maxAges[i], dec);
            list.push(Source({feed: feed, maxAge: maxAges[i], decimals: dec}));
        }
        emit SourcesSet(asset, feeds, maxAges);
    }

    /// @notice Sets the deviation limit and the minimum confidence.
    function setThresholds(uint16 maxDeviationBps_, uint8 minConfidence_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setThresholds(maxDeviationBps_, minConfidence_);
    }

    // ------------------------------------------------------------------ prices

    /// @notice Median price of `asset` in USD with 18 decimals, and its confidence (0-100).
    /// @dev Reverts UnknownAsset when nothing is configured and NoFreshPrice when no source
    ///      is valid; a low confidence is returned, not refused (see `getPriceChecked`).
    function getPrice(address asset) public view returns (uint256 price, uint256 confidence) {
        (uint256[] memory valid, uint256 count, uint256 n) = _validPrices(asset);
        if (n == 0) revert UnknownAsset(asset);
        if (count == 0) revert NoFreshPrice(asset, n);
        return _aggregate(valid, count, n);
    }

    /// @notice Like `getPrice`, but reverts LowConfidence below `minConfidence`.
    function getPriceChecked(address asset) external view returns (uint256 price, uint256 confidence) {
        (price, confidence) = getPrice(asset);
        if (confidence < minConfidence) revert LowConfidence(asset, confidence, minConfidence);
    }

    /// @notice `getPrice` for many assets in one call, without reverting: `status` is
    ///         0 for a price, 1 for an asset with no sources, 2 when no source is fresh.
    function getPrices(address[] calldata assets)
        external
        view
        returns (uint256[] memory prices, uint256[] memory confidences, uint8[] memory status)
    {
        uint256 n = assets.length;
        prices = new uint256[](n);
        confidences = new uint256[](n);
        status = new uint8[](n);
        for (uint256 i; i < n; ++i) {
            (uint256[] memory valid, uint256 count, uint256 m) = _validPrices(assets[i]);
            if (m == 0) {
                status[i] = PRICE_UNKNOWN_ASSET;
            } else if (count == 0) {
                status[i] = PRICE_NO_FRESH_SOURCE;
            } else {
                (prices[i], confidences[i]) = _aggregate(valid, count, m);
            }
        }
    }

    /// @notice Every source's raw answer for `asset`, whether valid or not.
    function getSourceData(address asset) public view returns (SourceData[] memory data) {
        Source[] storage list = _sources[asset];
        data = new SourceData[](list.length);
        for (uint256 i; i < list.length; ++i) {
            data[i] = _read(list[i]);
        }
    }

    /// @notice `getSourceData` for many assets in one call (one RPC round trip per cycle).
    function getSourceDataBatch(address[] calldata assets) external view returns (SourceData[][] memory data) {
        data = new SourceData[][](assets.length);
        for (uint256 i; i < assets.length; ++i) {
            data[i] = getSourceData(assets[i]);
        }
    }

    /// @notice Every asset that has sources configured.
    function getAssets() external view returns (address[] memory) {
        return _assets;
    }

    /// @notice Number of sources configured for `asset`.
    function sourceCount(address asset) external view returns (uint256) {
        return _sources[asset].length;
    }

    // ------------------------------------------------------------------ internals

    function _setThresholds(uint16 maxDeviationBps_, uint8 minConfidence_) private {
        if (maxDeviationBps_ == 0 || maxDeviationBps_ >= BPS || minConfidence_ > 100) {
            revert BadThresholds(maxDeviationBps_, minConfidence_);
        }
        maxDeviationBps = maxDeviationBps_;
        minConfidence = minConfidence_;
        emit ThresholdsSet(maxDeviationBps_, minConfidence_);
    }

    /// @dev A feed that reverts (or is not a contract) is reported as `ok = false`, never
    ///      bubbled up: one broken source must not take the asset's price down with it.
    function _read(Source memory s) private view returns (SourceData memory d) {
        d.feed = address(s.feed);
        d.decimals = s.decimals;
        d.maxAge = s.maxAge;
        if (address(s.feed).code.length == 0) return d;
        try s.feed.latestRoundData() returns (
            uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound
        ) {
            d.ok = true;
            d.roundId = roundId;
            d.answer = answer;
            d.startedAt = startedAt;
            d.updatedAt = updatedAt;
            d.answeredInRound = answeredInRound;
        } catch {}
    }

    /// @dev The valid prices of `asset`'s sources (first `count` entries) and how many it has.
    function _validPrices(address asset) private view returns (uint256[] memory valid, uint256 count, uint256 n) {
        Source[] storage list = _sources[asset];
        n = list.length;
        valid = new uint256[](n);
        for (uint256 i; i < n; ++i) {
            (bool ok, uint256 p) = _validPrice(list[i]);
            if (ok) valid[count++] = p;
        }
    }

    function _validPrice(Source memory s) private view returns (bool, uint256) {
        SourceData memory d = _read(s);
        if (!d.ok || d.answer <= 0 || d.updatedAt == 0 || d.updatedAt > block.timestamp) return (false, 0);
        if (block.timestamp - d.updatedAt > s.maxAge) return (false, 0);
        return (true, _scale(uint256(d.answer), s.decimals));
    }

    function _scale(uint256 answer, uint8 dec) private pure returns (uint256) {
        if (dec == PRICE_DECIMALS) return answer;
        if (dec < PRICE_DECIMALS) return answer * 10 ** (PRICE_DECIMALS - dec);
        return answer / 10 ** (dec - PRICE_DECIMALS); // rounds toward zero
    }

    function _aggregate(uint256[] memory valid, uint256 count, uint256 configured)
        private
        view
        returns (uint256 price, uint256 confidence)
    {
        _sort(valid, count);
        uint256 first = _median(valid, 0, count);
        uint256 limit = maxDeviationBps;
        // Kept prices stay sorted when the outliers are dropped, so they are compacted in place.
        uint256 kept;
        for (uint256 i; i < count; ++i) {
            if (_deviationBps(valid[i], first) <= limit) valid[kept++] = valid[i];
        }
        // The first median is itself within 0 % of itself, so at least one value is kept
        // unless the median is an average of two far-apart values; then keep the median.
        if (kept == 0) return (first, 0);
        price = _median(valid, 0, kept);
        uint256 spread;
        for (uint256 i; i < kept; ++i) {
            uint256 d = _deviationBps(valid[i], price);
            if (d > spread) spread = d;
        }
        if (spread > 2 * limit) spread = 2 * limit;
        confidence = (100 * kept * (2 * limit - spread)) / (configured * 2 * limit);
    }

    /// @dev |a - m| / m in basis points, rounded up so a source just past the limit is dropped.
    function _deviationBps(uint256 a, uint256 m) private pure returns (uint256) {
        uint256 diff = a > m ? a - m : m - a;
        return (diff * BPS + m - 1) / m;
    }

    function _median(uint256[] memory sorted, uint256 from, uint256 count) private pure returns (uint256) {
        uint256 mid = from + count / 2;
        if (count % 2 == 1) return sorted[mid];
        // Floor of the mean, written so the sum cannot overflow.
        uint256 a = sorted[mid - 1];
        uint256 b = sorted[mid];
        return a / 2 + b / 2 + (a % 2 + b % 2) / 2;
    }

    /// @dev Insertion sort: at most MAX_SOURCES elements, cheaper than anything cleverer.
    function _sort(uint256[] memory a, uint256 count) private pure {
        for (uint256 i = 1; i < count; ++i) {
            uint256 v = a[i];
            uint256 j = i;
            while (j > 0 && a[j - 1] > v) {
                a[j] = a[j - 1];
                --j;
            }
            a[j] = v;
        }
    }
}
