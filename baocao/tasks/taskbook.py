"""Importing a plan's appendix of assigned tasks into the database, all or nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import delete, select

from baocao.rules.config import Config
from baocao.store.db import Database, Task, TaskAssignment
from baocao.tasks.appendix import ImportedTask, read_appendix, resolve_tasks


def import_appendix(db: Database, cfg: Config, path: Path, plan_code: str, year: int) -> list[ImportedTask]:
    """Read, resolve and store the appendix; a problem anywhere raises before anything is written.

    Importing again replaces the plan's tasks (assignments follow); task reports already received
    keep pointing at the same task numbers.
    """
    plan = cfg.plan(plan_code)
    rules = cfg.task_bodies
    if plan.code not in rules:
        raise KeyError(f"{cfg.directory / 'task_bodies.toml'} has no section for plan {plan.code!r}")
    rows = read_appendix(path)
    tasks = resolve_tasks(rows, plan=plan.code, root=plan.root, hierarchy=cfg.hierarchy, rules=rules[plan.code],
                          year=year)
    with db.session() as s:
        existing = {t.number: t for t in s.scalars(select(Task).where(Task.plan == plan.code))}
        keep_ids = []
        for t in tasks:
            row = existing.get(t.number) or Task(plan=plan.code, number=t.number)
            row.content, row.lead_text, row.partners_text = t.content, t.lead_text, t.partners_text
            row.product, row.deadline_text = t.product, t.deadline_text
            row.due_date, row.recurrence, row.from_year = t.due.due_date, t.due.recurrence, t.due.from_year
            row.schedule = t.due.schedule_code
            s.add(row)
            s.flush()
            keep_ids.append(row.id)
            s.execute(delete(TaskAssignment).where(TaskAssignment.task_id == row.id))
            roles = {u: "partner" for u in t.partner_units} | {u: "lead" for u in t.lead_units}
            s.add_all(TaskAssignment(task_id=row.id, unit_code=u, role=r) for u, r in roles.items())
        stale = [t.id for n, t in existing.items() if n not in {x.number for x in tasks}]
        if stale:
            s.execute(delete(TaskAssignment).where(TaskAssignment.task_id.in_(stale)))
    return tasks


def list_tasks(db: Database, plan: str, unit: str | None = None) -> list[dict[str, Any]]:
    with db.session() as s:
        q = select(Task).where(Task.plan == plan).order_by(Task.number)
        if unit:
            q = q.join(TaskAssignment, TaskAssignment.task_id == Task.id).where(TaskAssignment.unit_code == unit)
        return [{"number": t.number, "content": t.content[:80], "lead": t.lead_text[:40], "deadline": t.deadline_text,
                 "due": t.due_date.isoformat() if t.due_date else (t.recurrence or "")} for t in s.scalars(q)]
