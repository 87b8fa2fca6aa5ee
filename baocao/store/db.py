"""The application database: SQLAlchemy 2 models, engine and sessions.

SQLite by default (a file under `var/`), PostgreSQL by URL. The schema is created and upgraded
by Alembic migrations (`migrations/`), never by `create_all` outside tests of the models.

What is kept and why:
- every file received (raw bytes, checksum, channel, sender, time), valid or not: the audit trail;
- submissions are versions of a unit's answer for a cycle; a newer one supersedes, never deletes;
- the outbox: every message is written before it is sent, with an idempotency key, so a re-run
  never sends twice and always sends what is missing;
- the request row of each unit in each cycle carries its state, changed under a row lock /
  a conditional UPDATE so that two collectors cannot lose an update.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker
from sqlalchemy.types import TypeDecorator

from baocao.store.states import RequestState
from baocao.tasks.duephrases import Due


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes on SQLite too (stored as UTC, returned aware)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime stored; pass an aware one")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


# ----------------------------------------------------------------------------- units and cycles
class UnitRow(Base):
    """A copy of the configured hierarchy, so that reports and audits can join on it."""

    __tablename__ = "units"
    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(String(20))
    parent_code: Mapped[str | None] = mapped_column(String(40), index=True)
    coordinator_emails: Mapped[list[Any]] = mapped_column(default=list)
    head_emails: Mapped[list[Any]] = mapped_column(default=list)


class Cycle(Base):
    """One reporting period run under one plan from one root unit."""

    __tablename__ = "cycles"
    __table_args__ = (UniqueConstraint("period", "plan", "root_code", name="uq_cycle"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    period: Mapped[str] = mapped_column(String(10))
    plan: Mapped[str] = mapped_column(String(40))
    root_code: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20), default="open")  # open | closed
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    requests: Mapped[list[Request]] = relationship(back_populates="cycle")


class Request(Base):
    """What a cycle expects of one unit: a form (leaf) or a consolidated report (parent)."""

    __tablename__ = "requests"
    __table_args__ = (UniqueConstraint("cycle_id", "unit_code", name="uq_request"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("cycles.id"), index=True)
    unit_code: Mapped[str] = mapped_column(String(40), index=True)
    parent_code: Mapped[str | None] = mapped_column(String(40), index=True)
    role: Mapped[str] = mapped_column(String(20))  # "form" (fills a form) | "consolidate"
    deadline: Mapped[date] = mapped_column(Date)
    due_at: Mapped[datetime]
    lock_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(20), default=RequestState.PENDING.value)
    state_at: Mapped[datetime] = mapped_column(default=utcnow)
    state_reason: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]
    accepted_submission_id: Mapped[int | None] = mapped_column(Integer)
    accepted_at: Mapped[datetime | None]
    on_time: Mapped[bool | None] = mapped_column(Boolean)
    reopened_until: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer, default=1)  # optimistic lock for state changes
    cycle: Mapped[Cycle] = relationship(back_populates="requests")


# ----------------------------------------------------------------------------- intake
class ReceivedFile(Base):
    """Every file that reached us, kept whole. The same bytes from the same channel are stored once."""

    __tablename__ = "received_files"
    __table_args__ = (UniqueConstraint("sha256", name="uq_file_sha"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(300))
    size: Mapped[int] = mapped_column(BigInteger)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    channel: Mapped[str] = mapped_column(String(20))  # email | folder | cli
    sender: Mapped[str | None] = mapped_column(String(300))
    source_ref: Mapped[str | None] = mapped_column(String(300))  # IMAP uid / path
    # When it reached us (the mailbox's INTERNALDATE, the file's time), which deadlines judge; and when
    # a collector took it in, later after an outage (None: stored before both were recorded).
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    collected_at: Mapped[datetime | None]
    times_seen: Mapped[int] = mapped_column(Integer, default=1)


class Submission(Base):
    """One reading of one received file for one unit and cycle, with its verdict."""

    __tablename__ = "submissions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("received_files.id"), index=True)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("requests.id"), index=True)
    unit_code: Mapped[str | None] = mapped_column(String(40), index=True)
    period: Mapped[str | None] = mapped_column(String(10))
    version: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(20))  # accepted | rejected | superseded | returned
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    flagged: Mapped[str | None] = mapped_column(Text)  # accepted with a flag (unregistered sender, override)
    errors: Mapped[list[Any]] = mapped_column(default=list)
    warnings: Mapped[list[Any]] = mapped_column(default=list)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    superseded_by: Mapped[int | None] = mapped_column(Integer)
    # Who prepared the form, their phone and the unit's head, as written on it ({"preparer", "phone",
    # "head"}): the receipt reads them back and the consolidator knows whom to call.
    contact: Mapped[dict[str, Any]] = mapped_column(default=dict)
    values: Mapped[list[Value]] = relationship(back_populates="submission")


class Value(Base):
    __tablename__ = "submission_values"
    __table_args__ = (UniqueConstraint("submission_id", "indicator", name="uq_value"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), index=True)
    indicator: Mapped[str] = mapped_column(String(40))
    number: Mapped[float | None] = mapped_column(Float)
    text: Mapped[str | None] = mapped_column(Text)
    previous_year: Mapped[float | None] = mapped_column(Float)
    submission: Mapped[Submission] = relationship(back_populates="values")


class MailboxCursor(Base):
    """The last IMAP UID stored, per mailbox and UIDVALIDITY: advanced only after the store commits."""

    __tablename__ = "mailbox_cursors"
    mailbox: Mapped[str] = mapped_column(String(200), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)


class ProcessedMessage(Base):
    """An IMAP message already taken in (so a crash before the cursor moves cannot double it)."""

    __tablename__ = "processed_messages"
    __table_args__ = (UniqueConstraint("mailbox", "uidvalidity", "uid", name="uq_processed"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(200))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uid: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[str | None] = mapped_column(String(300))
    processed_at: Mapped[datetime] = mapped_column(default=utcnow)  # collected
    received_at: Mapped[datetime | None]  # reached the mailbox (INTERNALDATE bounded by the Date header)
    sender: Mapped[str | None] = mapped_column(String(300))
    # Why the message was not taken in as files (unreadable, over the size limit, too many files);
    # an unreadable message keeps its bytes here, as received, since no file could be cut out of it.
    problem: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)


# ----------------------------------------------------------------------------- outbox and reports
class OutboxMessage(Base):
    """A message written before it is sent. `key` = unit, period, kind, stage: sent at most once."""

    __tablename__ = "outbox"
    __table_args__ = (UniqueConstraint("key", name="uq_outbox_key"), Index("ix_outbox_status", "status"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(40))  # form | receipt | problems | reminder | overdue | escalation | report | returned
    stage: Mapped[str] = mapped_column(String(40), default="")
    unit_code: Mapped[str | None] = mapped_column(String(40), index=True)
    period: Mapped[str | None] = mapped_column(String(10))
    cycle_id: Mapped[int | None] = mapped_column(Integer, index=True)
    recipients: Mapped[list[Any]] = mapped_column(default=list)
    cc: Mapped[list[Any]] = mapped_column(default=list)
    subject: Mapped[str] = mapped_column(String(500))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    attachments: Mapped[list[Any]] = mapped_column(default=list)  # [{filename, mimetype, blob_id, cid}]
    # pending | sent | failed; replies to a mail: held (until the whole mail is in), merged (into one
    # reply, see last_error), throttled (over the per-address limit: kept, never sent); baocao/intake/replies.py
    status: Mapped[str] = mapped_column(String(20), default="pending")
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)  # its own Reply-To, In-Reply-To, References
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class Blob(Base):
    """Binary content referenced by outbox attachments and reports (forms, Word, XLSX, PNG)."""

    __tablename__ = "blobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)


class Report(Base):
    """A consolidated report of one unit for one cycle; a correction is a new version."""

    __tablename__ = "reports"
    __table_args__ = (UniqueConstraint("cycle_id", "unit_code", "version", name="uq_report_version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("cycles.id"), index=True)
    unit_code: Mapped[str] = mapped_column(String(40))
    version: Mapped[int] = mapped_column(Integer, default=1)
    correction: Mapped[bool] = mapped_column(Boolean, default=False)
    figures: Mapped[dict[str, Any]] = mapped_column(default=dict)
    docx_blob_id: Mapped[int | None] = mapped_column(Integer)
    xlsx_blob_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    # Issuing (config plan `report.issue`): "direct" reports are sent as made; a "review" report is a
    # draft (Dự thảo) until the unit sends back the version it signed and numbered ("issued"), which is
    # then sent up. Older rows, made before drafts existed, read as "direct".
    status: Mapped[str] = mapped_column(String(20), default="direct")  # direct | draft | issued
    number: Mapped[str | None] = mapped_column(String(60))  # "123/BC-UBND"
    issued_on: Mapped[date | None] = mapped_column(Date)  # the date written on the issued report
    issued_at: Mapped[datetime | None]  # when the issued file reached us (judges the unit's deadline)
    issued_pdf_blob_id: Mapped[int | None] = mapped_column(Integer)
    issued_docx_blob_id: Mapped[int | None] = mapped_column(Integer)
    issued_file_id: Mapped[int | None] = mapped_column(Integer)  # received_files row, when it came by mail/folder
    issued_via: Mapped[str | None] = mapped_column(String(100))  # "email:<sender>" | "cli:<user>"
    signature: Mapped[str | None] = mapped_column(String(20))  # valid | invalid | unsigned (of the PDF)
    signer: Mapped[str | None] = mapped_column(String(300))
    signed_at: Mapped[datetime | None]


class AuditEvent(Base):
    """Who did what and why: operator overrides, returns, reopenings, exemptions, refusals."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(40))
    unit_code: Mapped[str | None] = mapped_column(String(40), index=True)
    period: Mapped[str | None] = mapped_column(String(10))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


# ----------------------------------------------------------------------------- assigned tasks
class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (UniqueConstraint("plan", "number", name="uq_task"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan: Mapped[str] = mapped_column(String(40))
    number: Mapped[int] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)
    lead_text: Mapped[str] = mapped_column(Text)
    partners_text: Mapped[str] = mapped_column(Text)
    product: Mapped[str] = mapped_column(Text)
    deadline_text: Mapped[str] = mapped_column(String(300))
    due_date: Mapped[date | None] = mapped_column(Date)
    recurrence: Mapped[str | None] = mapped_column(String(20))
    from_year: Mapped[int | None] = mapped_column(Integer)
    schedule: Mapped[str | None] = mapped_column(String(100))  # periodic: "Q1:10/3 H1:10/6" (Due.schedule_code)

    @property
    def due(self) -> Due:
        """The deadline as the import read it (one definition for forms, reminders and reports)."""
        return Due(self.deadline_text, self.due_date, self.recurrence, self.from_year,
                   Due.schedule_from_code(self.schedule))


class TaskAssignment(Base):
    __tablename__ = "task_assignments"
    __table_args__ = (UniqueConstraint("task_id", "unit_code", name="uq_task_assignment"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    unit_code: Mapped[str] = mapped_column(String(40), index=True)
    role: Mapped[str] = mapped_column(String(10))  # lead | partner


class TaskReport(Base):
    """A unit's status of one task as read from one submission."""

    __tablename__ = "task_reports"
    __table_args__ = (UniqueConstraint("submission_id", "task_id", name="uq_task_report"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), index=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"))
    status: Mapped[str] = mapped_column(String(20))  # done | in_progress | not_started
    product: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)


# ----------------------------------------------------------------------------- engine
READ_ONLY = "baocao_read_only"  # execution option of Database.reading()'s connections


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine tuned for the single-process default as well as PostgreSQL.

    SQLite: WAL journal and a busy timeout so that the collect and chase flows of the demo, the
    CLI and Prefect's threads can share the file without "database is locked".
    """
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"timeout": 30, "check_same_thread": False})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # let the "begin" hook below issue BEGIN itself
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin_immediate(conn: Any) -> None:
            if conn.get_execution_options().get(READ_ONLY):
                # Database.reading(): a snapshot (WAL), no write lock, and a write fails loudly.
                conn.exec_driver_sql("PRAGMA query_only=1")
                conn.exec_driver_sql("BEGIN")
                return
            # Take the write lock at BEGIN: no deadlock between two readers that both upgrade.
            conn.exec_driver_sql("PRAGMA query_only=0")
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


class Database:
    """Engine + session factory. `with db.session() as s:` commits on success, rolls back on error."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)
        self._reader = sessionmaker(self.engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        with self._factory() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextlib.contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for reads only; what it loaded stays readable after it closes.

        On SQLite every other session takes the write lock at BEGIN (see make_engine); a national
        consolidation's report threads then queued behind each other's writes only to read (13 s of
        waiting over one run, up to a second at a time, while render slots stood free). This one
        reads a snapshot without the lock; a write in it fails ("attempt to write a readonly database").
        """
        with self._reader() as session:  # closed, not committed: the pool rolls the connection back
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
