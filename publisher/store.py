"""The embedded store: SQLAlchemy Core over SQLite (a file in the state directory) by default.

What it keeps: every NAV report with its inputs and decision (nothing computed is lost),
the last good price per asset (so a restart keeps the cache), each fund's guard state
(breaker, held jump, activity at the last publication) and the alerts raised.

Schema versioning: a new database is created at the latest version and stamped; an older
one is brought up by the ordered MIGRATIONS (plain DDL that also runs on PostgreSQL). A
database newer than this code is refused rather than guessed at. Money columns hold exact
integers: NUMERIC(78, 0) on PostgreSQL, decimal text elsewhere (SQLite integers stop at
2^63, far below 18-decimal USD values).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Dialect,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    create_engine,
    event,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.types import TypeDecorator, TypeEngine

from publisher._exceptions import NavPubError
from publisher.guard import FundGuardState
from publisher.price import CachedPrice

if TYPE_CHECKING:
    from publisher.config import Settings

DB_FILE = "navpub.sqlite3"
# How long a write waits for another connection's lock before failing with StoreError
# (NAVPUB_STORE_BUSY_TIMEOUT_MS). Readers (API, dashboard, status) hold it for milliseconds;
# 5 s rides out a WAL checkpoint or a backup's copy, and is short enough that a lock held
# for good (a stuck process, a forgotten sqlite3 shell) fails the cycle loudly within its
# slot instead of hanging the keeper.
BUSY_TIMEOUT_MS = 5000


class StoreError(NavPubError):
    """The store cannot be opened, read or written."""


class BigInt(TypeDecorator[int]):
    """An exact integer of up to 78 digits (uint256)."""

    impl = String(80)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(78, 0))
        return dialect.type_descriptor(String(80))

    def process_bind_param(self, value: int | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return Decimal(int(value)) if dialect.name == "postgresql" else str(int(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        return None if value is None else int(value)


metadata = MetaData()

schema_version = Table("schema_version", metadata, Column("version", Integer, nullable=False))

price_cache = Table(
    "price_cache",
    metadata,
    Column("asset", String(64), primary_key=True),
    Column("price", BigInt, nullable=False),
    Column("confidence", Integer, nullable=False),
    Column("as_of", Integer, nullable=False),
    Column("sources", Text, nullable=False),  # JSON list
)

reports = Table(
    "reports",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fund_id", Integer, nullable=False, index=True),
    Column("created_at", Integer, nullable=False),
    Column("trigger", String(16), nullable=False),
    Column("block_number", Integer),
    # publish / skip / hold / fail: what the guard decided
    Column("decision", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    # none (skip, fail) / held / pending → sent → confirmed | failed | superseded
    Column("status", String(16), nullable=False, index=True),
    Column("nav", BigInt),
    Column("gross", BigInt),
    Column("liabilities", BigInt),
    Column("nav_per_share", BigInt),
    Column("estimated", Boolean, nullable=False, default=False),
    Column("activity", Integer),
    # FundVault's share version the NAV was computed at; the vault skips the NAV if it moved.
    Column("share_version", Integer),
    Column("previous_nav", BigInt),
    Column("previous_as_of", Integer),
    Column("previous_round", Integer),
    Column("inputs", Text, nullable=False),  # JSON: quotes, verdicts, cache use, breakdown
    Column("approved_at", Integer),
    Column("approved_by", String(128)),
    # What is published: asOf (the snapshot block's timestamp) and the flags sent with it.
    Column("as_of", Integer),
    Column("flags", Integer, nullable=False, default=0),
    Column("publication_id", Integer, ForeignKey("publications.id"), index=True),
    Column("error", Text),
)

# One publication = one nonce of the engine's key: the transaction (single or batch) that
# carries some reports on chain, whatever fee bumps it took. Exactly-once rests on it: every
# attempt of a publication uses the same nonce, so at most one of them can ever be mined.
publications = Table(
    "publications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", Integer, nullable=False),
    Column("sender", String(42), nullable=False),
    Column("nonce", Integer, nullable=False),
    # signed (committed, not yet acknowledged by a node) → sent → confirmed | failed |
    # dropped (nonce used by something else) | replaced (by a newer publication, same nonce)
    Column("status", String(16), nullable=False, index=True),
    # nav: NAV updates (the gas ledger's updates); ripcord: setFundPaused by the engine;
    # cancel: a zero-value self-transfer taking the nonce of a ripcord no longer wanted
    Column("kind", String(16), nullable=False, default="nav"),
    Column("fund_ids", Text, nullable=False),  # JSON list
    Column("tx_hash", String(66)),  # the mined attempt
    Column("block_number", Integer),
    Column("gas_used", Integer),
    Column("effective_gas_price", BigInt),
    Column("cost_wei", BigInt),
    Column("native_usd", BigInt),  # the native coin's USD price (18 decimals) of that cycle
    Column("cost_usd", BigInt),
    Column("confirmed_at", Integer),
    Column("error", Text),
    Column("replaced_by", Integer),
)

attempts = Table(
    "attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("publication_id", Integer, ForeignKey("publications.id"), nullable=False, index=True),
    Column("tx_hash", String(66), nullable=False),
    Column("raw_tx", Text, nullable=False),  # the signed transaction, so a restart can rebroadcast it
    Column("max_fee", BigInt),
    Column("priority_fee", BigInt),
    Column("gas_price", BigInt),
    Column("gas_limit", Integer, nullable=False),
    Column("created_at", Integer, nullable=False),
)

fund_state = Table(
    "fund_state",
    metadata,
    Column("fund_id", Integer, primary_key=True),
    Column("consecutive_bad", Integer, nullable=False, default=0),
    Column("breaker_open", Boolean, nullable=False, default=False),
    Column("held_activity", Integer),
    Column("held_round", Integer),
    Column("published_activity", Integer),  # activity counter when the last NAV was published
    Column("high_water_mark", BigInt),  # from HighWaterMarkUpdated events of confirmed receipts
    Column("high_water_mark_at", Integer),
    # No longer read (kept so existing stores need no migration): whether a pause is the
    # engine's own is now read from the chain and the settled outbox (Publisher.sync_ripcord).
    Column("paused_by_engine", Boolean, nullable=False, default=False),
    Column("updated_at", Integer, nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", Integer, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("fund_id", Integer),
    Column("report_id", Integer, ForeignKey("reports.id")),
    Column("message", Text, nullable=False),
)

# The webhook dedup state of each alert condition (kind, key): key is "fund:N", a caller's
# key, or "*". Kept in the store so a restart does not re-alert a condition still firing.
alert_state = Table(
    "alert_state",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("active", Boolean, nullable=False, default=False),
    Column("first_at", Integer, nullable=False),  # when it last started firing
    Column("last_sent_at", Integer),  # last notification a receiver accepted; None: never
    Column("last_message", Text, nullable=False),
)

# The keeper's memory: the block cursor of the activity events, its heartbeat, and the
# emergency triggers other processes leave for it (`navpub trigger`).
keeper_state = Table(
    "keeper_state",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

seen_events = Table(
    "seen_events",
    metadata,
    Column("tx_hash", String(66), primary_key=True),
    Column("log_index", Integer, primary_key=True),
    Column("block_number", Integer, nullable=False, index=True),
    Column("fund_id", Integer, nullable=False),
)

triggers = Table(
    "triggers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fund_id", Integer, nullable=False),
    Column("created_at", Integer, nullable=False),
    Column("taken_at", Integer),
)


def _v2_share_version_and_per_share_marks(conn: Connection) -> None:
    """Reports carry the share version they were computed at; the high-water mark became a NAV
    per share, so marks kept from the old total-NAV events are dropped (the next receipt's
    HighWaterMarkUpdated brings the per-share one)."""
    conn.execute(text("ALTER TABLE reports ADD COLUMN share_version INTEGER"))
    conn.execute(update(fund_state).values(high_water_mark=None, high_water_mark_at=None))


# MIGRATIONS[i] brings a database from version i + 1 to i + 2.
MIGRATIONS: list[Callable[[Connection], None]] = [_v2_share_version_and_per_share_marks]
LATEST_VERSION = 1 + len(MIGRATIONS)


@dataclass(frozen=True)
class NewReport:
    """A report as the engine hands it to the store."""

    fund_id: int
    created_at: int
    trigger: str
    block_number: int | None
    decision: str
    reason: str
    status: str
    nav: int | None = None
    gross: int | None = None
    liabilities: int | None = None
    nav_per_share: int | None = None
    estimated: bool = False
    activity: int | None = None
    share_version: int | None = None
    previous_nav: int | None = None
    previous_as_of: int | None = None
    previous_round: int | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    as_of: int | None = None
    flags: int = 0


@dataclass(frozen=True)
class Report(NewReport):
    """A stored report."""

    id: int = 0
    approved_at: int | None = None
    approved_by: str | None = None
    publication_id: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class Attempt:
    """One signed transaction of a publication."""

    id: int
    publication_id: int
    tx_hash: str
    raw_tx: str
    max_fee: int | None
    priority_fee: int | None
    gas_price: int | None
    gas_limit: int
    created_at: int


@dataclass(frozen=True)
class SignedTx:
    """A signed transaction, to be recorded as an attempt of a publication."""

    tx_hash: str
    raw_tx: str
    gas_limit: int
    max_fee: int | None = None
    priority_fee: int | None = None
    gas_price: int | None = None


@dataclass(frozen=True)
class Publication:
    """A nonce of the engine's key and the reports it carries."""

    id: int
    created_at: int
    sender: str
    nonce: int
    status: str
    kind: str
    fund_ids: tuple[int, ...]
    tx_hash: str | None
    block_number: int | None
    gas_used: int | None
    effective_gas_price: int | None
    cost_wei: int | None
    native_usd: int | None
    cost_usd: int | None
    confirmed_at: int | None
    error: str | None
    replaced_by: int | None
    attempts: tuple[Attempt, ...] = ()


@dataclass(frozen=True)
class FundRecord:
    """A fund's guard state plus what the store knows of its last publication."""

    guard: FundGuardState
    published_activity: int | None


@dataclass(frozen=True)
class AlertState:
    """The dedup state of one alert condition (see publisher/alerts.py)."""

    kind: str
    key: str
    active: bool
    first_at: int
    last_sent_at: int | None
    last_message: str


def database_url(state_dir: Path) -> str:
    return f"sqlite:///{state_dir / DB_FILE}"


def _sqlite_pragmas(busy_timeout_ms: int) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        # WAL lets readers (API, dashboard) run while the keeper writes; the busy timeout turns
        # a short lock into a wait instead of an immediate "database is locked".
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    return on_connect


class Store:
    """Typed access to the store; every method is one short transaction."""

    def __init__(self, engine: Engine, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.engine = engine
        self.busy_timeout_ms = busy_timeout_ms

    @classmethod
    def open(cls, url: str, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> Store:
        """Opens (creating or migrating) the database at `url`."""
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas(busy_timeout_ms))
        store = cls(engine, busy_timeout_ms)
        try:
            store._migrate()
        except OperationalError as exc:
            reason = _reason(exc, busy_timeout_ms)
            raise StoreError(f"cannot open the store at {engine.url!r}: {reason}") from None
        return store

    @classmethod
    def for_settings(cls, settings: Settings) -> Store:
        """The store the settings name (NAVPUB_DATABASE_URL, NAVPUB_STORE_BUSY_TIMEOUT_MS)."""
        return cls.open(settings.store_url, busy_timeout_ms=settings.store_busy_timeout_ms)

    def _migrate(self) -> None:
        with self.engine.begin() as conn:
            if not conn.dialect.has_table(conn, "schema_version"):
                metadata.create_all(conn)
                conn.execute(insert(schema_version).values(version=LATEST_VERSION))
                return
            version = conn.execute(select(schema_version.c.version)).scalar_one()
            if version > LATEST_VERSION:
                raise StoreError(
                    f"the store is at schema version {version}, newer than this navpub knows "
                    f"({LATEST_VERSION}); upgrade navpub"
                )
            for step in MIGRATIONS[version - 1 :]:
                step(conn)
            conn.execute(update(schema_version).values(version=LATEST_VERSION))

    def version(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(schema_version.c.version)).scalar_one())

    # -- price cache ----------------------------------------------------------------------

    def cached_prices(self, assets: Iterable[str] | None = None) -> dict[str, CachedPrice]:
        q = select(price_cache)
        if assets is not None:
            q = q.where(price_cache.c.asset.in_(list(assets)))
        with self._read() as conn:
            return {
                r.asset: CachedPrice(r.asset, r.price, r.confidence, r.as_of, tuple(json.loads(r.sources)))
                for r in conn.execute(q)
            }

    def save_prices(self, prices: Sequence[CachedPrice]) -> None:
        if not prices:
            return
        with self._write() as conn:
            for p in prices:
                values = {"price": p.price, "confidence": p.confidence, "as_of": p.as_of,
                          "sources": json.dumps(list(p.sources))}  # fmt: skip
                done = conn.execute(
                    update(price_cache).where(price_cache.c.asset == p.asset).values(**values)
                )
                if done.rowcount == 0:
                    conn.execute(insert(price_cache).values(asset=p.asset, **values))

    # -- reports -----------------------------------------------------------------------

    def add_report(self, r: NewReport) -> int:
        values = {k: getattr(r, k) for k in NewReport.__dataclass_fields__}
        values["inputs"] = json.dumps(r.inputs, default=str, sort_keys=True)
        with self._write() as conn:
            return int(conn.execute(insert(reports).values(**values)).inserted_primary_key[0])

    def report(self, report_id: int) -> Report | None:
        with self._read() as conn:
            row = conn.execute(select(reports).where(reports.c.id == report_id)).first()
        return _report(row) if row else None

    def reports(self, fund_id: int | None = None, limit: int = 50) -> list[Report]:
        q = select(reports).order_by(reports.c.id.desc()).limit(limit)
        if fund_id is not None:
            q = q.where(reports.c.fund_id == fund_id)
        with self._read() as conn:
            return [_report(r) for r in conn.execute(q)]

    def published_reports(self, fund_id: int, limit: int = 500) -> list[Report]:
        """The fund's confirmed (on-chain) reports, the newest `limit`, oldest first."""
        q = (
            select(reports)
            .where(reports.c.fund_id == fund_id, reports.c.status == "confirmed")
            .order_by(reports.c.as_of.desc(), reports.c.id.desc())
            .limit(limit)
        )
        with self._read() as conn:
            return [_report(r) for r in reversed(conn.execute(q).all())]

    def confirmed_report(self, fund_id: int, as_of: int) -> Report | None:
        """The confirmed report whose asOf the chain holds for the fund (the newest, should two match)."""
        q = (
            select(reports)
            .where(reports.c.fund_id == fund_id, reports.c.status == "confirmed", reports.c.as_of == as_of)
            .order_by(reports.c.id.desc())
            .limit(1)
        )
        with self._read() as conn:
            row = conn.execute(q).first()
        return _report(row) if row else None

    def latest_report(self, fund_id: int, *, valued: bool = False) -> Report | None:
        """The fund's newest report (with `valued`, the newest that has a NAV)."""
        q = select(reports).where(reports.c.fund_id == fund_id).order_by(reports.c.id.desc()).limit(1)
        if valued:
            q = q.where(reports.c.nav.is_not(None))
        with self._read() as conn:
            row = conn.execute(q).first()
        return _report(row) if row else None

    def held_report(self, fund_id: int) -> Report | None:
        """The fund's newest report waiting for approval."""
        q = (
            select(reports)
            .where(reports.c.fund_id == fund_id, reports.c.status == "held")
            .order_by(reports.c.id.desc())
            .limit(1)
        )
        with self._read() as conn:
            row = conn.execute(q).first()
        return _report(row) if row else None

    def approve(self, fund_id: int, by: str, now: int) -> Report:
        """Approves the fund's newest held report: it becomes approved (the publisher sends it
        unless a later report passes the guard first); older held reports are superseded."""
        held = self.held_report(fund_id)
        if held is None:
            raise StoreError(f"fund {fund_id} has no held NAV to approve")
        with self._write() as conn:
            conn.execute(
                update(reports)
                .where(reports.c.id == held.id)
                .values(status="approved", approved_at=now, approved_by=by)
            )
            conn.execute(
                update(reports)
                .where(reports.c.fund_id == fund_id, reports.c.status == "held", reports.c.id != held.id)
                .values(status="superseded")
            )
        approved = self.report(held.id)
        assert approved is not None
        return approved

    def supersede_held(self, fund_id: int, by_report: int) -> int:
        """Marks the fund's held reports superseded by a later report that passed the guard."""
        with self._write() as conn:
            done = conn.execute(
                update(reports)
                .where(reports.c.fund_id == fund_id, reports.c.status == "held", reports.c.id < by_report)
                .values(status="superseded")
            )
        return int(done.rowcount)

    def supersede_stale_held(self, fund_id: int, round_now: int) -> int:
        """Held reports computed against a NAV older than the fund's round `round_now` judged a
        jump from a baseline that is gone; a fresh cycle decides again."""
        with self._write() as conn:
            done = conn.execute(
                update(reports)
                .where(
                    reports.c.fund_id == fund_id,
                    reports.c.status == "held",
                    reports.c.previous_round < round_now,
                )
                .values(status="superseded")
            )
        return int(done.rowcount)

    def supersede_older(self, fund_id: int, report_id: int, statuses: Sequence[str] = ("pending",)) -> int:
        """Marks the fund's reports older than `report_id` in `statuses` superseded."""
        with self._write() as conn:
            done = conn.execute(
                update(reports)
                .where(
                    reports.c.fund_id == fund_id,
                    reports.c.status.in_(list(statuses)),
                    reports.c.id < report_id,
                )
                .values(status="superseded")
            )
        return int(done.rowcount)

    def supersede_approved(self, fund_id: int) -> int:
        """A later NAV passed the guard: the fund's approved jumps are no longer to be sent."""
        with self._write() as conn:
            done = conn.execute(
                update(reports)
                .where(reports.c.fund_id == fund_id, reports.c.status == "approved")
                .values(status="superseded")
            )
        return int(done.rowcount)

    def pending_reports(self, fund_ids: Iterable[int] | None = None) -> list[Report]:
        """What is to be published: per fund, the newest pending report, or else the newest
        approved one. Everything older of the fund waiting to be sent is superseded."""
        q = select(reports).where(reports.c.status.in_(["pending", "approved"])).order_by(reports.c.id)
        if fund_ids is not None:
            q = q.where(reports.c.fund_id.in_(list(fund_ids)))
        with self._read() as conn:
            rows = [_report(r) for r in conn.execute(q)]
        newest: dict[int, Report] = {}
        for r in rows:
            best = newest.get(r.fund_id)
            # A pending report is a fresh NAV that passed the guard: it wins over an approval.
            if best is None or r.status == "pending" or best.status == "approved":
                newest[r.fund_id] = r
        for r in newest.values():
            self.supersede_older(r.fund_id, r.id, ("pending", "approved"))
            if r.status == "pending":
                self.supersede_approved(r.fund_id)
        return sorted(newest.values(), key=lambda r: r.fund_id)

    def set_reports_status(self, report_ids: Sequence[int], status: str, error: str | None = None) -> None:
        if not report_ids:
            return
        values: dict[str, Any] = {"status": status}
        if error is not None:
            values["error"] = error
        with self._write() as conn:
            conn.execute(update(reports).where(reports.c.id.in_(list(report_ids))).values(**values))

    def reports_of(self, publication_id: int) -> list[Report]:
        q = select(reports).where(reports.c.publication_id == publication_id).order_by(reports.c.fund_id)
        with self._read() as conn:
            return [_report(r) for r in conn.execute(q)]

    # -- publications (the outbox's transactions) -------------------------------------------

    def create_publication(self, sender: str, nonce: int, report_ids: Sequence[int], fund_ids: Sequence[int],
                           now: int, kind: str = "nav", *, signed: SignedTx | None = None,
                           replaces: int | None = None) -> int:  # fmt: skip
        """Commits a publication (status signed) and moves its reports to sent, in one transaction,
        with its first signed transaction (`signed`) and, for a replacement at the same nonce,
        the publication it `replaces` marked replaced and that one's reports not carried over
        superseded: a crash leaves either the old publication in flight or the new one, never
        a replaced publication without its replacement nor a publication without a transaction."""
        with self._write() as conn:
            pid = int(
                conn.execute(
                    insert(publications).values(
                        created_at=now,
                        sender=sender,
                        nonce=nonce,
                        status="signed",
                        kind=kind,
                        fund_ids=json.dumps(list(fund_ids)),
                    )
                ).inserted_primary_key[0]
            )
            if replaces is not None:
                conn.execute(
                    update(publications)
                    .where(publications.c.id == replaces)
                    .values(status="replaced", replaced_by=pid)
                )
                conn.execute(
                    update(reports)
                    .where(
                        reports.c.publication_id == replaces,
                        reports.c.status == "sent",
                        reports.c.id.not_in(list(report_ids)),
                    )
                    .values(status="superseded")
                )
            conn.execute(
                update(reports)
                .where(reports.c.id.in_(list(report_ids)))
                .values(status="sent", publication_id=pid)
            )
            if signed is not None:
                _insert_attempt(conn, pid, signed, now)
        return pid

    def add_attempt(self, publication_id: int, signed: SignedTx, now: int) -> None:
        """Records another signed transaction of a publication (a fee bump, same nonce)."""
        with self._write() as conn:
            _insert_attempt(conn, publication_id, signed, now)

    def update_publication(self, publication_id: int, **values: Any) -> None:
        with self._write() as conn:
            conn.execute(update(publications).where(publications.c.id == publication_id).values(**values))

    def publication(self, publication_id: int) -> Publication | None:
        with self._read() as conn:
            row = conn.execute(select(publications).where(publications.c.id == publication_id)).first()
            if row is None:
                return None
            tries = conn.execute(
                select(attempts).where(attempts.c.publication_id == publication_id).order_by(attempts.c.id)
            ).all()
        return _publication(row, tries)

    def publications(self, statuses: Sequence[str] | None = None) -> list[Publication]:
        """Every publication (in `statuses`, if given), oldest first, with its attempts: two
        queries whatever the count. All of them: the gas ledger and the metrics sum over them."""
        q = select(publications).order_by(publications.c.id)
        if statuses is not None:
            q = q.where(publications.c.status.in_(list(statuses)))
        with self._read() as conn:
            rows = conn.execute(q).all()
            tries: dict[int, list[Any]] = {r.id: [] for r in rows}
            if tries:
                a = select(attempts).order_by(attempts.c.id)
                if statuses is not None:
                    a = a.where(attempts.c.publication_id.in_(select(q.subquery().c.id)))
                for t in conn.execute(a):
                    tries.get(t.publication_id, []).append(t)
        return [_publication(r, tries[r.id]) for r in rows]

    def unfinished_publications(self) -> list[Publication]:
        """Publications whose outcome is not known yet (signed or sent)."""
        return self.publications(("signed", "sent"))

    def unaccounted_publications(self) -> list[Publication]:
        """Publications whose outcome is recorded (confirmed, failed, dropped) while some of their
        reports still say sent: a crash came between recording the outcome and accounting for it."""
        carrying_sent = select(reports.c.publication_id).where(reports.c.status == "sent")
        q = (
            select(publications.c.id)
            .where(
                publications.c.status.in_(["confirmed", "failed", "dropped"]),
                publications.c.id.in_(carrying_sent),
            )
            .order_by(publications.c.id)
        )
        with self._read() as conn:
            ids = [r.id for r in conn.execute(q)]
        return [p for i in ids if (p := self.publication(i)) is not None]

    def set_high_water_mark(self, fund_id: int, hwm: int, now: int) -> None:
        self._upsert_fund(fund_id, now, high_water_mark=hwm, high_water_mark_at=now)

    def high_water_marks(self) -> dict[int, int]:
        with self._read() as conn:
            rows = conn.execute(select(fund_state.c.fund_id, fund_state.c.high_water_mark)).all()
        return {r.fund_id: r.high_water_mark for r in rows if r.high_water_mark is not None}

    # -- keeper --------------------------------------------------------------------------------

    def get_state(self, key: str) -> str | None:
        with self._read() as conn:
            row = conn.execute(select(keeper_state.c.value).where(keeper_state.c.key == key)).first()
        return None if row is None else str(row.value)

    def set_state(self, key: str, value: str) -> None:
        with self._write() as conn:
            done = conn.execute(update(keeper_state).where(keeper_state.c.key == key).values(value=value))
            if done.rowcount == 0:
                conn.execute(insert(keeper_state).values(key=key, value=value))

    def record_events(
        self, events: Sequence[tuple[str, int, int, int]], cursor: int, prune_below: int
    ) -> set[int]:
        """Stores (tx_hash, log_index, block, fund) events not seen before and moves the cursor,
        in one transaction; returns the funds of the new ones. A re-mined transaction keeps
        its hash and log index, so a reorg never repeats a trigger."""
        new_funds: set[int] = set()
        with self._write() as conn:
            for tx_hash, log_index, block, fund_id in events:
                seen = conn.execute(
                    select(seen_events.c.tx_hash).where(
                        seen_events.c.tx_hash == tx_hash, seen_events.c.log_index == log_index
                    )
                ).first()
                if seen is None:
                    conn.execute(insert(seen_events).values(tx_hash=tx_hash, log_index=log_index,
                                                           block_number=block, fund_id=fund_id))  # fmt: skip
                    new_funds.add(fund_id)
            conn.execute(seen_events.delete().where(seen_events.c.block_number < prune_below))
            done = conn.execute(
                update(keeper_state).where(keeper_state.c.key == "cursor").values(value=str(cursor))
            )
            if done.rowcount == 0:
                conn.execute(insert(keeper_state).values(key="cursor", value=str(cursor)))
        return new_funds

    def add_trigger(self, fund_id: int, now: int) -> int:
        with self._write() as conn:
            return int(
                conn.execute(insert(triggers).values(fund_id=fund_id, created_at=now)).inserted_primary_key[0]
            )

    def take_triggers(self, now: int) -> set[int]:
        """The funds of every untaken trigger, marked taken."""
        with self._write() as conn:
            rows = conn.execute(
                select(triggers.c.id, triggers.c.fund_id).where(triggers.c.taken_at.is_(None))
            ).all()
            if rows:
                conn.execute(
                    update(triggers).where(triggers.c.id.in_([r.id for r in rows])).values(taken_at=now)
                )
        return {r.fund_id for r in rows}

    # -- fund state -----------------------------------------------------------------------

    def fund_record(self, fund_id: int) -> FundRecord:
        with self._read() as conn:
            row = conn.execute(select(fund_state).where(fund_state.c.fund_id == fund_id)).first()
        if row is None:
            return FundRecord(FundGuardState(), None)
        guard = FundGuardState(row.consecutive_bad, bool(row.breaker_open), row.held_activity, row.held_round)
        return FundRecord(guard, row.published_activity)

    def save_guard_state(self, fund_id: int, state: FundGuardState, now: int) -> None:
        self._upsert_fund(
            fund_id,
            now,
            consecutive_bad=state.consecutive_bad,
            breaker_open=state.breaker_open,
            held_activity=state.held_activity,
            held_round=state.held_round,
        )

    def set_published_activity(self, fund_id: int, activity: int, now: int) -> None:
        """Remembers the activity counter of the fund's last published NAV (jump guard baseline)."""
        self._upsert_fund(fund_id, now, published_activity=activity)

    def _upsert_fund(self, fund_id: int, now: int, **values: Any) -> None:
        with self._write() as conn:
            done = conn.execute(
                update(fund_state).where(fund_state.c.fund_id == fund_id).values(updated_at=now, **values)
            )
            if done.rowcount == 0:
                conn.execute(insert(fund_state).values(fund_id=fund_id, updated_at=now, **values))

    # -- alerts -----------------------------------------------------------------------

    def add_alert(self, kind: str, message: str, now: int, fund_id: int | None = None,
                  report_id: int | None = None) -> int:  # fmt: skip
        with self._write() as conn:
            res = conn.execute(
                insert(alerts).values(
                    created_at=now, kind=kind, fund_id=fund_id, report_id=report_id, message=message
                )
            )
            return int(res.inserted_primary_key[0])

    def alerts(self, fund_id: int | None = None, limit: int = 50) -> list[dict[str, Any]]:
        q = select(alerts).order_by(alerts.c.id.desc()).limit(limit)
        if fund_id is not None:
            q = q.where(alerts.c.fund_id == fund_id)
        with self._read() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def alert_state(self, kind: str, key: str) -> AlertState | None:
        with self._read() as conn:
            row = conn.execute(
                select(alert_state).where(alert_state.c.kind == kind, alert_state.c.key == key)
            ).first()
        if row is None:
            return None
        m = dict(row._mapping)
        m["active"] = bool(m["active"])
        return AlertState(**m)

    def active_alert_keys(self, kind: str) -> set[str]:
        """The keys of every condition of `kind` firing now (one query, whatever their number)."""
        q = select(alert_state.c.key).where(alert_state.c.kind == kind, alert_state.c.active.is_(True))
        with self._read() as conn:
            return {r.key for r in conn.execute(q)}

    def set_alert_state(self, kind: str, key: str, *, active: bool, first_at: int,
                        last_sent_at: int | None, last_message: str) -> None:  # fmt: skip
        values = {"active": active, "first_at": first_at, "last_sent_at": last_sent_at,
                  "last_message": last_message}  # fmt: skip
        with self._write() as conn:
            done = conn.execute(
                update(alert_state)
                .where(alert_state.c.kind == kind, alert_state.c.key == key)
                .values(**values)
            )
            if done.rowcount == 0:
                conn.execute(insert(alert_state).values(kind=kind, key=key, **values))

    # -- plumbing -------------------------------------------------------------------------

    def _read(self) -> _Tx:
        return _Tx(self.engine, self.busy_timeout_ms, write=False)

    def _write(self) -> _Tx:
        return _Tx(self.engine, self.busy_timeout_ms, write=True)


def _reason(exc: BaseException, busy_timeout_ms: int) -> str:
    """The driver's reason, plus what it usually means where SQLite's words are terse."""
    text = str(getattr(exc, "orig", None) or exc)
    if "database is locked" in text:
        text += (
            f" (another connection held its write lock for more than {Decimal(busy_timeout_ms) / 1000} s,"
            " NAVPUB_STORE_BUSY_TIMEOUT_MS)"
        )
    elif "disk I/O error" in text or "disk is full" in text:
        text += " (is the disk full, or the file not writable?)"
    return text


class _Tx:
    """A connection (read) or transaction (write) whose database errors become StoreError,
    naming the database (password hidden) and the reason in one line."""

    def __init__(self, engine: Engine, busy_timeout_ms: int, *, write: bool) -> None:
        self._engine = engine
        self._busy_timeout_ms = busy_timeout_ms
        self._cm = engine.begin() if write else engine.connect()

    @property
    def _where(self) -> str:
        return repr(self._engine.url)  # SQLAlchemy's repr masks the password

    def _why(self, exc: BaseException) -> str:
        return _reason(exc, self._busy_timeout_ms)

    def __enter__(self) -> Connection:
        try:
            return self._cm.__enter__()
        except SQLAlchemyError as exc:
            raise StoreError(f"store unavailable ({self._where}): {self._why(exc)}") from None

    def __exit__(self, *exc: Any) -> None:
        try:
            self._cm.__exit__(*exc)
        except SQLAlchemyError as err:
            raise StoreError(f"store write failed ({self._where}): {self._why(err)}") from None
        if exc[0] is not None and issubclass(exc[0], SQLAlchemyError):
            raise StoreError(f"store error ({self._where}): {self._why(exc[1])}") from None


def _insert_attempt(conn: Connection, publication_id: int, signed: SignedTx, now: int) -> None:
    conn.execute(insert(attempts).values(publication_id=publication_id, created_at=now, **asdict(signed)))


def _publication(row: Any, tries: Sequence[Any]) -> Publication:
    m = dict(row._mapping)
    m["fund_ids"] = tuple(json.loads(m["fund_ids"]))
    return Publication(**m, attempts=tuple(Attempt(**dict(t._mapping)) for t in tries))


def _report(row: Any) -> Report:
    m = dict(row._mapping)
    m["inputs"] = json.loads(m["inputs"])
    m["estimated"] = bool(m["estimated"])
    return Report(**m)
