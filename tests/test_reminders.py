"""Which reminder, overdue notice or escalation goes out on which day, checked at the real SMTP server.

Each test opens a cycle the way `open-period` does (record it, write every unit's request with its
form, send them over SMTP), then runs the chase for one day at a time with `as_of`, doing what the
`chase` flow's two tasks do (`chase_cycle` for every open cycle, then `outbox.deliver` of the chase
kinds) without Prefect; tests/test_chase.py runs the same through the real flow. What counts is what
the loopback SMTP server receives: recipient, Cc, stage and subject, day by day.

Key dates (2026-H1): Tứ Kỳ's departments are due Tue 02/6 (3 working days before the commune's
Fri 05/6), so before-3 = Thu 28/5, before-1 = Mon 01/6, overdue-1 = Wed 03/6, and the escalation to the
commune Wed 03/6: 3 working days after would be Fri 05/6, the commune's own deadline, so it goes on the
last day that leaves the commune `escalate_before_parent` = 2 working days. The commune consolidates and
is chased for its own report (the cycle's root: reminders and overdue notice, no parent to escalate to):
before-3 = Tue 02/6, before-1 = Thu 04/6, overdue-1 = Mon 08/6 (:data:`TU_KY_OWN`).
"""

from __future__ import annotations

import dataclasses
import html
import shutil
from datetime import date
from pathlib import Path

import pendulum
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from baocao import runtime
from baocao.chasing.reminders import chase_cycle, plan_actions
from baocao.intake.operations import exempt, return_submission
from baocao.rules.periods import Period
from baocao.rules.plans import ReminderPolicy
from baocao.store.db import AuditEvent, OutboxMessage, Request
from baocao.store.queries import open_cycle, requests_of
from baocao.tasks.taskbook import import_appendix
from tests.support.chasing import (
    CHASE_KINDS,
    Mailbox,
    at,
    chase_on,
    coord,
    days,
    drive,
    head,
    open_and_send_requests,
    submit,
)

DATA = Path(__file__).resolve().parent / "data"
TU_KY_DEPTS = ("X11074-KT", "X11074-TTHCC", "X11074-VHXH", "X11074-VP")


# ----------------------------------------------------------------------------- helpers
def reminder(code: str, n: int) -> tuple:
    return ("reminder", f"before-{n}", code, (coord(code),), ())


def overdue(code: str, n: int = 1) -> tuple:
    return ("overdue", f"overdue-{n}", code, (coord(code),), (head(code),))


def escalation(parent: str, n: int = 3) -> tuple:
    return ("escalation", f"escalate-{n}", parent, (coord(parent),), (head(parent),))


def request_state(unit: str) -> tuple[str, str | None]:
    with runtime.database(runtime.config()).session() as s:
        req = s.scalars(select(Request).where(Request.unit_code == unit)).one()
        return req.state, req.state_reason


TU_KY = "Xã Tứ Kỳ"
DEPT_NAMES = {
    "X11074-KT": "Phòng Kinh tế xã Tứ Kỳ",
    "X11074-TTHCC": "Trung tâm Phục vụ hành chính công xã Tứ Kỳ",
    "X11074-VHXH": "Phòng Văn hóa - Xã hội xã Tứ Kỳ",
    "X11074-VP": "Văn phòng HĐND và UBND xã Tứ Kỳ",
}


def with_commune(log: dict[date, list[tuple]], start: date = date(2026, 5, 19),
                 end: date = date(2026, 6, 30)) -> dict[date, list[tuple]]:
    """``log`` plus what the commune X11074 gets for its own report in 2026-H1 between start and end."""
    own = {date(2026, 6, 2): reminder("X11074", 3), date(2026, 6, 4): reminder("X11074", 1),
           date(2026, 6, 8): overdue("X11074")}
    out = {d: list(rows) for d, rows in log.items()}
    for d, row in own.items():
        if start <= d <= end:
            out[d] = sorted(out.get(d, []) + [row])
    return out


# ----------------------------------------------------------------------------- a weekend
def test_friday_deadline_overdue_notice_skips_the_weekend(app):
    """National plan, Điện Biên's 45 communes: due Fri 05/6/2026, so overdue-1 is Mon 08/6, escalate-3 Wed 10/6."""
    info = open_and_send_requests("2026-H1", "national", root="T11")
    cfg = runtime.config()
    communes = sorted(u.code for u in cfg.hierarchy.walk("T11") if u.code != "T11")
    assert len(communes) == 45
    with runtime.database(cfg).session() as s:
        deadlines = {r.unit_code: r.deadline for r in s.scalars(select(Request).where(Request.cycle_id == info.id))}
    assert {deadlines[c] for c in communes} == {date(2026, 6, 5)} and date(2026, 6, 5).weekday() == 4
    assert deadlines["T11"] == date(2026, 6, 12)  # the province consolidates: chased for its own report

    log = drive(Mailbox(app), date(2026, 5, 25), date(2026, 6, 14))
    assert log == {
        date(2026, 6, 2): [reminder(c, 3) for c in communes],  # Tue: 3 working days before Fri
        date(2026, 6, 4): [reminder(c, 1) for c in communes],  # Thu
        date(2026, 6, 8): [overdue(c) for c in communes],  # Mon: the weekend is not a working day
        date(2026, 6, 9): [reminder("T11", 3)],  # the province's own report, due Fri 12/6
        # Wed: 3 working days after, one message for all 45; it leaves the province 2 working days.
        date(2026, 6, 10): [escalation("T11")],
        date(2026, 6, 11): [reminder("T11", 1)],
    }


# ----------------------------------------------------------------------------- Tết
TET_PLAN = DATA / "config_tet" / "plans" / "tet.toml"


@pytest.fixture
def tet_config(app, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # noqa: ANN001
    """A copy of config/ with a quarterly plan due in February 2027, when Tết falls."""
    directory = tmp_path / "config"
    shutil.copytree(runtime.config().directory, directory)
    shutil.copy(TET_PLAN, directory / "plans" / "tet.toml")
    monkeypatch.setenv("BAOCAO_CONFIG_DIR", str(directory))
    runtime.reset()
    cfg = runtime.config()
    assert cfg.directory == directory and "tet" in cfg.plans
    return cfg


def test_deadlines_and_stages_around_tet(app, tet_config):
    cal = tet_config.calendar
    # Tết 2027 (the `holidays` package): Thu 04/2 to Wed 10/2 are days off, Thu 11/2 is a working day.
    assert [d for d in days(date(2027, 2, 1), date(2027, 2, 12)) if not cal.is_working_day(d)] == [
        date(2027, 2, d) for d in range(4, 11)]
    info = open_and_send_requests("2027-Q1", "tet")
    with runtime.database(tet_config).session() as s:
        deadlines = {r.unit_code: r.deadline for r in s.scalars(select(Request).where(Request.cycle_id == info.id))}
    assert deadlines == {
        "X11074": date(2027, 2, 12),  # day 12 of the month before Q1's last: Fri 12/2, a working day
        "X11074-VHXH": date(2027, 2, 12),
        "X11074-VP": date(2027, 2, 12),
        "X11074-KT": date(2027, 2, 3),  # Mon 08/2 is in Tết: moved to the previous working day, Wed 03/2
        "X11074-TTHCC": date(2027, 2, 15),  # Mon 15/2
    }

    box = Mailbox(app)
    log = drive(box, date(2027, 1, 25), date(2027, 2, 22))
    assert log == {
        date(2027, 1, 29): [reminder("X11074-KT", 3)],  # Fri: 3 working days before Wed 03/2
        date(2027, 2, 2): sorted([reminder("X11074", 3), reminder("X11074-KT", 1), reminder("X11074-VHXH", 3),
                                  reminder("X11074-VP", 3)]),  # the commune's own: 3 working days before Fri 12/2
        date(2027, 2, 3): [reminder("X11074-TTHCC", 3)],  # 3 working days before Mon 15/2, across Tết
        # KT's escalation: 3 working days after 03/2 is Mon 15/2, after the commune's own deadline; the
        # last day leaving it 2 working days is 03/2, KT's deadline itself: so the first day after, Thu 11/2.
        date(2027, 2, 11): [escalation("X11074"), overdue("X11074-KT"), reminder("X11074", 1),
                            reminder("X11074-VHXH", 1), reminder("X11074-VP", 1)],
        date(2027, 2, 12): [reminder("X11074-TTHCC", 1)],  # Fri before a Monday deadline
        # VHXH and VP are due the commune's own day: escalated on the first working day after it.
        date(2027, 2, 15): [escalation("X11074"), overdue("X11074"), overdue("X11074-VHXH"), overdue("X11074-VP")],
        date(2027, 2, 16): [escalation("X11074"), overdue("X11074-TTHCC")],
    }
    # Working days are counted in the text too: Tết's days off are not "days left".
    (tthcc,) = box.by_day[date(2027, 2, 3)]
    assert "Hạn gửi báo cáo: ngày 15 tháng 02 năm 2027 (còn 3 ngày làm việc)." in tthcc.text
    assert tthcc.subject == ("Nhắc hạn: còn 3 ngày làm việc đến hạn gửi báo cáo quý I năm 2027 của "
                             "Trung tâm Phục vụ hành chính công xã Tứ Kỳ (hạn 15/02/2027)")
    # Each escalation is set off by a child reaching its escalation day, and lists every child whose
    # day has come and that is still not in: one message each time, none left out.
    escalations = {day: sent[0] for day, sent in box.by_day.items() if sent[0].kind == "escalation"}
    assert {day: e.subject for day, e in escalations.items()} == {
        date(2027, 2, 11): "Đề nghị chỉ đạo: 1 đơn vị trực thuộc Xã Tứ Kỳ quá hạn gửi báo cáo quý I năm 2027",
        date(2027, 2, 15): "Đề nghị chỉ đạo: 3 đơn vị trực thuộc Xã Tứ Kỳ quá hạn gửi báo cáo quý I năm 2027",
        date(2027, 2, 16): "Đề nghị chỉ đạo: 4 đơn vị trực thuộc Xã Tứ Kỳ quá hạn gửi báo cáo quý I năm 2027",
    }
    listed = {day: [c for c in TU_KY_DEPTS if f". {DEPT_NAMES[c]} — " in e.text] for day, e in escalations.items()}
    assert listed == {
        date(2027, 2, 11): ["X11074-KT"],
        date(2027, 2, 15): ["X11074-KT", "X11074-VHXH", "X11074-VP"],
        date(2027, 2, 16): list(TU_KY_DEPTS),
    }
    assert "Phòng Kinh tế xã Tứ Kỳ — hạn 03/02/2027, quá hạn 1 ngày làm việc" in escalations[date(2027, 2, 11)].text
    assert "Phòng Kinh tế xã Tứ Kỳ — hạn 03/02/2027, quá hạn 3 ngày làm việc" in escalations[date(2027, 2, 15)].text


def test_overdue_day_counts_across_tet(app, tet_config):
    """The notice that Wed 03/2's report is late, sent Thu 11/2, says 1 working day (not 8 calendar days)."""
    open_and_send_requests("2027-Q1", "tet")
    box = Mailbox(app)
    drive(box, date(2027, 2, 1), date(2027, 2, 10))
    chase_on(date(2027, 2, 11))
    (kt,) = [s for s in box.new() if s.unit == "X11074-KT"]
    assert kt.subject == ("Quá hạn 1 ngày làm việc: Phòng Kinh tế xã Tứ Kỳ chưa gửi báo cáo quý I năm 2027 "
                          "(hạn 03/02/2027)")
    assert "Hạn gửi là ngày 03 tháng 02 năm 2027; báo cáo đã quá hạn 1 ngày làm việc." in kt.text


def test_the_day_is_the_local_day_in_vietnam(app):
    """An instant is placed on Asia/Ho_Chi_Minh's calendar: 17:30 UTC on 27/5 is already Thu 28/5 there."""
    cfg = runtime.config()
    db = runtime.database(cfg)
    info = open_cycle(db, cfg, Period.parse("2026-H1"), "tu-ky")
    evening = pendulum.datetime(2026, 5, 27, 16, 30, tz="UTC")  # 23:30 on Wed 27/5 in Vietnam
    assert chase_cycle(db, cfg, info, evening, dry_run=True) == []
    after_midnight = pendulum.datetime(2026, 5, 27, 17, 30, tz="UTC")  # 00:30 on Thu 28/5
    actions = chase_cycle(db, cfg, info, after_midnight, dry_run=True)
    assert sorted((a.stage, a.unit) for a in actions) == [("before-3", c) for c in TU_KY_DEPTS]


# ----------------------------------------------------------------------------- who is chased
def test_a_submission_stops_the_chase_at_once(app):
    open_and_send_requests("2026-H1", "tu-ky")
    box = Mailbox(app)
    assert drive(box, date(2026, 5, 28), date(2026, 5, 31)) == {
        date(2026, 5, 28): [reminder(c, 3) for c in TU_KY_DEPTS]}
    # VP replies on Mon 01/6 at 07:00, before that morning's chase: it gets no before-1.
    outcome = submit(app, "X11074-VP", at(date(2026, 6, 1), 7, 0))
    assert outcome.status == "accepted", outcome.units[0].problems
    # KT replies late, on Thu 04/6, after its overdue notice and Wednesday's escalation: nothing more after.
    log = drive(box, date(2026, 6, 1), date(2026, 6, 3))
    assert submit(app, "X11074-KT", at(date(2026, 6, 4), 10, 0)).status == "accepted"
    assert request_state("X11074-KT")[0] == "late"
    log |= drive(box, date(2026, 6, 4), date(2026, 6, 15))
    assert log == with_commune({
        date(2026, 6, 1): [reminder(c, 1) for c in ("X11074-KT", "X11074-TTHCC", "X11074-VHXH")],
        # Wed 03/6: KT has not sent yet, so it is in the escalation (sent with the overdue notices).
        date(2026, 6, 3): [escalation("X11074")] + [overdue(c) for c in ("X11074-KT", "X11074-TTHCC", "X11074-VHXH")],
    }, start=date(2026, 6, 1))
    chase_on(date(2026, 6, 8), 17, 0)
    assert box.new() == []


def test_escalation_lists_only_the_children_still_overdue(app):
    open_and_send_requests("2026-H1", "tu-ky")
    submit(app, "X11074-VP", at(date(2026, 6, 2), 15, 0))  # on time, on the deadline day
    submit(app, "X11074-KT", at(date(2026, 6, 4), 10, 0))  # late, before the escalation
    box = Mailbox(app)
    drive(box, date(2026, 6, 1), date(2026, 6, 2))
    chase_on(date(2026, 6, 3))
    (esc,) = [s for s in box.new() if s.kind == "escalation"]
    assert esc.row == escalation("X11074")
    assert esc.subject == "Đề nghị chỉ đạo: 2 đơn vị trực thuộc Xã Tứ Kỳ quá hạn gửi báo cáo 6 tháng đầu năm 2026"
    assert "1. Trung tâm Phục vụ hành chính công xã Tứ Kỳ — hạn 02/6/2026, quá hạn 1 ngày" in esc.text
    assert "2. Phòng Văn hóa - Xã hội xã Tứ Kỳ — hạn 02/6/2026, quá hạn 1 ngày" in esc.text
    assert DEPT_NAMES["X11074-VP"] not in esc.text and DEPT_NAMES["X11074-KT"] not in esc.text


def test_an_exempt_unit_is_never_chased(app):
    open_and_send_requests("2026-H1", "tu-ky")
    cfg = runtime.config()
    exempt(runtime.database(cfg), cfg, "X11074-TTHCC", "2026-H1", "Đơn vị mới thành lập, chưa phát sinh số liệu",
           actor="vhxh-tuky")
    box = Mailbox(app)
    log = drive(box, date(2026, 5, 19), date(2026, 6, 15))
    others = ("X11074-KT", "X11074-VHXH", "X11074-VP")
    assert log == with_commune({
        date(2026, 5, 28): [reminder(c, 3) for c in others],
        date(2026, 6, 1): [reminder(c, 1) for c in others],
        date(2026, 6, 3): [escalation("X11074")] + [overdue(c) for c in others],
    })
    assert not any(coord("X11074-TTHCC") in m.rcpt_tos or head("X11074-TTHCC") in m.rcpt_tos
                   for m in app.smtp.messages if m.message["X-Baocao-Kind"] in CHASE_KINDS)
    (esc,) = [s for s in box.by_day[date(2026, 6, 3)] if s.kind == "escalation"]
    assert esc.subject == "Đề nghị chỉ đạo: 3 đơn vị trực thuộc Xã Tứ Kỳ quá hạn gửi báo cáo 6 tháng đầu năm 2026"
    assert DEPT_NAMES["X11074-TTHCC"] not in esc.text


def test_a_rejected_unit_is_chased_with_the_reason(app):
    open_and_send_requests("2026-H1", "tu-ky")
    outcome = submit(app, "X11074-VHXH", at(date(2026, 5, 29), 9, 0), mistake="relation")
    assert outcome.status == "rejected"
    state, reason = request_state("X11074-VHXH")
    assert state == "rejected" and reason
    box = Mailbox(app)
    chase_on(date(2026, 6, 1))
    (vhxh,) = [s for s in box.new() if s.unit == "X11074-VHXH"]
    assert vhxh.row == reminder("X11074-VHXH", 1)
    assert f"Báo cáo đơn vị gửi trước đó chưa được tiếp nhận vì: {reason}" in vhxh.text
    assert html.escape(reason, quote=False) in vhxh.html or html.escape(reason) in vhxh.html
    chase_on(date(2026, 6, 3))
    sent = box.new()
    (vhxh,) = [s for s in sent if s.unit == "X11074-VHXH"]
    assert vhxh.row == overdue("X11074-VHXH")
    assert f"Báo cáo đơn vị gửi trước đó chưa được tiếp nhận vì: {reason}" in vhxh.text
    (esc,) = [s for s in sent if s.kind == "escalation"]
    line = next(ln for ln in esc.text.splitlines() if DEPT_NAMES["X11074-VHXH"] in ln)
    assert "báo cáo đã gửi chưa được tiếp nhận" in line
    assert all("chưa được tiếp nhận" not in ln for ln in esc.text.splitlines() if DEPT_NAMES["X11074-KT"] in ln)


def test_a_returned_unit_is_chased_again_with_the_reason(app):
    open_and_send_requests("2026-H1", "tu-ky")
    assert submit(app, "X11074-KT", at(date(2026, 5, 29), 9, 0)).status == "accepted"
    box = Mailbox(app)
    chase_on(date(2026, 6, 1))
    assert "X11074-KT" not in {s.unit for s in box.new()}  # accepted: no before-1
    cfg = runtime.config()
    reason = "Số hội nghị trực tuyến <60%> chưa khớp với sổ theo dõi; đề nghị rà soát lại"
    return_submission(runtime.database(cfg), cfg, "X11074-KT", "2026-H1", reason, actor="vhxh-tuky")
    assert request_state("X11074-KT") == ("returned", reason)
    chase_on(date(2026, 6, 3))
    (kt,) = [s for s in box.new() if s.unit == "X11074-KT"]
    assert kt.row == overdue("X11074-KT")
    assert f"Báo cáo đơn vị gửi trước đó chưa được tiếp nhận vì: {reason}" in kt.text
    assert html.escape(reason, quote=False) in kt.html and "<60%>" not in kt.html  # escaped in HTML


def test_a_unit_returned_after_its_overdue_notice_is_chased_again_once_from_the_next_day(app):
    open_and_send_requests("2026-H1", "tu-ky")
    box = Mailbox(app)
    chase_on(date(2026, 6, 3))  # deadline 02/6: the overdue notice goes
    assert overdue("X11074-KT") in [s.row for s in box.new()]
    assert submit(app, "X11074-KT", at(date(2026, 6, 4), 9, 0)).status == "accepted"  # late, accepted
    cfg = runtime.config()
    reason = "Số liệu hội nghị chưa khớp với sổ theo dõi"
    return_submission(runtime.database(cfg), cfg, "X11074-KT", "2026-H1", reason, actor="vhxh-tuky",
                      at=at(date(2026, 6, 8), 10, 0))
    chase_on(date(2026, 6, 8), 17)  # the day of the return: the returned notice is enough
    assert "X11074-KT" not in {s.unit for s in box.new() if s.row[0] in ("overdue", "reminder")}
    chase_on(date(2026, 6, 9))
    (kt,) = [s for s in box.new() if s.unit == "X11074-KT"]
    assert kt.row == ("overdue", "overdue-1/r20260608", "X11074-KT", (coord("X11074-KT"),), (head("X11074-KT"),))
    assert f"Báo cáo đơn vị gửi trước đó chưa được tiếp nhận vì: {reason}" in kt.text
    chase_on(date(2026, 6, 9), 17)
    chase_on(date(2026, 6, 10))
    assert "X11074-KT" not in {s.unit for s in box.new()}  # once per return, not every day


# ----------------------------------------------------------------------------- a flow that did not run
def test_after_days_without_a_run_only_the_latest_stage_goes(app):
    open_and_send_requests("2026-H1", "tu-ky")
    box = Mailbox(app)
    # Nothing ran on Thu 28/5 (before-3): on Mon 01/6 only before-1 goes, once per unit.
    log = drive(box, date(2026, 6, 1), date(2026, 6, 1))
    # Nothing ran from Tue 02/6 to Thu 04/6: on Fri 05/6 the overdue notice (its only stage) and the
    # escalation go, and no reminder to the departments (their deadline has passed); the commune, due
    # that day, gets its before-1 only (not the before-3 it missed).
    log |= drive(box, date(2026, 6, 5), date(2026, 6, 15))
    assert log == {
        date(2026, 6, 1): [reminder(c, 1) for c in TU_KY_DEPTS],
        date(2026, 6, 5): sorted([escalation("X11074"), reminder("X11074", 1)] + [overdue(c) for c in TU_KY_DEPTS]),
        date(2026, 6, 8): [overdue("X11074")],
    }
    with runtime.database(runtime.config()).session() as s:
        stages = sorted(s.scalars(select(OutboxMessage.stage).where(OutboxMessage.kind.in_(CHASE_KINDS))))
    assert stages == ["before-1"] * 5 + ["escalate-3"] + ["overdue-1"] * 5


def test_first_run_after_the_deadline_sends_no_reminder(app):
    open_and_send_requests("2026-H1", "tu-ky")
    box = Mailbox(app)
    log = drive(box, date(2026, 6, 3), date(2026, 6, 10))
    assert log == {date(2026, 6, 3): sorted([escalation("X11074"), reminder("X11074", 3)]
                                            + [overdue(c) for c in TU_KY_DEPTS]),
                   date(2026, 6, 4): [reminder("X11074", 1)], date(2026, 6, 8): [overdue("X11074")]}


def test_with_several_stages_of_a_kind_a_late_run_owes_only_the_latest(app):
    """Tứ Kỳ's policy with more stages (before 5/3/1, overdue 1/5): what is owed on a day, given what went."""
    cfg = runtime.config()
    db = runtime.database(cfg)
    info = open_cycle(db, cfg, Period.parse("2026-H1"), "tu-ky")
    plan = dataclasses.replace(cfg.plan("tu-ky"), reminders=ReminderPolicy(before=(5, 3, 1), overdue=(1, 5),
                                                                           escalate=(3,)))
    reqs = requests_of(db, info.id)

    def owed(day: date, sent: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
        return sorted({(a.kind, a.stage) for a in plan_actions(cfg, plan, info, reqs, day, set(sent), set())})

    assert owed(date(2026, 5, 25)) == []
    assert owed(date(2026, 5, 26)) == [("reminder", "before-5")]  # Tue, 5 working days before Tue 02/6
    # The departments' before-5 missed: not sent any more (the commune's, due Fri 05/6, comes that day).
    assert owed(date(2026, 5, 29)) == [("reminder", "before-3"), ("reminder", "before-5")]
    assert owed(date(2026, 6, 2)) == [("reminder", "before-1"), ("reminder", "before-3")]
    assert owed(date(2026, 6, 8)) == [("escalation", "escalate-3"), ("overdue", "overdue-1")]
    # The departments' overdue-5, not overdue-1 again; the commune's overdue-1.
    assert owed(date(2026, 6, 9)) == [("escalation", "escalate-3"), ("overdue", "overdue-1"), ("overdue", "overdue-5")]
    keys = {a.key for a in plan_actions(cfg, plan, info, reqs, date(2026, 6, 3), set(), set()) if a.kind == "overdue"}
    assert len(keys) == 4 and all(k.endswith("/overdue/overdue-1") for k in keys)
    assert owed(date(2026, 6, 5), frozenset(keys)) == [("escalation", "escalate-3"), ("reminder", "before-1")]


# ----------------------------------------------------------------------------- tasks of the appendix
def test_overdue_notice_names_the_units_overdue_tasks(app):
    """Seed 001 line 181, task 1: "... Phòng Văn hóa - Xã hội (VHXH)\tCác phòng, đơn vị\tKế hoạch triển khai\t
    Trước 10/5/2026". 10/5/2026 is a Sunday: the notice shows the plan's words and the date that counts
    (issue 19 point 4)."""
    cfg = runtime.config()
    db = runtime.database(cfg)
    import_appendix(db, cfg, cfg.directory / "appendices" / "nhi-chieu.txt", "nhi-chieu", 2026)
    # Departments due Tue 02/6/2026: 3 working days before the ward's 05/6, the national plan's day for
    # Hải Phòng's wards, earlier than KH 158's "trước ngày 10 tháng 6" (issue 19 point 2).
    open_and_send_requests("2026-H1", "nhi-chieu")
    box = Mailbox(app)
    assert date(2026, 6, 3) not in drive(box, date(2026, 5, 27), date(2026, 6, 2))
    chase_on(date(2026, 6, 3))  # Wed: overdue-1
    sent = {s.unit: s for s in box.new()}
    vhxh = sent["X10714-VHXH"]
    assert vhxh.row == overdue("X10714-VHXH")
    task1 = ("- Nhiệm vụ 1: Xây dựng, ban hành kế hoạch của UBND phường đảm bảo thực hiện các nhiệm vụ, "
             "giải pháp tại Kế hoạch của UBND thành phố. (thời hạn: Trước 10/5/2026 "
             "(ngày 10/5/2026 là Chủ nhật; hạn tính đến ngày 08/5/2026))")
    assert "Nhiệm vụ được giao đã quá thời hạn nhưng chưa báo cáo hoàn thành:" in vhxh.text
    assert task1 in vhxh.text.splitlines()
    assert "<li>Nhiệm vụ 1: Xây dựng, ban hành kế hoạch" in vhxh.html
    # Task 4 (lead VHXH, "Quý II/2026" = 30/6) is not due yet; recurring tasks have no due date.
    assert "Nhiệm vụ 4:" not in vhxh.text and "Nhiệm vụ 2:" not in vhxh.text


def test_a_task_reported_done_is_not_mentioned_again(app):
    """Task 1 reported done in the accepted H1 report: the year's overdue notice lists task 4, not task 1."""
    cfg = runtime.config()
    db = runtime.database(cfg)
    import_appendix(db, cfg, cfg.directory / "appendices" / "nhi-chieu.txt", "nhi-chieu", 2026)
    open_and_send_requests("2026-H1", "nhi-chieu")
    outcome = submit(app, "X10714-VHXH", at(date(2026, 6, 1), 9, 0), task_status={1: "done", 4: "in_progress"})
    assert outcome.status == "accepted", outcome.units[0].problems
    open_and_send_requests("2026-Y", "nhi-chieu")  # departments due Tue 01/12/2026 (the ward: Fri 04/12)
    box = Mailbox(app)
    chase_on(date(2026, 12, 2))  # overdue-1 of the year's report
    (vhxh,) = [s for s in box.new() if s.unit == "X10714-VHXH"]
    assert vhxh.row == overdue("X10714-VHXH") and "báo cáo năm 2026 (hạn 01/12/2026)" in vhxh.subject
    assert "- Nhiệm vụ 4: Ban hành văn bản về việc thực hiện kỷ luật" in vhxh.text  # due 30/6, still in progress
    assert "Nhiệm vụ 1:" not in vhxh.text


# ----------------------------------------------------------------------------- the CLI
def test_cli_dry_run_shows_what_would_go_to_whom_and_sends_nothing(app, monkeypatch: pytest.MonkeyPatch):
    from flows import cli

    monkeypatch.setattr(cli.console, "width", 250)  # a wide terminal: one table row per line
    open_and_send_requests("2026-H1", "tu-ky")
    requests_sent = len(app.smtp.messages)
    result = CliRunner().invoke(cli.app, ["chase", "--as-of", "2026-06-05T08:30", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "would send on 05/06/2026" in result.output
    lines = result.output.splitlines()

    def line_of(stage: str, unit: str) -> str:
        (line,) = [ln for ln in lines if f" {stage} " in ln and f" {unit} " in ln]
        return line

    for code in TU_KY_DEPTS:
        line = line_of("overdue-1", code)
        assert coord(code) in line and head(code) in line and "2026-H1 tu-ky" in line
        assert "3 working day(s) past the deadline 02/06/2026" in line  # the rule, for the operator
    esc = line_of("escalate-3", "X11074")
    assert coord("X11074") in esc and head("X11074") in esc
    assert "children still not in: " + ", ".join(TU_KY_DEPTS) in esc
    assert "; 0 working" in esc  # the parent's own deadline is today: the operator sees why it is late
    # The departments' deadline has passed; the commune, due today, is reminded of its own report.
    assert not any(" before-" in ln and f" {c} " in ln for ln in lines for c in TU_KY_DEPTS)
    assert "0 working day(s) before the deadline 05/06/2026" in line_of("before-1", "X11074")
    # Nothing was sent, queued or recorded.
    assert len(app.smtp.messages) == requests_sent
    with runtime.database(runtime.config()).session() as s:
        assert s.scalars(select(OutboxMessage).where(OutboxMessage.kind.in_(CHASE_KINDS))).all() == []
        assert s.scalars(select(AuditEvent).where(AuditEvent.action == "escalated")).all() == []
    # The real run sends exactly what the dry run showed.
    box = Mailbox(app)
    chase_on(date(2026, 6, 5))
    assert [s.row for s in box.new()] == sorted([escalation("X11074"), reminder("X11074", 1)]
                                                + [overdue(c) for c in TU_KY_DEPTS])
