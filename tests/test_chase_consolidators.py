"""A consolidator is chased for its own report; its parent counts it only when that report is in; an
escalation leaves the parent time to act (issue 20 §1, issue 21 point 4).

Real parts throughout: the cycle is opened and its requests sent over SMTP to the loopback server, the
chase runs day by day with `as_of` (as tests/test_reminders.py does), and what counts is the mail as
the SMTP server received it and the parent's report as rendered.

Lai Châu's national cycle (2026-H1): Văn phòng UBND tỉnh Lai Châu (T12-VPUB) consolidates its six
rooms (due Tue 02/6) and is due Fri 05/6 itself; the province (T12) is due Fri 12/6. So the office
gets before-3 on Tue 02/6, before-1 on Thu 04/6, overdue-1 on Mon 08/6, and is escalated to the
province on Wed 10/6 (3 working days after its deadline, which leaves the province 2 working days).
"""

from __future__ import annotations

import io
import shutil
from datetime import date
from pathlib import Path

import docx
import pytest
from sqlalchemy import select

from baocao import runtime
from baocao.consolidation.reporting import figures_for, render
from baocao.rules.config import check, load_config
from baocao.rules.escalation import escalation_day, parent_days_left, policy_warnings
from baocao.store.db import Request
from baocao.store.queries import set_state
from baocao.store.states import RequestState
from tests.support.chasing import Mailbox, at, chase_on, coord, drive, head, open_and_send_requests, submit

OFFICE = "T12-VPUB"
OFFICE_NAME = "Văn phòng UBND tỉnh Lai Châu"
ROOMS = ("T12-VPUB-HCQT", "T12-VPUB-TH", "T12-VPUB-KT", "T12-VPUB-KGVX", "T12-VPUB-NC", "T12-VPUB-TTCB")


def issue(unit: str, when_day: date, *, on_time: bool) -> None:
    """What the issuing step does when a unit's report is issued (or made): its request is accepted."""
    cfg = runtime.config()
    with runtime.database(cfg).session() as s:
        req = s.scalars(select(Request).where(Request.unit_code == unit)).one()
        when = at(when_day, 10, 0)
        set_state(s, req, RequestState.ACCEPTED, at=when, accepted_at=when, on_time=on_time)


def office_rows(log: dict[date, list[tuple]]) -> dict[date, list[tuple]]:
    """What the office received: its own chase and the escalation of its rooms."""
    out = {d: [r for r in rows if r[2] == OFFICE] for d, rows in log.items()}
    return {d: rows for d, rows in out.items() if rows}


# ----------------------------------------------------------------------------- chased until issued
@pytest.mark.slow
def test_a_consolidator_is_chased_for_its_own_report_until_it_is_issued(app):
    open_and_send_requests("2026-H1", "national", root="T12")
    for room in ROOMS[:-1]:  # five rooms on time; Trung tâm Thông tin - Công báo never
        assert submit(app, room, at(date(2026, 6, 1), 9, 0)).status == "accepted"
    box = Mailbox(app)
    log = drive(box, date(2026, 5, 25), date(2026, 6, 8))
    assert office_rows(log) == {
        date(2026, 6, 2): [("reminder", "before-3", OFFICE, (coord(OFFICE),), ())],
        # Its room due 02/6 and not in: escalated to the office on 03/6, 2 working days before the office's 05/6.
        date(2026, 6, 3): [("escalation", "escalate-3", OFFICE, (coord(OFFICE),), (head(OFFICE),))],
        date(2026, 6, 4): [("reminder", "before-1", OFFICE, (coord(OFFICE),), ())],
        date(2026, 6, 8): [("overdue", "overdue-1", OFFICE, (coord(OFFICE),), (head(OFFICE),))],
    }
    (before3,) = [s for s in box.by_day[date(2026, 6, 2)] if s.unit == OFFICE]
    assert before3.subject == ("Nhắc hạn: còn 3 ngày làm việc đến hạn gửi báo cáo tổng hợp 6 tháng đầu năm 2026 "
                               f"của {OFFICE_NAME} (hạn 05/6/2026)")
    assert (f"Báo cáo tổng hợp kết quả thực hiện Kết luận số 226-KL/TW 6 tháng đầu năm 2026 của {OFFICE_NAME} "
            "chưa được ban hành, gửi.") in before3.text
    assert "Đã nhận báo cáo của 5/6 đơn vị trực thuộc; chưa nhận: Trung tâm Thông tin - Công báo." in before3.text
    assert "biểu mẫu .xlsx" not in before3.text  # it owes a report, not a form
    (late,) = [s for s in box.by_day[date(2026, 6, 8)] if s.unit == OFFICE]
    assert late.subject == ("Quá hạn 1 ngày làm việc: báo cáo tổng hợp 6 tháng đầu năm 2026 của "
                            f"{OFFICE_NAME} chưa được ban hành, gửi (hạn 05/6/2026)")
    assert "báo cáo đã quá hạn 1 ngày làm việc" in late.text

    issue(OFFICE, date(2026, 6, 9), on_time=False)  # issued late, on Tue 09/6
    later = drive(box, date(2026, 6, 9), date(2026, 6, 30))
    assert office_rows(later) == {}
    (esc,) = [s for s in box.by_day[date(2026, 6, 10)] if s.kind == "escalation"]
    assert esc.unit == "T12" and OFFICE_NAME not in esc.text  # its report is in: not escalated


@pytest.mark.slow
def test_a_consolidator_not_issued_is_escalated_to_its_parent_as_a_consolidated_report(app):
    open_and_send_requests("2026-H1", "national", root="T12")
    for room in ROOMS:
        assert submit(app, room, at(date(2026, 6, 1), 9, 0)).status == "accepted"
    box = Mailbox(app)
    chase_on(date(2026, 6, 10))  # Wed: 3 working days after 05/6, 2 before the province's Fri 12/6
    (esc,) = [s for s in box.new() if s.kind == "escalation"]
    assert esc.row == ("escalation", "escalate-3", "T12", (coord("T12"),), (head("T12"),))
    line = next(ln for ln in esc.text.splitlines() if ln.split(". ", 1)[-1].startswith(OFFICE_NAME))
    assert line.endswith(f"{OFFICE_NAME} — hạn 05/6/2026, quá hạn 3 ngày làm việc; báo cáo tổng hợp của "
                         f"{OFFICE_NAME} chưa được ban hành, gửi.")
    # Who asks, and the parent's own deadline: time left to act, not a reprimand from the ministry.
    assert "Bộ Nội vụ" not in esc.text and "Bộ Nội vụ" not in esc.html
    assert "(hạn ngày 12 tháng 6 năm 2026, còn 2 ngày làm việc)" in esc.text
    assert "đề nghị Ủy ban nhân dân tỉnh Lai Châu chỉ đạo các đơn vị trên" in esc.text


# ----------------------------------------------------------------------------- the parent's report
def _report_text(cycle, as_of_day: date) -> str:  # noqa: ANN001
    cfg = runtime.config()
    figures = figures_for(runtime.database(cfg), cfg, cycle, at(as_of_day, 12, 0))
    rendered = render(cfg, cycle, "T12", figures, as_of_day, tasks=None, correction_of=None)
    printed = "\n".join(p.text for p in docx.Document(io.BytesIO(rendered.docx)).paragraphs)
    assert printed  # the Word file says what the email says
    return rendered.text + "\n" + printed


@pytest.mark.slow
def test_the_parent_counts_a_consolidating_child_only_when_its_report_is_issued_and_lists_it_late(app):
    cycle = open_and_send_requests("2026-H1", "national", root="T12")
    for room in ROOMS:  # every room of the office on time: the office's forms are all in
        assert submit(app, room, at(date(2026, 6, 1), 9, 0)).status == "accepted"

    # Its report is not issued: not reported, however many of its forms are in (the figures still count them).
    before = _report_text(cycle, date(2026, 6, 15))
    assert "Đã nhận báo cáo của 0/38 xã, phường và 0/1 sở, ngành;" in before
    assert "(tính đến từng cơ quan, đơn vị lập biểu: 6/44 cơ quan, đơn vị đã gửi)" in before
    assert "Chưa gửi báo cáo (38/38 xã, phường và 1/1 sở, ngành)" in before
    assert "Gửi báo cáo trễ hạn" not in before

    issue(OFFICE, date(2026, 6, 9), on_time=False)  # issued four days after its deadline
    after = _report_text(cycle, date(2026, 6, 15))
    assert "Đã nhận báo cáo của 0/38 xã, phường và 1/1 sở, ngành; gửi đúng hạn: 0/38 xã, phường và 0/1 sở, ngành" \
        in after
    assert "Chưa gửi báo cáo (38/38 xã, phường):" in after
    assert f"Gửi báo cáo trễ hạn (1/1 sở, ngành): {OFFICE_NAME}." in after


# ----------------------------------------------------------------------------- the timing rule
def test_escalation_day_leaves_the_parent_its_working_days(app):
    cal = runtime.config().calendar
    # Fri 05/6/2026 due, parent Fri 12/6: 3 working days after (over the weekend) is Wed 10/6, 2 before 12/6.
    assert escalation_day(cal, date(2026, 6, 5), 3, date(2026, 6, 12), 2) == date(2026, 6, 10)
    assert parent_days_left(cal, date(2026, 6, 10), date(2026, 6, 12)) == 2
    # The parent's own Friday deadline: Tue 02/6 due + 3 = Fri 05/6 is moved back to Wed 03/6.
    assert escalation_day(cal, date(2026, 6, 2), 3, date(2026, 6, 5), 2) == date(2026, 6, 3)
    # Never before the unit's deadline has passed: due the same day as the parent, the first working day
    # after it (Mon 08/6), although that leaves the parent nothing (config check warns).
    assert escalation_day(cal, date(2026, 6, 5), 3, date(2026, 6, 5), 2) == date(2026, 6, 8)
    assert parent_days_left(cal, date(2026, 6, 8), date(2026, 6, 5)) < 0
    # An offset of 0 (the deadline day itself) is still the day after.
    assert escalation_day(cal, date(2026, 6, 5), 0, None, 2) == date(2026, 6, 8)
    # No parent in the cycle: the plan's offset alone.
    assert escalation_day(cal, date(2026, 6, 5), 3, None, 2) == date(2026, 6, 10)
    # Across Tết 2026 (Mon 16/2 to Fri 20/2 off): due Fri 13/2, parent Thu 26/2: +3 is Wed 25/2, but 2
    # working days before 26/2 is Tue 24/2.
    assert escalation_day(cal, date(2026, 2, 13), 3, date(2026, 2, 26), 2) == date(2026, 2, 24)
    assert escalation_day(cal, date(2026, 2, 13), 1, date(2026, 2, 26), 2) == date(2026, 2, 23)
    # A Saturday worked back (làm bù, Sat 10/01/2026) is a working day: due Fri 09/1, +1 is Sat 10/1.
    assert escalation_day(cal, date(2026, 1, 9), 1, None, 2) == date(2026, 1, 10)


def test_config_check_warns_when_a_plan_cannot_leave_the_parent_its_days(app, tmp_path: Path):
    cfg = runtime.config()
    assert policy_warnings(cfg.plans.values(), cfg.hierarchy, cfg.calendar, 2026) == []  # the shipped plans can
    directory = tmp_path / "config"
    shutil.copytree(cfg.directory, directory)
    plan = directory / "plans" / "tu-ky.toml"
    text = plan.read_text(encoding="utf-8")
    assert "department = { before_parent_working_days = 3 }" in text
    plan.write_text(text.replace("department = { before_parent_working_days = 3 }",
                                 "department = { before_parent_working_days = 1 }"), encoding="utf-8")
    warnings = [w for w in check(load_config(directory), 2026) if "escalate_before_parent" in w]
    (h1,) = [w for w in warnings if "6 tháng đầu năm 2026" in w]
    assert h1.startswith(f"{plan}: reminders.escalate_before_parent = 2: báo cáo 6 tháng đầu năm 2026, ")
    assert "Phòng Kinh tế xã Tứ Kỳ" in h1 and "(hạn 04/6/2026) báo cáo lên Xã Tứ Kỳ (hạn 05/6/2026)" in h1
    assert "sớm nhất là ngày 05/6/2026" in h1 and "chỉ còn 0 ngày làm việc trước hạn của cấp trên (cần 2)" in h1
    # Asking for fewer days makes the same plan acceptable (another directory: loaded configs are cached).
    other = shutil.copytree(directory, tmp_path / "config-0")
    plan = other / "plans" / "tu-ky.toml"
    text = plan.read_text(encoding="utf-8")
    assert "\nescalate_before_parent = 2\n" in text  # the plan files say it
    plan.write_text(text.replace("\nescalate_before_parent = 2\n", "\nescalate_before_parent = 0\n"), encoding="utf-8")
    assert load_config(other).plan("tu-ky").reminders.escalate_before_parent == 0
    assert not [w for w in check(load_config(other), 2026) if "escalate_before_parent" in w]


# ----------------------------------------------------------------------------- what a clerk receives
def test_each_stage_has_its_own_subject_and_a_reminder_carries_the_form_again(app):
    open_and_send_requests("2026-H1", "tu-ky")
    request = next(m.message for m in app.smtp.messages
                   if m.message["X-Baocao-Kind"] == "request" and coord("X11074-KT") in m.rcpt_tos)
    (form,) = list(request.iter_attachments())
    chase_on(date(2026, 5, 28))
    chase_on(date(2026, 6, 3))
    got = {(m.message["X-Baocao-Kind"], str(m.message["X-Baocao-Unit"])): m.message for m in app.smtp.messages
           if m.message["X-Baocao-Kind"] in ("reminder", "overdue", "escalation")}
    subjects = {kind: str(got[kind, unit]["Subject"]) for kind, unit in
                (("reminder", "X11074-KT"), ("overdue", "X11074-KT"), ("escalation", "X11074"))}
    assert subjects == {
        "reminder": "Nhắc hạn: còn 3 ngày làm việc đến hạn gửi báo cáo 6 tháng đầu năm 2026 của Phòng Kinh tế "
                    "xã Tứ Kỳ (hạn 02/6/2026)",
        "overdue": "Quá hạn 1 ngày làm việc: Phòng Kinh tế xã Tứ Kỳ chưa gửi báo cáo 6 tháng đầu năm 2026 "
                   "(hạn 02/6/2026)",
        "escalation": "Đề nghị chỉ đạo: 4 đơn vị trực thuộc Xã Tứ Kỳ quá hạn gửi báo cáo 6 tháng đầu năm 2026",
    }
    for kind in ("reminder", "overdue"):  # the same file the request carried, byte for byte
        (again,) = list(got[kind, "X11074-KT"].iter_attachments())
        assert again.get_filename() == form.get_filename()
        assert again.get_content() == form.get_content()
        assert "iểu mẫu của đơn vị được gửi lại kèm theo thư này" in got[kind, "X11074-KT"].get_body(
            ("plain",)).get_content()
    assert list(got["escalation", "X11074"].iter_attachments()) == []
