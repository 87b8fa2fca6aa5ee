"""Opening a period: the request to each unit, with its own form, written to the outbox.

Requests go down the cascade: a unit is asked by its parent. A unit that fills a form gets
its form attached; a unit that consolidates gets the notice of what it must send up and when.
Work is done in batches (a subtree under the cycle's root), and a unit whose message cannot be
built is reported without stopping the others.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import bindparam, func, select, update

from baocao.mail import outbox
from baocao.mail.kinds import Kind
from baocao.mail.letters import letter
from baocao.mail.templating import render_mail
from baocao.opening.forms import FormBuilder, FormSpec, FormTask, builder_for, form_filename
from baocao.opening.tokens import make_token
from baocao.rules.bodies import body_name
from baocao.rules.config import Config
from baocao.rules.dataperiod import data_period_vi, estimate_instruction_vi
from baocao.rules.hierarchy import Unit
from baocao.rules.periods import Period
from baocao.store.db import Database, OutboxMessage, Request, Submission, Task, TaskAssignment, Value, utcnow
from baocao.store.queries import CycleInfo, tasks_done_elsewhere
from baocao.store.states import RequestState
from baocao.tasks.deadlines import deadline_label_vi

log = logging.getLogger("baocao.dispatch")
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


BATCH_UNITS = 200


def cascade_batches(cfg: Config, root: str, max_units: int = BATCH_UNITS) -> list[list[str]]:
    """The root first (its own request, from its parent), then its children's subtrees in batches.

    A batch holds whole subtrees, merged while they fit in `max_units` (a province of a national
    cycle is one batch; Hải Phòng's 116 small subtrees make a few), so the number of task runs stays
    in the dozens whatever the size of the tree. Batches are deterministic: a retry finds the same
    ones in Prefect's result cache.
    """
    h = cfg.hierarchy
    batches: list[list[str]] = [[root]]
    current: list[str] = []
    for child in h.children(root):
        subtree = h.subtree_codes(child.code)
        if current and len(current) + len(subtree) > max_units:
            batches.append(current)
            current = []
        current = current + subtree
    if current:
        batches.append(current)
    return batches


def request_key(cycle: CycleInfo, unit: str) -> str:
    return outbox.message_key(cycle.period, cycle.plan, unit, "request", "open")


@dataclass
class Prepared:
    written: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def previous_year_values(db: Database, units: Sequence[str], period: Period) -> dict[str, dict[str, int | None]]:
    """Each unit's accepted counts of the same period last year (the form's `Cùng kỳ năm trước`)."""
    last = period.same_period_last_year().code
    out: dict[str, dict[str, int | None]] = {}
    with db.reading() as s:
        rows = s.execute(
            select(Submission.unit_code, Value.indicator, Value.number)
            .join(Value, Value.submission_id == Submission.id)
            .where(Submission.period == last, Submission.status == "accepted", Submission.unit_code.in_(list(units)))
        )
        for unit, indicator, number in rows:
            out.setdefault(unit, {})[indicator] = int(number) if number is not None else None
    return out


def tasks_for(db: Database, cfg: Config, units: Sequence[str], period: Period) -> dict[str, list[FormTask]]:
    """Tasks assigned to each unit (by any plan's appendix that covers it) that apply in this period.

    Tasks belong to units, not to cycles: Nhị Chiểu's departments report their appendix tasks on
    the form of whichever cycle reaches them, and the city's report shows them. Each deadline is
    shown as the plan wrote it, with this period's date for a periodic task and the date that
    counts when the written one is not a working day (the task's plan's ``nonworking`` rule).
    """
    out: dict[str, list[FormTask]] = {}
    with db.reading() as s:
        # One-off tasks already reported done are not asked again; recurring ones ("Thường xuyên",
        # "Hàng năm") and unfinished ones are.
        done = tasks_done_elsewhere(s, units, period.code)
        rows = s.execute(
            select(TaskAssignment.unit_code, TaskAssignment.role, Task)
            .join(Task, Task.id == TaskAssignment.task_id)
            .where(TaskAssignment.unit_code.in_(list(units)))
            .order_by(Task.number)
        )
        for unit, role, task in rows:
            if task.from_year and task.from_year > period.year:
                continue
            if (unit, task.id) in done:
                continue
            label = deadline_label_vi(task.due, period, cfg.calendar, cfg.plan(task.plan).nonworking)
            out.setdefault(unit, []).append(FormTask(task.number, task.content, label, role))
    return out


@dataclass(frozen=True)
class FormInputs:
    """What a batch of forms carries besides the unit and its deadline: last year's accepted counts
    (``Cùng kỳ năm trước``) and the tasks assigned to each unit (``Nhiệm vụ``), read once per batch."""

    previous_year: dict[str, dict[str, int | None]]
    tasks: dict[str, list[FormTask]]


def form_inputs(db: Database, cfg: Config, units: Sequence[str], period: Period) -> FormInputs:
    """Read the :class:`FormInputs` of ``units`` for ``period``."""
    if not units:
        return FormInputs({}, {})
    return FormInputs(previous_year_values(db, units, period), tasks_for(db, cfg, units, period))


def unit_form(cfg: Config, builder: FormBuilder, inputs: FormInputs, code: str, period: Period,
              deadline: date) -> tuple[str, bytes]:
    """One unit's form: its file name and bytes. The open-period flow attaches exactly this, and
    ``baocao form`` writes exactly this, so the file an operator looks at is the file a unit gets."""
    h = cfg.hierarchy
    unit = h[code]
    contact = h.parent(code) or unit  # the root has no parent: it answers to itself
    spec = FormSpec(
        unit=unit, period=period, deadline=deadline,
        token=make_token(cfg.settings.token_secret.get_secret_value(), code, period.code, cfg.settings.form_version),
        form_version=cfg.settings.form_version, coordinator_name=contact.name,
        coordinator_email=(contact.coordinator_emails or ("",))[0], reply_to=cfg.settings.reply_to,
        previous_year=inputs.previous_year.get(code, {}), tasks=inputs.tasks.get(code, ()),
        data_period=_form_data_period(cfg, period, deadline),
    )
    return form_filename(spec), builder.build(spec)


def _form_data_period(cfg: Config, period: Period, deadline: date) -> str:
    """The form's "Thời gian lấy số liệu": the request's words (baocao.rules.dataperiod), estimates included."""
    window = cfg.calendar.cutoff_window(period)
    return " ".join(t for t in (data_period_vi(window, deadline), estimate_instruction_vi(window, deadline)) if t)


def prepare_requests(db: Database, cfg: Config, cycle: CycleInfo, units: Sequence[str], builder: FormBuilder) -> Prepared:
    """Write the request message of each unit (form attached where it fills one) unless written already.

    The forms word the indicators as the cycle's plan does: a `builder` made for another catalogue
    is replaced by one for the plan's (a unit must never read another plan's meeting limits).
    """
    period = Period.parse(cycle.period)
    plan = cfg.plan(cycle.plan)
    if builder.catalog is not cfg.catalog_for(cycle.plan):
        builder = builder_for(cfg.catalog_for(cycle.plan))
    h = cfg.hierarchy
    start, end = cfg.calendar.cutoff_window(period)
    result = Prepared()
    with db.reading() as s:
        reqs = {r.unit_code: r for r in s.scalars(
            select(Request).where(Request.cycle_id == cycle.id, Request.unit_code.in_(list(units))))}
        have = set(s.scalars(select(OutboxMessage.key).where(
            OutboxMessage.key.in_([request_key(cycle, u) for u in units]))))
    todo = [u for u in units if u in reqs and request_key(cycle, u) not in have and h[u].parent is not None]
    result.already = [u for u in units if request_key(cycle, u) in have]
    form_units = [u for u in todo if reqs[u].role == "form"]
    inputs = form_inputs(db, cfg, form_units, period)
    messages: dict[str, dict[str, Any]] = {}
    for code in todo:
        unit = h[code]
        req = reqs[code]
        parent = h.parent(code)
        assert parent is not None
        try:
            context = {
                "unit": unit, "period": period, "deadline": req.deadline, "plan_name": plan.name,
                "basis": "; ".join(plan.basis_for(parent.code, h)),  # the requester's documents
                **letter(cfg, cycle.plan, code, period.code), "parent_name": body_name(parent),
                "cutoff_start": start, "cutoff_end": end, "reply_to": cfg.settings.reply_to,
                "data_period": data_period_vi((start, end), req.deadline),
                "estimate_note": estimate_instruction_vi((start, end), req.deadline),
            }
            attachments = []
            if req.role == "form":
                filename, data = unit_form(cfg, builder, inputs, code, period, req.deadline)
                attachments.append(outbox.FileAttachment(filename, data, XLSX_MIME))
                subject, text, html = render_mail("form_request", form_filename=filename, **context)
            else:
                subject, text, html = render_mail(
                    "consolidate_request", n_children=len(h.children(code)),
                    children_deadline=_children_deadline(db, cycle.id, code) or req.deadline, **context)
            _require_contact(unit)
            messages[code] = dict(key=request_key(cycle, code), kind=Kind.REQUEST, stage="open", unit=code,
                                  period=period.code, cycle_id=cycle.id, to=unit.coordinator_emails,
                                  subject=subject, text=text, html=html, attachments=attachments)
        except Exception as exc:  # one unit's failure must not stop the batch
            log.error("unit %s (%s): request not written: %s", code, unit.name, exc)
            result.failed[code] = f"{type(exc).__name__}: {exc}"
    _write(db, messages, result)
    return result


def _write(db: Database, messages: dict[str, dict[str, Any]], result: Prepared) -> None:
    """The batch's messages in one transaction; if that fails, one by one, so the unit at fault is named."""
    try:
        with db.session() as s:
            outbox.enqueue_all(s, list(messages.values()))
        result.written += list(messages)
        return
    except Exception as exc:  # noqa: BLE001 - rolled back: written one at a time below
        log.warning("writing %d requests at once failed (%s); writing them one by one", len(messages), exc)
    for code, message in messages.items():
        try:
            with db.session() as s:
                outbox.enqueue(s, **message)
            result.written.append(code)
        except Exception as exc:
            log.error("unit %s: request not written: %s", code, exc)
            result.failed[code] = f"{type(exc).__name__}: {exc}"


def _children_deadline(db: Database, cycle_id: int, unit: str) -> date | None:
    with db.reading() as s:
        return s.scalar(select(func.min(Request.deadline)).where(Request.cycle_id == cycle_id,
                                                                 Request.parent_code == unit))


def _require_contact(unit: Unit) -> None:
    if not unit.coordinator_emails:
        raise ValueError(f"unit {unit.code} has no coordinator address in config/hierarchy.toml")


def mark_sent(db: Database, cycle: CycleInfo, keys: Sequence[str]) -> int:
    """Requests whose message went out move from pending to sent.

    `keys` are the messages this run sent. The outbox is read as well: a run killed after the SMTP
    server took a request (and the outbox marked it) but before this step left the request
    pending, and the run that resumes it has nothing left to send, so `keys` alone would never
    name that unit again.
    """
    table = Request.__table__
    with db.session() as s:
        # When each unit's request went out, read once: a subquery per request row (what SQL would
        # say) is planned on SQLite through the outbox's cycle index, a scan of the cycle's whole
        # outbox per request (2.5 s for a national cycle).
        sent_at = dict(s.execute(select(OutboxMessage.unit_code, func.min(OutboxMessage.sent_at))
                                 .where(OutboxMessage.cycle_id == cycle.id, OutboxMessage.kind == Kind.REQUEST,
                                        OutboxMessage.status == "sent")
                                 .group_by(OutboxMessage.unit_code)).all())
        units = set(sent_at) | {k.split("/")[2] for k in keys if k.endswith("/request/open")}
        pending = set(s.scalars(select(Request.unit_code).where(Request.cycle_id == cycle.id,
                                                                Request.state == RequestState.PENDING.value)))
        now = utcnow()
        rows = [{"unit": u, "at": sent_at.get(u) or now} for u in sorted(units & pending)]
        if rows:
            s.execute(update(table)
                      .where(table.c.cycle_id == cycle.id, table.c.unit_code == bindparam("unit"),
                             table.c.state == RequestState.PENDING.value)
                      .values(state=RequestState.SENT.value, state_at=bindparam("at"), sent_at=bindparam("at"),
                              version=table.c.version + 1), rows)
        return len(rows)
