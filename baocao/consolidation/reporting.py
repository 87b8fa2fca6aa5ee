"""Consolidating a cycle: from the database to figures, reports and the messages that carry them up.

The figures are computed by :mod:`baocao.consolidation.aggregate` (pure pandas) over the accepted submissions;
this module loads those frames, decides which consolidators are due, renders their reports with
:mod:`baocao.consolidation.report` and writes them to the outbox, addressed as the plan says. A unit is due when
its consolidation time has come (the plan's working days after its children's latest deadline)
or when all its children are in, whichever is first; a correction (`--resend`) is a new version.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from baocao.consolidation.aggregate import Figures, consolidate_tree
from baocao.consolidation.report import (
    ReportContext,
    body_name,
    issuer_lines_for,
    place_for,
    recipients_for,
    render_docx,
    render_email,
    render_xlsx,
    signer_title_for,
    symbol_for,
)
from baocao.mail import outbox
from baocao.mail.kinds import Kind
from baocao.mail.templating import render_mail
from baocao.rules.config import Config
from baocao.rules.formatting import date_vi
from baocao.rules.periods import Period
from baocao.store.db import (
    Blob,
    Database,
    Report,
    Request,
    Submission,
    Task,
    TaskAssignment,
    TaskReport,
    Value,
    utcnow,
)
from baocao.store.queries import CycleInfo, set_state, tasks_done_elsewhere
from baocao.store.states import ANSWERED, DONE, RequestState, standing
from baocao.tasks.deadlines import deadline_label_vi, is_chased, task_deadline

if TYPE_CHECKING:
    from baocao.consolidation.renderpool import RenderPool

log = logging.getLogger("baocao.consolidate")
DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def frames(db: Database, cycle: CycleInfo, today: date | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(values, texts, requests) of the cycle as the aggregation expects them.

    The aggregation's request states: `accepted` (with `on_time`), `late` for a unit whose
    deadline has passed with nothing accepted, `exempt`, and the others as they are.
    """
    with db.reading() as s:
        reqs = s.execute(select(Request.unit_code, Request.parent_code, Request.role, Request.state, Request.on_time,
                                Request.deadline, Request.accepted_submission_id)
                         .where(Request.cycle_id == cycle.id)).all()
        sub_ids = [r.accepted_submission_id for r in reqs if r.accepted_submission_id and r.state in ANSWERED]
        vals = s.execute(select(Submission.unit_code, Value.indicator, Value.number, Value.previous_year, Value.text)
                         .join(Submission, Submission.id == Value.submission_id)
                         .where(Value.submission_id.in_(sub_ids))).all() if sub_ids else []
    req_rows = []
    for r in reqs:
        req_rows.append({"unit_code": r.unit_code, "parent_code": r.parent_code, "role": r.role,
                         "state": standing(r.state, r.deadline, today),
                         "on_time": r.on_time if r.state in ANSWERED else None, "deadline": r.deadline})
    values = pd.DataFrame([{"unit_code": v.unit_code, "indicator": v.indicator, "value": v.number,
                            "previous_year": v.previous_year} for v in vals if v.text is None],
                          columns=["unit_code", "indicator", "value", "previous_year"])
    texts = pd.DataFrame([{"unit_code": v.unit_code, "indicator": v.indicator, "text": v.text}
                          for v in vals if v.text is not None], columns=["unit_code", "indicator", "text"])
    return values.astype({"value": "float64", "previous_year": "float64"}), texts, pd.DataFrame(req_rows)


def figures_for(db: Database, cfg: Config, cycle: CycleInfo, as_of: datetime) -> dict[str, Figures]:
    values, texts, requests = frames(db, cycle, cfg.calendar.local_date(as_of))
    return cycle_figures(cfg, cycle, values, texts, requests)


def cycle_figures(cfg: Config, cycle: CycleInfo, values: pd.DataFrame, texts: pd.DataFrame,
                  requests: pd.DataFrame) -> dict[str, Figures]:
    """The cycle's figures from its frames, measured against the targets *its plan* sets (and only those)."""
    figs = consolidate_tree(cycle.root, cfg.hierarchy, cfg.catalog_for(cycle.plan), values, requests, texts=texts,
                            plan=cycle.plan)
    for f in figs.values():
        f.period = cycle.period
    return figs


def task_table(db: Database, cfg: Config, cycle: CycleInfo, unit: str, today: date) -> list[dict[str, Any]] | None:
    """Per task assigned below `unit`: how many assigned units report done, in progress, not started, overdue.

    None when no task is assigned in the subtree (the report then has no task table).
    """
    below = set(cfg.hierarchy.subtree_codes(unit))
    with db.reading() as s:
        assigned = [a for a in s.execute(select(TaskAssignment.task_id, TaskAssignment.unit_code)).all()
                    if a.unit_code in below]
        if not assigned:
            return None
        tasks = list(s.scalars(select(Task).where(Task.id.in_({a.task_id for a in assigned}))
                               .order_by(Task.plan, Task.number)))
        latest = s.execute(
            select(Submission.unit_code, TaskReport.task_id, TaskReport.status)
            .join(Submission, Submission.id == TaskReport.submission_id)
            .join(Request, Request.accepted_submission_id == Submission.id)
            .where(Request.cycle_id == cycle.id)).all()
        form_units = set(s.scalars(select(Request.unit_code).where(Request.cycle_id == cycle.id,
                                                                   Request.role == "form")))
        done_before = tasks_done_elsewhere(s, below, cycle.period)
    status = {(r.unit_code, r.task_id): r.status for r in latest}
    period = Period.parse(cycle.period)
    rows = []
    for t in tasks:
        # The deadline that counts: this period's for a periodic task, moved off a non-working day.
        rule = cfg.plan(t.plan).nonworking
        deadline = task_deadline(t.due, period, cfg.calendar, rule)
        units = [a.unit_code for a in assigned if a.task_id == t.id and a.unit_code in below]
        if not units:
            continue
        counts = {"done": 0, "in_progress": 0, "not_started": 0, "no_report": 0}
        overdue_units = []
        for u in units:
            st = status.get((u, t.id))
            if st is None and (u, t.id) in done_before:
                st = "done"  # done in an earlier period: no longer on the unit's form
            if u not in form_units and st is None:
                st = _status_through_units_below(cfg, u, t.id, units, form_units, status)
            counts[st or "no_report"] += 1
            if deadline is not None and is_chased(t.due) and deadline.effective < today and st != "done":
                overdue_units.append(cfg.hierarchy[u].name)
        rows.append({"number": t.number, "content": t.content,
                     "deadline": deadline_label_vi(t.due, period, cfg.calendar, rule),
                     "assigned": len(units), "done": counts["done"], "in_progress": counts["in_progress"],
                     "not_started": counts["not_started"] + counts["no_report"], "overdue": len(overdue_units),
                     "overdue_units": overdue_units})
    return rows


def _status_through_units_below(cfg: Config, unit: str, task_id: int, assigned: list[str], form_units: set[str],
                                status: dict[tuple[str, int], str]) -> str | None:
    """The status of a task given to a unit that fills no form (a consolidator such as "UBND phường").

    Such a unit reports through the units under it: the task is done when every unit below that holds the
    same task and fills a form reports it done, in progress when any of them has started it, not started
    when all report not started. None (no report) when no unit below holds it, rather than a guess.
    """
    below = set(cfg.hierarchy.subtree_codes(unit)) - {unit}
    reported = [status.get((u, task_id)) for u in assigned if u in below and u in form_units]
    known = [st for st in reported if st is not None]
    if not known:
        return None
    if len(known) == len(reported) and all(st == "done" for st in known):
        return "done"
    if any(st in ("done", "in_progress") for st in known):
        return "in_progress"
    return "not_started"


def due_units(db: Database, cfg: Config, cycle: CycleInfo, as_of: datetime, *, resend: str | None = None) -> list[str]:
    """Consolidators whose report is due now and not yet made, children before parents."""
    plan = cfg.plan(cycle.plan)
    today = cfg.calendar.local_date(as_of)
    with db.reading() as s:
        reqs = {r.unit_code: r for r in s.scalars(select(Request).where(Request.cycle_id == cycle.id))}
        made = dict(s.execute(select(Report.unit_code, Report.status).where(Report.cycle_id == cycle.id)
                              .order_by(Report.version)).all())
    reported = set(made)
    out = []
    done_now: set[str] = set()
    for unit in cfg.hierarchy.walk_bottom_up(cycle.root):
        req = reqs.get(unit.code)
        if req is None or req.role != "consolidate":
            continue
        if resend is not None:
            if unit.code == resend:
                out.append(unit.code)
            continue
        if unit.code in reported:
            continue
        children = [reqs[c.code] for c in cfg.hierarchy.children(unit.code) if c.code in reqs]
        # A consolidating child is in when its report is: issued (its request answered), or made and sent
        # as made ("direct"); a draft waiting for the unit's signature is not in yet.
        all_in = all((c.state in DONE) if c.role == "form" else
                     (c.state in DONE or made.get(c.unit_code) == "direct"
                      or (c.unit_code in done_now and plan.issue_for(c.unit_code, cfg.hierarchy) == "direct"))
                     for c in children)
        latest = max(c.deadline for c in children) if children else req.deadline
        time_come = today >= cfg.calendar.add_working_days(latest, plan.consolidate_days_after)
        if all_in or time_come:
            out.append(unit.code)
            done_now.add(unit.code)
    return out


def costliest_first(cfg: Config, units: Iterable[str]) -> list[str]:
    """`units` in the order to render their reports when many render at once: the largest subtree
    first (a report's appendix grows with the units below it), ties in the given order. Started
    last, the ministry's report ran alone on one core after every province's."""
    units = list(units)
    size = {u: len(cfg.hierarchy.subtree_codes(u)) for u in units}
    return sorted(units, key=lambda u: -size[u])


def recipients(cfg: Config, plan_code: str, unit: str) -> tuple[list[str], list[str]]:
    """(to, cc) of a unit's report: as the plan says, plus the unit's own coordinator in copy."""
    plan = cfg.plan(plan_code)
    h = cfg.hierarchy
    parent = h.parent(unit)
    to: list[str] = []
    for r in plan.recipients:
        role, _, target = r.partition(":")
        if role == "parent" and parent is not None:
            to += list(parent.coordinator_emails if target == "coordinator" else parent.head_emails)
        elif role == "unit":
            to += list(h[target].coordinator_emails)
        elif role == "self":
            to += list(h[unit].coordinator_emails if target == "coordinator" else h[unit].head_emails)
    to += list(plan.extra_recipients.get(unit, ()))
    cc = [a for a in h[unit].coordinator_emails if a not in to]
    return list(dict.fromkeys(to)), cc


@dataclass
class Rendered:
    docx: bytes
    xlsx: bytes
    text: str
    html: str
    chart: bytes
    context: ReportContext | None = None  # None when rendered in another process (baocao.consolidation.renderpool)


def receiver_lines(cfg: Config, plan_code: str, unit: str) -> tuple[str, ...]:
    """The "Nơi nhận:" lines: the bodies :func:`recipients` mails the report to, by name, then "- Lưu: VT, ..."."""
    plan = cfg.plan(plan_code)
    return recipients_for(plan.recipients, cfg.hierarchy[unit], cfg.hierarchy, plan.extra_recipients.get(unit, ()))


def render(cfg: Config, cycle: CycleInfo, unit: str, figures: dict[str, Figures], report_date: date, *,
           tasks: list[dict[str, Any]] | None, correction_of: int | None) -> Rendered:
    h = cfg.hierarchy
    fig = figures[unit]
    ctx = ReportContext(
        figures=fig, child_figures={c: figures[c] for c in fig.children if c in figures}, hierarchy=h,
        catalog=cfg.catalog_for(cycle.plan), period=Period.parse(cycle.period), plan_name=cfg.plan(cycle.plan).name,
        report_date=report_date, place=place_for(h[unit], h), issuer_lines=issuer_lines_for(h[unit], h),
        recipients=receiver_lines(cfg, cycle.plan, unit), correction_of=correction_of, tasks=tasks,
        signer_title=signer_title_for(h[unit], h), signer_name=h[unit].head_name, symbol=symbol_for(h[unit], h),
        basis=cfg.plan(cycle.plan).basis_for(unit, h),
        cutoff=cfg.calendar.cutoff_window(Period.parse(cycle.period)),
        draft=cfg.plan(cycle.plan).issue_for(unit, h) == "review",
        addressee=addressee(cfg, unit),
    )
    text, html, chart = render_email(ctx)
    return Rendered(render_docx(ctx), render_xlsx(ctx), text, html, chart, ctx)


def make_report(db: Database, cfg: Config, cycle: CycleInfo, unit: str, figures: dict[str, Figures],
                as_of: datetime, *, correction: bool = False, pool: RenderPool | None = None) -> int:
    """Render the unit's report, keep it (a new version if one exists) and write its message to the outbox.

    `pool` renders it in another process (many reports at once on every core); the rest is the same.
    """
    today = cfg.calendar.local_date(as_of)
    with db.reading() as s:
        previous = s.scalar(select(func.max(Report.version)).where(Report.cycle_id == cycle.id, Report.unit_code == unit))
    version = (previous or 0) + 1
    tasks = task_table(db, cfg, cycle, unit, today)
    correction_of = previous if (correction and previous) else None
    rendered: Rendered | None = None
    if pool is not None:
        try:
            rendered = Rendered(*pool.render(cycle, unit, figures, today, tasks=tasks, correction_of=correction_of))
        except Exception as exc:  # noqa: BLE001 - a broken process: render here, as without a pool
            log.warning("report of %s: render process failed (%s); rendering it here", unit, exc)
    if rendered is None:
        rendered = render(cfg, cycle, unit, figures, today, tasks=tasks, correction_of=correction_of)
    mode = cfg.plan(cycle.plan).issue_for(unit, cfg.hierarchy)
    correcting = bool(correction and previous)
    kept = figures[unit].to_dict()  # before the write lock: other reports' threads wait for it
    with db.session() as s:
        docx_id = outbox.store_blob(s, rendered.docx)
        xlsx_id = outbox.store_blob(s, rendered.xlsx)
        report = Report(cycle_id=cycle.id, unit_code=unit, version=version, correction=correcting,
                        figures=kept, docx_blob_id=docx_id, xlsx_blob_id=xlsx_id, created_at=utcnow(),
                        status="draft" if mode == "review" else "direct")
        s.add(report)
        s.flush()
        if mode == "review":
            _enqueue_draft(s, cfg, cycle, unit, report, rendered, correcting)
            return report.id
        to, cc = recipients(cfg, cycle.plan, unit)
        names = attachment_names(cfg, cycle, unit)
        outbox.enqueue(
            s, key=outbox.message_key(cycle.period, cycle.plan, unit, Kind.REPORT, f"v{version}"), kind=Kind.REPORT,
            stage=f"v{version}", unit=unit, period=cycle.period, cycle_id=cycle.id, to=to, cc=cc,
            subject=report_subject(cfg, cycle, unit, correcting),
            text=rendered.text, html=rendered.html,
            attachments=[outbox.FileAttachment(names["docx"], rendered.docx, DOCX_MIME),
                         outbox.FileAttachment(names["xlsx"], rendered.xlsx, XLSX_MIME),
                         outbox.FileAttachment("bieu-do.png", rendered.chart, "image/png", cid="chart")],
            headers=unit_reply_to(cfg, unit),
        )
        # Answered when made, at the run's instant (not the wall clock: a run `--as-of` a day is judged on it).
        mark_request_done(s, cycle, unit, as_of, cfg)
        return report.id


def addressee(cfg: Config, unit: str) -> str:
    """The body a unit's report is addressed to: its parent's ("Ủy ban nhân dân thành phố Hải Phòng")."""
    parent = cfg.hierarchy.parent(unit)
    return body_name(parent) if parent is not None else "Quý cơ quan, đơn vị"


def attachment_names(cfg: Config, cycle: CycleInfo, unit: str) -> dict[str, str]:
    """File names a person recognises ("Báo cáo 6 tháng đầu năm 2026 - Phường Nhị Chiểu.pdf"), no codes."""
    label = Period.parse(cycle.period).label_vi
    name = cfg.hierarchy[unit].name
    stem = f"{label[:1].upper()}{label[1:]} - {name}"
    return {"docx": f"Báo cáo {stem}.docx", "pdf": f"Báo cáo {stem}.pdf", "xlsx": f"Phụ lục số liệu {stem}.xlsx",
            "draft": f"Dự thảo Báo cáo {stem}.docx"}


def report_subject(cfg: Config, cycle: CycleInfo, unit: str, correcting: bool) -> str:
    label = Period.parse(cycle.period).label_vi
    return (f"{'ĐÍNH CHÍNH - ' if correcting else ''}Báo cáo kết quả thực hiện Kết luận số 226-KL/TW "
            f"{label} - {body_name(cfg.hierarchy[unit])}")


def unit_reply_to(cfg: Config, unit: str) -> dict[str, str] | None:
    """A reply to the report reaches the unit's coordinator, not the intake robot."""
    emails = cfg.hierarchy[unit].coordinator_emails
    return {"Reply-To": emails[0]} if emails else None


def report_contact(cfg: Config, plan_code: str, unit: str) -> dict[str, str]:
    """Whom the mail carrying `unit`'s report names to call there (issue 21.8): ``contact_name``,
    ``contact_phone`` and ``contact_email`` (the unit's coordinator, where a reply goes).

    The unit's own `person` / `phone` of `[unit_contacts.CODE]` when configured; else the office that
    collects for the unit under the plan (its `[collector]` for the unit's level: "Phạm Thị Lan, Phòng Văn
    hóa - Xã hội phường Nhị Chiểu"), who drafted the report and can answer for its figures."""
    h = cfg.hierarchy
    u = h[unit]
    email = u.coordinator_emails[0] if u.coordinator_emails else ""
    if u.contact_person or u.contact_phone:
        return {"contact_name": u.contact_person, "contact_phone": u.contact_phone, "contact_email": email}
    children = h.children(unit)
    if not children:
        return {"contact_name": "", "contact_phone": "", "contact_email": email}
    office = cfg.plan(plan_code).collector(h, children[0].code)
    name = ", ".join(p for p in (office.person, office.body if office.body != body_name(u) else "") if p)
    return {"contact_name": name, "contact_phone": office.phone, "contact_email": email}


def mark_request_done(s: Session, cycle: CycleInfo, unit: str, at: datetime, cfg: Config) -> None:
    """The consolidator's own request is answered: its report was issued (review) or made (direct).

    State accepted, accepted_at `at`, on time when `at`'s local date is not after the deadline. A request
    answered already (a correction's second version) keeps its first answer."""
    req = s.scalar(select(Request).where(Request.cycle_id == cycle.id, Request.unit_code == unit,
                                         Request.role == "consolidate"))
    if req is None or req.state in ANSWERED:
        return
    set_state(s, req, RequestState.ACCEPTED, at=at, accepted_at=at,
              on_time=cfg.calendar.local_date(at) <= req.deadline)


def _enqueue_draft(s: Session, cfg: Config, cycle: CycleInfo, unit: str, report: Report, rendered: Rendered,
                   correcting: bool) -> None:
    """The draft to the unit's own coordinator and head: what to check, where to write, how to send it back."""
    from baocao.opening.tokens import make_report_token

    h = cfg.hierarchy
    u = h[unit]
    parent = h.parent(unit)
    with s.no_autoflush:
        req = s.scalar(select(Request).where(Request.cycle_id == cycle.id, Request.unit_code == unit))
    token = make_report_token(cfg.settings.token_secret, report.id, unit, cycle.period)
    names = attachment_names(cfg, cycle, unit)
    deadline = req.deadline if req is not None else cfg.calendar.local_date(utcnow())
    subject, text, html = render_mail(
        "report_draft", unit_body=body_name(u), parent_body=body_name(parent) if parent else "cấp trên",
        period_label=Period.parse(cycle.period).label_vi, token=token, reply_to=cfg.settings.reply_to,
        symbol=rendered.context.symbol if rendered.context is not None else "BC-UBND",
        deadline=date_vi(deadline), example_date=date_vi(deadline), correction=correcting)
    outbox.enqueue(
        s, key=outbox.message_key(cycle.period, cycle.plan, unit, Kind.DRAFT, f"v{report.version}"), kind=Kind.DRAFT,
        stage=f"v{report.version}", unit=unit, period=cycle.period, cycle_id=cycle.id,
        to=list(dict.fromkeys([*u.coordinator_emails, *u.head_emails])), subject=subject, text=text, html=html,
        attachments=[outbox.FileAttachment(names["draft"], rendered.docx, DOCX_MIME),
                     outbox.FileAttachment(names["xlsx"], rendered.xlsx, XLSX_MIME)])


def report_files(db: Database, report_id: int) -> tuple[bytes, bytes]:
    with db.reading() as s:
        r = s.get(Report, report_id)
        assert r is not None
        return s.get(Blob, r.docx_blob_id).content, s.get(Blob, r.xlsx_blob_id).content  # type: ignore[union-attr]
