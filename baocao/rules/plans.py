"""Reporting plans: who reports in which periods, by when, and who is chased and told.

A plan is data (`config/plans/<code>.toml`, read by :mod:`baocao.rules.config`). This module turns a
plan, a period and the hierarchy into dates: each unit's deadline, lock date, the day the
period opens and the day a consolidator sends its report up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from baocao.errors import ScheduleError
from baocao.rules.bodies import Collector, CollectorRule, collector_for
from baocao.rules.catalog import PlanTarget
from baocao.rules.hierarchy import Hierarchy, Unit
from baocao.rules.periods import Period, WorkCalendar

NONWORKING_RULES = ("previous", "next", "keep")
ISSUE_MODES = ("review", "direct")
REVIEWED_LEVELS = ("province", "commune")
"""Levels whose reports an Ủy ban nhân dân issues (numbered and signed): reviewed unless the plan says "direct"."""


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
    # Working days an escalation leaves the parent before its own deadline (baocao/rules/escalation.py).
    escalate_before_parent: int = 2


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
    # How an office names the plan in one breath ("KH 158/KH-UBND của phường Nhị Chiểu"); "" means `name`.
    short_name: str = ""
    # What the plan itself says of the indicator catalogue (`[indicators.<CODE>]`, `[targets.<CODE>]`):
    # its wording of an indicator, and the targets it sets (None: no `[targets]`, the catalogue's apply).
    labels: dict[str, str] = field(default_factory=dict)
    targets: dict[str, PlanTarget] | None = None
    # The documents the plan carries out, highest first, as a report's "Thực hiện ..." cites them
    # (`basis`), and those of one unit and its subtree (`[unit_basis] CODE = [...]`, e.g. a province's
    # own Kế hoạch in the national plan).
    basis: tuple[str, ...] = ()
    unit_basis: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Who collects the reports at each level (`[collector.<level|root|CODE>]`): the body that asks,
    # chases, answers and signs, with a contact person and phone (baocao.rules.bodies).
    collectors: dict[str, CollectorRule] = field(default_factory=dict)
    # `[report] issue`: "review" (the draft goes to the unit, which returns it numbered and signed, then
    # it is sent up), "direct" (sent up as made: an internal summary), None: review for the reports of
    # an Ủy ban nhân dân (province, commune), direct for the others.
    issue: str | None = None

    def issue_for(self, unit_code: str, hierarchy: Hierarchy) -> str:
        """How `unit_code`'s report is issued: "review" or "direct". A unit with no parent (the ministry at
        the root) reports to no one above: its report is made as before, "direct"."""
        if hierarchy.parent(unit_code) is None:
            return "direct"
        if self.issue is not None:
            return self.issue
        return "review" if hierarchy[unit_code].level in REVIEWED_LEVELS else "direct"

    def collector(self, hierarchy: Hierarchy, unit_code: str, *, fallback_email: str = "") -> Collector:
        """The body that collects `unit_code`'s report under this plan (its parent's collecting office)."""
        return collector_for(self.collectors, self.root, hierarchy, unit_code, fallback_email=fallback_email)

    def basis_for(self, unit_code: str, hierarchy: Hierarchy) -> tuple[str, ...]:
        """The documents a unit's report (or a request it sends) cites: the plan's own, then those
        configured for the unit's ancestors and itself, top down; the plan's name when none is given."""
        chain = [u.code for u in reversed(hierarchy.ancestors(unit_code))] + [unit_code]
        docs = list(self.basis)
        for code in chain:
            docs += [d for d in self.unit_basis.get(code, ()) if d not in docs]
        return tuple(docs) or (self.name,)

    def covers(self, period: Period) -> bool:
        return period.kind in self.kinds

    @property
    def label_vi(self) -> str:
        """The plan as an operator's message names it."""
        return self.short_name or self.name

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
    plan: Plan, period: Period, hierarchy: Hierarchy, calendar: WorkCalendar, *, root: str | None = None,
    plans: Iterable[Plan] = (),
) -> dict[str, UnitSchedule]:
    """Deadline, due instant and lock instant of every unit in the cycle's subtree (root included).

    With `plans` (every configured plan) a unit gets its effective deadline: the earliest any plan
    covering it for the period gives it (:func:`effective_days`), because a unit under both the
    national plan and its own local plan is bound by both. Without, the plan alone decides (what
    the plan itself says; `config check` compares those). The lock date counts from the deadline.
    """
    root = root or plan.root
    others = tuple(plans)
    days = (effective_days(plan, period, hierarchy, calendar, others, root=root) if others
            else plan_days(plan, period, hierarchy, calendar, root=root))
    out = {}
    for code, day in days.items():
        due_at = calendar.end_of_day(day)
        lock_at = calendar.end_of_day(day + timedelta(days=plan.lock_days_after))
        out[code] = UnitSchedule(code, day, due_at, lock_at)
    return out


def plan_days(
    plan: Plan, period: Period, hierarchy: Hierarchy, calendar: WorkCalendar, *, root: str | None = None
) -> dict[str, date]:
    """Each unit's deadline in the cycle's subtree as this plan alone sets it.

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
    return deadlines


def covering(plan: Plan, period: Period, plans: Iterable[Plan], *, root: str | None = None) -> list[tuple[Plan, str]]:
    """(plan, root) of every plan that reports this period: the cycle's own with the cycle's root, the others at theirs.

    A unit is covered by each of these whose root is the unit or one of its ancestors.
    """
    out = [(plan, root or plan.root)]
    out += [(p, p.root) for p in plans if p.code != plan.code and p.covers(period)]
    return out


def effective_days(
    plan: Plan, period: Period, hierarchy: Hierarchy, calendar: WorkCalendar, plans: Iterable[Plan], *,
    root: str | None = None,
) -> dict[str, date]:
    """Each unit's effective deadline in the cycle's subtree: the earliest of what every covering plan gives it.

    A unit's own plan cannot give it a later day than its parent needs it under the plan the parent
    reports by (Nhị Chiểu's KH 158 says before 10/6, the national plan has the city collect its
    wards by 05/6: the ward owes 05/6 in either cycle). A plan's rule counting back from the parent
    counts from the parent's day under that plan *and the wider plans it sits in* (whose root is
    its root or above): KH 158's departments count 3 working days back from the ward's 05/6, not
    10/6. A wider plan's rule is not re-based on a narrower plan's day: the national "3 working days
    before the parent" does not move a commune's departments that its own plan gives a date of their
    own. A plan other than the cycle's that has no rule for a unit gives it no day.
    """
    root = root or plan.root
    covers = covering(plan, period, plans, root=root)
    lines: dict[str, frozenset[str]] = {}
    memo: dict[tuple[str, int], date | None] = {}

    def line(code: str) -> frozenset[str]:  # the unit and its ancestors
        if code not in lines:
            lines[code] = frozenset([code, *(a.code for a in hierarchy.ancestors(code))])
        return lines[code]

    def day_under(code: str, k: int) -> date | None:
        """The unit's day under covering plan k and the wider plans around it (None: none of them covers it)."""
        if (code, k) in memo:
            return memo[code, k]
        unit = hierarchy[code]
        days = []
        for j, (p, p_root) in enumerate(covers):
            if p_root not in line(covers[k][1]) or p_root not in line(code):
                continue  # narrower than plan k, or not over this unit
            own = j == 0
            rule = p.rule_for(unit, root=p_root)
            if rule is None:
                if own:
                    raise ScheduleError(f"plan {p.code!r} has no deadline rule for unit {code} (level {unit.level})")
                continue
            if rule.day is not None:
                days.append(calendar.day_in_period_month(period, rule.day, p.nonworking, rule.month_offset))
                continue
            parent_day = day_under(unit.parent, j) if unit.parent is not None else None
            if parent_day is None:
                if own:
                    raise ScheduleError(f"plan {p.code!r}: unit {code} counts back from its parent's deadline, "
                                        "but its parent is outside the cycle")
                continue
            days.append(calendar.add_working_days(parent_day, -(rule.before_parent_working_days or 0)))
        memo[code, k] = min(days) if days else None
        return memo[code, k]

    out = {}
    for unit in hierarchy.walk(root):
        days = [d for k, (_, k_root) in enumerate(covers) if k_root in line(unit.code)
                if (d := day_under(unit.code, k)) is not None]
        out[unit.code] = min(days)  # the cycle's own plan (covers[0]) covers its whole subtree, or raised
    return out


def open_at(
    plan: Plan, period: Period, hierarchy: Hierarchy, calendar: WorkCalendar, *, root: str | None = None,
    plans: Iterable[Plan] = (),
) -> datetime:
    """When the period opens: N working days before the earliest deadline in the cycle, at the plan's time.

    With `plans`, the earliest effective deadline (:func:`unit_deadlines`): a stricter plan over the
    cycle opens it earlier.
    """
    schedules = unit_deadlines(plan, period, hierarchy, calendar, root=root, plans=plans)
    first = min(s.deadline for s in schedules.values())
    day = calendar.add_working_days(first, -plan.open_working_days_before)
    return calendar.start_of_day(day).add(hours=plan.open_time.hour, minutes=plan.open_time.minute)
