"""Driving the chase day by day against the real SMTP server, without Prefect (shared by the chase tests).

What the `chase` flow's two tasks do (`chase_cycle` for every open cycle, then `outbox.deliver` of the
chase kinds), a cycle opened as `open-period` opens it, and the mail as the loopback server received it.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pendulum

from baocao import runtime
from baocao.chasing.reminders import chase_cycle
from baocao.devservers.simulate import figures, fill_form
from baocao.intake.pipeline import Incoming, take_in
from baocao.mail import outbox
from baocao.mail.mime import message_id_for
from baocao.opening import dispatch
from baocao.opening.forms import FormBuilder
from baocao.rules.periods import Period
from baocao.store.queries import CycleInfo, open_cycle, open_cycles

TZ = "Asia/Ho_Chi_Minh"
CHASE_KINDS = ("reminder", "overdue", "escalation")


def at(day: date, hour: int = 8, minute: int = 30) -> datetime:
    return pendulum.datetime(day.year, day.month, day.day, hour, minute, tz=TZ)


def days(start: date, end: date) -> Iterable[date]:
    d = start
    while d <= end:
        yield d
        d += timedelta(days=1)


def coord(code: str) -> str:
    return f"daumoi.{code.lower()}@donvi.example"


def head(code: str) -> str:
    return f"lanhdao.{code.lower()}@donvi.example"


@dataclass(frozen=True, order=True)
class Sent:
    """One chase message as the SMTP server received it (stage from its outbox row, by Message-ID)."""

    kind: str
    stage: str
    unit: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str
    text: str
    html: str

    @property
    def row(self) -> tuple:
        return self.kind, self.stage, self.unit, self.to, self.cc


class Mailbox:
    """Reads the chase messages the SMTP server received since the last look."""

    def __init__(self, app) -> None:  # noqa: ANN001
        self.app = app
        self.seen = 0
        self.by_day: dict[date, list[Sent]] = {}  # filled by drive()

    def new(self) -> list[Sent]:
        msgs = self.app.smtp.messages
        fresh, self.seen = msgs[self.seen:], len(msgs)
        rows = {message_id_for(r.key): r for r in outbox.messages(runtime.database(runtime.config()))}
        out = []
        for m in fresh:
            msg = m.message
            if msg["X-Baocao-Kind"] not in CHASE_KINDS:
                continue
            row = rows[m.message_id]
            out.append(Sent(
                kind=str(msg["X-Baocao-Kind"]), stage=row.stage, unit=str(msg["X-Baocao-Unit"]),
                to=tuple(a.addr_spec for a in msg["To"].addresses),
                cc=tuple(a.addr_spec for a in msg["Cc"].addresses) if msg["Cc"] else (),
                subject=str(msg["Subject"]), text=msg.get_body(("plain",)).get_content(),
                html=msg.get_body(("html",)).get_content(),
            ))
        return sorted(out)


def open_and_send_requests(period: str, plan: str, root: str | None = None) -> CycleInfo:
    """What `open-period` does: the cycle, every unit's request (with its form), sent over SMTP."""
    cfg = runtime.config()
    db = runtime.database(cfg)
    info = open_cycle(db, cfg, Period.parse(period), plan, root)
    units = [u.code for u in cfg.hierarchy.walk(info.root)]
    prepared = dispatch.prepare_requests(db, cfg, info, units, FormBuilder(cfg.catalog))
    assert not prepared.failed, prepared.failed
    delivery = outbox.deliver(db, cfg.settings, cycle_id=info.id, kinds=["request"])
    assert delivery.ok, delivery.failed
    dispatch.mark_sent(db, info, delivery.sent)
    return info


def chase_on(day: date, hour: int = 8, minute: int = 30) -> None:
    """The chase flow's work for one day, without Prefect: today's actions of every open cycle, then send."""
    cfg = runtime.config()
    db = runtime.database(cfg)
    for info in open_cycles(db):
        chase_cycle(db, cfg, info, at(day, hour, minute))
    delivery = outbox.deliver(db, cfg.settings, kinds=list(CHASE_KINDS))
    assert delivery.ok, delivery.failed


def drive(box: Mailbox, start: date, end: date, *, only: Iterable[date] | None = None) -> dict[date, list[tuple]]:
    """Chase every day from start to end (or only on the given days); what reached SMTP on each day."""
    wanted = set(only) if only is not None else None
    log: dict[date, list[tuple]] = {}
    for day in days(start, end):
        if wanted is not None and day not in wanted:
            continue
        chase_on(day)
        sent = box.new()
        if sent:
            box.by_day[day] = sent
            log[day] = [s.row for s in sent]
    return log


def submit(app, unit: str, when: datetime, *, mistake: str | None = None,  # noqa: ANN001
           task_status: dict[int, str] | None = None):
    """The unit's officer fills the form it received by e-mail and sends it back."""
    cfg = runtime.config()
    coordinator = cfg.hierarchy[unit].coordinator_emails[0]
    request = next(m.message for m in app.smtp.messages
                   if m.message["X-Baocao-Kind"] == "request" and coordinator in m.rcpt_tos)
    (att,) = list(request.iter_attachments())
    rng = random.Random(unit)
    data = fill_form(att.get_content(), cfg.catalog, figures(cfg.catalog, rng), rng, mistake=mistake,
                     task_status=task_status)
    return take_in(runtime.database(cfg), cfg, Incoming(data, att.get_filename(), "email", sender=coordinator,
                                                        received_at=when))
