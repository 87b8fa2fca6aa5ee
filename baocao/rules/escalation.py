"""When an escalation goes to the parent: late enough to be fair to the unit, early enough for the parent to act.

An escalation tells a parent that a unit under it has not sent its report. Counted only from the
unit's deadline (the plan's `escalate` offsets), it used to reach a commune on its own deadline day
(its departments due 3 working days before it, escalated 3 working days after theirs), "để kịp tổng
hợp" on the very day the commune itself had to report. The rule, in working days:

    day = max(child deadline + 1, min(child deadline + offset, parent deadline - escalate_before_parent))

- never before the unit's deadline has passed (the first working day after it at the earliest: a unit
  is not reported to its parent while it still may send on time);
- the plan's offset when that leaves the parent `escalate_before_parent` working days
  (`[reminders]` of the plan) before its own deadline, else earlier: on the last day that still does;
- when even the first day after the unit's deadline leaves the parent fewer days (the two deadlines are
  too close), the escalation goes on that first day, and `baocao config check` says the plan's
  policy cannot keep its promise (:func:`policy_warnings`).

A parent outside the cycle (the root's parent) has no deadline here: the plan's offset alone counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from baocao.errors import ScheduleError
from baocao.rules.formatting import date_vi
from baocao.rules.hierarchy import Hierarchy
from baocao.rules.periods import Period, WorkCalendar
from baocao.rules.plans import Plan, plan_days

__all__ = ["escalation_day", "parent_days_left", "policy_warnings"]


def escalation_day(cal: WorkCalendar, child_deadline: date, offset: int, parent_deadline: date | None,
                   before_parent: int) -> date:
    """The day the escalation of stage ``offset`` for a unit due ``child_deadline`` goes (see the module)."""
    earliest = cal.add_working_days(child_deadline, 1)
    day = cal.add_working_days(child_deadline, offset)
    if parent_deadline is not None:
        day = min(day, cal.add_working_days(parent_deadline, -before_parent))
    return max(day, earliest)


def parent_days_left(cal: WorkCalendar, day: date, parent_deadline: date) -> int:
    """Working days the parent has after an escalation on ``day`` before its own deadline (deadline day included)."""
    return cal.working_days_between(day, parent_deadline)


def policy_warnings(plans: Iterable[Plan], hierarchy: Hierarchy, cal: WorkCalendar, year: int) -> list[str]:
    """`config check`'s lines: where a plan's escalation cannot leave the parent its configured working days.

    Each plan is read alone, for every period kind it covers in ``year``; units in the same case (same
    plan, period, deadline and parent's deadline) share one line, with a few names and how many.
    """
    groups: dict[tuple[str, Period, date, date, date], list[tuple[str, str]]] = {}
    sources: dict[str, Plan] = {}
    for plan in plans:
        if not plan.reminders.escalate:
            continue
        sources[plan.code] = plan
        for kind in plan.kinds:
            period = Period(year, kind)
            try:
                days = plan_days(plan, period, hierarchy, cal)
            except ScheduleError:
                continue  # said by config check already
            first = min(plan.reminders.escalate)
            for unit in hierarchy.walk(plan.root):
                if unit.parent is None or unit.parent not in days or unit.code == plan.root:
                    continue
                child, parent = days[unit.code], days[unit.parent]
                day = escalation_day(cal, child, first, parent, plan.reminders.escalate_before_parent)
                if parent_days_left(cal, day, parent) < plan.reminders.escalate_before_parent:
                    groups.setdefault((plan.code, period, child, parent, day), []).append((unit.name, unit.parent))
    out = []
    for (code, period, child, parent, day), units in groups.items():
        plan = sources[code]
        parents = list(dict.fromkeys(hierarchy[p].name for _, p in units))
        names = ", ".join(n for n, _ in units[:3]) + (f" và {len(units) - 3} đơn vị khác" if len(units) > 3 else "")
        whose = ", ".join(parents[:3]) + (f" và {len(parents) - 3} đơn vị khác" if len(parents) > 3 else "")
        left = parent_days_left(cal, day, parent)
        out.append(
            f"{plan.source}: reminders.escalate_before_parent = {plan.reminders.escalate_before_parent}: "
            f"báo cáo {period.label_vi}, {names} (hạn {date_vi(child)}) báo cáo lên {whose} (hạn {date_vi(parent)}): "
            f"thư báo cáo cấp trên sớm nhất là ngày {date_vi(day)}, ngày làm việc đầu tiên sau hạn của đơn vị, "
            f"chỉ còn {left} ngày làm việc trước hạn của cấp trên (cần {plan.reminders.escalate_before_parent}). "
            "Đề nghị cho đơn vị hạn sớm hơn hoặc giảm escalate_before_parent."
        )
    return out
