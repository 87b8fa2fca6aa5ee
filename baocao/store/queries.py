"""Reading and writing the application database: units, cycles, requests, audit.

Each function takes a :class:`baocao.store.db.Database` (or a session) and does one thing in one
transaction. State changes of a request go through :func:`set_state`, which checks the row's
version so that two collectors working on the same unit cannot overwrite each other's update.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from baocao.errors import StaleState
from baocao.rules.config import Config
from baocao.rules.hierarchy import Hierarchy
from baocao.rules.periods import Period
from baocao.rules.plans import unit_deadlines
from baocao.store.db import (
    AuditEvent,
    Cycle,
    Database,
    Request,
    Submission,
    Task,
    TaskReport,
    UnitRow,
    utcnow,
)
from baocao.store.states import RequestState


def insert_ignore(session: Session, table: Any, rows: list[dict[str, Any]], index: list[str]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING on SQLite and PostgreSQL alike."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    ins = pg_insert(table) if dialect == "postgresql" else sqlite_insert(table)
    session.execute(ins.on_conflict_do_nothing(index_elements=index), rows)


def sync_units(db: Database, hierarchy: Hierarchy) -> int:
    """Mirror the configured hierarchy into the `units` table (the configuration stays the source)."""
    rows = [
        {"code": u.code, "name": u.name, "level": u.level, "parent_code": u.parent,
         "coordinator_emails": list(u.coordinator_emails), "head_emails": list(u.head_emails)}
        for u in hierarchy.units.values()
    ]
    with db.session() as s:
        s.execute(delete(UnitRow))
        for i in range(0, len(rows), 1000):
            s.execute(UnitRow.__table__.insert(), rows[i:i + 1000])
    return len(rows)


@dataclass(frozen=True)
class CycleInfo:
    """A cycle as the steps pass it around. Tasks take it as a parameter; a task *returns* it as
    :meth:`as_dict`, because a persisted result must stay a plain value that any later code version
    can load."""

    id: int
    period: str
    plan: str
    root: str

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "period": self.period, "plan": self.plan, "root": self.root}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CycleInfo:
        return cls(id=data["id"], period=data["period"], plan=data["plan"], root=data["root"])


def open_cycle(db: Database, cfg: Config, period: Period, plan_code: str, root: str | None = None) -> CycleInfo:
    """Record the cycle and one request per unit of its subtree; running it again changes nothing.

    Leaves fill a form; units with children consolidate. Deadlines come from the plan.
    """
    plan = cfg.plan(plan_code)
    if not plan.covers(period):
        raise ValueError(f"plan {plan.code!r} does not report {period.kind} (it reports {', '.join(plan.kinds)})")
    root = root or plan.root
    if root not in cfg.hierarchy:
        raise ValueError(f"no unit with code {root!r}")
    # Effective deadlines: a unit also under another plan for this period owes the earlier day.
    schedules = unit_deadlines(plan, period, cfg.hierarchy, cfg.calendar, root=root, plans=cfg.plans.values())
    with db.session() as s:
        insert_ignore(s, Cycle.__table__, [{"period": period.code, "plan": plan.code, "root_code": root,
                                            "status": "open", "opened_at": utcnow()}],
                      ["period", "plan", "root_code"])
        cycle_id = s.scalar(select(Cycle.id).where(Cycle.period == period.code, Cycle.plan == plan.code,
                                                   Cycle.root_code == root))
        assert cycle_id is not None
        now = utcnow()
        rows = []
        for unit in cfg.hierarchy.walk(root):
            sch = schedules[unit.code]
            rows.append({
                "cycle_id": cycle_id, "unit_code": unit.code,
                "parent_code": unit.parent if unit.code != root else None,
                "role": "consolidate" if cfg.hierarchy.has_children(unit.code) else "form",
                "deadline": sch.deadline, "due_at": sch.due_at, "lock_at": sch.lock_at,
                "state": RequestState.PENDING.value, "state_at": now, "version": 1,
            })
        for i in range(0, len(rows), 1000):
            insert_ignore(s, Request.__table__, rows[i:i + 1000], ["cycle_id", "unit_code"])
    return CycleInfo(cycle_id, period.code, plan.code, root)


def find_cycle(db: Database, period: str, plan: str | None = None, root: str | None = None) -> CycleInfo | None:
    with db.session() as s:
        q = select(Cycle).where(Cycle.period == period)
        if plan:
            q = q.where(Cycle.plan == plan)
        if root:
            q = q.where(Cycle.root_code == root)
        c = s.scalars(q.order_by(Cycle.id)).first()
        return CycleInfo(c.id, c.period, c.plan, c.root_code) if c else None


def cycle_info(db: Database, cycle_id: int) -> CycleInfo:
    with db.session() as s:
        c = s.get(Cycle, cycle_id)
        if c is None:
            raise ValueError(f"no cycle {cycle_id}")
        return CycleInfo(c.id, c.period, c.plan, c.root_code)


def open_cycles(db: Database) -> list[CycleInfo]:
    with db.session() as s:
        return [CycleInfo(c.id, c.period, c.plan, c.root_code)
                for c in s.scalars(select(Cycle).where(Cycle.status == "open").order_by(Cycle.id))]


def requests_of(db: Database, cycle_id: int, units: Iterable[str] | None = None) -> list[Request]:
    with db.session() as s:
        q = select(Request).where(Request.cycle_id == cycle_id)
        if units is not None:
            q = q.where(Request.unit_code.in_(list(units)))
        return list(s.scalars(q.order_by(Request.id)))


def request_for(session: Session, unit: str, period: str) -> Request | None:
    """The request a unit's form for `period` answers: the most recent open cycle that expects it."""
    q = (select(Request).join(Cycle).where(Request.unit_code == unit, Cycle.period == period)
         .order_by(Cycle.id.desc()))
    rows = list(session.scalars(q))
    open_rows = [r for r in rows if r.cycle.status == "open"]
    return (open_rows or rows or [None])[0]


def set_state(session: Session, req: Request, state: RequestState | str, *, reason: str | None = None,
              at: datetime | None = None, **fields: Any) -> None:
    """Change a request's state if nobody changed it since it was read (optimistic lock).

    A string that is not a :class:`RequestState` raises ``ValueError`` before anything is written:
    a misspelt state would otherwise be stored and match none of the groupings that read it.
    """
    values = {"state": RequestState(state).value, "state_at": at or utcnow(), "state_reason": reason, "version": req.version + 1, **fields}
    result = session.execute(
        update(Request).where(Request.id == req.id, Request.version == req.version).values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise StaleState(f"request {req.id} ({req.unit_code}) changed concurrently")
    if req in session:
        session.expire(req)


def set_states(session: Session, changes: Sequence[tuple[Request, RequestState | str, datetime, dict[str, Any]]]) -> None:
    """Many :func:`set_state` calls in one statement (the units of a batch of files).

    Each change is (request, state, at, fields); every change sets the same fields. Raises
    :class:`StaleState`, having changed nothing the caller may keep, if any request changed since
    it was read: the caller rolls the transaction back.
    """
    if not changes:
        return
    names = sorted(changes[0][3])
    table = Request.__table__
    stmt = (update(table).where(table.c.id == bindparam("b_id"), table.c.version == bindparam("b_version"))
            .values(state=bindparam("n_state"), state_at=bindparam("n_state_at"), state_reason=None,
                    version=bindparam("n_version"), **{n: bindparam(f"n_{n}") for n in names}))
    params = []
    for req, state, at, fields in changes:
        if sorted(fields) != names:
            raise ValueError("set_states: every change must set the same fields")
        params.append({"b_id": req.id, "b_version": req.version, "n_state": RequestState(state).value, "n_state_at": at,
                       "n_version": req.version + 1, **{f"n_{n}": v for n, v in fields.items()}})
    result = session.execute(stmt, params)
    if result.rowcount != len(params):  # type: ignore[attr-defined]
        raise StaleState(f"{len(params) - result.rowcount} of {len(params)} requests changed concurrently")  # type: ignore[attr-defined]
    for req, *_ in changes:
        if req in session:
            session.expire(req)


def audit(session: Session, actor: str, action: str, *, unit: str | None = None, period: str | None = None,
          **detail: Any) -> None:
    session.add(AuditEvent(actor=actor, action=action, unit_code=unit, period=period, detail=detail))


def state_counts(db: Database, cycle_id: int) -> dict[str, int]:
    with db.session() as s:
        rows = s.execute(select(Request.state, func.count()).where(Request.cycle_id == cycle_id,
                                                                    Request.role == "form").group_by(Request.state))
        return {state: n for state, n in rows}


def tasks_done_elsewhere(session: Session, units: Iterable[str], period: str) -> set[tuple[str, int]]:
    """(unit, task id) of the one-off tasks each unit reported done in another period's accepted form.

    A one-off task done once stays done: it is not asked again on later forms, and a later report
    counts it as done. Recurring tasks ("Thường xuyên", "Hàng năm") are never in the set.
    """
    return set(session.execute(
        select(Submission.unit_code, TaskReport.task_id)
        .join(Submission, Submission.id == TaskReport.submission_id)
        .join(Task, Task.id == TaskReport.task_id)
        .where(Submission.unit_code.in_(list(units)), Submission.status == "accepted",
               Submission.period != period, TaskReport.status == "done", Task.recurrence.is_(None))).tuples())
