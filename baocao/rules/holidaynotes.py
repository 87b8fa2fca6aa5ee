"""Which holidays a cycle's dates rest on, and whether each is confirmed or only computed.

A deadline that a computed holiday moved (Tết 2027 as the `holidays` package places it, 24/11
before the Labour Code lists it) may move back once the Government's schedule is out. `baocao
calendar` marks every holiday and worked weekend day of a cycle; `config check` warns about the
computed ones that move a deadline or the opening day, so the operator confirms or corrects them
in config/calendar.toml (``[years.<year>]``, :mod:`baocao.rules.yearschedule`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from baocao.errors import ScheduleError
from baocao.rules.formatting import date_vi
from baocao.rules.hierarchy import Hierarchy
from baocao.rules.periods import Period, SpecialDay, WorkCalendar
from baocao.rules.plans import Plan, open_at, unit_deadlines

__all__ = ["MarkedDay", "cycle_special_days", "unconfirmed_warnings", "weekday_vi"]

_LEVEL_VI = {"root": "đơn vị chủ trì", "ministry": "cấp bộ", "province": "cấp tỉnh", "commune": "cấp xã",
             "department": "cơ quan chuyên môn"}
_WEEKDAY_VI = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ nhật")


def weekday_vi(d: date) -> str:
    """"Thứ Sáu", "Chủ nhật": the weekday as an office writes it."""
    return _WEEKDAY_VI[d.weekday()]


@dataclass(frozen=True)
class _Span:
    """Days a date's computation passed over: a holiday on a would-be working day among them moved it."""

    what: str  # "hạn nộp cấp xã", "ngày mở kỳ"
    first: date
    last: date
    result: date
    only_worked: bool = False  # a deadline on its own day: only a weekend day worked there matters


@dataclass(frozen=True)
class MarkedDay:
    """A holiday or worked weekend day of a cycle, with the dates of the cycle it moves."""

    special: SpecialDay
    moves: tuple[str, ...]  # "hạn nộp cấp xã 04/3/2027", "ngày mở kỳ 08/02/2027"


def _spans(plan: Plan, period: Period, hierarchy: Hierarchy, cal: WorkCalendar, root: str | None) -> set[_Span]:
    root = root or plan.root
    schedules = unit_deadlines(plan, period, hierarchy, cal, root=root)
    spans: set[_Span] = set()
    for code, schedule in schedules.items():
        unit = hierarchy[code]
        rule = plan.rule_for(unit, root=root)
        what = "hạn nộp " + _LEVEL_VI.get("root" if code == root else unit.level, unit.level)
        if rule is None:
            continue
        if rule.day is not None:
            raw = cal.period_month_day(period, rule.day, rule.month_offset)
            lo, hi = sorted((raw, schedule.deadline))
            spans.add(_Span(what, lo, hi, schedule.deadline, only_worked=raw == schedule.deadline))
        elif unit.parent in schedules and rule.before_parent_working_days:
            parent = schedules[unit.parent].deadline
            spans.add(_Span(what, schedule.deadline, parent - timedelta(days=1), schedule.deadline))
    first = min(s.deadline for s in schedules.values())
    opening = cal.local_date(open_at(plan, period, hierarchy, cal, root=root))
    spans.add(_Span("ngày mở kỳ", opening, first - timedelta(days=1), opening))
    return spans


def _moves(special: SpecialDay, spans: Iterable[_Span], cal: WorkCalendar) -> list[_Span]:
    d = special.day
    if not (special.working or cal.would_work(d)):
        return []  # a holiday on a plain Sunday moves nothing
    return [s for s in spans if s.first <= d <= s.last and (special.working or not s.only_worked)]


def cycle_special_days(
    plan: Plan, period: Period, hierarchy: Hierarchy, cal: WorkCalendar, *, root: str | None = None
) -> list[MarkedDay]:
    """Holidays and worked weekend days from the cut-off window's start to the cycle's last deadline,
    each with the deadlines (and opening day) it moves, so `baocao calendar` can mark them."""
    spans = _spans(plan, period, hierarchy, cal, root)
    start = min(cal.cutoff_window(period)[0], *(s.first for s in spans))
    end = max(s.result for s in spans if s.what != "ngày mở kỳ")
    out = []
    for special in cal.special_days(start, end):
        moved = sorted({(s.result, s.what) for s in _moves(special, spans, cal)})
        out.append(MarkedDay(special, tuple(f"{what} {date_vi(result)}" for result, what in moved)))
    return out


def unconfirmed_warnings(
    plans: Iterable[Plan], hierarchy: Hierarchy, cal: WorkCalendar, year: int, calendar_file: Path | str
) -> list[str]:
    """One warning per computed (unconfirmed) day that moves a deadline or an opening day of ``year``'s
    periods, naming the plans and periods it moves and where to confirm or correct it."""
    moved: dict[SpecialDay, list[str]] = {}
    for plan in plans:
        for kind in plan.kinds:
            period = Period(year, kind)
            try:
                spans = _spans(plan, period, hierarchy, cal, None)
            except ScheduleError:  # `check` reports it already
                continue
            lo, hi = min(s.first for s in spans), max(s.last for s in spans)
            for special in cal.special_days(lo, hi):
                if special.confirmed:
                    continue
                whats = sorted({s.what for s in _moves(special, spans, cal)})
                if whats:
                    moved.setdefault(special, []).append(f"{plan.code} {period.code} ({', '.join(whats)})")
    warnings = []
    for special, where in sorted(moved.items(), key=lambda kv: kv[0].day):
        d = special.day
        kind = "ngày làm việc bù" if special.working else "ngày nghỉ"
        warnings.append(
            f"{calendar_file}: years.{d.year}: {date_vi(d)} ({special.name}) là {kind} {special.status_vi}, "
            f"làm dời ngày của: {'; '.join(where)}. Đề nghị đối chiếu với lịch nghỉ do Chính phủ công bố, "
            f"xác nhận (confirmed = true) hoặc sửa tại mục [years.{d.year}]."
        )
    return warnings
