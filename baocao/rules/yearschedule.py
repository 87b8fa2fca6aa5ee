"""A year's official holiday schedule, as the operator records it in config/calendar.toml.

The `holidays` package *computes* Vietnam's holidays: lunar Tết by a fixed rule, a holiday on a
weekend moved to the next working day. The days public offices actually close are *decided* each
year (a Thông báo of Bộ Nội vụ after the Prime Minister agrees, often with a swapped Saturday), and
some holidays (24/11, Ngày Văn hóa Việt Nam) rest on a Party resolution before the Labour Code
lists them. A deadline moved by a computed day may move back once the decision is out, so every
holiday is either "dự kiến" (computed, not yet checked against a decision) or "đã xác nhận".

``[years.2027]`` in config/calendar.toml is where the operator records the decision:

* ``confirmed = true``: the computed days of the year, with the corrections below, are the
  official schedule;
* ``holidays``: days off the decision adds (a swapped weekday, a day the package does not know),
  as ISO dates or ``{ date = ..., name = "..." }``; listing a day confirms it even before the
  whole year is;
* ``removed``: computed holidays that are not days off;
* ``working_days``: weekend days worked instead (làm bù);
* ``pending``: days of a confirmed year still awaiting their own decision (they stay "dự kiến").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from types import MappingProxyType
from typing import Any

__all__ = ["DEFAULT_HOLIDAY_NAME", "WORKING_DAY_NAME", "SpecialDay", "YearSchedule", "parse_years"]

DEFAULT_HOLIDAY_NAME = "Ngày nghỉ bổ sung"
WORKING_DAY_NAME = "Ngày làm việc bù"
STATUS_CONFIRMED = "đã xác nhận"
STATUS_COMPUTED = "dự kiến (chưa được xác nhận)"


@dataclass(frozen=True)
class SpecialDay:
    """A day that is not what its weekday says: a holiday, or a weekend day worked (làm bù)."""

    day: date
    name: str
    working: bool  # True: a weekend day worked instead of a day off
    confirmed: bool  # False: computed by the `holidays` package, no decision recorded yet

    @property
    def status_vi(self) -> str:
        """"đã xác nhận" or "dự kiến (chưa được xác nhận)": what an office reads next to the day."""
        return STATUS_CONFIRMED if self.confirmed else STATUS_COMPUTED


@dataclass(frozen=True)
class YearSchedule:
    """One year's recorded decision (``[years.<year>]``): what it confirms and corrects."""

    year: int
    confirmed: bool = False
    holidays: Mapping[date, str] = field(default_factory=dict)
    removed: frozenset[date] = frozenset()
    working_days: frozenset[date] = frozenset()
    pending: frozenset[date] = frozenset()
    source: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "holidays", MappingProxyType(dict(sorted(self.holidays.items()))))
        for key in ("removed", "working_days", "pending"):
            object.__setattr__(self, key, frozenset(getattr(self, key)))
        lists = {"holidays": frozenset(self.holidays), "removed": self.removed,
                 "working_days": self.working_days, "pending": self.pending}
        for key, days in lists.items():
            stray = sorted(d for d in days if d.year != self.year)
            if stray:
                raise ValueError(f"{key}: {', '.join(d.isoformat() for d in stray)} not in {self.year}")
        for a, b in (("holidays", "removed"), ("holidays", "working_days"), ("removed", "working_days"),
                     ("removed", "pending")):
            both = sorted(lists[a] & lists[b])
            if both:
                raise ValueError(f"{b}: {', '.join(d.isoformat() for d in both)} also listed in {a}")

    def confirms(self, d: date) -> bool:
        """True if the recorded decision covers ``d``: listed explicitly, or the whole year confirmed."""
        if d in self.pending:
            return False
        return self.confirmed or d in self.holidays or d in self.working_days


def _read_day(value: Any, key: str) -> date:
    if isinstance(value, datetime):
        raise ValueError(f"{key}: {value.isoformat()} is a date and time; write the date only (YYYY-MM-DD)")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"{key}: {value!r} is not a date (YYYY-MM-DD)")


def _read_days(table: Mapping[str, Any], key: str, where: str) -> frozenset[date]:
    values = table.get(key, [])
    if not isinstance(values, list):
        raise ValueError(f"{where}{key}: expected a list of dates")
    return frozenset(_read_day(v, f"{where}{key}") for v in values)


def parse_years(data: Mapping[str, Any]) -> dict[int, YearSchedule]:
    """Read the ``years`` table of config/calendar.toml; a ValueError names the key that is wrong."""
    out: dict[int, YearSchedule] = {}
    for raw_year, table in data.items():
        where = f"years.{raw_year}."
        if not str(raw_year).isdigit() or len(str(raw_year)) != 4:
            raise ValueError(f"years.{raw_year}: not a four-digit year")
        if not isinstance(table, Mapping):
            raise ValueError(f"years.{raw_year}: expected a table")
        unknown = sorted(set(table) - {"confirmed", "holidays", "removed", "working_days", "pending", "source"})
        if unknown:
            raise ValueError(f"{where}{unknown[0]}: unknown key (confirmed, holidays, removed, working_days, "
                             "pending, source)")
        confirmed = table.get("confirmed", False)
        if not isinstance(confirmed, bool):
            raise ValueError(f"{where}confirmed: expected true or false")
        holidays: dict[date, str] = {}
        entries = table.get("holidays", [])
        if not isinstance(entries, list):
            raise ValueError(f"{where}holidays: expected a list of dates or {{ date = ..., name = ... }}")
        for i, entry in enumerate(entries):
            if isinstance(entry, Mapping):
                day = _read_day(entry.get("date"), f"{where}holidays[{i}].date")
                name = str(entry.get("name") or DEFAULT_HOLIDAY_NAME)
            else:
                day, name = _read_day(entry, f"{where}holidays[{i}]"), DEFAULT_HOLIDAY_NAME
            holidays[day] = name
        removed, working = _read_days(table, "removed", where), _read_days(table, "working_days", where)
        pending = _read_days(table, "pending", where)
        try:
            out[int(raw_year)] = YearSchedule(
                year=int(raw_year), confirmed=confirmed, holidays=holidays, removed=removed,
                working_days=working, pending=pending, source=str(table.get("source", "")),
            )
        except ValueError as exc:
            raise ValueError(f"{where}{exc}") from None
    return out
