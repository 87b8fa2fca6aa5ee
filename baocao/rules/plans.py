"""Reporting plans: who reports in which periods, by when, and who is chased and told.

A plan is data (`config/plans/<code>.toml`, read by :mod:`baocao.rules.config`). This module turns a
plan, a period and the hierarchy into dates: each unit's deadline, lock date, the day the
period opens and the day a consolidator sends its report up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from baocao.errors import ScheduleError
from baocao.rules.hierarchy import Hierarchy, Unit
from baocao.rules.periods import Period, WorkCalendar

NONWORKING_RULES = ("previous", "next", "keep")


@dataclass(frozen=True)
class DeadlineRule:
    """Either a fixed day of the period's last month, or N working days before the parent's deadline."""

    day: int | None = None
    before_parent_working_days: int | None = None
    month_offset: int = 0  # with `day`: months after (or before, if negative) the period's last month


@dataclass(frozen=True)
class ReminderPolicy:
    before: tuple[int, ...] = (3, 1)
    overdue: tuple[int, ...] = (1,)
    escalate: tuple[int, ...] = (3,)


@dataclass(frozen=True)
class Plan:
    code: str
    name: str
    root: str
    kinds: tuple[str, ...]
    deadlines: dict[str, DeadlineRule]
    nonworking: str = "previous"
    open_working_days_before: int = 10
    open_time: time = time(8, 0)
    lock_days_after: int = 10
    reminders: ReminderPolicy = field(default_factory=ReminderPolicy)
    consolidate_days_after: int = 1
    recipients: tuple[str, ...] = ("parent:coordinator", "parent:head")
    extra_recipients: dict[str, tuple[str, ...]] = field(default_factory=dict)
    tasks: str | None = None
    source: str = ""

    def covers(self, period: Period) -> bool:
        return period.kind in self.kinds

    def rule_for(self, unit: Unit, *, root: str | None = None) -> DeadlineRule | None:
        """A unit code's own rule, else `root` for the cycle's root, else its level's rule."""
        root = root or self.root
        if unit.code in self.deadlines:
            return self.deadlines[unit.code]
        if unit.code == root and "root" in self.deadlines:
            return self.deadlines["root"]
        return self.deadlines.get(unit.level)


@dataclass(frozen=True)
class UnitSchedule:
    """The dates one unit lives by in one cycle."""

    unit: str
    deadline: date
    due_at: datetime  # end of the deadline day, local time
    lock_at: datetime


def unit_deadlines(
    plan: Plan, period: Period, hierarchy: Hierarchy, calendar: WorkCalendar, *, root: str | None = None
) -> dict[str, UnitSchedule]:
    """Deadline, due instant and lock instant of every unit in the cycle's subtree (root included).

    Parents are resolved before children so that `before_parent_working_days` can count back
    from the parent's own deadline; the count uses working days of the calendar.
    """
    root = root or plan.root
    deadlines: dict[str, date] = {}
    for unit in hierarchy.walk(root):
        rule = plan.rule_for(unit, root=root)
        if rule is None:
            raise ScheduleError(f"plan {plan.code!r} has no deadline rule for unit {unit.code} (level {unit.level})")
        if rule.day is not None:
            day = calendar.day_in_period_month(period, rule.day, plan.nonworking, rule.month_offset)
        else:
            parent = unit.parent
            if parent is None or parent not in deadlines:
                raise ScheduleError(
                    f"plan {plan.code!r}: unit {unit.code} counts back from its parent's deadline, "
                    "but its parent is outside the cycle"
                )
            day = calendar.add_working_days(deadlines[parent], -(rule.before_parent_working_days or 0))
        deadlines[unit.code] = day
    out = {}
    for code, day in deadlines.items():
        due_at = calendar.end_of_day(day)
        lock_at = calendar.end_of_day(day + timedelta(days=plan.lock_days_after))
        out[code] = UnitSchedule(code, day, due_at, lock_at)
    return out


def open_at(plan: Plan, period: Period, hierarchy: Hierarchy, calendar: WorkCalendar, *, root: str | None = None) -> datetime:
    """When the period opens: N working days before the earliest deadline in the cycle, at the plan's time."""
    schedules = unit_deadlines(plan, period, hierarchy, calendar, root=root)
    first = min(s.deadline for s in schedules.values())
    day = calendar.add_working_days(first, -plan.open_working_days_before)
    return calendar.start_of_day(day).add(hours=plan.open_time.hour, minutes=plan.open_time.minute)
