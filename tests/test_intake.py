"""The intake through the real mail path, one case of the "Done when" list per test.

Each test opens the Tứ Kỳ cycle 2026-H1 (four departments fill forms: deadline 02/6/2026, lock
12/6/2026), puts the units' replies straight into the real IMAP mailbox (pymap on loopback) as MIME
messages from their coordinators, runs the `collect` flow against a real Prefect API, and checks the
request state, what was stored, and the reply that reached the real SMTP server.

The cycle, the `tu_ky` fixture and :class:`TuKy` are in tests/support (tuky.py, fixtures.py), shared
with the other intake modules.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from baocao.intake.operations import reopen
from baocao.opening.forms import INFO_LABELS, SHEET_COUNTS, FormSpec
from baocao.opening.tokens import make_token
from baocao.rules.formatting import number_vi
from baocao.rules.periods import Period
from baocao.store.db import Value
from baocao.store.queries import open_cycle
from tests.support.tuky import (
    DEPARTMENTS,
    LATE,
    LOCKED,
    ON_TIME,
    VN,
    TuKy,
    _builder,
    info_value,
    set_info,
    text_of,
    value_cell,
)

pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.slow]

def receipt_line(cfg: Any, code: str, value: int) -> re.Pattern[str]:
    """The receipt's line of a figure: its form row and its words (Tứ Kỳ's plan's), never its code (issue 21 §2)."""
    ind = next(i for i in cfg.catalog_for("tu-ky").counts if i.code == code)
    return re.compile(rf"^- Dòng \d+ – {re.escape(ind.label)}: {re.escape(number_vi(value))} {re.escape(ind.unit)}\r?$",
                      re.MULTILINE)


# ----------------------------------------------------------------------------------------- valid, on time
def test_valid_form_on_time_is_accepted_and_the_receipt_lists_the_figures_as_read(tu_ky: TuKy) -> None:
    unit = "X11074-VHXH"
    data, filled = tu_ky.fill(unit)
    tu_ky.mail(unit, data)

    result = tu_ky.collect(ON_TIME)

    assert result["mailbox"]["by_status"] == {"accepted": 1}
    st = tu_ky.unit_status(unit)
    assert st["state"] == "accepted" and st["on_time"] is True and st["files"] == 1
    assert datetime.fromisoformat(st["accepted_at"]) == ON_TIME
    assert {u["state"] for u in tu_ky.status()["units"] if u["unit"] not in (unit, "X11074")} == {"sent"}
    (sub,) = tu_ky.submissions()
    assert (sub.status, sub.version, sub.late, sub.flagged, sub.unit_code) == ("accepted", 1, False, None, unit)
    assert tu_ky.values(sub.id) == filled.values
    assert tu_ky.request(unit).accepted_submission_id == sub.id

    (reply,) = tu_ky.replies()
    assert reply.rcpt_tos == (tu_ky.coordinator(unit),)
    assert reply.message["X-Baocao-Kind"] == "receipt"
    assert "Đã tiếp nhận báo cáo của Phòng Văn hóa - Xã hội xã Tứ Kỳ" in reply.message["Subject"]
    text = text_of(reply)
    assert tu_ky.forms[unit][0] in text and "lần gửi thứ 1" in text
    for code, value in filled.values.items():
        assert receipt_line(tu_ky.cfg, code, value).search(text), code
        assert code not in text
    assert "nộp muộn" not in text


# ----------------------------------------------------------------------------------------- invalid
def test_invalid_forms_are_rejected_and_the_reply_names_every_problem(tu_ky: TuKy) -> None:
    cfg = tu_ky.cfg
    first = cfg.catalog.counts[0].code  # baocao.devservers.simulate types "12,5" here
    rel = cfg.catalog.relations[0]  # ... and breaks this relation
    decimal, _ = tu_ky.fill("X11074-VHXH", mistake="decimal")
    relation, rel_fig = tu_ky.fill("X11074-VP", mistake="relation")
    text_value, _ = tu_ky.fill("X11074-KT", set_values={"KIEM_TRA": "abc"})
    two_faults, _ = tu_ky.fill("X11074-TTHCC", set_values={"KHEN_THUONG": -3}, drop=("HN_QUAN_TRIET",))
    for unit, data in zip(DEPARTMENTS, (decimal, relation, text_value, two_faults), strict=True):
        tu_ky.mail(unit, data)

    result = tu_ky.collect(ON_TIME)

    assert result["mailbox"]["by_status"] == {"rejected": 4}
    for unit in DEPARTMENTS:
        st = tu_ky.unit_status(unit)
        assert st["state"] == "rejected" and st["accepted_at"] is None and st["files"] == 1, unit
        assert st["reason"], unit
    subs = tu_ky.submissions()
    assert [s.status for s in subs] == ["rejected"] * 4
    with tu_ky.app.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Value)) == 0  # nothing of a rejected form is kept as data

    replies = {m.rcpt_tos[0]: m for m in tu_ky.replies()}
    assert set(replies) == {tu_ky.coordinator(u) for u in DEPARTMENTS}
    for unit in DEPARTMENTS:
        assert replies[tu_ky.coordinator(unit)].message["X-Baocao-Kind"] == "problems"

    def problem_text(unit: str) -> str:
        mail = replies[tu_ky.coordinator(unit)]
        assert "chưa được tiếp nhận" in mail.message["Subject"]
        return text_of(mail)

    def where(unit: str, data: bytes, code: str) -> str:
        return f"Tệp “{tu_ky.forms[unit][0]}”, trang “{SHEET_COUNTS}”, ô {value_cell(data, code)}: "

    text = problem_text("X11074-VHXH")
    assert where("X11074-VHXH", decimal, first) in text and "“12,5” có phần thập phân" in text

    text = problem_text("X11074-VP")
    left, right = rel_fig.values[rel.right] + 5, rel_fig.values[rel.right]
    assert where("X11074-VP", relation, rel.left) in text
    assert (f"{rel.part_name} (ô {value_cell(relation, rel.part)}: {number_vi(left)}) lớn hơn {rel.whole_name} "
            f"(ô {value_cell(relation, rel.whole)}: {number_vi(right)}). Đề nghị đơn vị kiểm tra lại.") in text

    text = problem_text("X11074-KT")
    assert where("X11074-KT", text_value, "KIEM_TRA") in text and "“abc” không phải số nguyên" in text

    mail = replies[tu_ky.coordinator("X11074-TTHCC")]
    assert "cần sửa 2 lỗi" in mail.message["Subject"]
    text = problem_text("X11074-TTHCC")
    assert where("X11074-TTHCC", two_faults, "KHEN_THUONG") in text and "“-3” là số âm" in text
    assert where("X11074-TTHCC", two_faults, "HN_QUAN_TRIET") in text and "bắt buộc" in text


def test_a_later_invalid_file_does_not_lose_the_accepted_version(tu_ky: TuKy) -> None:
    unit = "X11074-VHXH"
    good, filled = tu_ky.fill(unit, seed=1)
    bad, _ = tu_ky.fill(unit, seed=2, mistake="decimal")
    tu_ky.mail(unit, good)
    tu_ky.mail(unit, bad)  # read after the good one (UID order)

    result = tu_ky.collect(ON_TIME)

    assert result["mailbox"]["by_status"] == {"accepted": 1, "rejected": 1}
    accepted, rejected = tu_ky.submissions(unit)
    assert (accepted.status, rejected.status) == ("accepted", "rejected")
    assert tu_ky.values(accepted.id) == filled.values
    req = tu_ky.request(unit)
    assert (req.state, req.accepted_submission_id, req.on_time) == ("accepted", accepted.id, True)
    receipt, problems = tu_ky.replies()
    assert receipt.message["X-Baocao-Kind"] == "receipt" and problems.message["X-Baocao-Kind"] == "problems"
    assert "“12,5” có phần thập phân" in text_of(problems)


def test_a_late_correction_of_a_report_in_on_time_keeps_the_unit_on_time(tu_ky: TuKy) -> None:
    unit = "X11074-KT"
    first, _ = tu_ky.fill(unit, seed=1)
    tu_ky.mail(unit, first)
    tu_ky.collect(ON_TIME)
    second, filled = tu_ky.fill(unit, seed=2)
    tu_ky.mail(unit, second)

    tu_ky.collect(LATE)

    old, new = tu_ky.submissions(unit)
    assert (old.status, new.status, new.late) == ("superseded", "accepted", True)
    assert tu_ky.values(new.id) == filled.values
    st = tu_ky.unit_status(unit)
    assert st["state"] == "accepted" and st["on_time"] is True  # the state agrees with the timeliness
    (total,) = tu_ky.status()["totals"]
    assert (total["accepted"], total["on_time"]) == (1, 1)


# ----------------------------------------------------------------------------------------- late, locked
def test_a_late_form_is_accepted_and_marked_late(tu_ky: TuKy) -> None:
    unit = "X11074-KT"
    data, _ = tu_ky.fill(unit)
    tu_ky.mail(unit, data)

    result = tu_ky.collect(LATE)

    assert result["mailbox"]["by_status"] == {"accepted": 1}
    st = tu_ky.unit_status(unit)
    assert st["state"] == "late" and st["on_time"] is False
    assert datetime.fromisoformat(st["accepted_at"]) == LATE
    (sub,) = tu_ky.submissions(unit)
    assert sub.status == "accepted" and sub.late is True
    (total,) = tu_ky.status()["totals"]
    assert (total["accepted"], total["on_time"]) == (1, 0)
    (reply,) = tu_ky.replies()
    assert "(nộp sau hạn)" in reply.message["Subject"]
    assert "sau hạn (02/6/2026) và được ghi nhận là nộp muộn" in text_of(reply)


def test_after_the_lock_date_a_form_is_refused_and_reopen_lets_it_in(tu_ky: TuKy) -> None:
    unit = "X11074-VP"
    data, filled = tu_ky.fill(unit)
    other, _ = tu_ky.fill("X11074-KT")
    tu_ky.mail(unit, data)

    result = tu_ky.collect(LOCKED)

    assert result["mailbox"]["by_status"] == {"refused": 1}
    assert tu_ky.unit_status(unit)["state"] == "sent"
    (sub,) = tu_ky.submissions(unit)
    assert sub.status == "rejected" and [e["rule"] for e in sub.errors] == ["locked"]
    (reply,) = tu_ky.replies()
    assert reply.message["X-Baocao-Kind"] == "problems" and "đã khóa sổ" in text_of(reply)

    reopen(tu_ky.app.db, tu_ky.cfg, unit, "2026-H1", datetime(2026, 6, 30, 17, 0, tzinfo=VN),
           "Đơn vị đề nghị gia hạn do sự cố mạng", actor="chuyenvien.vhxh")
    (event,) = tu_ky.audit("reopen")
    assert (event.actor, event.unit_code) == ("chuyenvien.vhxh", unit)
    # The unit sends the same file again; another unit, not reopened, is still refused.
    tu_ky.mail(unit, data)
    tu_ky.mail("X11074-KT", other)

    result = tu_ky.collect(datetime(2026, 6, 22, 9, 0, tzinfo=VN))

    assert result["mailbox"]["by_status"] == {"accepted": 1, "refused": 1}
    st = tu_ky.unit_status(unit)
    assert st["state"] == "late" and st["on_time"] is False  # reopened, but still after the deadline
    accepted = [s for s in tu_ky.submissions(unit) if s.status == "accepted"]
    assert len(accepted) == 1 and tu_ky.values(accepted[0].id) == filled.values
    assert tu_ky.unit_status("X11074-KT")["state"] == "sent"
    kinds = {m.rcpt_tos[0]: m.message["X-Baocao-Kind"] for m in tu_ky.replies()}
    assert kinds == {tu_ky.coordinator(unit): "receipt", tu_ky.coordinator("X11074-KT"): "problems"}


# ----------------------------------------------------------------------------------------- versions
def test_a_resubmission_supersedes_the_previous_version_without_deleting_it(tu_ky: TuKy) -> None:
    unit = "X11074-TTHCC"
    v1, fig1 = tu_ky.fill(unit, seed=1)
    v2, fig2 = tu_ky.fill(unit, seed=2)
    assert fig1.values != fig2.values
    tu_ky.mail(unit, v1)
    tu_ky.mail(unit, v2)

    result = tu_ky.collect(ON_TIME)

    assert result["mailbox"]["by_status"] == {"accepted": 2}
    old, new = tu_ky.submissions(unit)
    assert (old.status, old.version, old.superseded_by) == ("superseded", 1, new.id)
    assert (new.status, new.version, new.superseded_by) == ("accepted", 2, None)
    assert tu_ky.values(old.id) == fig1.values and tu_ky.values(new.id) == fig2.values
    req = tu_ky.request(unit)
    assert (req.state, req.accepted_submission_id) == ("accepted", new.id)
    first, second = tu_ky.replies()
    assert "lần gửi thứ 1" in text_of(first) and "lần gửi thứ 2" in text_of(second)
    assert "thay thế báo cáo đơn vị đã gửi trước đó" in text_of(second)
    assert receipt_line(tu_ky.cfg, "HN_TONG", fig2.values["HN_TONG"]).search(text_of(second))


# ----------------------------------------------------------------------------------------- not genuine
def test_forged_token_another_units_form_and_another_periods_form_are_refused_and_recorded(tu_ky: TuKy) -> None:
    cfg = tu_ky.cfg
    token_label = INFO_LABELS["token"]
    # 1. VHXH's own form, its token typed over.
    good, _ = tu_ky.fill("X11074-VHXH")
    real_token = info_value(good, token_label)
    forged = set_info(good, token_label, real_token[:-1] + ("a" if real_token[-1] != "a" else "b"))
    # 2. VP fills in KT's form and types its own unit code over KT's.
    kt_form, _ = tu_ky.fill("X11074-KT")
    borrowed = set_info(kt_form, INFO_LABELS["unit_code"], "X11074-VP")
    # 3. TTHCC retypes the period of its form to a period that is open too (the yearly cycle).
    open_cycle(tu_ky.app.db, cfg, Period.parse("2026-Y"), "tu-ky")
    tthcc, _ = tu_ky.fill("X11074-TTHCC")
    other_period = set_info(tthcc, INFO_LABELS["period_code"], "2026-Y")
    # 4. KT sends a genuine form of another period, one nobody asked for (2025-Y).
    p = Period.parse("2025-Y")
    spec = FormSpec(unit=cfg.hierarchy["X11074-KT"], period=p, deadline=date(2025, 12, 2),
                    token=make_token(cfg.settings.token_secret.get_secret_value(), "X11074-KT", p.code,
                                     cfg.settings.form_version),
                    form_version=cfg.settings.form_version, coordinator_name="Xã Tứ Kỳ",
                    coordinator_email=tu_ky.coordinator("X11074"), reply_to=cfg.settings.reply_to)
    last_year = _builder(cfg.catalog).build(spec)
    tu_ky.mail("X11074-VHXH", forged)
    tu_ky.mail("X11074-VP", ("BaoCao_2026-H1_X11074-VP.xlsx", borrowed))
    tu_ky.mail("X11074-TTHCC", other_period)
    tu_ky.mail("X11074-KT", ("BaoCao_2025-Y_X11074-KT.xlsx", last_year))

    result = tu_ky.collect(ON_TIME)

    assert result["mailbox"]["by_status"] == {"refused": 4}
    assert all(s.status == "rejected" for s in tu_ky.submissions()) and len(tu_ky.submissions()) == 4
    assert {u["state"] for u in tu_ky.status()["units"] if u["role"] == "form"} == {"sent"}
    refused = {(e.unit_code, e.period): e.detail["reasons"] for e in tu_ky.audit("refused")}
    assert refused == {("X11074-VHXH", "2026-H1"): ["token_invalid"], ("X11074-VP", "2026-H1"): ["token_invalid"],
                       ("X11074-TTHCC", "2026-Y"): ["token_invalid"], ("X11074-KT", "2025-Y"): ["request"]}

    replies = {m.rcpt_tos[0]: m for m in tu_ky.replies()}
    assert set(replies) == {tu_ky.coordinator(u) for u in DEPARTMENTS}
    for unit in ("X11074-VHXH", "X11074-VP", "X11074-TTHCC"):
        text = text_of(replies[tu_ky.coordinator(unit)])
        assert "trang “Thông tin”: mã xác thực không đúng" in text, unit
        assert "biểu mẫu của đơn vị khác, của kỳ khác hoặc đã bị sửa" in text, unit
        assert real_token not in text
    assert "kỳ 2026-Y" in text_of(replies[tu_ky.coordinator("X11074-TTHCC")])
    text = text_of(replies[tu_ky.coordinator("X11074-KT")])
    assert "BaoCao_2025-Y_X11074-KT.xlsx" in text and "không có yêu cầu báo cáo kỳ năm 2025" in text


# ----------------------------------------------------------------------------------------- senders
def test_an_unregistered_sender_is_flagged_by_default(tu_ky: TuKy) -> None:
    unit = "X11074-VHXH"
    data, filled = tu_ky.fill(unit)
    stranger = "canbo.vhxh.tuky@gmail.example"
    tu_ky.mail(unit, data, sender=f"Nguyễn Văn A <{stranger}>")

    result = tu_ky.collect(ON_TIME)

    assert result["mailbox"]["by_status"] == {"accepted": 1}
    (sub,) = tu_ky.submissions(unit)
    assert sub.status == "accepted" and sub.flagged and f"unregistered sender {stranger}" in sub.flagged
    assert tu_ky.values(sub.id) == filled.values
    assert tu_ky.unit_status(unit)["state"] == "accepted"
    (reply,) = tu_ky.replies()
    assert reply.message["X-Baocao-Kind"] == "receipt" and stranger in reply.rcpt_tos


def test_an_unregistered_sender_is_refused_with_sender_check_reject(tu_ky: TuKy,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAOCAO_SENDER_CHECK", "reject")
    unit = "X11074-VHXH"
    data, _ = tu_ky.fill(unit)
    stranger = "canbo.vhxh.tuky@gmail.example"
    tu_ky.mail(unit, data, sender=stranger)
    tu_ky.mail(unit, data)  # told so, the coordinator forwards the very same file from the registered address

    result = tu_ky.collect(ON_TIME)

    assert result["mailbox"]["by_status"] == {"refused": 1, "accepted": 1}
    refused, accepted = tu_ky.submissions(unit)
    assert refused.status == "rejected" and [e["rule"] for e in refused.errors] == ["sender"]
    assert accepted.status == "accepted" and accepted.flagged is None
    assert refused.file_id == accepted.file_id  # one file, kept once, judged twice
    (event,) = tu_ky.audit("refused")
    assert event.actor == stranger and event.detail["reasons"] == ["sender"]
    assert tu_ky.unit_status(unit)["state"] == "accepted"
    to_stranger, to_coordinator = tu_ky.replies()
    assert to_stranger.rcpt_tos == (stranger,) and to_stranger.message["X-Baocao-Kind"] == "problems"
    assert f"Thư gửi từ địa chỉ {stranger} chưa được đăng ký" in text_of(to_stranger)
    assert to_coordinator.rcpt_tos == (tu_ky.coordinator(unit),)
    assert to_coordinator.message["X-Baocao-Kind"] == "receipt"
