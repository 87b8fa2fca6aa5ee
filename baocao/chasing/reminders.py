"""Chasing late units: which reminder, overdue notice or escalation is owed today, and to whom.

Stages are counted in working days from each unit's own deadline (not from the period end):
`before-N` (N working days before, to the coordinator), `overdue-N` (N after, to the coordinator
and the head) and `escalate-N` (to the parent's coordinator and head, one message per parent
listing all its overdue children), the escalation on the day :func:`baocao.rules.escalation.escalation_day`
gives: N working days after, but early enough to leave the parent the plan's `escalate_before_parent`
working days before its own deadline. On a given day only the most advanced stage of each kind that
has come is sent: a flow that did not run for a week does not send three reminders at once. Each
stage goes once per unit and period (outbox keys); units that are accepted or exempt are never
chased, rejected or returned ones are chased with the reason repeated.

A consolidator (a ward with departments, a province) is chased like a unit that fills a form, for
its own report, until that report is issued or sent (its request accepted): what it owes is a
consolidated report, so its messages say so, with how many of its own units are in.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select

from baocao.mail import outbox
from baocao.mail.kinds import NOTICES, Kind
from baocao.mail.letters import letter
from baocao.mail.templating import render_mail
from baocao.opening.dispatch import request_key
from baocao.rules.bodies import body_name
from baocao.rules.config import Config
from baocao.rules.escalation import escalation_day
from baocao.rules.periods import Period
from baocao.rules.plans import Plan, ReminderPolicy
from baocao.store.db import (
    AuditEvent,
    Blob,
    Database,
    OutboxMessage,
    Report,
    Request,
    Submission,
    Task,
    TaskAssignment,
    TaskReport,
)
from baocao.store.queries import CycleInfo, audit
from baocao.store.states import DONE, TO_REDO
from baocao.tasks.deadlines import deadline_label_vi, task_deadline


@dataclass
class Action:
    """One message the chase owes today."""

    stage: str  # before-3 | overdue-1 | escalate-3
    kind: str  # reminder | overdue | escalation
    unit: str  # the unit chased, or the parent for an escalation
    recipients: list[str]
    cc: list[str] = field(default_factory=list)
    units: list[str] = field(default_factory=list)  # escalation: the overdue children
    reason: str = ""  # why the unit's last file was not kept (rejected or returned), told to the unit
    consolidates: bool = False  # the unit owes a consolidated report, not a form
    key: str = ""
    why: str = ""  # for the operator (`baocao chase --dry-run`): the rule that owes this message today


def _latest_stage(cal, today: date, deadline: date, offsets: Sequence[int], sign: int) -> int | None:
    """The largest-progress offset whose day has come: for reminders the smallest N before, else the largest N after."""
    due = [n for n in offsets if today >= cal.add_working_days(deadline, sign * n)]
    if sign < 0:
        due = [n for n in due if today <= deadline]
        return min(due) if due else None
    return max(due) if due else None


def _why(rule: str, reason: str) -> str:
    return f"{rule}; last file not kept: {reason}" if reason else rule


def _escalation_stage(cal, today: date, req: Request, parent: Request | None, policy: ReminderPolicy) -> int | None:
    """The latest escalation offset whose day (:func:`escalation_day`) has come, or None."""
    due = [n for n in policy.escalate
           if today >= escalation_day(cal, req.deadline, n, parent.deadline if parent is not None else None,
                                      policy.escalate_before_parent)]
    return max(due) if due else None


def plan_actions(cfg: Config, plan: Plan, cycle: CycleInfo, requests: Sequence[Request], today: date,
                 sent_keys: set[str], escalated: set[tuple[str, str]],
                 reported: Collection[str] = frozenset()) -> list[Action]:
    """Pure: the actions owed on `today`, given what was already sent.

    `reported`: consolidators whose report is issued or sent, not chased even if their request has not
    been marked accepted yet.
    """
    h = cfg.hierarchy
    cal = cfg.calendar
    actions: list[Action] = []
    overdue_children: dict[tuple[str, str], list[Request]] = {}
    by_unit = {r.unit_code: r for r in requests}
    for req in requests:
        if req.state in DONE or (req.role != "form" and req.unit_code in reported):
            continue
        unit = h[req.unit_code]
        reason = req.state_reason if req.state in TO_REDO else ""
        consolidates = req.role != "form"
        n = _latest_stage(cal, today, req.deadline, plan.reminders.before, -1)
        if n is not None and today <= req.deadline:
            stage = f"before-{n}"
            actions.append(Action(stage, Kind.REMINDER, unit.code, list(unit.coordinator_emails), reason=reason,
                                  consolidates=consolidates,
                                  why=_why(f"{cal.working_days_between(today, req.deadline)} working day(s) before "
                                           f"the deadline {req.deadline:%d/%m/%Y}", reason)))
        n = _latest_stage(cal, today, req.deadline, plan.reminders.overdue, +1)
        if n is not None:
            stage = f"overdue-{n}"
            if reason and req.state_at is not None:
                # Returned or rejected after the deadline: the unit is chased again as not received, once
                # per day of return, from the next day on (the day itself it got the return notice).
                returned_on = cal.local_date(req.state_at)
                if req.deadline < returned_on < today:
                    stage += f"/r{returned_on:%Y%m%d}"
            actions.append(Action(stage, Kind.OVERDUE, unit.code, list(unit.coordinator_emails),
                                  cc=list(unit.head_emails), reason=reason, consolidates=consolidates,
                                  why=_why(f"{cal.working_days_between(req.deadline, today)} working day(s) past "
                                           f"the deadline {req.deadline:%d/%m/%Y}", reason)))
        n = _escalation_stage(cal, today, req, by_unit.get(req.parent_code or ""), plan.reminders)
        if n is not None and req.parent_code:
            overdue_children.setdefault((req.parent_code, f"escalate-{n}"), []).append(req)
    for (parent_code, stage), children in sorted(overdue_children.items()):
        # A child reaching the stage today triggers the message; it lists every child at that stage
        # still not in, including those named in an earlier escalation (deadlines can differ).
        if all((r.unit_code, stage) in escalated for r in children):
            continue
        parent = h[parent_code]
        codes = sorted(r.unit_code for r in children)
        own = by_unit.get(parent_code)
        left = (f"; {cal.working_days_between(today, own.deadline)} working day(s) before the parent's deadline "
                f"{own.deadline:%d/%m/%Y}" if own is not None else "")
        actions.append(Action(stage, Kind.ESCALATION, parent_code, list(parent.coordinator_emails),
                              cc=list(parent.head_emails), units=codes,
                              why=f"children still not in: {', '.join(codes)}{left}"))
    for a in actions:
        suffix = a.stage if a.kind != Kind.ESCALATION else f"{a.stage}/{today:%Y%m%d}"
        a.key = outbox.message_key(cycle.period, cycle.plan, a.unit, a.kind, suffix)
    return [a for a in actions if a.key not in sent_keys]


@dataclass(frozen=True)
class OverdueTask:
    """A task as an overdue notice lists it; ``deadline_text`` is the plan's words with the date that counts."""

    number: int
    content: str
    deadline_text: str


def overdue_tasks(db: Database, cfg: Config, units: Sequence[str], period: Period,
                  today: date) -> dict[str, list[OverdueTask]]:
    """Tasks assigned to each unit whose deadline has passed and which its latest report does not mark done.

    The deadline is the one that counts (moved off a non-working day by the task's plan's rule), and a
    periodic task's is this period's; a periodic task is done only when this period's report says so.
    """
    out: dict[str, list[OverdueTask]] = {}
    with db.session() as s:
        rows = s.execute(select(TaskAssignment.unit_code, Task).join(Task, Task.id == TaskAssignment.task_id)
                         .where(TaskAssignment.unit_code.in_(list(units)),
                                Task.due_date.is_not(None) | (Task.recurrence == "periodic"))
                         .order_by(Task.number))
        pairs = []
        for unit, task in rows:
            rule = cfg.plan(task.plan).nonworking
            deadline = task_deadline(task.due, period, cfg.calendar, rule)
            if deadline is not None and deadline.effective < today:
                label = deadline_label_vi(task.due, period, cfg.calendar, rule)
                pairs.append((unit, task.id, task.recurrence == "periodic",
                              OverdueTask(task.number, task.content, label)))
        if not pairs:
            return out
        done = {(u, t, p) for u, t, p in s.execute(
            select(Submission.unit_code, TaskReport.task_id, Submission.period)
            .join(Submission, Submission.id == TaskReport.submission_id)
            .where(Submission.status == "accepted", TaskReport.status == "done",
                   Submission.unit_code.in_(list(units)))).tuples()}
        done_ever = {(u, t) for u, t, _ in done}
        for unit, task_id, periodic, line in pairs:
            if ((unit, task_id, period.code) in done) if periodic else ((unit, task_id) in done_ever):
                continue
            out.setdefault(unit, []).append(line)
    return out


REPORT_OUT = ("direct", "issued")
"""A report in these states has gone up (made and sent, or issued by the unit): its maker is not chased."""


def request_forms(db: Database, cycle: CycleInfo, units: Sequence[str]) -> dict[str, list[outbox.FileAttachment]]:
    """Each unit's form as its request message carried it (the stored blob, not a new build).

    A reminder carries the form again so that the clerk need not dig out the first mail; the very same
    file (same token, same version) keeps the intake's recognition of it unchanged.
    """
    if not units:
        return {}
    keys = {request_key(cycle, u): u for u in units}
    out: dict[str, list[outbox.FileAttachment]] = {}
    with db.reading() as s:
        rows = s.execute(select(OutboxMessage.key, OutboxMessage.attachments).where(
            OutboxMessage.key.in_(list(keys)))).all()
        blob_ids = {a["blob_id"] for _, atts in rows for a in atts}
        blobs: dict[int, bytes] = {}
        if blob_ids:
            blobs = {i: c for i, c in s.execute(select(Blob.id, Blob.content).where(Blob.id.in_(list(blob_ids))))}
    for key, atts in rows:
        out[keys[key]] = [outbox.FileAttachment(a["filename"], blobs[a["blob_id"]], a["mimetype"])
                          for a in atts if a["blob_id"] in blobs and not a.get("cid")]
    return out


def chase_cycle(db: Database, cfg: Config, cycle: CycleInfo, as_of: datetime, *, dry_run: bool = False) -> list[Action]:
    """Work out today's actions for one cycle and (unless dry-run) write their messages to the outbox."""
    plan = cfg.plan(cycle.plan)
    period = Period.parse(cycle.period)
    today = cfg.calendar.local_date(as_of)
    with db.session() as s:
        requests = list(s.scalars(select(Request).where(Request.cycle_id == cycle.id)))
        sent = set(s.scalars(select(OutboxMessage.key).where(OutboxMessage.cycle_id == cycle.id,
                                                             OutboxMessage.kind.in_(NOTICES))))
        escalated = {(e.unit_code, e.detail.get("stage")) for e in s.scalars(
            select(AuditEvent).where(AuditEvent.action == "escalated", AuditEvent.period == cycle.period))
            if e.detail.get("cycle") == cycle.id}
        made = dict(s.execute(select(Report.unit_code, Report.status).where(Report.cycle_id == cycle.id)).tuples().all())
    reported = {u for u, status in made.items() if status in REPORT_OUT}
    actions = plan_actions(cfg, plan, cycle, requests, today, sent, escalated, reported)
    if dry_run or not actions:
        return actions
    by_unit = {r.unit_code: r for r in requests}
    tasks = overdue_tasks(db, cfg, [a.unit for a in actions if a.kind != Kind.ESCALATION], period, today)
    forms = request_forms(db, cycle, [a.unit for a in actions if a.kind != Kind.ESCALATION and not a.consolidates])
    h = cfg.hierarchy
    for a in actions:
        unit = h[a.unit]
        req = by_unit.get(a.unit)
        addressing = letter(cfg, cycle.plan, a.unit, cycle.period)
        if a.units:
            # Who asks in an escalation: the office that collects the overdue units' reports for the parent
            # (its own office), never the parent's parent: it is a call to act, not a reprimand from above.
            sender = plan.collector(h, a.units[0], fallback_email=cfg.settings.reply_to)
            addressing |= {"sender": sender, "requester": sender.body, "contact_name": sender.person or sender.body,
                           "contact_email": sender.email}
        parent_deadline = by_unit[a.unit].deadline if a.kind == Kind.ESCALATION and a.unit in by_unit else None
        below = [by_unit[c.code] for c in h.children(a.unit) if c.code in by_unit] if a.consolidates else []
        context = addressing | dict(
            unit=unit, period=period, plan_name=plan.name, today=today, action=a, reply_to=cfg.settings.reply_to,
            deadline=req.deadline if req else None,
            days=(cfg.calendar.working_days_between(req.deadline, today) if req else 0),
            tasks=tasks.get(a.unit, []),
            children=[{"unit": h[c], "deadline": by_unit[c].deadline, "state": by_unit[c].state,
                       "consolidates": by_unit[c].role != "form", "body": body_name(h[c]),
                       "days": cfg.calendar.working_days_between(by_unit[c].deadline, today)} for c in a.units],
            # A consolidator's own units: how many are in, and which are not (what it can chase itself).
            below_in=sum(1 for r in below if r.state in DONE or r.unit_code in reported),
            below_missing=[h[r.unit_code] for r in below if r.state not in DONE and r.unit_code not in reported],
            below_total=len(below),
            parent_deadline=parent_deadline,
            parent_days_left=(cfg.calendar.working_days_between(today, parent_deadline) if parent_deadline else None),
            issue=plan.issue_for(a.unit, h) if a.consolidates else None,
            draft_sent=made.get(a.unit) == "draft",
        )
        subject, text, html = render_mail(a.kind, **context)
        with db.session() as s:
            outbox.enqueue(s, key=a.key, kind=a.kind, stage=a.stage, unit=a.unit, period=cycle.period,
                           cycle_id=cycle.id, to=a.recipients, cc=a.cc, subject=subject, text=text, html=html,
                           attachments=forms.get(a.unit, ()))
            for child in a.units:
                audit(s, "chase", "escalated", unit=child, period=cycle.period, stage=a.stage, cycle=cycle.id,
                      key=a.key)
    return actions
