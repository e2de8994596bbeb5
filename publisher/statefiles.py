"""nav_state.json and nav.json: the state files other tools read (seed dashboard-nav-aum-patch).

Written after every cycle, each atomically: a temporary file in the same directory, flushed
to disk, then renamed over the old one — a reader sees the old file or the new one, never
half of one. Money is decimal strings (the seed's readers do `float(x)`, which accepts them).

- ``nav_state.json``: per fund the NAV (``nav`` and the seed's ``total_equity``), peak,
  drawdown (percent and absolute), ``age_s`` and ``updated_at``, flags, and the recent series.
- ``nav.json``: per fund the AUM breakdown per asset (``nav_detail.asset_breakdown``), gross,
  collateral after haircuts, borrowed and net, and the FX rates (``fx.usd_zar`` only when a
  fresh rate exists — never a made-up fallback).

Both hold every fund under ``funds``; ``funds/<id>/nav_state.json`` and ``funds/<id>/nav.json``
hold one fund in the seed's flat shape. A fund the cycle did not cover keeps its last entry.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from publisher.config import Settings
from publisher.deployment import Deployment
from publisher.engine import CycleResult
from publisher.publish import FundOutcome
from publisher.snapshot import ChainSnapshot
from publisher.store import Store
from publisher.views import (
    USD,
    Display,
    FundsView,
    FundView,
    FxOut,
    HistoryView,
    after_publish,
    funds_view,
    fx_view,
    history_view,
)

SCHEMA = 1
# Enough for a day of 15-minute NAVs plus slack; the full history is in the store and on chain.
SERIES_POINTS = 100


def write_json_atomic(path: Path, data: Any) -> None:
    """Writes `data` as JSON to `path` atomically (temporary file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def nav_state_entry(f: FundView, history: HistoryView | None) -> dict[str, Any]:
    n, p = f.nav, f.peak
    points = history.points if history else []
    # Marks are per share: "hwm" is the NAV per share's high-water mark, beside "nav_per_share".
    series = [
        {
            "t": x.as_of,
            "nav": x.nav.usd,
            "nav_per_share": x.nav_per_share.usd if x.nav_per_share else None,
            "hwm": x.high_water_mark.usd if x.high_water_mark else None,
        }
        for x in points
    ]
    return {
        "fund_id": f.fund_id,
        "name": f.name,
        "published": n.published,
        "nav": n.nav.usd if n.nav else None,
        "total_equity": n.nav.usd if n.nav else None,
        "nav_per_share": n.nav_per_share.usd if n.nav_per_share else None,
        # The seed's names, on NAV per share: a deposit or a redemption is no gain or loss.
        "peak_equity": p.high_water_mark.usd if p.high_water_mark else None,
        "high_water_mark_per_share": p.high_water_mark.usd if p.high_water_mark else None,
        "drawdown_pct": p.drawdown_pct,
        "drawdown_abs": p.drawdown.usd if p.drawdown else None,
        "as_of": n.as_of,
        "updated_at": n.as_of,
        "age_s": n.age_s,
        "stale": n.stale,
        "round": n.round,
        "estimated": n.estimated,
        "paused": n.paused,
        "breaker_open": f.breaker_open,
        "held": f.held is not None,
        "series": series[-SERIES_POINTS:],
    }


def nav_detail_entry(f: FundView, fx: dict[str, FxOut]) -> dict[str, Any]:
    v = f.valuation
    breakdown: dict[str, Any] = {}
    slices = []
    for a in v.assets if v else []:
        key = a.asset if a.venue == "on-chain" else f"{a.asset}@{a.venue}"
        breakdown[key] = {
            "usd": a.value.usd,
            "value": a.value.usd,
            "amount": a.amount,
            "price": a.price.usd,
            "haircut": a.haircut,
            "collateral_usd": a.collateral.usd,
            "venue": a.venue,
            "share_pct": a.share_pct,
        }
        slices.append({"label": key, "usd": a.value.usd})
    li = v.liabilities if v else None
    borrowed = Decimal(li.borrowed.usd) + Decimal(li.offexchange_borrowed.usd) if li else None
    return {
        "fund_id": f.fund_id,
        "name": f.name,
        "computed_at": v.computed_at if v else None,
        "nav_detail": {"asset_breakdown": breakdown},
        "aum": {
            "slices": slices,
            "total_usd": v.gross.usd if v else None,
            "collateral_usd": v.collateral.usd if v else None,
            "net_collateral_usd": v.net_collateral.usd if v else None,
            "borrowed_usd": None if borrowed is None else str(borrowed),
            "liabilities_usd": li.total.usd if li else None,
        },
        "fx": fx_entry(fx),
    }


def fx_entry(fx: dict[str, FxOut]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for code, rate in sorted(fx.items()):
        out[code] = rate.model_dump(mode="json")
        if rate.available and rate.rate is not None:
            out[f"usd_{code.lower()}"] = rate.rate
    return out


def write_state_files(
    state_dir: Path,
    view: FundsView,
    histories: dict[int, HistoryView],
    fx: dict[str, FxOut],
) -> None:
    """Merges `view`'s funds into the state files (other funds keep their entries)."""
    nav_state = _read(state_dir / "nav_state.json")
    nav_detail = _read(state_dir / "nav.json")
    for f in view.funds:
        key = str(f.fund_id)
        entry = nav_state["funds"][key] = nav_state_entry(f, histories.get(f.fund_id))
        detail = nav_detail["funds"][key] = nav_detail_entry(f, fx)
        write_json_atomic(state_dir / "funds" / key / "nav_state.json", {"schema": SCHEMA, **entry})
        write_json_atomic(state_dir / "funds" / key / "nav.json", {"schema": SCHEMA, **detail})
    # Ages of funds this cycle did not cover are brought to now.
    for entry in nav_state["funds"].values():
        if entry.get("as_of") is not None:
            entry["age_s"] = max(0, view.now - int(entry["as_of"]))
    common = {
        "schema": SCHEMA,
        "chain_id": view.chain_id,
        "block_number": view.block_number,
        "written_at": view.now,
    }
    write_json_atomic(state_dir / "nav_state.json", {**nav_state, **common})
    write_json_atomic(state_dir / "nav.json", {**nav_detail, **common, "fx": fx_entry(fx)})


def _read(path: Path) -> dict[str, Any]:
    """The file's funds, or an empty map when it is missing or not ours (it is rewritten)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"funds": {}}
    if not isinstance(data, dict) or not isinstance(data.get("funds"), dict):
        return {"funds": {}}
    return {"funds": data["funds"]}


def state_after_cycle(
    store: Store,
    settings: Settings,
    deployment: Deployment,
    fx_codes: Sequence[str],
    cycle: CycleResult,
    outcomes: Sequence[FundOutcome],
) -> None:
    """The state files as the chain stands after `cycle` published `outcomes` (no extra read)."""
    snap = ChainSnapshot(cycle.block_number, cycle.now, tuple(f.snapshot for f in cycle.funds))
    snap = after_publish(snap, outcomes, store)
    view = funds_view(deployment, snap, store, settings, fx_codes, USD, cycle.now)
    fx = {c: fx_view(store, settings, c, fx_codes, cycle.now) for c in fx_codes}
    display = Display(view.fx)
    histories = {f.fund_id: history_view(store, f.fund_id, display, SERIES_POINTS) for f in view.funds}
    write_state_files(settings.state_dir, view, histories, fx)
