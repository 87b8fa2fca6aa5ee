"""The year's schedules, built from the plans (never hard-coded), and the deployments that carry them.

- `open-period`: per plan and report kind, a cron at the plan's open time on the day the period
  opens (N working days before the earliest deadline). Working days move with the calendar, so
  the cron names this year's date; `baocao serve` / `baocao deploy` rebuild the schedules each
  time they start (and the flow resolves a bare kind such as `H1` to the year of its run).
- `collect`: every `collect_every_minutes`; `chase`: daily at `chase_time`;
  `consolidate`: daily at 17:00, for every open cycle whose units are due.
- `retry-unit`: no schedule; an operator runs it from the UI with a unit, a period and a step.
All crons are in Asia/Ho_Chi_Minh.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flows.config import Config
from flows.plans import open_at
from flows.reporting_calendar import KINDS, Period

CONSOLIDATE_TIME = "17:00"


@dataclass(frozen=True)
class ScheduleSpec:
    flow: str  # open-period | collect | chase | consolidate | retry-unit
    name: str  # deployment name
    cron: str | None
    parameters: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    next_run: datetime | None = None


def resolve_period(period: str, as_of: datetime, cfg: Config) -> Period:
    """`2026-H1` as it is; a bare kind (`H1`) is that kind of the year of `as_of`, local time."""
    if period.strip().upper() in KINDS:
        return Period(cfg.calendar.local_date(as_of).year, period.strip().upper())
    return Period.parse(period)


def specs(cfg: Config, year: int) -> list[ScheduleSpec]:
    tz = cfg.calendar.settings.timezone
    out: list[ScheduleSpec] = []
    for plan in sorted(cfg.plans.values(), key=lambda p: p.code):
        for kind in plan.kinds:
            when = open_at(plan, Period(year, kind), cfg.hierarchy, cfg.calendar)
            out.append(ScheduleSpec(
                flow="open-period", name=f"open-{plan.code}-{kind.lower()}",
                cron=f"{when.minute} {when.hour} {when.day} {when.month} *",
                parameters={"period": kind, "plan": plan.code}, next_run=when,
                description=f"Open {kind} under {plan.name} ({plan.root}), {when:%d/%m/%Y %H:%M} {tz}",
            ))
    every = cfg.settings.collect_every_minutes
    chase = cfg.settings.chase_time
    hh, mm = CONSOLIDATE_TIME.split(":")
    out += [
        ScheduleSpec("collect", "collect", f"*/{every} * * * *", {}, f"Read the mailbox and drop folder every {every} min"),
        ScheduleSpec("chase", "chase-daily", f"{chase.minute} {chase.hour} * * *", {},
                     f"Reminders, overdue notices and escalations at {chase:%H:%M} {tz}"),
        ScheduleSpec("consolidate", "consolidate-daily", f"{int(mm)} {int(hh)} * * *", {},
                     f"Consolidate due units at {CONSOLIDATE_TIME} {tz}"),
        ScheduleSpec("retry-unit", "retry-unit", None, {}, "Redo one step for one unit (run from the UI)"),
    ]
    return out
