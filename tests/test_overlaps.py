"""A unit under two plans for the same period owes the earlier of their deadlines (issue 19, point 2).

The national plan has each city collect its wards by the 5th and each province its sở 3 working
days before its own 12th; the seeds' local plans say otherwise for the same units. Each cycle the
unit is in, national or local, records the earliest day; `baocao calendar` says who said what and
`config check` lists every such unit.
"""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from baocao.rules.config import check
from baocao.rules.periods import Period
from baocao.rules.plans import open_at
from baocao.store.db import Request
from baocao.store.queries import open_cycle
from flows.cli import app

H1 = Period(2026, "H1")
NHI_CHIEU, NHI_CHIEU_DEPTS = "X10714", ["X10714-VHXH", "X10714-VP", "X10714-KT", "X10714-TTHCC", "X10714-TTDVSNC"]
LAI_CHAU_VP = "T12-VPUB"


def _deadlines(db, cycle_id: int) -> dict[str, date]:  # noqa: ANN001
    with db.session() as s:
        return {r.unit_code: r.deadline for r in s.scalars(select(Request).where(Request.cycle_id == cycle_id))}


def _locks(db, cycle_id: int) -> dict[str, object]:  # noqa: ANN001
    with db.session() as s:
        return {r.unit_code: r.lock_at for r in s.scalars(select(Request).where(Request.cycle_id == cycle_id))}


def test_nhi_chieu_owes_the_city_the_5th_in_both_cycles(db, cfg):
    """Seed 001 line 145: "Định kỳ 6 tháng (trước ngày 10 tháng 6), hằng năm (trước ngày 10 tháng 12) tổng
    hợp, tham mưu Ủy ban nhân dân phường báo cáo Ủy ban nhân dân thành phố" — but the national plan has
    Hải Phòng collect its wards by 05/6. The ward's own cycle used to record 10/6 (and 05/6 for its
    departments), so it would have reported after the city needed it."""
    own = open_cycle(db, cfg, H1, "nhi-chieu")
    national = open_cycle(db, cfg, H1, "national", "T31")
    for cycle in (own, national):
        dl = _deadlines(db, cycle.id)
        assert dl[NHI_CHIEU] == date(2026, 6, 5)
        # The departments count 3 working days back from the ward's effective day, Friday 05/6.
        assert {dl[d] for d in NHI_CHIEU_DEPTS} == {date(2026, 6, 2)}
    # Lock dates follow the effective deadline (KH 158: locked 10 days after it).
    lock = _locks(db, own.id)[NHI_CHIEU]
    assert cfg.calendar.local_date(lock) == date(2026, 6, 15)
    # The opening follows too: 10 working days before the departments' 02/6, not before 05/6.
    opened = open_at(cfg.plan("nhi-chieu"), H1, cfg.hierarchy, cfg.calendar, plans=cfg.plans.values())
    assert cfg.calendar.local_date(opened) == date(2026, 5, 19)


def test_lai_chau_office_reports_by_its_own_earlier_day_in_the_national_cycle(db, cfg):
    """Seed 002 line 99: "định kỳ 06 tháng (trước ngày 05 tháng 6) và hằng năm (trước ngày 05 tháng 12) gửi
    báo cáo kết quả thực hiện của cơ quan về Sở Nội vụ" — the national plan alone gives the office, a
    department of Lai Châu, 3 working days before the province's 12/6: 09/6. Its own plan is stricter."""
    cycle = open_cycle(db, cfg, H1, "national", "T12")
    dl = _deadlines(db, cycle.id)
    assert dl[LAI_CHAU_VP] == date(2026, 6, 5)
    assert dl["T12-VPUB-HCQT"] == dl["T12-VPUB-TH"] == date(2026, 6, 2)  # counted from 05/6, not 09/6
    assert dl["T12"] == date(2026, 6, 12)  # the province itself: nothing else covers it
    assert cfg.calendar.local_date(_locks(db, cycle.id)[LAI_CHAU_VP]) == date(2026, 6, 20)  # national: 15 days


def test_hue_wards_and_so_follow_the_national_days_in_the_citys_cycle(db, cfg):
    """Seed 003 line 129: "b) Định kỳ quý I (trước ngày 10 tháng 3); 6 tháng (trước ngày 10 tháng 6); 9 tháng
    (trước ngày 10 tháng 9) và hằng năm (trước ngày 10 tháng 12) gửi báo cáo kết quả thực hiện về Sở Nội vụ"
    — the national plan wants Huế's wards by 05/6, its sở by 09/6 and the city by 12/6 (KH 263's
    city day, our 15th, is later still)."""
    cycle = open_cycle(db, cfg, H1, "hue")
    dl = _deadlines(db, cycle.id)
    communes = [u.code for u in cfg.hierarchy.children("T46") if u.level == "commune"]
    sos = [u.code for u in cfg.hierarchy.children("T46") if u.level == "department"]
    assert {dl[c] for c in communes} == {date(2026, 6, 5)}
    assert {dl[d] for d in sos} == {date(2026, 6, 9)}
    assert dl["T46"] == date(2026, 6, 12)
    q1 = open_cycle(db, cfg, Period(2026, "Q1"), "hue")
    assert {_deadlines(db, q1.id)[c] for c in communes} == {date(2026, 3, 5)}  # "quý I (trước ngày 10 tháng 3)"


def test_config_check_lists_every_unit_the_plans_disagree_on(cfg):
    """Seeds 001 line 145 ("6 tháng (trước ngày 10 tháng 6)"), 002 line 99 ("06 tháng (trước ngày 05 tháng
    6)") and 003 line 129 ("6 tháng (trước ngày 10 tháng 6)"): each disagreement with the national plan is
    a line for the office, naming the units and both plans with their dates, and the day that applies."""
    warnings = check(cfg, 2026)
    lines = [w for w in warnings if w.startswith("Hạn nộp báo cáo")]
    assert ("Hạn nộp báo cáo 6 tháng đầu năm 2026 của Phường Nhị Chiểu khác nhau giữa các kế hoạch "
            "(KH 158/KH-UBND của phường Nhị Chiểu: 10/6/2026; kế hoạch toàn quốc: 05/6/2026); "
            "áp dụng hạn sớm nhất: 05/6/2026.") in lines
    assert ("Hạn nộp báo cáo 6 tháng đầu năm 2026 của Văn phòng UBND tỉnh Lai Châu khác nhau giữa các kế hoạch "
            "(kế hoạch của Văn phòng UBND tỉnh Lai Châu: 05/6/2026; kế hoạch toàn quốc: 09/6/2026); "
            "áp dụng hạn sớm nhất: 05/6/2026.") in lines
    hue_wards = [w for w in lines if w.startswith("Hạn nộp báo cáo 6 tháng đầu năm 2026 của 40 đơn vị (Phường")]
    assert len(hue_wards) == 1 and "Phường Phú Xuân" in hue_wards[0]
    assert hue_wards[0].endswith("(KH 263/KH-UBND của thành phố Huế: 10/6/2026; kế hoạch toàn quốc: 05/6/2026); "
                                 "áp dụng hạn sớm nhất: 05/6/2026.")
    # Every period kind each plan reports: Huế's quarter and nine months too, the year for all three.
    for label in ("quý I năm 2026", "9 tháng đầu năm 2026", "năm 2026 của Phường Nhị Chiểu"):
        assert any(w.startswith(f"Hạn nộp báo cáo {label}") for w in lines), label
    # Tứ Kỳ and Thiện Tân say the national 5th: nothing to list for them.
    assert not any("Tứ Kỳ" in w or "Thiện Tân" in w for w in lines)


def test_calendar_shows_the_day_that_applies_and_who_said_what(monkeypatch: pytest.MonkeyPatch):
    """Seed 001 line 145: "Định kỳ 6 tháng (trước ngày 10 tháng 6)" — the ward's calendar shows 05/6 and why."""
    from flows import cli

    monkeypatch.setattr(cli.console, "width", 250)  # a wide terminal: one table row per line
    result = CliRunner().invoke(app, ["calendar", "--period", "2026-H1", "--plan", "nhi-chieu"])
    assert result.exit_code == 0, result.output
    assert "05/6/2026 (KH 158/KH-UBND của phường Nhị Chiểu: 10/6/2026; kế hoạch toàn quốc: 05/6/2026)" in result.stdout
    assert "period opens: 08:00 19/5/2026" in result.stdout
