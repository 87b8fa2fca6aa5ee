"""The schedules, built from the plans and settings (never hard-coded), and the deployments that carry them.

- `open-period`: per plan and report kind, one run at the plan's open time on the day the period
  opens (N working days before the earliest deadline). Working days move with the calendar, so a
  yearly cron on a fixed date would be wrong the next year (and, started in December, named dates
  that were already past: the server then scheduled them a year late, on the wrong day). Each
  opening is therefore its own one-time schedule (an RRULE with COUNT=1) for the openings still to
  come in the next `OPENINGS_AHEAD_DAYS`, carrying the period's full code (`2027-Q1`) as its parameter;
  `serve` / `deploy` rebuild them each time they start.
- `collect`: every `collect_every_minutes` (an interval anchored at local midnight, so 5 means :00, :05,
  ...; a fraction of a minute is allowed, which the real-server tests use); `chase`: daily at
  `chase_time`; `consolidate`: daily at `consolidate_time`, for every open cycle whose units are due.
- `retry-unit`: no schedule; an operator runs it from the UI with a unit, a period and a step.
All times are in the calendar's timezone (Asia/Ho_Chi_Minh).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pendulum

from baocao.rules.config import Config
from baocao.rules.periods import KINDS, Period
from baocao.rules.plans import open_at

OPENINGS_AHEAD_DAYS = 400
"""How far ahead openings are scheduled: every kind of the next year, whenever `serve` starts."""


@dataclass(frozen=True)
class ScheduleSpec:
    """One deployment and when it runs.

    `cron` or `every` (a recurring schedule) or `runs` (one-time runs, each with its own parameters);
    none of them for a deployment started by hand (`retry-unit`).
    """

    flow: str  # open-period | collect | chase | consolidate | retry-unit
    name: str  # deployment name
    cron: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    every: timedelta | None = None
    runs: tuple[tuple[datetime, dict[str, Any]], ...] = ()

    @property
    def next_run(self) -> datetime | None:
        """The first one-time run (openings); recurring schedules are computed by `next_runs`."""
        return self.runs[0][0] if self.runs else None

    @property
    def when(self) -> str:
        """The schedule as an operator reads it."""
        if self.cron:
            return f"cron {self.cron}"
        if self.every:
            minutes = self.every.total_seconds() / 60
            return f"every {minutes:g} min"
        if self.runs:
            return "once: " + ", ".join(f"{at:%d/%m/%Y %H:%M}" for at, _ in self.runs)
        return "(run from the UI)"


def resolve_period(period: str, as_of: datetime, cfg: Config) -> Period:
    """`2026-H1` as it is; a bare kind (`H1`) is that kind of the year of `as_of`, local time."""
    if period.strip().upper() in KINDS:
        return Period(cfg.calendar.local_date(as_of).year, period.strip().upper())
    return Period.parse(period)


def openings(cfg: Config, plan_code: str, kind: str, after: datetime, *,
             days: int = OPENINGS_AHEAD_DAYS) -> list[tuple[datetime, Period]]:
    """When each period of `kind` under the plan opens, for the openings after `after` within `days`."""
    plan = cfg.plan(plan_code)
    until = after + timedelta(days=days)
    year = cfg.calendar.local_date(after).year
    out = []
    for y in range(year - 1, year + days // 365 + 2):
        p = Period(y, kind)
        when = open_at(plan, p, cfg.hierarchy, cfg.calendar, plans=cfg.plans.values())  # effective deadlines
        if after < when <= until:
            out.append((when, p))
    return out


def specs(cfg: Config, now: datetime | int | None = None) -> list[ScheduleSpec]:
    """Every deployment with its schedule as of `now` (default: the present).

    `now` may be a year: the openings of that year are listed (what `baocao schedule --year` shows).
    """
    tz = cfg.calendar.settings.timezone
    if isinstance(now, int):
        after, days = pendulum.datetime(now, 1, 1, tz=tz).subtract(seconds=1), 366
    else:
        after, days = (now or pendulum.now(tz)), OPENINGS_AHEAD_DAYS
    out: list[ScheduleSpec] = []
    for plan in sorted(cfg.plans.values(), key=lambda p: p.code):
        for kind in plan.kinds:
            runs = tuple((when, {"period": p.code}) for when, p in openings(cfg, plan.code, kind, after, days=days))
            if not runs:
                continue
            out.append(ScheduleSpec(
                flow="open-period", name=f"open-{plan.code}-{kind.lower()}", parameters={"plan": plan.code},
                runs=runs,
                description=f"Open {kind} under {plan.name} ({plan.root}): "
                            + ", ".join(f"{p['period']} at {at:%d/%m/%Y %H:%M}" for at, p in runs) + f" {tz}",
            ))
    every = timedelta(minutes=cfg.settings.collect_every_minutes)
    chase = cfg.settings.chase_time
    cons = cfg.settings.consolidate_time
    out += [
        ScheduleSpec("collect", "collect", every=every,
                     description=f"Read the mailbox and drop folder every {every.total_seconds() / 60:g} min"),
        ScheduleSpec("chase", "chase-daily", f"{chase.minute} {chase.hour} * * *",
                     description=f"Reminders, overdue notices and escalations at {chase:%H:%M} {tz}"),
        ScheduleSpec("consolidate", "consolidate-daily", f"{cons.minute} {cons.hour} * * *",
                     description=f"Consolidate due units at {cons:%H:%M} {tz}"),
        ScheduleSpec("retry-unit", "retry-unit", description="Redo one step for one unit (run from the UI)"),
    ]
    return out


def prefect_schedules(spec: ScheduleSpec, timezone: str) -> list[Any]:
    """The Prefect schedules of one spec (empty for a deployment run by hand)."""
    from prefect.schedules import Cron, Interval, RRule

    if spec.cron:
        return [Cron(spec.cron, timezone=timezone)]
    if spec.every:
        anchor = pendulum.today(timezone)
        return [Interval(spec.every, anchor_date=anchor, timezone=timezone)]
    return [RRule(f"DTSTART:{at:%Y%m%dT%H%M%S}\nRRULE:FREQ=DAILY;COUNT=1", timezone=timezone, parameters=params,
                  slug=f"{spec.name}-{params['period'].lower()}") for at, params in spec.runs]
