// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IAnalyticsHub} from "./interfaces/IAnalyticsHub.sol";
import {IFundNavSource} from "./interfaces/IFundNavSource.sol";

/// @title AnalyticsHub
/// @notice NAV history for charts and indexers: a `NAVRecorded` event per single NAV and one
///         `NAVBatchRecorded` event per batch (one packed word per fund).
/// @dev History lives in events, not storage: an event costs ~1,600 gas per NAV where a
///      storage write costs 5,000-22,100, and nothing on-chain reads old NAVs. A batch logs
///      its words as they came (8 gas a byte, 256 a fund) instead of 1,600 a fund in events
///      of their own. The latest
///      NAV of a vault fund is read from the vault, which stores it anyway; only NAVs the
///      engine records directly (funds outside the vault) are kept here.
contract AnalyticsHub is AccessControl, IAnalyticsHub {
    /// @notice Accounts allowed to record NAVs directly.
    bytes32 public constant NAV_ENGINE_ROLE = keccak256("NAV_ENGINE_ROLE");

    /// @dev Latest directly recorded NAV of a fund; 192 + 64 bits = one slot.
    struct Direct {
        uint192 nav;
        uint64 timestamp;
    }

    /// @inheritdoc IAnalyticsHub
    address public immutable vault;

    mapping(uint256 fundId => Direct) private _direct;

    /// @notice The caller is neither the vault nor a NAV engine.
    error NotRecorder(address caller);
    /// @notice The NAV does not fit the 192-bit storage of a direct record.
    error NavOutOfRange(uint256 fundId, uint256 nav);
    /// @notice A direct record is not newer than the last one, or lies in the future.
    error BadTimestamp(uint256 fundId, uint256 timestamp, uint256 lastTimestamp);
    /// @notice No NAV has been recorded for this fund.
    error NoNav(uint256 fundId);

    /// @notice A NAV (18-decimal USD) of `fundId` as of `timestamp`; the chart series.
    event NAVRecorded(uint256 indexed fundId, uint256 nav, uint256 timestamp);
    /// @notice NAVs recorded together, one word each: `nav = uint128(w)`,
    ///         `timestamp = uint48(w >> 144)`, `fundId = w >> 192` (bits 128-143 are flags).
    event NAVBatchRecorded(uint256[] records);

    /// @param admin Account allowed to grant and revoke the NAV engine role.
    /// @param vault_ The FundVault that records every NAV it accepts (its future address
    ///        when the hub is deployed first).
    constructor(address admin, address vault_) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        vault = vault_;
    }

    /// @inheritdoc IAnalyticsHub
    /// @dev From the vault the NAV was already checked and stored there; from the engine it
    ///      is checked and stored here (newer than the last direct record, not in the future).
    function recordNAV(uint256 fundId, uint256 nav, uint256 timestamp) external {
        if (msg.sender != vault) {
            _checkRecorder();
            _storeDirect(fundId, nav, timestamp);
        }
        emit NAVRecorded(fundId, nav, timestamp);
    }

    /// @inheritdoc IAnalyticsHub
    /// @dev From the vault the words were checked and stored there; from the engine each is
    ///      checked and stored here.
    function recordNAVBatch(uint256[] calldata records) external {
        if (msg.sender != vault) {
            _checkRecorder();
            for (uint256 i; i < records.length; ++i) {
                uint256 w = records[i];
                _storeDirect(w >> 192, uint128(w), uint48(w >> 144));
            }
        }
        emit NAVBatchRecorded(records);
    }

    /// @notice Latest NAV of `fundId` and its timestamp: the newer of the vault's state and
    ///         the last direct record.
    function latestNAV(uint256 fundId) external view returns (uint256 nav, uint256 timestamp) {
        Direct memory d = _direct[fundId];
        nav = d.nav;
        timestamp = d.timestamp;
        try IFundNavSource(vault).latestNAV(fundId) returns (uint256 vNav, uint256 vAsOf, uint256) {
            if (vAsOf > timestamp) (nav, timestamp) = (vNav, vAsOf);
        } catch {}
        if (timestamp == 0) revert NoNav(fundId);
    }

    function _checkRecorder() private view {
        if (!hasRole(NAV_ENGINE_ROLE, msg.sender)) revert NotRecorder(msg.sender);
    }

    function _storeDirect(uint256 fundId, uint256 nav, uint256 timestamp) private {
        if (nav > type(uint192).max) revert NavOutOfRange(fundId, nav);
        uint64 last = _direct[fundId].timestamp;
        if (timestamp <= last || timestamp > block.timestamp) revert BadTimestamp(fundId, timestamp, last);
        _direct[fundId] = Direct({nav: uint192(nav), timestamp: uint64(timestamp)});
    }
}
