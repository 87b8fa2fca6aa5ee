"""The `chase` flow against a real Prefect API, a real SMTP server on loopback and SQLite.

The Tứ Kỳ cycle (2026-H1) is opened with the `open-period` flow and then the `chase` flow runs once
a day, with `as_of`, from the day the period opens to the departments' lock date. The departments
are due Tue 02/6/2026 (3 working days before the commune's Fri 05/6), escalated to the commune on
Wed 03/6 (the last day that leaves it 2 working days before its own deadline); the commune X11074
consolidates and is chased for its own report. See tests/test_reminders.py for weekends, Tết, submissions,
exemptions, returns and the CLI.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import pendulum
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import Artifact
from sqlalchemy import select

from baocao import runtime
from baocao.mail.mime import message_id_for
from baocao.store.db import OutboxMessage
from flows.chase import chase
from flows.open_period import open_period

pytestmark = pytest.mark.usefixtures("prefect_api")

TZ = "Asia/Ho_Chi_Minh"
CHASE_KINDS = ("reminder", "overdue", "escalation")
DEPTS = {
    "X11074-KT": "Phòng Kinh tế xã Tứ Kỳ",
    "X11074-TTHCC": "Trung tâm Phục vụ hành chính công xã Tứ Kỳ",
    "X11074-VHXH": "Phòng Văn hóa - Xã hội xã Tứ Kỳ",
    "X11074-VP": "Văn phòng HĐND và UBND xã Tứ Kỳ",
}


def at(day: date, hour: int = 8, minute: int = 30) -> datetime:
    return pendulum.datetime(day.year, day.month, day.day, hour, minute, tz=TZ)


def coord(code: str) -> str:
    return f"daumoi.{code.lower()}@donvi.example"


def head(code: str) -> str:
    return f"lanhdao.{code.lower()}@donvi.example"


class Mailbox:
    """The chase messages the SMTP server received since the last look, as comparable rows."""

    def __init__(self, app) -> None:  # noqa: ANN001
        self.app = app
        self.seen = 0

    def new(self) -> list[tuple]:
        msgs = self.app.smtp.messages
        fresh, self.seen = msgs[self.seen:], len(msgs)
        with runtime.database(runtime.config()).session() as s:
            stages = {message_id_for(r.key): r.stage for r in s.scalars(select(OutboxMessage))}
        rows = []
        for m in fresh:
            msg = m.message
            if msg["X-Baocao-Kind"] not in CHASE_KINDS:
                continue
            rows.append((str(msg["X-Baocao-Kind"]), stages[m.message_id], str(msg["X-Baocao-Unit"]),
                         tuple(a.addr_spec for a in msg["To"].addresses),
                         tuple(a.addr_spec for a in msg["Cc"].addresses) if msg["Cc"] else (),
                         str(msg["Subject"])))
        return sorted(rows)


def reminder(code: str, n: int) -> tuple:
    return ("reminder", f"before-{n}", code, (coord(code),), (),
            f"Nhắc hạn: còn {n} ngày làm việc đến hạn gửi báo cáo 6 tháng đầu năm 2026 của {DEPTS[code]} "
            "(hạn 02/6/2026)")


def overdue(code: str) -> tuple:
    return ("overdue", "overdue-1", code, (coord(code),), (head(code),),
            f"Quá hạn 1 ngày làm việc: {DEPTS[code]} chưa gửi báo cáo 6 tháng đầu năm 2026 (hạn 02/6/2026)")


def escalation(n_children: int) -> tuple:
    return ("escalation", "escalate-3", "X11074", (coord("X11074"),), (head("X11074"),),
            f"Đề nghị chỉ đạo: {n_children} đơn vị trực thuộc Xã Tứ Kỳ quá hạn gửi báo cáo 6 tháng đầu năm 2026")


def commune_reminder(n: int) -> tuple:
    """The commune's own consolidated report, due Fri 05/6."""
    return ("reminder", f"before-{n}", "X11074", (coord("X11074"),), (),
            f"Nhắc hạn: còn {n} ngày làm việc đến hạn gửi báo cáo tổng hợp 6 tháng đầu năm 2026 của Xã Tứ Kỳ "
            "(hạn 05/6/2026)")


def commune_overdue() -> tuple:
    return ("overdue", "overdue-1", "X11074", (coord("X11074"),), (head("X11074"),),
            "Quá hạn 1 ngày làm việc: báo cáo tổng hợp 6 tháng đầu năm 2026 của Xã Tứ Kỳ chưa được ban hành, gửi "
            "(hạn 05/6/2026)")


def chase_artifact(flow_run_id) -> list[dict]:  # noqa: ANN001
    """The rows of the "chase-actions" table artifact this flow run created (exactly one).

    The API's /artifacts/filter is called directly: prefect 3.8's `read_artifacts` sends null for the
    flow-run and task-run filters it is not given (refused with 422), and an empty task-run filter
    leaves out the artifacts a flow creates outside any task.
    """
    with get_client(sync_client=True) as client:
        response = client.request("POST", "/artifacts/filter", json={
            "artifacts": {"key": {"any_": ["chase-actions"]}, "flow_run_id": {"any_": [str(flow_run_id)]}},
            "limit": 10, "offset": 0, "sort": "CREATED_DESC"})
    (artifact,) = Artifact.model_validate_list(response.json())
    assert artifact.type == "table"
    return json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data


@pytest.mark.slow
def test_tu_ky_cycle_day_by_day(app):
    """Exactly which messages reach SMTP on which day, a run each morning from Tue 26/5 to Mon 08/6.

    (Each flow run costs about a second here; tests/test_reminders.py drives the same cycle from the
    opening to the lock without Prefect.)
    """
    opened = open_period(period="2026-H1", plan="tu-ky", as_of=at(date(2026, 5, 19)))
    assert opened["sent"] == 5
    box = Mailbox(app)
    depts = sorted(DEPTS)
    expected = {
        date(2026, 5, 28): [reminder(c, 3) for c in depts],  # Thu: 3 working days before Tue 02/6
        date(2026, 6, 1): [reminder(c, 1) for c in depts],  # Mon
        date(2026, 6, 2): [commune_reminder(3)],  # the commune's own report, due Fri 05/6
        # Wed: the overdue notices, to the coordinator, the head in Cc; and one message to X11074 naming all
        # four departments, 2 working days before its own deadline (3 after theirs would be Fri 05/6).
        date(2026, 6, 3): [escalation(4)] + [overdue(c) for c in depts],
        date(2026, 6, 4): [commune_reminder(1)],
        date(2026, 6, 8): [commune_overdue()],
    }
    log: dict[date, list[tuple]] = {}
    day = date(2026, 5, 26)
    while day <= date(2026, 6, 8):
        result = chase(as_of=at(day))
        sent = box.new()
        assert result == {"actions": len(sent), "sent": len(sent)}, day
        if sent:
            log[day] = sent
        if day == date(2026, 6, 3):  # a second run that afternoon sends nothing (see also the retry test)
            assert chase(as_of=at(day, 16, 0)) == {"actions": 0, "sent": 0}
            assert box.new() == []
        day += timedelta(days=1)
    assert log == expected
    # The commune consolidates: chased for its own report, and told of its departments once.
    to_commune = [m.message["X-Baocao-Kind"] for m in app.smtp.messages
                  if coord("X11074") in m.rcpt_tos and m.message["X-Baocao-Kind"] in CHASE_KINDS]
    assert to_commune == ["reminder", "escalation", "reminder", "overdue"]
    esc = next(m.message for m in app.smtp.messages if m.message["X-Baocao-Kind"] == "escalation")
    text = esc.get_body(("plain",)).get_content()
    for i, code in enumerate(depts, 1):
        assert f"{i}. {DEPTS[code]} — hạn 02/6/2026, quá hạn 1 ngày làm việc." in text


def test_each_run_leaves_a_table_artifact_of_its_actions(app):
    open_period(period="2026-H1", plan="tu-ky", as_of=at(date(2026, 5, 19)))
    state = chase(as_of=at(date(2026, 5, 28)), return_state=True)
    assert state.is_completed() and state.result() == {"actions": 4, "sent": 4}
    rows = chase_artifact(state.state_details.flow_run_id)
    assert sorted((r["stage"], r["unit"], r["recipients"]) for r in rows) == [
        ("before-3", code, coord(code)) for code in sorted(DEPTS)]
    assert {r["name"] for r in rows} == set(DEPTS.values())
    state = chase(as_of=at(date(2026, 6, 5)), return_state=True)
    rows = chase_artifact(state.state_details.flow_run_id)
    assert sorted((r["stage"], r["unit"], r["recipients"], r["children"]) for r in rows) == [
        ("before-1", "X11074", coord("X11074"), ""),  # the commune's own report is due today
        ("escalate-3", "X11074", f"{coord('X11074')}, {head('X11074')}", ", ".join(sorted(DEPTS)))] + [
        ("overdue-1", code, f"{coord(code)}, {head(code)}", "") for code in sorted(DEPTS)]
    chase(as_of=at(date(2026, 6, 8)))  # the commune's overdue notice
    state = chase(as_of=at(date(2026, 6, 9)), return_state=True)  # nothing owed: the table says so
    assert [r["name"] for r in chase_artifact(state.state_details.flow_run_id)] == ["nothing owed today"]


def test_a_failed_run_retried_sends_each_message_once(app):
    """A refused recipient fails the run naming the unit; the retry sends only what did not go."""
    open_period(period="2026-H1", plan="tu-ky", as_of=at(date(2026, 5, 19)))
    box = Mailbox(app)
    app.smtp.reject_rcpt(coord("X11074-VP"))
    with pytest.raises(RuntimeError, match="X11074-VP"):
        chase(as_of=at(date(2026, 5, 28)))
    assert box.new() == [reminder(c, 3) for c in sorted(DEPTS) if c != "X11074-VP"]
    app.smtp.reset_faults()
    assert chase(as_of=at(date(2026, 5, 28), 9, 0)) == {"actions": 0, "sent": 1}
    assert box.new() == [reminder("X11074-VP", 3)]
    assert chase(as_of=at(date(2026, 5, 28), 10, 0)) == {"actions": 0, "sent": 0}
    assert box.new() == []
    ids = [m.message_id for m in app.smtp.messages if m.message["X-Baocao-Kind"] == "reminder"]
    assert len(ids) == len(set(ids)) == 4
