"""Where plans overlap: a unit reporting under two plans for the same period, which say different days.

Seed 001's ward owes the city its 6-month report "trước ngày 10 tháng 6" by its own KH 158, while the
national plan has every city collect its wards by the 5th. Nothing is wrong with either file, yet
the ward can only keep both by reporting on the 5th. :func:`baocao.rules.plans.effective_days` makes
every cycle use the earliest day; this module says where that happened and who said what, for
`baocao calendar` (one cycle) and `baocao config check` (every plan, every period kind of a year).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from baocao.errors import ScheduleError
from baocao.rules.formatting import date_vi
from baocao.rules.hierarchy import Hierarchy, Unit
from baocao.rules.periods import KINDS, Period, WorkCalendar
from baocao.rules.plans import Plan, covering, effective_days, plan_days


@dataclass(frozen=True)
class PlanDay:
    """The day one plan, read alone, gives a unit."""

    plan: Plan
    day: date


@dataclass(frozen=True)
class Overlap:
    """A unit whose deadline is not simply what each covering plan alone says."""

    unit: Unit
    period: Period
    effective: date
    said: tuple[PlanDay, ...]  # the unit's nearest plan first (its own), the national plan last

    @property
    def said_vi(self) -> str:
        return "; ".join(f"{s.plan.label_vi}: {date_vi(s.day)}" for s in self.said)

    def explain_vi(self) -> str:
        """ "05/6/2026 (KH 158/KH-UBND của phường Nhị Chiểu: 10/6/2026; kế hoạch toàn quốc: 05/6/2026)"."""
        return f"{date_vi(self.effective)} ({self.said_vi})"


def lines_vi(overlaps: Iterable[Overlap], hierarchy: Hierarchy) -> list[str]:
    """`config check`'s lines, for the office that keeps the plans: units the plans treat alike share a line.

    Huế's forty-odd wards all differ the same way from the national plan; one line per period and
    pattern names them all instead of repeating the same dates forty times.
    """
    groups: dict[tuple[Period, date, str], list[Unit]] = {}
    for o in overlaps:
        groups.setdefault((o.period, o.effective, o.said_vi), []).append(o.unit)
    out = []
    for (period, effective, said), units in groups.items():
        names = ", ".join(unit_name_vi(u, hierarchy) for u in units)
        whose = f"của {names}" if len(units) == 1 else f"của {len(units)} đơn vị ({names})"
        out.append(f"Hạn nộp báo cáo {period.label_vi} {whose} khác nhau giữa các kế hoạch ({said}); "
                   f"áp dụng hạn sớm nhất: {date_vi(effective)}.")
    return out


def unit_name_vi(unit: Unit, hierarchy: Hierarchy) -> str:
    """A department's name with its parent's ("Phòng Tổng hợp, Văn phòng UBND tỉnh Lai Châu"): rooms share names."""
    if unit.level == "department" and unit.parent is not None:
        parent = hierarchy[unit.parent].name
        if parent.casefold() not in unit.name.casefold():
            return f"{unit.name}, {parent}"
    return unit.name


def _alone(plans: Iterable[tuple[Plan, str]], period: Period, hierarchy: Hierarchy,
           calendar: WorkCalendar) -> list[tuple[Plan, str, dict[str, date]]]:
    """Each (plan, root)'s days read alone; a plan that cannot schedule a period is left out (check says why)."""
    out = []
    for plan, root in plans:
        try:
            out.append((plan, root, plan_days(plan, period, hierarchy, calendar, root=root)))
        except ScheduleError:
            continue
    return out


def _overlaps(alone: list[tuple[Plan, str, dict[str, date]]], effective: dict[str, date], period: Period,
              hierarchy: Hierarchy, *, only_disagreeing: bool) -> list[Overlap]:
    by_depth = sorted(alone, key=lambda a: -hierarchy.depth(a[1]))  # the unit's own plan before the wider ones
    out = []
    for code, eff in effective.items():
        said = tuple(PlanDay(p, days[code]) for p, _, days in by_depth if code in days)
        distinct = {s.day for s in said}
        if only_disagreeing and len(distinct) < 2:
            continue
        if distinct == {eff}:
            continue
        out.append(Overlap(hierarchy[code], period, eff, said))
    return out


def cycle_overlaps(plan: Plan, period: Period, hierarchy: Hierarchy, calendar: WorkCalendar, plans: Iterable[Plan],
                   *, root: str | None = None) -> list[Overlap]:
    """Units of one cycle whose effective deadline is not what some covering plan says, in walk order."""
    plans = tuple(plans)
    root = root or plan.root
    effective = effective_days(plan, period, hierarchy, calendar, plans, root=root)
    alone = _alone(covering(plan, period, plans, root=root), period, hierarchy, calendar)
    return _overlaps(alone, effective, period, hierarchy, only_disagreeing=False)


def plan_disagreements(plans: Iterable[Plan], hierarchy: Hierarchy, calendar: WorkCalendar,
                       year: int) -> list[Overlap]:
    """Every unit whose deadline differs between the plans covering it, for each period kind of the year.

    Each plan is read alone at its own root; a unit counts when two covering plans give it different
    days. The effective day is the one every cycle uses (the earliest, :func:`effective_days`).
    """
    plans = tuple(plans)
    out = []
    for kind in KINDS:
        period = Period(year, kind)
        active = [p for p in plans if p.covers(period)]
        if len(active) < 2:
            continue
        alone = _alone([(p, p.root) for p in active], period, hierarchy, calendar)
        effective: dict[str, date] = {}
        for p, root, _ in sorted(alone, key=lambda a: hierarchy.depth(a[1])):  # the widest first: it holds most
            if root in effective:
                continue
            effective.update(effective_days(p, period, hierarchy, calendar, active, root=root))
        out += _overlaps(alone, effective, period, hierarchy, only_disagreeing=True)
    return out
