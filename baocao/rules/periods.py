"""Reporting periods, working days and deadline phrases for Vietnam's periodic reporting.

Everything here is a pure function of its inputs (plus the `holidays` package's tables), so the
flows, the CLI and the tests can share one notion of "which period are we in", "is this a working
day" and "when is this due" without a database or Prefect.

Deadline semantics used throughout the project:

* A plan's "trước ngày 10 tháng 6" is stored as the deadline *date* 10/6, inclusive: a submission is
  late only if it is received after the end of that day, local time (Asia/Ho_Chi_Minh). Offices read
  "trước ngày 10" as "by the 10th", and a date is what people can check without a clock.
* A deadline that falls on a non-working day (weekend, public holiday including Tết, or an extra day
  off decided by the Government) moves by the plan's rule: "previous" (the default in every plan:
  the report must be in before the office closes), "next", or "keep".
* Data cut-off windows (Nghị định 09/2019/NĐ-CP) are a separate setting from deadlines: a plan's
  deadline may fall before its cut-off window ends.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from types import MappingProxyType
from typing import Any

import holidays as holidays_lib
import pendulum

from baocao.errors import PeriodError
from baocao.rules.yearschedule import (
    DEFAULT_HOLIDAY_NAME,
    WORKING_DAY_NAME,
    SpecialDay,
    YearSchedule,
    parse_years,
)

__all__ = [
    "KINDS", "ND09_CUTOFF", "RULES", "CalendarSettings", "Period", "PeriodError", "SpecialDay", "WorkCalendar",
    "YearSchedule",
]


KINDS: tuple[str, ...] = ("Q1", "H1", "9M", "Y")
"""Report kinds, each cumulative from 1 January: quý I, 6 tháng, 9 tháng, năm."""

_END_MONTH = {"Q1": 3, "H1": 6, "9M": 9, "Y": 12}
_LABEL_VI = {
    "Q1": "quý I năm {year}",
    "H1": "6 tháng đầu năm {year}",
    "9M": "9 tháng đầu năm {year}",
    "Y": "năm {year}",
}

ND09_CUTOFF: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "Q1": ("prev-12-15", "03-14"),
        "H1": ("prev-12-15", "06-14"),
        "9M": ("prev-12-15", "09-14"),
        "Y": ("prev-12-15", "12-14"),
    }
)
"""Data cut-off windows of Nghị định 09/2019/NĐ-CP: 15/12 of the previous year to the 14th."""

RULES: tuple[str, ...] = ("previous", "next", "keep")
"""How a date on a non-working day moves."""


def _no_fourth_quarter(code: str, year: re.Match[str] | None) -> PeriodError:
    """The error for a fourth-quarter code: an office asking for Q4 wants the year report, so say which.

    Plans report Q1, 6 months, 9 months and the year (cumulative from 1 January); the year report,
    due in December, is the one that covers October to December.
    """
    target = f"{year.group()}-Y" if year else "YYYY-Y"
    use = f"mã kỳ “{target}”" if year else "mã kỳ năm, ví dụ “2026-Y”"
    return PeriodError(
        f"Cannot read period code {code!r}: there is no Q4 report; the year report ({target}) covers the "
        "fourth quarter",
        f"Không đọc được mã kỳ báo cáo “{code.strip()}”: không có kỳ báo cáo quý IV; số liệu quý IV được "
        f"tổng hợp trong báo cáo năm, đề nghị dùng {use}.",
    )


def _last_day_of_month(year: int, month: int) -> date:
    if month == 12:
        return date(year, 12, 31)
    return date(year, month + 1, 1) - timedelta(days=1)


# --------------------------------------------------------------------------------------------------
# Periods
# --------------------------------------------------------------------------------------------------


_PERIOD_RE = re.compile(r"^(?P<year>\d{4})-(?P<kind>Q1|H1|9M|Y)$")
# "Q4", "QIV", "quý IV", "quý 4" once spaces are gone and letters upper-cased: a fourth-quarter report,
# which no plan has (the year report covers it).
_Q4_RE = re.compile(r"Q(?:UÝ|UY)?(?:IV(?![IVX])|4(?!\d))")
_YEAR_RE = re.compile(r"(?<!\d)\d{4}(?!\d)")


@dataclass(frozen=True, order=True)
class Period:
    """A reporting period: a kind (Q1, H1, 9M, Y) of a year, cumulative from 1 January.

    Periods sort chronologically (2025-Y < 2026-Q1 < 2026-H1 < 2026-9M < 2026-Y): a hidden rank
    field sits between ``year`` and ``kind`` so the generated ordering never compares kind codes
    as strings ("9M" < "H1" < "Q1" alphabetically, which is wrong).
    """

    year: int
    _rank: int = field(init=False, repr=False)
    kind: str

    def __post_init__(self) -> None:
        if self.kind not in _END_MONTH:
            raise PeriodError(
                f"Unknown period kind {self.kind!r}; expected one of {', '.join(KINDS)}",
                f"Loại kỳ báo cáo “{self.kind}” không hợp lệ; chỉ dùng {', '.join(KINDS)}.",
            )
        if isinstance(self.year, bool) or not isinstance(self.year, int) or not 1000 <= self.year <= 9999:
            raise PeriodError(
                f"Period year must be a four-digit integer, got {self.year!r}",
                f"Năm của kỳ báo cáo “{self.year}” không hợp lệ.",
            )
        object.__setattr__(self, "_rank", KINDS.index(self.kind))

    @classmethod
    def parse(cls, code: str) -> Period:
        """Read "2026-Q1", "2026-h1", " 2026 - 9M ", "2026-Y" (case and spaces do not matter)."""
        if not isinstance(code, str):
            raise PeriodError(
                f"Period code must be a string, got {type(code).__name__}",
                "Mã kỳ báo cáo phải là chuỗi ký tự, ví dụ “2026-H1”.",
            )
        cleaned = re.sub(r"\s+", "", unicodedata.normalize("NFKC", code)).upper()
        cleaned = re.sub(r"[\u2010-\u2015\u2212]", "-", cleaned)
        match = _PERIOD_RE.match(cleaned)
        if match is None and _Q4_RE.search(cleaned):
            raise _no_fourth_quarter(code, _YEAR_RE.search(cleaned))
        if match is None:
            raise PeriodError(
                f"Cannot read period code {code!r}; expected YYYY-Q1, YYYY-H1, YYYY-9M or YYYY-Y",
                f"Không đọc được mã kỳ báo cáo “{code.strip()}”: ghi theo dạng “2026-Q1” (quý I), "
                "“2026-H1” (6 tháng), “2026-9M” (9 tháng) hoặc “2026-Y” (năm).",
            )
        return cls(int(match["year"]), match["kind"])

    @property
    def code(self) -> str:
        """The canonical code, e.g. "2026-H1" (used in file names, URLs and the database)."""
        return f"{self.year}-{self.kind}"

    @property
    def label_vi(self) -> str:
        """How a Vietnamese report names the period: "6 tháng đầu năm 2026"."""
        return _LABEL_VI[self.kind].format(year=self.year)

    @property
    def end_month(self) -> int:
        """The period's last month (3, 6, 9, 12): plans set deadlines on a day of this month."""
        return _END_MONTH[self.kind]

    @property
    def first_day(self) -> date:
        """1 January: every kind is cumulative from the start of the year."""
        return date(self.year, 1, 1)

    @property
    def last_day(self) -> date:
        """The last calendar day of the period (31/3, 30/6, 30/9, 31/12)."""
        return _last_day_of_month(self.year, self.end_month)

    def same_period_last_year(self) -> Period:
        """The period a cut ("giảm 10 %") is measured against."""
        return Period(self.year - 1, self.kind)

    def earlier_in_year(self) -> list[Period]:
        """The same year's shorter periods (H1 -> [Q1]), whose cumulative counts must not exceed ours."""
        return [Period(self.year, kind) for kind in KINDS[: KINDS.index(self.kind)]]

    def __str__(self) -> str:
        return self.code


# --------------------------------------------------------------------------------------------------
# Working calendar
# --------------------------------------------------------------------------------------------------

_CUTOFF_RE = re.compile(r"^(?P<prev>prev-)?(?P<month>\d{2})-(?P<day>\d{2})$")


def _read_cutoff_point(text: str, year: int) -> date:
    match = _CUTOFF_RE.match(text.strip())
    if match is None:
        raise PeriodError(
            f"Cannot read cut-off point {text!r}; expected 'MM-DD' or 'prev-MM-DD'",
            f"Không đọc được mốc chốt số liệu “{text}”: dùng dạng “06-14” hoặc “prev-12-15”.",
        )
    target_year = year - 1 if match["prev"] else year
    try:
        return date(target_year, int(match["month"]), int(match["day"]))
    except ValueError as exc:
        raise PeriodError(
            f"Cut-off point {text!r} is not a real date in {target_year}",
            f"Mốc chốt số liệu “{text}” không phải ngày có thật.",
        ) from exc


def _as_date(value: date | str) -> date:
    if isinstance(value, datetime):
        raise TypeError(f"Expected a date, got a datetime: {value!r}")
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value).strip())


@dataclass(frozen=True)
class CalendarSettings:
    """The shared reporting calendar (config/calendar.toml).

    ``cutoff`` maps a kind to (start, end) points: "prev-12-15" is 15 December of the previous year,
    "06-14" is 14 June of the period's year. ``extra_holidays`` and ``extra_working_days`` carry the
    Government's yearly day swaps that the `holidays` package does not know yet (a Saturday made a
    working day goes in ``extra_working_days``). ``years`` holds each year's recorded decision
    (``[years.2026]``, :mod:`baocao.rules.yearschedule`): which computed days it confirms and how it
    corrects them; the two flat lists are operator-entered days, hence confirmed.
    """

    timezone: str = "Asia/Ho_Chi_Minh"
    cutoff: Mapping[str, tuple[str, str]] = field(default_factory=lambda: ND09_CUTOFF)
    extra_holidays: frozenset[date] = frozenset()
    extra_working_days: frozenset[date] = frozenset()
    years: Mapping[int, YearSchedule] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        pendulum.timezone(self.timezone)  # raises on an unknown zone name
        missing = [kind for kind in KINDS if kind not in self.cutoff]
        if missing:
            raise PeriodError(
                f"Cut-off windows missing for kinds {missing}",
                f"Thiếu mốc chốt số liệu cho kỳ {', '.join(missing)}.",
            )
        for kind in KINDS:
            start, end = self.cutoff[kind]
            # Checked against a leap year so "02-29" is accepted; the window is checked per year later.
            if _read_cutoff_point(start, 2024) > _read_cutoff_point(end, 2024):
                raise PeriodError(
                    f"Cut-off window for {kind} starts after it ends: {start} .. {end}",
                    f"Khoảng chốt số liệu kỳ {kind} bắt đầu sau khi kết thúc: {start} .. {end}.",
                )
        object.__setattr__(self, "cutoff", MappingProxyType({k: tuple(v) for k, v in self.cutoff.items()}))
        object.__setattr__(self, "extra_holidays", frozenset(_as_date(d) for d in self.extra_holidays))
        object.__setattr__(
            self, "extra_working_days", frozenset(_as_date(d) for d in self.extra_working_days)
        )
        object.__setattr__(self, "years", MappingProxyType(dict(self.years)))
        both = self.extra_holidays & self.extra_working_days
        if both:
            listed = ", ".join(sorted(d.isoformat() for d in both))
            raise PeriodError(
                f"Dates listed both as extra holidays and extra working days: {listed}",
                f"Ngày vừa là ngày nghỉ vừa là ngày làm việc bổ sung: {listed}.",
            )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> CalendarSettings:
        """Build from the parsed config/calendar.toml (cutoff tables have "start" and "end" keys)."""
        cutoff_data = data.get("cutoff")
        cutoff: Mapping[str, tuple[str, str]] = ND09_CUTOFF
        if cutoff_data:
            cutoff = {
                str(kind): (str(v["start"]), str(v["end"]))
                if isinstance(v, Mapping)
                else (str(v[0]), str(v[1]))
                for kind, v in cutoff_data.items()
            }
        return cls(
            timezone=str(data.get("timezone", "Asia/Ho_Chi_Minh")),
            cutoff=cutoff,
            extra_holidays=frozenset(_as_date(d) for d in data.get("extra_holidays", ()) or ()),
            extra_working_days=frozenset(_as_date(d) for d in data.get("extra_working_days", ()) or ()),
            years=parse_years(data.get("years", {}) or {}),
        )


class WorkCalendar:
    """Working days and local times for deadlines, reminders and cut-off windows.

    Holidays come from ``holidays.VN`` (Vietnamese names, lunar Tết and observed days included),
    plus ``extra_holidays``. Saturdays the Government swaps into working days are working days,
    whether the `holidays` package knows the swap or it is listed in ``extra_working_days``. A year's
    recorded decision (``settings.years``) removes, adds and swaps days over the computed ones, and
    :meth:`special_days` says which days rest on it ("đã xác nhận") and which are still computed.
    """

    def __init__(self, settings: CalendarSettings | None = None) -> None:
        self.settings = settings or CalendarSettings()
        self.tz = pendulum.timezone(self.settings.timezone)
        self._holidays: dict[int, dict[date, str]] = {}
        self._lib_workdays: dict[int, frozenset[date]] = {}

    # -- holidays ----------------------------------------------------------------------------------

    def _load_year(self, year: int) -> None:
        if year in self._holidays:
            return
        # Neighbouring years too: a holiday can be observed (nghỉ bù) in the next calendar year.
        years = [year - 1, year, year + 1]
        try:
            table = holidays_lib.country_holidays("VN", years=years, language="vi")
        except (NotImplementedError, ValueError):  # a build without Vietnamese translations
            table = holidays_lib.country_holidays("VN", years=years)
        names: dict[date, str] = {d: str(name) for d, name in table.items() if d.year == year}
        for extra in self.settings.extra_holidays:
            if extra.year == year:
                names.setdefault(extra, DEFAULT_HOLIDAY_NAME)
        workdays = {d for d in getattr(table, "weekend_workdays", set()) if d.year == year}
        decided = self.settings.years.get(year)
        if decided is not None:  # the recorded decision corrects the computed days
            for day in decided.removed | decided.working_days:
                names.pop(day, None)
            names.update(decided.holidays)
            workdays = (workdays | decided.working_days) - set(decided.holidays)
        self._holidays[year] = dict(sorted(names.items()))
        self._lib_workdays[year] = frozenset(workdays)

    def _confirmed(self, d: date, explicit: frozenset[date]) -> bool:
        decided = self.settings.years.get(d.year)
        if decided is not None and d in decided.pending:
            return False
        return d in explicit or (decided is not None and decided.confirms(d))

    def special_days(self, start: date, end: date) -> list[SpecialDay]:
        """Holidays and weekend days worked from ``start`` to ``end`` (inclusive), each marked confirmed
        or computed, so an office sees which dates of a cycle rest on a decision and which on a rule."""
        out: list[SpecialDay] = []
        for year in range(start.year, end.year + 1):
            self._load_year(year)
            for d, name in self._holidays[year].items():
                if start <= d <= end and d not in self.settings.extra_working_days:
                    out.append(SpecialDay(d, name, False, self._confirmed(d, self.settings.extra_holidays)))
            worked = (self._lib_workdays[year] | {d for d in self.settings.extra_working_days if d.year == year})
            for d in sorted(worked - self.settings.extra_holidays):
                if start <= d <= end and d.weekday() >= 5:
                    out.append(SpecialDay(d, WORKING_DAY_NAME, True,
                                          self._confirmed(d, self.settings.extra_working_days)))
        return sorted(out, key=lambda s: s.day)

    def would_work(self, d: date) -> bool:
        """Whether ``d`` would be a working day were it not a holiday: a weekday or a weekend day worked.

        A holiday on such a day is one that moves dates; a holiday on a plain Sunday moves nothing."""
        if d.weekday() < 5 or d in self.settings.extra_working_days:
            return True
        self._load_year(d.year)
        return d in self._lib_workdays[d.year]

    def holidays(self, year: int) -> dict[date, str]:
        """Public holidays of ``year`` with their Vietnamese names, in date order (a copy)."""
        self._load_year(year)
        return dict(self._holidays[year])

    def is_working_day(self, d: date) -> bool:
        """Monday to Friday and not a holiday; a swapped-in Saturday counts as a working day."""
        if isinstance(d, datetime):
            raise TypeError("is_working_day takes a date; use local_date() for an instant")
        if d in self.settings.extra_holidays:
            return False
        if d in self.settings.extra_working_days:
            return True
        self._load_year(d.year)
        if d in self._holidays[d.year]:
            return False
        if d in self._lib_workdays[d.year]:
            return True
        return d.weekday() < 5

    # -- working-day arithmetic --------------------------------------------------------------------

    def add_working_days(self, d: date, n: int) -> date:
        """The n-th working day after ``d`` (before it if n < 0); n = 0 returns ``d`` unchanged.

        ``d`` itself need not be a working day: Saturday + 1 is Monday, Saturday - 1 is Friday.
        """
        if n == 0:
            return d
        step = timedelta(days=1 if n > 0 else -1)
        remaining = abs(n)
        current = d
        while remaining:
            current += step
            if self.is_working_day(current):
                remaining -= 1
        return current

    def working_days_between(self, start: date, end: date) -> int:
        """Signed count of working days from ``start`` to ``end``.

        If end >= start: the working days after ``start`` up to and including ``end``. If end < start:
        minus the working days from ``end`` (included) up to ``start`` (excluded). This is the inverse of
        :meth:`add_working_days` — ``working_days_between(d, add_working_days(d, n)) == n`` for every
        d and n — so "3 working days late" and "due in 3 working days" mean what reminders say.
        """
        if end >= start:
            lo, hi = start + timedelta(days=1), end
            sign = 1
        else:
            lo, hi = end, start - timedelta(days=1)
            sign = -1
        count = 0
        current = lo
        while current <= hi:
            if self.is_working_day(current):
                count += 1
            current += timedelta(days=1)
        return sign * count

    def adjust(self, d: date, rule: str) -> date:
        """Move a non-working day: "previous" or "next" working day, or "keep" it as it is."""
        if rule not in RULES:
            raise ValueError(f"Unknown non-working-day rule {rule!r}; expected one of {RULES}")
        if rule == "keep" or self.is_working_day(d):
            return d
        step = timedelta(days=-1 if rule == "previous" else 1)
        current = d
        while not self.is_working_day(current):
            current += step
        return current

    # -- periods and deadlines ---------------------------------------------------------------------

    def cutoff_window(self, period: Period) -> tuple[date, date]:
        """The data cut-off window of ``period``, both ends inclusive (ND 09: 15/12 prev .. 14/6)."""
        start, end = self.settings.cutoff[period.kind]
        return _read_cutoff_point(start, period.year), _read_cutoff_point(end, period.year)

    def day_in_period_month(self, period: Period, day: int, rule: str, month_offset: int = 0) -> date:
        """A plan's deadline day: the ``day``-th of the period's last month, moved off non-working days.

        "Trước ngày 10/6" is day=10 of H1: the deadline date 10/6 inclusive. A day past the month's
        end means its last day (day=31 in June -> 30/6). ``month_offset`` shifts the month: +1 for
        a yearly report due in January of the next year, -1 for a quarter due before its last month.
        """
        return self.adjust(self.period_month_day(period, day, month_offset), rule)

    def period_month_day(self, period: Period, day: int, month_offset: int = 0) -> date:
        """The plan's day before any move off a non-working day (what "moved from" refers to)."""
        if isinstance(day, bool) or not isinstance(day, int) or day < 1:
            raise ValueError(f"Deadline day must be a positive integer, got {day!r}")
        months = period.year * 12 + (period.end_month - 1) + month_offset
        year, month = divmod(months, 12)
        last = _last_day_of_month(year, month + 1)
        return date(year, month + 1, min(day, last.day))

    # -- local time --------------------------------------------------------------------------------

    def start_of_day(self, d: date) -> pendulum.DateTime:
        """00:00:00 local time of ``d`` (tz-aware): when a day's window opens."""
        return pendulum.datetime(d.year, d.month, d.day, tz=self.tz)

    def end_of_day(self, d: date) -> pendulum.DateTime:
        """23:59:59.999999 local time of ``d``: a deadline date's last instant (it prints as 23:59:59).

        The microseconds matter: a file received at 23:59:59.4 on the deadline day is on time.
        """
        return pendulum.datetime(d.year, d.month, d.day, 23, 59, 59, 999999, tz=self.tz)

    def local_date(self, t: datetime) -> date:
        """The calendar date in the reporting timezone of a tz-aware instant (naive ones are refused)."""
        if t.tzinfo is None or t.utcoffset() is None:
            raise ValueError(f"Expected a timezone-aware datetime, got naive {t!r}")
        return pendulum.instance(t).in_timezone(self.tz).date()

    def is_late(self, received: datetime, deadline: date) -> bool:
        """True if ``received`` falls after the end of the deadline date, local time."""
        return self.local_date(received) > deadline

    def current_period(self, as_of: datetime, kinds: Sequence[str] = KINDS) -> Period:
        """The period whose cut-off window contains ``as_of``'s local date.

        ND 09 windows all start on 15/12, so they overlap; the one that ends first wins:
        15/12/2025..14/3/2026 -> 2026-Q1, 15/3..14/6 -> 2026-H1, 15/6..14/9 -> 2026-9M,
        15/9..14/12 -> 2026-Y. ``kinds`` restricts to a plan's kinds (a 6-monthly plan never
        has Q1: 1/2/2026 is then 2026-H1).
        """
        today = self.local_date(as_of)
        candidates: list[tuple[date, Period]] = []
        for year in (today.year, today.year + 1):
            for kind in kinds:
                period = Period(year, kind)
                start, end = self.cutoff_window(period)
                if start <= today <= end:
                    candidates.append((end, period))
        if not candidates:
            raise PeriodError(
                f"No cut-off window of kinds {list(kinds)} contains {today.isoformat()}",
                f"Ngày {today.strftime('%d/%m/%Y')} không thuộc khoảng chốt số liệu của kỳ báo cáo nào.",
            )
        return min(candidates)[1]
