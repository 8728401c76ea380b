"""The ratings database: one SQLAlchemy schema for SQLite (default) and PostgreSQL.

Everything a rater does that matters is committed here the moment they submit a trial:
nothing is held only in the browser or in Streamlit's session state, so a reload, a new
device or a server restart resumes from the database. Condition names (which loss made
which stimulus) live only in this database, never in anything the browser receives.

The schema is versioned: ``schema_version`` holds the number of the last migration
applied and :data:`MIGRATIONS` is the ordered list of migration functions; opening a
database applies the missing ones, each in its own transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import threading
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from earshot.listening_app.settings import TestSettings
from earshot.results.rundir import RunDir

#: The environment variable that overrides the default database URL.
DB_ENV = "EARSHOT_DB"
#: Seconds a writer waits for SQLite's lock before giving up (30 concurrent raters submit fine).
SQLITE_BUSY_TIMEOUT_MS = 30_000

KINDS = ("system", "reference", "anchor")
REFERENCE = "reference"
ANCHOR_LOW = "anchor-low"
ANCHOR_MID = "anchor-mid"
RATINGS_COLUMNS = ["test", "rater", "item", "condition", "score", "kind"]

metadata = sa.MetaData()

schema_version = sa.Table("schema_version", metadata, sa.Column("version", sa.Integer, nullable=False))

tests = sa.Table(
    "tests", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("run_dir", sa.Text, nullable=False),
    sa.Column("run_id", sa.String(200), nullable=False),
    sa.Column("settings", sa.Text, nullable=False),  # TestSettings as JSON
    sa.Column("status", sa.String(10), nullable=False, default="closed"),
    sa.Column("sample_rate", sa.Integer, nullable=False),
    sa.Column("anchor_low_hz", sa.Float, nullable=False),
    sa.Column("anchor_mid_hz", sa.Float, nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    # How the stimuli were level-matched (migration 2): "bs1770" or "rms".
    sa.Column("loudness", sa.String(10), nullable=False, server_default="rms"),
    # The kind of test (migration 4); every test before it was MUSHRA.
    sa.Column("type", sa.String(10), nullable=False, server_default="mushra"),
    sa.CheckConstraint("status in ('open', 'closed')", name="tests_status"),
)

items = sa.Table(
    "items", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("test_id", sa.Integer, sa.ForeignKey("tests.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("category", sa.String(100), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("training", sa.Boolean, nullable=False, default=False),
    # The run's excerpt the item plays (migration 4): an ABX item is one excerpt and one pair, so its
    # name is not the excerpt's; NULL means the name is.
    sa.Column("excerpt", sa.String(200), nullable=True),
    # A trial with a known answer, mixed into the test to check the rater listens (migration 5).
    sa.Column("attention", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.UniqueConstraint("test_id", "name", name="items_unique_name"),
)

stimuli = sa.Table(
    "stimuli", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id", ondelete="CASCADE"), nullable=False),
    sa.Column("condition", sa.String(200), nullable=False),  # server side only
    sa.Column("kind", sa.String(10), nullable=False),
    sa.Column("audio", sa.LargeBinary, nullable=False),  # 16-bit wav, loudness matched
    sa.Column("gain_db", sa.Float, nullable=False),
    sa.Column("samples", sa.Integer, nullable=False),
    sa.UniqueConstraint("item_id", "condition", name="stimuli_unique_condition"),
    sa.CheckConstraint("kind in ('system', 'reference', 'anchor')", name="stimuli_kind"),
)

raters = sa.Table(
    "raters", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("test_id", sa.Integer, sa.ForeignKey("tests.id", ondelete="CASCADE"), nullable=False),
    sa.Column("token", sa.String(64), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.Column("consented", sa.DateTime(timezone=True), nullable=True),
    # Joined under a typed name on the start page rather than through an invitation (migration 3).
    sa.Column("self_registered", sa.Boolean, nullable=False, server_default=sa.false()),
    # Crowd sessions (migration 5): the id a recruiting platform passed in the URL, the code shown
    # on the finished page, the browser's output sample rate and user agent, when the rater set
    # their level on the calibration signal, and the rater's subset of items (JSON ids; NULL: all).
    sa.Column("participant_id", sa.String(200), nullable=True),
    sa.Column("completion_code", sa.String(40), nullable=True),
    sa.Column("sample_rate", sa.Integer, nullable=True),
    sa.Column("user_agent", sa.Text, nullable=True),
    sa.Column("level_set", sa.DateTime(timezone=True), nullable=True),
    sa.Column("items", sa.Text, nullable=True),
    sa.UniqueConstraint("test_id", "name", name="raters_unique_name"),
)

trials = sa.Table(
    "trials", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("rater_id", sa.Integer, sa.ForeignKey("raters.id", ondelete="CASCADE"), nullable=False),
    sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id", ondelete="CASCADE"), nullable=False),
    sa.Column("seconds_spent", sa.Float, nullable=False),
    sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("submissions", sa.Integer, nullable=False, default=1),
    sa.UniqueConstraint("rater_id", "item_id", name="trials_unique_rater_item"),
)

ratings = sa.Table(
    "ratings", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("trial_id", sa.Integer, sa.ForeignKey("trials.id", ondelete="CASCADE"), nullable=False),
    sa.Column("stimulus_id", sa.Integer, sa.ForeignKey("stimuli.id", ondelete="CASCADE"), nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("play_count", sa.Integer, nullable=False),
    sa.Column("play_seconds", sa.Float, nullable=False),
    sa.UniqueConstraint("trial_id", "stimulus_id", name="ratings_unique_trial_stimulus"),
    sa.CheckConstraint("score >= 0 and score <= 100", name="ratings_score_range"),
)

abx_answers = sa.Table(
    "abx_answers", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("trial_id", sa.Integer, sa.ForeignKey("trials.id", ondelete="CASCADE"), nullable=False, unique=True),
    sa.Column("a_stimulus_id", sa.Integer, sa.ForeignKey("stimuli.id", ondelete="CASCADE"), nullable=False),
    sa.Column("b_stimulus_id", sa.Integer, sa.ForeignKey("stimuli.id", ondelete="CASCADE"), nullable=False),
    sa.Column("x_stimulus_id", sa.Integer, sa.ForeignKey("stimuli.id", ondelete="CASCADE"), nullable=False),
    sa.Column("answer", sa.String(1), nullable=False),  # what the rater said X is: "A" or "B"
    sa.Column("play_count", sa.Integer, nullable=False),  # A, B and X together
    sa.Column("play_seconds", sa.Float, nullable=False),
    sa.CheckConstraint("answer in ('A', 'B')", name="abx_answer"),
    sa.CheckConstraint("x_stimulus_id = a_stimulus_id or x_stimulus_id = b_stimulus_id", name="abx_x_is_a_or_b"),
)

pair_answers = sa.Table(
    "pair_answers", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("trial_id", sa.Integer, sa.ForeignKey("trials.id", ondelete="CASCADE"), nullable=False, unique=True),
    sa.Column("a_stimulus_id", sa.Integer, sa.ForeignKey("stimuli.id", ondelete="CASCADE"), nullable=False),
    sa.Column("b_stimulus_id", sa.Integer, sa.ForeignKey("stimuli.id", ondelete="CASCADE"), nullable=False),
    sa.Column("answer", sa.String(4), nullable=False),  # the one preferred: "A", "B", or "none"
    sa.Column("play_count", sa.Integer, nullable=False),  # A and B together
    sa.Column("play_seconds", sa.Float, nullable=False),
    sa.CheckConstraint("answer in ('A', 'B', 'none')", name="pair_answer"),
)


def _migration_1(conn: Connection) -> None:
    """The first schema: tests, items, stimuli, raters, trials, ratings."""
    metadata.create_all(conn, tables=[tests, items, stimuli, raters, trials, ratings])


def _migration_2(conn: Connection) -> None:
    """tests.loudness: the level-matching method. Tests made before it existed were matched by RMS.

    Migration 1 creates tables from the current definitions, so a database made since
    has the column already.
    """
    if "loudness" not in {c["name"] for c in sa.inspect(conn).get_columns("tests")}:
        conn.exec_driver_sql("ALTER TABLE tests ADD COLUMN loudness VARCHAR(10) NOT NULL DEFAULT 'rms'")


def _migration_3(conn: Connection) -> None:
    """raters.self_registered, and the setting ``rater_id`` becomes ``self_registration``.

    A test whose raters could type a name (``name``, ``token-or-name``) keeps self-registration
    on. Raters made before it count as invited: who typed a name was not recorded.
    """
    if "self_registered" not in {c["name"] for c in sa.inspect(conn).get_columns("raters")}:
        conn.exec_driver_sql("ALTER TABLE raters ADD COLUMN self_registered BOOLEAN NOT NULL DEFAULT false")
    for row in conn.execute(sa.select(tests.c.id, tests.c.settings)).all():
        settings = json.loads(row.settings)
        if "rater_id" in settings:
            settings["self_registration"] = settings.pop("rater_id") != "token"
            conn.execute(tests.update().where(tests.c.id == row.id).values(settings=json.dumps(settings)))


def _migration_4(conn: Connection) -> None:
    """tests.type (every earlier test was MUSHRA), items.excerpt and the ABX answers table."""
    if "type" not in {c["name"] for c in sa.inspect(conn).get_columns("tests")}:
        conn.exec_driver_sql("ALTER TABLE tests ADD COLUMN type VARCHAR(10) NOT NULL DEFAULT 'mushra'")
    if "excerpt" not in {c["name"] for c in sa.inspect(conn).get_columns("items")}:
        conn.exec_driver_sql("ALTER TABLE items ADD COLUMN excerpt VARCHAR(200)")
    abx_answers.create(conn, checkfirst=True)


def _migration_5(conn: Connection) -> None:
    """Crowd sessions and paired preference: items.attention, the raters' crowd columns, pair_answers."""
    def add(table: str, column: str, ddl: str) -> None:
        if column not in {c["name"] for c in sa.inspect(conn).get_columns(table)}:
            conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column} {ddl}")

    add("items", "attention", "BOOLEAN NOT NULL DEFAULT false")
    for column, ddl in (("participant_id", "VARCHAR(200)"), ("completion_code", "VARCHAR(40)"),
                        ("sample_rate", "INTEGER"), ("user_agent", "TEXT"), ("items", "TEXT")):
        add("raters", column, ddl)
    add("raters", "level_set", "TIMESTAMP WITH TIME ZONE" if conn.dialect.name == "postgresql" else "DATETIME")
    pair_answers.create(conn, checkfirst=True)


#: Ordered migrations; migration ``i`` (1-based) brings the schema to version ``i``.
#: A new one is appended, never edited, so an old database upgrades step by step.
MIGRATIONS: list[Callable[[Connection], None]] = [_migration_1, _migration_2, _migration_3, _migration_4,
                                                  _migration_5]


class StoreError(ValueError):
    """A request the store refuses (tampered, duplicated, closed test...): one line for the user."""


def default_db_url() -> str:
    """``$EARSHOT_DB`` (a URL or a file path, as :func:`database_url` reads it), else a SQLite file in
    the user's data folder."""
    if os.environ.get(DB_ENV):
        return database_url(os.environ[DB_ENV])
    from platformdirs import user_data_dir

    folder = Path(user_data_dir("earshot"))
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'listening.sqlite'}"


def database_url(db: str | None = None) -> str:
    """The SQLAlchemy URL of a ``--db`` value: a URL (``sqlite:///path``, ``postgresql://...``) as
    given, a plain file path as that SQLite file, None as :func:`default_db_url`.

    Raises:
        StoreError: a malformed URL, an unknown kind of database or a folder, in one line.
    """
    if db is None:
        return default_db_url()
    text = str(db).strip()
    if "://" not in text:
        path = Path(text).expanduser()
        if not text or path.is_dir():
            raise StoreError(f"database {db!r}: give a file path (a SQLite file) or a URL such as "
                             "sqlite:///path or postgresql://user@host/name")
        return f"sqlite:///{path.resolve()}"
    try:
        sa.engine.make_url(_normalise_url(text)).get_dialect()
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ValueError) as exc:
        raise StoreError(f"database {db!r} is not a valid database URL ({exc}); give a file path or a URL "
                         "such as sqlite:///path or postgresql://user@host/name") from None
    return text


def _normalise_url(url: str) -> str:
    # A bare postgresql:// URL means psycopg2 to SQLAlchemy; psycopg (3) is what we install.
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def engine_for(db_url: str | None = None) -> Engine:
    """One engine per database (a URL or a file path, :func:`database_url`) per process, with the
    schema migrated to the latest version.

    Raises:
        StoreError: a malformed URL.
    """
    url = _normalise_url(database_url(db_url))
    with _engines_lock:
        if url in _engines:
            return _engines[url]
        if url.startswith("sqlite"):
            path = sa.engine.make_url(url).database
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                                                         "check_same_thread": False})
            _sqlite_pragmas(engine)
            _sqlite_write_locks.setdefault(str(engine.url), threading.RLock())
        else:
            engine = sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=30)
        migrate(engine)
        _engines[url] = engine
        return engine


def dispose_engines() -> None:
    """Close every pooled connection (tests, and before a PostgreSQL server stops)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def _sqlite_pragmas(engine: Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # pysqlite's own transaction handling starts transactions late and as DEFERRED,
        # which deadlocks two writers that both read first; we issue BEGIN IMMEDIATE.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints, safe in WAL
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn):
        # Writers take the write lock up front (no deadlock on upgrade); readers stay
        # DEFERRED, so in WAL mode they never wait for a writer.
        immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


_WRITE_OPTION = "earshot_write"


# One lock per SQLite URL: writers of this process queue on it and start the
# moment the previous one commits, instead of polling SQLite's busy handler, whose sleeps
# (up to 100 ms each) made the p95 of 30 concurrent submits several times the median.
# Other processes still wait through busy_timeout.
_sqlite_write_locks: dict[str, threading.RLock] = {}


@contextmanager
def _writing(engine: Engine) -> Iterator[Connection]:
    """A write transaction: ``BEGIN IMMEDIATE`` on SQLite, an ordinary one elsewhere."""
    lock = _sqlite_write_locks.get(str(engine.url)) if engine.dialect.name == "sqlite" else None
    with lock or nullcontext():
        with engine.execution_options(**{_WRITE_OPTION: True}).begin() as conn:
            yield conn


def migrate(engine: Engine) -> int:
    """Apply the migrations the database lacks; returns the schema version now."""
    with _writing(engine) as conn:
        schema_version.create(conn, checkfirst=True)
        row = conn.execute(sa.select(schema_version.c.version)).first()
        if row is None:
            conn.execute(schema_version.insert().values(version=0))
            current = 0
        else:
            current = row.version
        for number, migration in enumerate(MIGRATIONS[current:], start=current + 1):
            migration(conn)
            conn.execute(schema_version.update().values(version=number))
        return max(current, len(MIGRATIONS))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# --------------------------------------------------------------------------- tests


@dataclass(frozen=True)
class TestInfo:
    """A test as the app needs it (no audio)."""

    __test__ = False
    id: int
    name: str
    run_dir: str
    run_id: str
    settings: TestSettings
    status: str
    sample_rate: int
    anchor_low_hz: float
    anchor_mid_hz: float
    loudness: str  # how the stimuli were level-matched: "bs1770" or "rms"
    training_item_id: int | None = None  # the item the training page plays; never a trial
    type: str = "mushra"  # a name of listening_app.testtypes.TYPES


def _tests_query():
    training = (sa.select(sa.func.min(items.c.id)).where(items.c.test_id == tests.c.id, items.c.training.is_(True))
                .scalar_subquery())
    return sa.select(tests, training.label("training_item_id"))


def _test_info(row) -> TestInfo:
    return TestInfo(row.id, row.name, row.run_dir, row.run_id, TestSettings.model_validate_json(row.settings),
                    row.status, row.sample_rate, row.anchor_low_hz, row.anchor_mid_hz, row.loudness,
                    row.training_item_id, row.type)


@dataclass
class NewStimulus:
    condition: str
    kind: str
    audio: bytes
    gain_db: float
    samples: int


@dataclass
class NewItem:
    name: str
    category: str
    stimuli: list[NewStimulus]
    training: bool = False
    excerpt: str | None = None  # the run's excerpt, when the name is not it
    attention: bool = False  # a trial with a known answer (TestType.make_attention)


def create_test(db_url: str | None, name: str, run_dir: Path, run_id: str, settings: TestSettings,
                sample_rate: int, anchor_low_hz: float, anchor_mid_hz: float, new_items: list[NewItem],
                loudness: str, test_type: str = "mushra") -> TestInfo:
    """Write a prepared test (closed) in one transaction; a name in use is refused. ``test_type`` is
    checked by the caller against the types the app serves."""
    engine = engine_for(db_url)
    with _writing(engine) as conn:
        if conn.execute(sa.select(tests.c.id).where(tests.c.name == name)).first():
            raise StoreError(f"a test named {name!r} exists already (choose another --name)")
        test_id = conn.execute(tests.insert().values(
            name=name, run_dir=str(Path(run_dir).resolve()), run_id=run_id, settings=settings.model_dump_json(),
            status="closed", sample_rate=sample_rate, anchor_low_hz=anchor_low_hz, anchor_mid_hz=anchor_mid_hz,
            created=_now(), loudness=loudness, type=test_type)).inserted_primary_key[0]
        for position, item in enumerate(new_items):
            item_id = conn.execute(items.insert().values(
                test_id=test_id, name=item.name, category=item.category, position=position,
                training=item.training, excerpt=item.excerpt, attention=item.attention)).inserted_primary_key[0]
            conn.execute(stimuli.insert(), [dict(item_id=item_id, condition=s.condition, kind=s.kind, audio=s.audio,
                                                 gain_db=s.gain_db, samples=s.samples) for s in item.stimuli])
    return get_test(db_url, name)


def get_test(db_url: str | None, name: str) -> TestInfo:
    with engine_for(db_url).connect() as conn:
        row = conn.execute(_tests_query().where(tests.c.name == name)).first()
    if row is None:
        raise StoreError(f"no test named {name!r}")
    return _test_info(row)


def list_tests(db_url: str | None) -> list[TestInfo]:
    with engine_for(db_url).connect() as conn:
        return [_test_info(r) for r in conn.execute(_tests_query().order_by(tests.c.id))]


def update_settings(db_url: str | None, name: str, **changes) -> TestInfo:
    """Change some of a test's settings (validated as :class:`TestSettings`); returns the test."""
    info = get_test(db_url, name)
    try:
        settings = TestSettings.model_validate({**info.settings.model_dump(), **changes})
    except ValueError as error:  # pydantic's ValidationError is one
        raise StoreError(f"test {name!r}: settings {sorted(changes)}: {error}") from None
    with _writing(engine_for(db_url)) as conn:
        conn.execute(tests.update().where(tests.c.id == info.id).values(settings=settings.model_dump_json()))
    return get_test(db_url, name)


def tests_for_run(db_url: str, run_dir: str | Path) -> list[str]:
    """Names of the tests made from a run directory (matched by path, or by run id if it moved)."""
    run = RunDir(run_dir)
    run_id = run.run_id
    resolved = str(run.path.resolve())
    with engine_for(db_url).connect() as conn:
        rows = conn.execute(sa.select(tests.c.name).where(sa.or_(tests.c.run_dir == resolved, tests.c.run_id == run_id))
                            .order_by(tests.c.id)).all()
    return [r.name for r in rows]


def set_status(db_url: str | None, name: str, status: str) -> None:
    """Open or close a test; opening runs the BS.1534 checks first."""
    if status not in ("open", "closed"):
        raise StoreError(f"status must be open or closed, not {status!r}")
    if status == "open":
        from earshot.listening_app.rules import check_test

        problems = check_test(db_url, name)
        if problems:
            raise StoreError(f"test {name!r} cannot open: " + "; ".join(problems))
    with _writing(engine_for(db_url)) as conn:
        done = conn.execute(tests.update().where(tests.c.name == name).values(status=status)).rowcount
    if not done:
        raise StoreError(f"no test named {name!r}")


@dataclass(frozen=True)
class ItemInfo:
    id: int
    name: str
    category: str
    position: int
    training: bool
    attention: bool = False


@dataclass(frozen=True)
class StimulusInfo:
    """A stimulus as the server sees it; only ``id`` order and audio ever reach a browser, re-keyed."""

    id: int
    item_id: int
    condition: str
    kind: str
    gain_db: float
    samples: int


def test_items(db_url: str | None, test_id: int) -> list[ItemInfo]:
    with engine_for(db_url).connect() as conn:
        rows = conn.execute(sa.select(items).where(items.c.test_id == test_id).order_by(items.c.position)).all()
    return [ItemInfo(r.id, r.name, r.category, r.position, r.training, r.attention) for r in rows]


def item_stimuli(db_url: str | None, item_id: int) -> list[StimulusInfo]:
    cols = [stimuli.c.id, stimuli.c.item_id, stimuli.c.condition, stimuli.c.kind, stimuli.c.gain_db, stimuli.c.samples]
    with engine_for(db_url).connect() as conn:
        rows = conn.execute(sa.select(*cols).where(stimuli.c.item_id == item_id).order_by(stimuli.c.id)).all()
    return [StimulusInfo(*r) for r in rows]


def stimulus_audio(db_url: str | None, stimulus_ids: list[int]) -> dict[int, bytes]:
    with engine_for(db_url).connect() as conn:
        rows = conn.execute(sa.select(stimuli.c.id, stimuli.c.audio).where(stimuli.c.id.in_(stimulus_ids))).all()
    return {r.id: bytes(r.audio) for r in rows}


# --------------------------------------------------------------------------- raters


@dataclass(frozen=True)
class RaterInfo:
    id: int
    test_id: int
    token: str
    name: str
    consented: bool
    self_registered: bool = False
    participant_id: str | None = None  # a crowd platform's id, from the start page's URL
    completion_code: str | None = None  # shown on the finished page
    level_set: bool = False  # confirmed a comfortable level on the level-check page
    items: tuple[int, ...] | None = None  # the rater's subset of the test's items; None: every item


def _rater_info(row) -> RaterInfo:
    subset = tuple(json.loads(row._mapping["items"])) if row._mapping["items"] else None
    return RaterInfo(row.id, row.test_id, row.token, row.name, row.consented is not None, bool(row.self_registered),
                     row.participant_id, row.completion_code, row.level_set is not None, subset)


def new_token() -> str:
    """An unguessable invitation token (URL-safe, 128 bits)."""
    return secrets.token_urlsafe(16)


#: Completion codes are read off a screen and typed: no 0/O, 1/I/L.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
MAX_PARTICIPANT_ID = 200


def new_completion_code() -> str:
    """A random per-rater completion code (10 characters, about 50 bits)."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(10))


def balanced_subset(item_ids: list[int], k: int, per_rater: int, seed: object) -> list[int]:
    """The ``k``-th rater's (0-based) ``per_rater`` items: the next window of one shuffled cycle through
    ``item_ids``, so after any number of raters every item has been handed out equally often, give or
    take one. ``seed`` fixes the shuffle (the test's), so the cycle is the same for every rater."""
    if per_rater >= len(item_ids):
        return list(item_ids)
    digest = hashlib.sha256(json.dumps(["subset", str(seed)]).encode()).digest()
    cycle = [item_ids[i] for i in np.random.default_rng(int.from_bytes(digest[:8], "little")).permutation(len(item_ids))]
    start = k * per_rater
    return [cycle[(start + j) % len(cycle)] for j in range(per_rater)]


def clean_participant_id(value: object) -> str | None:
    """A participant id from a URL, stripped; None when absent, empty, too long or not printable."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value or len(value) > MAX_PARTICIPANT_ID or not value.isprintable():
        return None
    return value


def add_rater(db_url: str | None, test: str, name: str | None = None, self_registered: bool = False,
              participant_id: str | None = None) -> RaterInfo:
    """A new rater of a test with a fresh token; a name in use in that test is refused.

    ``self_registered``: the rater joined on the start page under a typed name, which only an
    open test with self-registration on accepts; otherwise it is an invitation. The rater gets a
    completion code (the test's fixed one, else a random one) and, when the test gives each rater
    a subset of its items, the next balanced subset (:func:`balanced_subset`), chosen here once.
    """
    info = get_test(db_url, test)
    token = new_token()
    with _writing(engine_for(db_url)) as conn:
        # Locked (PostgreSQL) so that two raters joining at once count each other for their subsets.
        row = conn.execute(sa.select(tests.c.status, tests.c.settings).where(tests.c.id == info.id)
                           .with_for_update()).first()
        settings = TestSettings.model_validate_json(row.settings)
        if self_registered:
            if not settings.self_registration or row.status != "open":
                raise StoreError("this test takes invited raters only: open it with the link from your invitation")
            if name is None:
                raise StoreError("give your name or participant id")
        if name is not None:
            name = name.strip()
            if not name or len(name) > 200:
                raise StoreError("a rater name must be 1 to 200 characters")
            if conn.execute(sa.select(raters.c.id).where(raters.c.test_id == info.id, raters.c.name == name)).first():
                raise StoreError(f"the name {name!r} is taken in this test: use your invitation link, or another name")
        rater_id = conn.execute(raters.insert().values(
            test_id=info.id, token=token, name=name or f"pending-{token[:8]}", created=_now(),
            self_registered=self_registered, participant_id=clean_participant_id(participant_id),
            completion_code=settings.completion_code or new_completion_code())).inserted_primary_key[0]
        if name is None:
            conn.execute(raters.update().where(raters.c.id == rater_id).values(name=f"rater-{rater_id:03d}"))
        if settings.items_per_rater is not None:
            rated = [r.id for r in conn.execute(
                sa.select(items.c.id).where(items.c.test_id == info.id, items.c.training.is_(False),
                                            items.c.attention.is_(False)).order_by(items.c.position))]
            before = conn.execute(sa.select(sa.func.count(raters.c.id)).where(
                raters.c.test_id == info.id, raters.c.id < rater_id)).scalar_one()
            subset = balanced_subset(rated, before, settings.items_per_rater, (info.id, settings.order_seed))
            conn.execute(raters.update().where(raters.c.id == rater_id).values(items=json.dumps(subset)))
    return rater_by_token(db_url, token)


def rater_by_participant(db_url: str | None, test_id: int, participant_id: str | None) -> RaterInfo | None:
    """The rater of a test who joined with this participant id (they come back through the platform's link)."""
    participant_id = clean_participant_id(participant_id)
    if participant_id is None:
        return None
    with engine_for(db_url).connect() as conn:
        row = conn.execute(sa.select(raters).where(raters.c.test_id == test_id,
                                                   raters.c.participant_id == participant_id)
                           .order_by(raters.c.id)).first()
    return None if row is None else _rater_info(row)


def record_participant(db_url: str | None, rater_id: int, participant_id: str | None) -> None:
    """Store the participant id an invited rater's URL carried; a rater's first id is kept."""
    participant_id = clean_participant_id(participant_id)
    if participant_id is None:
        return
    with _writing(engine_for(db_url)) as conn:
        conn.execute(raters.update().where(raters.c.id == rater_id, raters.c.participant_id.is_(None))
                     .values(participant_id=participant_id))


MAX_USER_AGENT = 1000
#: Output sample rates a browser's AudioContext may plausibly report.
SAMPLE_RATE_RANGE = (8000, 768000)


def _device(sample_rate: object, user_agent: object) -> dict:
    """What a browser reported about itself, checked (it comes from the browser)."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or not (
            SAMPLE_RATE_RANGE[0] <= sample_rate <= SAMPLE_RATE_RANGE[1]):
        raise StoreError(f"sample rate {sample_rate!r} is not an integer from {SAMPLE_RATE_RANGE[0]} to "
                         f"{SAMPLE_RATE_RANGE[1]} Hz")
    if not isinstance(user_agent, str):
        raise StoreError("the browser's user agent is not text")
    return {"sample_rate": sample_rate, "user_agent": user_agent[:MAX_USER_AGENT]}


def record_level(db_url: str | None, rater_id: int, sample_rate: int, user_agent: str) -> None:
    """The rater confirmed their level: when, and what their browser reported (once; a repeat keeps the first).

    Raises:
        StoreError: a sample rate that is not a plausible integer, or a user agent that is not text.
    """
    device = _device(sample_rate, user_agent)
    with _writing(engine_for(db_url)) as conn:
        conn.execute(raters.update().where(raters.c.id == rater_id, raters.c.level_set.is_(None))
                     .values(level_set=_now(), **device))


def record_device(db_url: str | None, rater_id: int, sample_rate: int, user_agent: str) -> None:
    """What the rater's browser reported with their first trial, in a test without a level check: kept
    only where nothing was recorded yet. Raises StoreError as :func:`record_level`."""
    device = _device(sample_rate, user_agent)
    with _writing(engine_for(db_url)) as conn:
        conn.execute(raters.update().where(raters.c.id == rater_id, raters.c.sample_rate.is_(None)).values(**device))


def rater_by_token(db_url: str | None, token: str | None) -> RaterInfo | None:
    """The rater a token belongs to, or None for a missing, malformed or unknown token."""
    if not token or not isinstance(token, str) or len(token) > 64:
        return None
    with engine_for(db_url).connect() as conn:
        row = conn.execute(sa.select(raters).where(raters.c.token == token)).first()
    return None if row is None else _rater_info(row)


def record_consent(db_url: str | None, rater_id: int) -> None:
    with _writing(engine_for(db_url)) as conn:
        conn.execute(raters.update().where(raters.c.id == rater_id, raters.c.consented.is_(None))
                     .values(consented=_now()))


def submitted_items(db_url: str | None, rater_id: int) -> set[int]:
    """Item ids the rater has submitted: resume starts at the first one not in it."""
    with engine_for(db_url).connect() as conn:
        return {r.item_id for r in conn.execute(sa.select(trials.c.item_id).where(trials.c.rater_id == rater_id))}


@dataclass(frozen=True)
class Rating:
    stimulus_id: int
    score: float
    play_count: int
    play_seconds: float


def submit_trial(db_url: str | None, token: str, item_id: int, rating_list: list[Rating],
                 seconds_spent: float, test_type: str = "mushra",
                 scores_refused: Callable[[list[float]], str | None] | None = None,
                 unrated_kinds: tuple[str, ...] = ()) -> int:
    """Commit every rating of one trial in one transaction; returns the trial id.

    Everything is checked again here, inside the transaction, because what arrives comes
    from a browser: the token, that the test is open and of ``test_type``, that the item is
    one of this test's and the stimuli exactly that item's, every score within 0-100 and,
    for a type whose scores form a set (ranks, a preference), ``scores_refused`` finds nothing
    wrong with them; a second submit of a trial is refused or replaces the first, as the test's
    ``resubmit`` setting says. Nothing is written when any check fails. Stimuli of ``unrated_kinds``
    are played but never rated (a ranking trial's labelled reference).
    """
    with _writing(engine_for(db_url)) as conn:
        test, rater = _open_trial(conn, token, item_id, test_type)
        expected = {r.id for r in conn.execute(sa.select(stimuli.c.id).where(
            stimuli.c.item_id == item_id, stimuli.c.kind.notin_(unrated_kinds)))}
        given = [r.stimulus_id for r in rating_list]
        if len(given) != len(set(given)) or set(given) != expected:
            raise StoreError("the ratings do not match this trial's stimuli")
        for r in rating_list:
            if not (0 <= r.score <= 100) or r.play_count < 0 or r.play_seconds < 0:
                raise StoreError("a rating is outside 0-100 or a play count is negative")
        refused = scores_refused([r.score for r in rating_list]) if scores_refused else None
        if refused:
            raise StoreError(refused)
        trial_id = _trial_row(conn, test, rater, item_id, seconds_spent)
        conn.execute(ratings.insert(), [dict(trial_id=trial_id, stimulus_id=r.stimulus_id, score=float(r.score),
                                             play_count=int(r.play_count), play_seconds=float(r.play_seconds))
                                        for r in rating_list])
    return trial_id


def _open_trial(conn: Connection, token: str, item_id: int, test_type: str):
    """(test row, rater row) of a submit, checked: a known token, an open test of this type, an item of it."""
    rater = conn.execute(sa.select(raters).where(raters.c.token == token)).first() if isinstance(token, str) else None
    if rater is None:
        raise StoreError("unknown invitation token")
    test = conn.execute(sa.select(tests).where(tests.c.id == rater.test_id)).first()
    if test.status != "open":
        raise StoreError(f"the test {test.name!r} is closed")
    if test.type != test_type:
        raise StoreError(f"the test {test.name!r} takes {test.type.upper()} answers, not {test_type.upper()} ones")
    item = conn.execute(sa.select(items).where(items.c.id == item_id)).first()
    if item is None or item.test_id != test.id or item.training:
        raise StoreError("this trial does not belong to your test")
    if rater._mapping["items"] and not item.attention and item.id not in json.loads(rater._mapping["items"]):
        raise StoreError("this trial is not one of yours")
    return test, rater


def _trial_row(conn: Connection, test, rater, item_id: int, seconds_spent: float) -> int:
    """The trial's id: a new row, or the first submit's emptied of its answers when the test lets a
    second submit replace it; refused when it does not."""
    existing = conn.execute(sa.select(trials).where(trials.c.rater_id == rater.id, trials.c.item_id == item_id)).first()
    if existing is None:
        return conn.execute(trials.insert().values(rater_id=rater.id, item_id=item_id,
                                                   seconds_spent=max(0.0, float(seconds_spent)),
                                                   submitted_at=_now(), submissions=1)).inserted_primary_key[0]
    if TestSettings.model_validate_json(test.settings).resubmit == "refuse":
        raise StoreError("this trial was submitted already")
    conn.execute(ratings.delete().where(ratings.c.trial_id == existing.id))
    conn.execute(abx_answers.delete().where(abx_answers.c.trial_id == existing.id))
    conn.execute(pair_answers.delete().where(pair_answers.c.trial_id == existing.id))
    conn.execute(trials.update().where(trials.c.id == existing.id).values(
        seconds_spent=max(0.0, float(seconds_spent)), submitted_at=_now(), submissions=existing.submissions + 1))
    return existing.id


@dataclass(frozen=True)
class AbxAnswer:
    """One ABX trial's answer: the stimuli shown as A, B and X, and which the rater said X is."""

    a_stimulus_id: int
    b_stimulus_id: int
    x_stimulus_id: int
    answer: str  # "A" or "B"
    play_count: int  # A, B and X together
    play_seconds: float


def submit_abx(db_url: str | None, token: str, item_id: int, answer: AbxAnswer, seconds_spent: float) -> int:
    """Commit one ABX answer in one transaction; returns the trial id.

    Checked again here as :func:`submit_trial` checks ratings: A and B must be exactly the item's
    two stimuli, X one of them, the answer ``A`` or ``B``; a second submit as ``resubmit`` says.
    """
    with _writing(engine_for(db_url)) as conn:
        test, rater = _open_trial(conn, token, item_id, "abx")
        expected = {r.id for r in conn.execute(sa.select(stimuli.c.id).where(stimuli.c.item_id == item_id))}
        pair = {answer.a_stimulus_id, answer.b_stimulus_id}
        if len(pair) != 2 or pair != expected or answer.x_stimulus_id not in pair:
            raise StoreError("the answer does not match this trial's stimuli")
        if answer.answer not in ("A", "B") or answer.play_count < 0 or answer.play_seconds < 0:
            raise StoreError("an ABX answer must be A or B, with a play count that is not negative")
        trial_id = _trial_row(conn, test, rater, item_id, seconds_spent)
        conn.execute(abx_answers.insert().values(
            trial_id=trial_id, a_stimulus_id=answer.a_stimulus_id, b_stimulus_id=answer.b_stimulus_id,
            x_stimulus_id=answer.x_stimulus_id, answer=answer.answer, play_count=int(answer.play_count),
            play_seconds=float(answer.play_seconds)))
    return trial_id


@dataclass(frozen=True)
class PairAnswer:
    """One A/B preference trial's answer: the stimuli played as A and B, and which the rater preferred."""

    a_stimulus_id: int
    b_stimulus_id: int
    answer: str  # "A", "B" or "none" (no preference, where the test offers it)
    play_count: int  # A and B together
    play_seconds: float


def submit_pair(db_url: str | None, token: str, item_id: int, answer: PairAnswer, seconds_spent: float) -> int:
    """Commit one A/B preference in one transaction; returns the trial id.

    Checked again here as :func:`submit_abx` checks ABX: A and B must be exactly the item's two
    stimuli, the answer ``A``, ``B``, or ``none`` where the test's ``no_preference`` setting offers
    it; a second submit as ``resubmit`` says.
    """
    with _writing(engine_for(db_url)) as conn:
        test, rater = _open_trial(conn, token, item_id, "ab")
        expected = {r.id for r in conn.execute(sa.select(stimuli.c.id).where(stimuli.c.item_id == item_id))}
        pair = {answer.a_stimulus_id, answer.b_stimulus_id}
        if len(pair) != 2 or pair != expected:
            raise StoreError("the answer does not match this trial's stimuli")
        allowed = ("A", "B", "none") if TestSettings.model_validate_json(test.settings).no_preference else ("A", "B")
        if answer.answer not in allowed or answer.play_count < 0 or answer.play_seconds < 0:
            raise StoreError(f"an A/B answer must be {' or '.join(allowed)}, with a play count that is not negative")
        trial_id = _trial_row(conn, test, rater, item_id, seconds_spent)
        conn.execute(pair_answers.insert().values(
            trial_id=trial_id, a_stimulus_id=answer.a_stimulus_id, b_stimulus_id=answer.b_stimulus_id,
            answer=answer.answer, play_count=int(answer.play_count), play_seconds=float(answer.play_seconds)))
    return trial_id


# --------------------------------------------------------------------------- exports


def _crowd_columns() -> list:
    """What the export says about a crowd session: whether the trial was an attention check, and the
    rater's participant id, completion code and browser (the same on each of the rater's rows)."""
    return [items.c.attention, raters.c.participant_id, raters.c.completion_code, raters.c.sample_rate,
            raters.c.user_agent]


def export_frame(db_url: str | None, test: str | None = None) -> pd.DataFrame:
    """Every submitted rating with everything recorded about it, one row per rating.

    Returns:
        The ratings table, exactly the columns of ``results.listening.RATINGS_TABLE_COLUMNS``
        (documented there): what ``listen export`` writes and what ``results`` receives.
    """
    # Here, not at the top: results' statistics import scipy, which the rater pages never need.
    from earshot.results.listening import RATINGS_TABLE_COLUMNS

    item_name = sa.func.coalesce(items.c.excerpt, items.c.name).label("item")
    query = (sa.select(tests.c.name.label("test"), tests.c.type, raters.c.name.label("rater"), raters.c.self_registered,
                       item_name, items.c.category, stimuli.c.condition, stimuli.c.kind, ratings.c.score,
                       ratings.c.play_count, ratings.c.play_seconds, stimuli.c.gain_db, trials.c.seconds_spent,
                       trials.c.submitted_at, trials.c.submissions, *_crowd_columns(),
                       tests.c.id.label("_test"), raters.c.id.label("_rater"), items.c.position.label("_position"),
                       stimuli.c.id.label("_stimulus"))
             .select_from(ratings.join(trials, ratings.c.trial_id == trials.c.id)
                          .join(raters, trials.c.rater_id == raters.c.id)
                          .join(tests, raters.c.test_id == tests.c.id)
                          .join(stimuli, ratings.c.stimulus_id == stimuli.c.id)
                          .join(items, stimuli.c.item_id == items.c.id)))
    # One row per ABX trial: its condition is X's, and a, b, x, answer name conditions.
    a, b, x = (stimuli.alias(name) for name in ("stim_a", "stim_b", "stim_x"))
    said = sa.case((abx_answers.c.answer == "A", a.c.condition), else_=b.c.condition)
    abx = (sa.select(tests.c.name.label("test"), tests.c.type, raters.c.name.label("rater"), raters.c.self_registered,
                     item_name, items.c.category, x.c.condition, x.c.kind, sa.null().label("score"),
                     abx_answers.c.play_count, abx_answers.c.play_seconds, x.c.gain_db, trials.c.seconds_spent,
                     trials.c.submitted_at, trials.c.submissions, a.c.condition.label("a"), b.c.condition.label("b"),
                     x.c.condition.label("x"), said.label("answer"), *_crowd_columns(),
                     tests.c.id.label("_test"), raters.c.id.label("_rater"), items.c.position.label("_position"),
                     x.c.id.label("_stimulus"))
           .select_from(abx_answers.join(trials, abx_answers.c.trial_id == trials.c.id)
                        .join(raters, trials.c.rater_id == raters.c.id)
                        .join(tests, raters.c.test_id == tests.c.id)
                        .join(items, trials.c.item_id == items.c.id)
                        .join(a, abx_answers.c.a_stimulus_id == a.c.id)
                        .join(b, abx_answers.c.b_stimulus_id == b.c.id)
                        .join(x, abx_answers.c.x_stimulus_id == x.c.id)))
    # One row per A/B preference trial: its condition is A's; answer names the condition preferred, or "none".
    pa, pb = stimuli.alias("pair_a"), stimuli.alias("pair_b")
    preferred = sa.case((pair_answers.c.answer == "A", pa.c.condition), (pair_answers.c.answer == "B", pb.c.condition),
                        else_=sa.literal("none"))
    pair = (sa.select(tests.c.name.label("test"), tests.c.type, raters.c.name.label("rater"), raters.c.self_registered,
                      item_name, items.c.category, pa.c.condition, pa.c.kind, sa.null().label("score"),
                      pair_answers.c.play_count, pair_answers.c.play_seconds, pa.c.gain_db, trials.c.seconds_spent,
                      trials.c.submitted_at, trials.c.submissions, pa.c.condition.label("a"), pb.c.condition.label("b"),
                      sa.null().label("x"), preferred.label("answer"), *_crowd_columns(),
                      tests.c.id.label("_test"), raters.c.id.label("_rater"), items.c.position.label("_position"),
                      pa.c.id.label("_stimulus"))
            .select_from(pair_answers.join(trials, pair_answers.c.trial_id == trials.c.id)
                         .join(raters, trials.c.rater_id == raters.c.id)
                         .join(tests, raters.c.test_id == tests.c.id)
                         .join(items, trials.c.item_id == items.c.id)
                         .join(pa, pair_answers.c.a_stimulus_id == pa.c.id)
                         .join(pb, pair_answers.c.b_stimulus_id == pb.c.id)))
    if test is not None:
        query = query.where(tests.c.name == test)
        abx = abx.where(tests.c.name == test)
        pair = pair.where(tests.c.name == test)
    with engine_for(db_url).connect() as conn:
        rows = [*conn.execute(query).mappings().all(), *conn.execute(abx).mappings().all(),
                *conn.execute(pair).mappings().all()]
    frame = pd.DataFrame(rows, columns=[*RATINGS_TABLE_COLUMNS, "_test", "_rater", "_position", "_stimulus"])
    frame = frame.sort_values(["_test", "_rater", "_position", "_stimulus"], kind="stable")
    frame = frame[RATINGS_TABLE_COLUMNS].reset_index(drop=True)
    frame["self_registered"] = frame["self_registered"].astype(bool)
    frame["attention"] = frame["attention"].fillna(False).astype(bool)  # NULL would read as True
    frame["sample_rate"] = frame["sample_rate"].astype("Int64")
    frame["score"] = frame["score"].astype(float)
    abx_rows = frame["type"] == "abx"
    frame["correct"] = pd.Series(pd.NA, index=frame.index, dtype="boolean")
    frame.loc[abx_rows, "correct"] = (frame.loc[abx_rows, "answer"] == frame.loc[abx_rows, "x"]).astype("boolean")
    ranked = frame["type"] == "ranking"  # the score column holds a ranking's ranks: exported as rank
    frame["rank"] = pd.Series(pd.NA, index=frame.index, dtype="Int64")
    frame.loc[ranked, "rank"] = frame.loc[ranked, "score"].round().astype("Int64")
    frame.loc[ranked, "score"] = float("nan")
    return frame


def ratings_frame(db_url: str, test: str | None = None) -> pd.DataFrame:
    """Every submitted MUSHRA rating of the tests' own trials (attention checks apart): columns
    ``test, rater, item, condition, score, kind``.

    ``condition`` is the run's job name (``mse-seed0``) for a system, ``reference`` for the
    hidden reference, ``anchor-low`` / ``anchor-mid`` for the anchors; ``kind`` is one of
    ``system``, ``reference``, ``anchor``. ``test=None`` gives every test.
    """
    frame = export_frame(db_url, test)
    frame = frame[(frame["type"] == "mushra") & ~frame["attention"]][RATINGS_COLUMNS].copy()
    frame["score"] = frame["score"].astype(float)
    return frame.reset_index(drop=True)


def progress_frame(db_url: str | None, test: str) -> pd.DataFrame:
    """One row per rater of a test: trials submitted out of the rater's trials (their subset of the items
    and the attention checks), whether the rater joined through an invitation or registered themselves,
    and their participant id and browser sample rate where a crowd session recorded them."""
    info = get_test(db_url, test)
    listed = [i for i in test_items(db_url, info.id) if not i.training]
    checks = sum(i.attention for i in listed)
    done = sa.select(sa.func.count(trials.c.id)).where(trials.c.rater_id == raters.c.id).scalar_subquery()
    with engine_for(db_url).connect() as conn:
        rows = conn.execute(sa.select(raters.c.name, raters.c.token, raters.c.self_registered, raters.c.created,
                                      raters.c.consented, done.label("submitted"), raters.c["items"],
                                      raters.c.participant_id, raters.c.sample_rate)
                            .where(raters.c.test_id == info.id).order_by(raters.c.id)).mappings().all()
    frame = pd.DataFrame(rows, columns=["name", "token", "self_registered", "created", "consented", "submitted",
                                        "items", "participant_id", "sample_rate"])
    frame["self_registered"] = frame["self_registered"].astype(bool)
    frame["trials"] = [len(listed) if subset is None else len(json.loads(subset)) + checks
                       for subset in frame.pop("items")]
    if frame["participant_id"].isna().all() and frame["sample_rate"].isna().all():
        frame = frame.drop(columns=["participant_id", "sample_rate"])  # not a crowd session: nothing to show
    return frame
