"""The open-period flow against a real Prefect API and a real SMTP server on loopback."""

from __future__ import annotations

import email
import email.policy
import io

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from baocao.rules.bodies import body_name
from baocao.store.db import OutboxMessage, Request
from flows.open_period import UnitsFailed, open_period

pytestmark = pytest.mark.usefixtures("prefect_api")


def _by_recipient(smtp) -> dict[str, list]:  # noqa: ANN001
    out: dict[str, list] = {}
    for m in smtp.messages:
        for rcpt in m.rcpt_tos:
            out.setdefault(rcpt, []).append(m)
    return out


def test_every_unit_gets_exactly_one_request_with_its_own_form(app):
    result = open_period(period="2026-H1", plan="tu-ky", as_of=None)
    h = app.cfg.hierarchy
    units = [u.code for u in h.walk("X11074")]
    assert result["sent"] == len(units) == 5
    got = _by_recipient(app.smtp)
    for code in units:
        unit = h[code]
        msgs = got.get(unit.coordinator_emails[0], [])
        assert len(msgs) == 1, code
        msg = msgs[0].message
        body = msg.get_body(("plain",)).get_content()
        assert f"Kính gửi: {body_name(unit)}" in body  # the body, not the place (issue 21 §1)
        attachments = list(msg.iter_attachments())
        if h.has_children(code):  # the commune consolidates: no form, a notice
            assert attachments == []
            assert "05/6/2026" in msg["Subject"]  # Tứ Kỳ reports to the city before 05/6
        else:
            assert "02/6/2026" in msg["Subject"]  # departments: 3 working days earlier
            (att,) = attachments
            assert att.get_filename() == f"Biểu báo cáo 6 tháng đầu năm 2026 - {unit.name}.xlsx"  # issue 21 §2
            wb = load_workbook(io.BytesIO(att.get_content()))
            info = {r[0].value: r[1].value for r in wb["Thông tin"].iter_rows(max_col=2) if r[0].value}
            assert info["Mã đơn vị"] == code and info["Mã kỳ báo cáo"] == "2026-H1"
    with app.db.session() as s:
        states = {r.unit_code: r.state for r in s.scalars(select(Request))}
    assert set(states.values()) == {"sent"}


def test_running_again_sends_nothing_twice(app):
    open_period(period="2026-H1", plan="tu-ky")
    first = len(app.smtp.messages)
    again = open_period(period="2026-H1", plan="tu-ky")
    assert again["sent"] == 0
    assert len(app.smtp.messages) == first


def test_temporary_failure_then_success_delivers(app):
    app.smtp.fail_next_data(2)  # 451 twice, then 250
    result = open_period(period="2026-H1", plan="tu-ky")
    assert result["sent"] == 5 and not result["failed"]
    ids = [m.message["Message-ID"] for m in app.smtp.messages]
    assert len(ids) == len(set(ids)) == 5


def test_refused_recipient_fails_that_unit_only_and_a_rerun_sends_only_it(app):
    victim = app.cfg.hierarchy["X11074-KT"]
    app.smtp.reject_rcpt(victim.coordinator_emails[0])
    with pytest.raises(UnitsFailed) as exc:
        open_period(period="2026-H1", plan="tu-ky")
    assert set(exc.value.failed) == {"X11074-KT"}
    delivered = {r for m in app.smtp.messages for r in m.rcpt_tos}
    assert victim.coordinator_emails[0] not in delivered and len(delivered) == 4
    with app.db.session() as s:
        row = s.scalars(select(OutboxMessage).where(OutboxMessage.unit_code == "X11074-KT")).one()
        assert row.status == "failed" and "550" in (row.last_error or "")
    app.smtp.reset_faults()
    again = open_period(period="2026-H1", plan="tu-ky")
    assert again["sent"] == 1
    rcpts = [r for m in app.smtp.messages for r in m.rcpt_tos]
    assert rcpts.count(victim.coordinator_emails[0]) == 1 and len(rcpts) == 5


def test_messages_are_in_vietnamese_and_name_the_contact(app):
    open_period(period="2026-H1", plan="tu-ky")
    msg = next(m.message for m in app.smtp.messages if "x11074-vhxh" in m.rcpt_tos[0])
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "Hạn gửi báo cáo: ngày 02 tháng 6 năm 2026" in text
    # asked by the office that collects for the commune (config/plans/tu-ky.toml [collector.root], seed 000)
    assert "Ủy ban nhân dân xã Tứ Kỳ đề nghị Phòng Văn hóa - Xã hội xã Tứ Kỳ" in " ".join(text.split())  # not asked by itself
    assert "Đầu mối liên hệ: Vũ Văn Hùng, Phòng Văn hóa - Xã hội xã Tứ Kỳ, điện thoại 0220.3000.074" in " ".join(text.split())
    assert app.cfg.settings.reply_to in text and "<ol>" in html
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    assert parsed["Reply-To"] == app.cfg.settings.reply_to


def test_requests_are_written_in_one_transaction_or_else_one_by_one_naming_the_unit(app, caplog):
    """A batch's requests go in at once; if that fails, each is written alone, so one unit's bad
    message fails that unit only (and the rolled-back batch leaves no attachment behind)."""
    from baocao.mail import outbox
    from baocao.opening import dispatch
    from baocao.store.db import Blob

    def message(unit: str, to: object) -> dict:
        return dict(key=f"test/{unit}", kind="request", stage="open", unit=unit, period="2026-H1", to=to,
                    subject="Đề nghị báo cáo", text="Kính gửi", attachments=[
                        outbox.FileAttachment(f"{unit}.xlsx", unit.encode() * 100, dispatch.XLSX_MIME)])

    together = dispatch.Prepared()
    dispatch._write(app.db, {u: message(u, (f"{u.lower()}@donvi.example",)) for u in ("X11074", "X10714")}, together)
    assert together.written == ["X11074", "X10714"] and not together.failed
    assert "one by one" not in caplog.text  # written together, not by the fallback

    alone = dispatch.Prepared()
    dispatch._write(app.db, {"X11074-KT": message("X11074-KT", ("kt@donvi.example",)),
                             "X11074-VP": message("X11074-VP", None)}, alone)
    assert alone.written == ["X11074-KT"] and list(alone.failed) == ["X11074-VP"]
    assert "TypeError" in alone.failed["X11074-VP"] and "one by one" in caplog.text
    with app.db.session() as s:
        keys = set(s.scalars(select(OutboxMessage.key).where(OutboxMessage.key.like("test/%"))))
        blobs = {b.content[:9] for b in s.scalars(select(Blob))}
    assert keys == {"test/X11074", "test/X10714", "test/X11074-KT"}
    assert b"X11074-VP" not in blobs and {b"X11074X11", b"X10714X10", b"X11074-KT"} <= blobs
