"""A task's deadline as it applies: moved off a non-working day by the plan's rule, and shown with both dates.

Report deadlines already move off weekends and holidays (``nonworking`` in the plan, applied by
:meth:`~baocao.rules.periods.WorkCalendar.adjust`); a task deadline is a deadline of the same plan and
moves the same way. Nhị Chiểu's task 1 "Trước 10/5/2026" falls on a Sunday: under the rule
"previous" the work is due on Friday 08/5/2026. The plan's own words stay on every form, reminder and
report, followed by the reason and the date that counts, so nobody reads the moved date as a typo:
"Trước 10/5/2026 (ngày 10/5/2026 là Chủ nhật; hạn tính đến ngày 08/5/2026)".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from baocao.rules.formatting import date_vi
from baocao.rules.periods import Period, WorkCalendar
from baocao.tasks.duephrases import Due

_WEEKDAYS_VI = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ nhật")


@dataclass(frozen=True)
class TaskDeadline:
    """The date the plan wrote (``written``) and the date that counts (``effective``) for one period."""

    written: date
    effective: date
    why_vi: str  # what the written day is when it is not a working day ("Chủ nhật", a holiday's name)

    @property
    def moved(self) -> bool:
        return self.written != self.effective


def is_chased(due: Due) -> bool:
    """Whether a passed deadline makes the task overdue: one-off and periodic tasks. A yearly task's
    31/12 and a continuous task have no deadline a unit can miss within a period (as before)."""
    return due.recurrence in (None, "periodic")


def nonworking_reason_vi(day: date, calendar: WorkCalendar) -> str:
    """Why ``day`` is not a working day: the holiday's Vietnamese name, else its weekday."""
    holiday = calendar.holidays(day.year).get(day)
    return f"ngày nghỉ {holiday}" if holiday else _WEEKDAYS_VI[day.weekday()]


def task_deadline(due: Due, period: Period | None, calendar: WorkCalendar, rule: str) -> TaskDeadline | None:
    """The task's deadline for ``period`` (its one date when ``period`` is None), moved by ``rule``.

    None when the task has no date then (continuous, on-event, or a periodic task not due that period).
    """
    written = due.due_date if period is None else due.due_in(period)
    if written is None:
        return None
    effective = calendar.adjust(written, rule)
    return TaskDeadline(written, effective, "" if effective == written else nonworking_reason_vi(written, calendar))


def deadline_label_vi(due: Due, period: Period | None, calendar: WorkCalendar, rule: str) -> str:
    """The "Thời hạn" a unit reads: the plan's words, then this period's date for a periodic task, and
    the date that counts when the written one is not a working day."""
    label = due.text
    deadline = task_deadline(due, period, calendar, rule)
    if deadline is None:
        return label
    notes = []
    if due.recurrence == "periodic" and period is not None:
        notes.append(f"kỳ báo cáo {period.label_vi}: trước ngày {date_vi(deadline.written)}")
    if deadline.moved:
        notes.append(f"ngày {date_vi(deadline.written)} là {deadline.why_vi}; "
                     f"hạn tính đến ngày {date_vi(deadline.effective)}")
    return f"{label} ({'; '.join(notes)})" if notes else label
