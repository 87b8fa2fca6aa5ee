"""What an operator does to a unit's request: return it for correction, reopen it, exempt it.

Each action changes the request's state under its optimistic lock, is recorded in the audit
trail with who and why, and (for a return) tells the unit through the outbox.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from baocao.errors import OperationError
from baocao.mail import outbox
from baocao.mail.kinds import Kind
from baocao.mail.letters import letter
from baocao.mail.templating import render_mail
from baocao.rules.config import Config
from baocao.rules.periods import Period
from baocao.store.db import Cycle, Database, OutboxMessage, ReceivedFile, Request, Submission, utcnow
from baocao.store.queries import audit, set_state
from baocao.store.states import ANSWERED, RequestState


def _request(s, cfg: Config, unit: str, period: str, plan: str | None) -> Request:  # noqa: ANN001 - Session
    if unit not in cfg.hierarchy:
        raise OperationError(f"no unit with code {unit!r}")
    q = select(Request).join(Cycle).where(Request.unit_code == unit, Cycle.period == Period.parse(period).code)
    if plan:
        q = q.where(Cycle.plan == plan)
    rows = list(s.scalars(q.order_by(Cycle.id.desc())))
    if not rows:
        raise OperationError(f"unit {unit} has no request for {period}{' under ' + plan if plan else ''}")
    return rows[0]


def return_submission(db: Database, cfg: Config, unit: str, period: str, reason: str, *, actor: str,
                      plan: str | None = None, at: datetime | None = None) -> None:
    """Send an accepted submission back (as DHIS2's unapproval): the unit is told and expected again."""
    with db.session() as s:
        req = _request(s, cfg, unit, period, plan)
        if req.state not in ANSWERED:
            raise OperationError(f"unit {unit} has no accepted submission for {period} (state: {req.state})")
        sub_id = req.accepted_submission_id
        s.execute(update(Submission).where(Submission.id == sub_id).values(status="returned"))
        set_state(s, req, RequestState.RETURNED, reason=reason, accepted_submission_id=None, accepted_at=None, on_time=None,
                  at=at)
        audit(s, actor, "return", unit=unit, period=period, reason=reason, submission=sub_id)
        u = cfg.hierarchy[unit]
        subject, text, html = render_mail(
            "returned", unit=u, period=Period.parse(period), reason=reason, deadline=req.deadline,
            reply_to=cfg.settings.reply_to, **letter(cfg, req.cycle.plan, unit, period))
        cycle = s.get(Cycle, req.cycle_id)
        assert cycle is not None
        outbox.enqueue(s, key=outbox.message_key(period, cycle.plan, unit, Kind.RETURNED, f"s{sub_id}"), kind=Kind.RETURNED,
                       stage=f"s{sub_id}", unit=unit, period=period, cycle_id=req.cycle_id,
                       to=u.coordinator_emails, cc=u.head_emails, subject=subject, text=text, html=html,
                       headers=_receipt_thread(s, unit, sub_id))


def _receipt_thread(s, unit: str, submission_id: int | None) -> dict[str, object]:  # noqa: ANN001 - Session
    """The thread headers of the receipt of a submission (In-Reply-To/References of the unit's mail).

    A return for correction answers the mail that carried the file, like its receipt did; the
    receipt's row keeps those headers (a merged receipt too: its held row stays), so nothing else
    has to remember the unit's Message-ID. None found (a file dropped in the folder): no headers.
    """
    if submission_id is None:
        return {}
    digest = s.scalar(select(ReceivedFile.sha256).join(Submission, Submission.file_id == ReceivedFile.id)
                      .where(Submission.id == submission_id))
    if not digest:
        return {}
    for headers in s.scalars(select(OutboxMessage.headers).where(
            OutboxMessage.unit_code == unit, OutboxMessage.stage == digest[:16],
            OutboxMessage.kind == Kind.RECEIPT).order_by(OutboxMessage.id)):
        if headers and headers.get("In-Reply-To"):
            return {k: headers[k] for k in ("In-Reply-To", "References") if headers.get(k)}
    return {}


def reopen(db: Database, cfg: Config, unit: str, period: str, until: datetime, reason: str, *, actor: str,
           plan: str | None = None) -> None:
    """Let a unit submit after the lock date, until `until`."""
    with db.session() as s:
        req = _request(s, cfg, unit, period, plan)
        set_state(s, req, req.state, reason=req.state_reason, reopened_until=until)
        audit(s, actor, "reopen", unit=unit, period=period, reason=reason, until=until.isoformat())


def exempt(db: Database, cfg: Config, unit: str, period: str, reason: str, *, actor: str,
           plan: str | None = None) -> None:
    """The unit is not expected this period: never chased, not counted in completeness."""
    with db.session() as s:
        req = _request(s, cfg, unit, period, plan)
        set_state(s, req, RequestState.EXEMPT, reason=reason)
        audit(s, actor, "exempt", unit=unit, period=period, reason=reason)


def now() -> datetime:
    return utcnow()
