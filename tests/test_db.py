"""Migrations from an empty database, on SQLite and on the machine's PostgreSQL, and the cycle records."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.exc import OperationalError

from baocao.rules.periods import Period
from baocao.store.db import Database, Request
from baocao.store.migrate import current, upgrade
from baocao.store.queries import StaleState, open_cycle, set_state, set_states, sync_units
from baocao.store.states import RequestState

TABLES = {"units", "cycles", "requests", "received_files", "submissions", "submission_values", "outbox",
          "blobs", "reports", "audit_events", "mailbox_cursors", "processed_messages", "tasks",
          "task_assignments", "task_reports"}


def test_migrations_up_from_empty(any_db_url):
    assert current(any_db_url) is None
    upgrade(any_db_url)
    assert current(any_db_url) == "0004"
    db = Database(any_db_url)
    try:
        assert TABLES <= set(inspect(db.engine).get_table_names())
        upgrade(any_db_url)  # idempotent
    finally:
        db.dispose()


def test_open_cycle_records_requests_once(any_db_url, cfg):
    upgrade(any_db_url)
    db = Database(any_db_url)
    try:
        sync_units(db, cfg.hierarchy)
        info = open_cycle(db, cfg, Period(2026, "H1"), "national", root="T31")
        again = open_cycle(db, cfg, Period(2026, "H1"), "national", root="T31")
        assert again.id == info.id
        with db.session() as s:
            reqs = list(s.scalars(select(Request).where(Request.cycle_id == info.id)))
        assert len(reqs) == len(list(cfg.hierarchy.walk("T31")))
        roles = {r.unit_code: r.role for r in reqs}
        assert roles["T31"] == "consolidate" and roles["X10714"] == "consolidate"
        assert roles["X10714-VHXH"] == "form" and roles["X10003" if "X10003" in roles else next(
            c for c in roles if c.startswith("X") and "-" not in c and c not in ("X10714", "X11074"))] == "form"
        by_unit = {r.unit_code: r for r in reqs}
        assert by_unit["T31"].parent_code is None
        assert by_unit["X10714-VHXH"].parent_code == "X10714"
        assert by_unit["X11074"].deadline.isoformat() == "2026-06-05"
        assert by_unit["X11074"].due_at.tzinfo is not None
    finally:
        db.dispose()


def test_set_state_refuses_a_lost_update(db, cfg):
    info = open_cycle(db, cfg, Period(2026, "H1"), "tu-ky")
    query = select(Request).where(Request.cycle_id == info.id, Request.unit_code == "X11074-VP")
    with db.session() as s:
        stale = s.scalars(query).one()  # read by a first worker, which then pauses
    with db.session() as s:
        set_state(s, s.scalars(query).one(), "sent")  # a second worker updates the row
    with db.session() as s:
        with pytest.raises(StaleState):
            set_state(s, stale, "accepted")  # the first worker's update must not overwrite it
    with db.session() as s:
        row = s.scalars(query).one()
        assert row.state == "sent" and row.version == stale.version + 1


def test_set_state_refuses_a_state_that_does_not_exist(db, cfg):
    """A misspelt state would be stored and then match none of the groupings (DONE, ANSWERED...): the
    unit would be chased forever. It is refused before anything is written, by both writers."""
    info = open_cycle(db, cfg, Period(2026, "H1"), "tu-ky")
    query = select(Request).where(Request.cycle_id == info.id, Request.unit_code == "X11074-VP")
    with db.session() as s:
        req = s.scalars(query).one()
        with pytest.raises(ValueError, match="acepted"):
            set_state(s, req, "acepted")
        with pytest.raises(ValueError, match="acepted"):
            set_states(s, [(req, "acepted", req.state_at, {})])
    with db.session() as s:
        row = s.scalars(query).one()
        assert (row.state, row.version) == (RequestState.PENDING, req.version)
        set_state(s, row, RequestState.SENT)  # the enum itself is what callers pass
    with db.session() as s:
        assert s.scalars(query).one().state == "sent"


def test_plan_that_does_not_cover_the_period_is_refused(db, cfg):
    with pytest.raises(ValueError, match="does not report Q1"):
        open_cycle(db, cfg, Period(2026, "Q1"), "tu-ky")


def test_a_reading_session_does_not_wait_for_a_writer_and_cannot_write(tmp_path) -> None:  # noqa: ANN001
    """SQLite: Database.session() takes the write lock at BEGIN; Database.reading() reads a snapshot
    without it (report threads had queued behind each other's writes only to read), and refuses writes."""
    import threading

    from sqlalchemy import text

    from baocao.store.db import Database

    db = Database(f"sqlite:///{tmp_path / 'r.db'}")
    with db.session() as s:
        s.execute(text("CREATE TABLE t (x INTEGER)"))
        s.execute(text("INSERT INTO t VALUES (1)"))
    holding, release = threading.Event(), threading.Event()

    def writer() -> None:
        with db.session() as s:
            s.execute(text("INSERT INTO t VALUES (2)"))
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert holding.wait(10)
        with db.reading() as s:
            seen = s.execute(text("SELECT x FROM t ORDER BY x")).scalars().all()
        # The snapshot before the writer's row, read while it holds the lock: a session() would wait
        # for the lock until the writer gave up waiting (10 s) and committed, then see [1, 2].
        assert seen == [1]
        with db.reading() as s, pytest.raises(OperationalError, match="readonly"):
            s.execute(text("INSERT INTO t VALUES (3)"))
    finally:
        release.set()
        thread.join()
    with db.session() as s:  # a connection used for reading writes again in a normal session
        s.execute(text("INSERT INTO t VALUES (4)"))
    with db.reading() as s:
        assert s.execute(text("SELECT x FROM t ORDER BY x")).scalars().all() == [1, 2, 4]
    db.dispose()
