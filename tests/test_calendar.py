"""Tests for baocao.rules.periods: periods, ND 09 windows, Vietnamese holidays, working days, deadline phrases."""

from __future__ import annotations

import re
import tomllib
import unicodedata
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baocao.rules.periods import KINDS, CalendarSettings, Period, PeriodError, WorkCalendar
from baocao.tasks.duephrases import Due, DuePhraseError, parse_due_phrase

ROOT = Path(__file__).resolve().parent.parent
SEEDS = Path(__file__).resolve().parent / "data" / "seeds"  # copies of ../shared/seeds (test_appendix checks)
VN = timezone(timedelta(hours=7))


@pytest.fixture(scope="module")
def cal() -> WorkCalendar:
    return WorkCalendar()


# --------------------------------------------------------------------------------------------------
# Periods
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "year", "kind"),
    [
        ("2026-Q1", 2026, "Q1"),
        ("2026-H1", 2026, "H1"),
        ("2026-9M", 2026, "9M"),
        ("2026-Y", 2026, "Y"),
        ("2026-q1", 2026, "Q1"),
        (" 2026 - h1 ", 2026, "H1"),
        ("2025-9m", 2025, "9M"),
        ("2027-y\n", 2027, "Y"),
        ("2026\u2013H1", 2026, "H1"),  # en dash typed by a word processor
    ],
)
def test_period_parse(code: str, year: int, kind: str) -> None:
    period = Period.parse(code)
    assert (period.year, period.kind) == (year, kind)
    assert period == Period(year, kind)


@pytest.mark.parametrize(
    "code", ["", "2026", "2026-Q2", "2026-H2", "26-Q1", "2026-6M", "Q1-2026", "2026-YY", "năm 2026"]
)
def test_period_parse_refuses(code: str) -> None:
    with pytest.raises(PeriodError) as info:
        Period.parse(code)
    assert repr(code) in str(info.value) and "YYYY-H1" in str(info.value)
    assert info.value.message_vi.startswith(f"Không đọc được mã kỳ báo cáo “{code.strip()}”")
    assert "“2026-H1” (6 tháng)" in info.value.message_vi
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("code", "year_code"),
    [("2026-Q4", "2026-Y"), ("2026 - quý IV", "2026-Y"), ("Quý IV/2027", "2027-Y"), ("Q4", None), ("quý IV", None)],
)
def test_a_fourth_quarter_code_points_to_the_year_report(code: str, year_code: str | None) -> None:
    """No plan reports a fourth quarter (Huế: quý I, 6 tháng, 9 tháng, hằng năm; seed 003, IV.1.b):
    the year report covers it, so the message names the code to use instead of listing the forms."""
    with pytest.raises(PeriodError) as info:
        Period.parse(code)
    vi = info.value.message_vi
    assert vi.startswith(f"Không đọc được mã kỳ báo cáo “{code}”: không có kỳ báo cáo quý IV")
    assert "báo cáo năm" in vi
    assert (f"dùng mã kỳ “{year_code}”" in vi) if year_code else ("ví dụ “2026-Y”" in vi)
    assert "year report" in str(info.value)


def test_period_constructor_refuses_unknown_kind() -> None:
    with pytest.raises(PeriodError) as info:
        Period(2026, "Q2")
    assert "Q2" in info.value.message_vi


@pytest.mark.parametrize(
    ("code", "label", "end_month", "last_day"),
    [
        ("2026-Q1", "quý I năm 2026", 3, date(2026, 3, 31)),
        ("2026-H1", "6 tháng đầu năm 2026", 6, date(2026, 6, 30)),
        ("2026-9M", "9 tháng đầu năm 2026", 9, date(2026, 9, 30)),
        ("2026-Y", "năm 2026", 12, date(2026, 12, 31)),
    ],
)
def test_period_properties(code: str, label: str, end_month: int, last_day: date) -> None:
    period = Period.parse(code)
    assert period.code == code
    assert str(period) == code
    assert period.label_vi == label
    assert period.end_month == end_month
    assert period.last_day == last_day
    assert period.first_day == date(2026, 1, 1)


def test_same_period_last_year_and_earlier_in_year() -> None:
    assert Period.parse("2026-H1").same_period_last_year() == Period(2025, "H1")
    assert Period.parse("2026-Q1").earlier_in_year() == []
    assert Period.parse("2026-H1").earlier_in_year() == [Period(2026, "Q1")]
    assert Period.parse("2026-Y").earlier_in_year() == [
        Period(2026, "Q1"),
        Period(2026, "H1"),
        Period(2026, "9M"),
    ]


def test_periods_sort_chronologically_not_alphabetically() -> None:
    codes = ["2026-Y", "2026-9M", "2025-Y", "2026-Q1", "2026-H1"]
    assert [p.code for p in sorted(Period.parse(c) for c in codes)] == [
        "2025-Y",
        "2026-Q1",
        "2026-H1",
        "2026-9M",
        "2026-Y",
    ]
    assert Period(2026, "9M") < Period(2026, "Y")
    assert len({Period(2026, "H1"), Period.parse("2026-h1")}) == 1


# --------------------------------------------------------------------------------------------------
# ND 09 windows and settings
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "end"),
    [
        ("Q1", date(2026, 3, 14)),
        ("H1", date(2026, 6, 14)),
        ("9M", date(2026, 9, 14)),
        ("Y", date(2026, 12, 14)),
    ],
)
def test_nd09_cutoff_windows(cal: WorkCalendar, kind: str, end: date) -> None:
    assert cal.cutoff_window(Period(2026, kind)) == (date(2025, 12, 15), end)


def test_settings_from_the_project_calendar_toml() -> None:
    data = tomllib.loads((ROOT / "config" / "calendar.toml").read_text(encoding="utf-8"))
    loaded = WorkCalendar(CalendarSettings.from_mapping(data))
    default = WorkCalendar()
    for kind in KINDS:
        assert loaded.cutoff_window(Period(2026, kind)) == default.cutoff_window(Period(2026, kind))
    assert loaded.settings.timezone == "Asia/Ho_Chi_Minh"


def test_custom_cutoff_and_extra_days_from_mapping() -> None:
    data = {
        "timezone": "Asia/Ho_Chi_Minh",
        "cutoff": {kind: {"start": "01-01", "end": "03-31"} for kind in KINDS}
        | {"H1": {"start": "01-01", "end": "06-30"}},
        "extra_holidays": ["2026-06-08"],
        "extra_working_days": [date(2026, 6, 6)],
    }
    custom = WorkCalendar(CalendarSettings.from_mapping(data))
    assert custom.cutoff_window(Period(2026, "H1")) == (date(2026, 1, 1), date(2026, 6, 30))
    assert custom.is_working_day(date(2026, 6, 6))  # a Saturday made a working day
    assert not custom.is_working_day(date(2026, 6, 8))  # a Monday made a day off
    assert custom.holidays(2026)[date(2026, 6, 8)] == "Ngày nghỉ bổ sung"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cutoff": {"Q1": ("prev-12-15", "03-14")}},  # kinds missing
        {"cutoff": dict.fromkeys(KINDS, ("12-15", "03-14"))},  # starts after it ends
        {"cutoff": dict.fromkeys(KINDS, ("prev-12-15", "6/14"))},  # unreadable point
        {
            "extra_holidays": frozenset({date(2026, 6, 6)}),
            "extra_working_days": frozenset({date(2026, 6, 6)}),
        },
    ],
)
def test_settings_refuse_inconsistent_values(kwargs: dict) -> None:
    with pytest.raises(PeriodError) as info:
        CalendarSettings(**kwargs)
    assert info.value.message_vi


def test_settings_refuse_unknown_timezone() -> None:
    with pytest.raises(Exception, match="Mars"):
        CalendarSettings(timezone="Mars/Olympus_Mons")


# --------------------------------------------------------------------------------------------------
# Holidays
# --------------------------------------------------------------------------------------------------


def test_holidays_2026_include_tet_and_national_day(cal: WorkCalendar) -> None:
    h = cal.holidays(2026)
    tet = [date(2026, 2, 16) + timedelta(days=i) for i in range(5)]
    for d in tet:
        assert d in h, d
        assert "Tết" in h[d]
        assert not cal.is_working_day(d)
    assert h[date(2026, 2, 17)] == "Tết Nguyên Đán"  # Vietnamese names, not English
    assert h[date(2026, 9, 2)] == "Quốc khánh"
    assert date(2026, 9, 1) in h
    assert h[date(2026, 1, 1)] == "Tết Dương lịch"
    assert date(2026, 4, 30) in h and date(2026, 5, 1) in h
    # Hùng Kings' day falls on Sunday 26/4/2026: the observed Monday is a day off too.
    assert "nghỉ bù" in h[date(2026, 4, 27)]
    assert list(h) == sorted(h)
    assert all(d.year == 2026 for d in h)


def test_holidays_2027_tet_follows_the_lunar_calendar(cal: WorkCalendar) -> None:
    h = cal.holidays(2027)
    # What holidays 0.109 says: 29 Tết (4/2) to mùng năm (10/2); Tết's first day is Saturday 6/2/2027.
    tet = {d for d, name in h.items() if "Tết" in name and d.month == 2}
    assert tet == {date(2027, 2, 4) + timedelta(days=i) for i in range(7)}
    assert h[date(2027, 2, 6)] == "Tết Nguyên Đán"
    assert h[date(2027, 9, 2)] == "Quốc khánh"
    assert cal.is_working_day(date(2027, 2, 3))
    assert not cal.is_working_day(date(2027, 2, 4))
    assert cal.is_working_day(date(2027, 2, 11))


def test_is_working_day(cal: WorkCalendar) -> None:
    assert cal.is_working_day(date(2026, 6, 5))  # Friday
    assert not cal.is_working_day(date(2026, 6, 6))  # Saturday
    assert not cal.is_working_day(date(2026, 6, 7))  # Sunday
    assert not cal.is_working_day(date(2026, 9, 2))  # National Day, a Wednesday
    # The Government swapped Saturday 22/8/2026 for Monday 31/8/2026 (known to the holidays package).
    assert cal.is_working_day(date(2026, 8, 22))
    assert not cal.is_working_day(date(2026, 8, 31))


def test_holidays_returns_a_copy(cal: WorkCalendar) -> None:
    cal.holidays(2026).clear()
    assert date(2026, 9, 2) in cal.holidays(2026)


# --------------------------------------------------------------------------------------------------
# Working-day arithmetic
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "n", "expected"),
    [
        (date(2026, 6, 5), 1, date(2026, 6, 8)),  # Friday + 1 -> Monday
        (date(2026, 6, 8), -1, date(2026, 6, 5)),  # Monday - 1 -> Friday
        (date(2026, 6, 6), 1, date(2026, 6, 8)),  # Saturday + 1 -> Monday
        (date(2026, 6, 6), -1, date(2026, 6, 5)),  # Saturday - 1 -> Friday
        (date(2026, 6, 6), 0, date(2026, 6, 6)),  # 0 keeps even a Saturday
        (date(2026, 6, 1), 10, date(2026, 6, 15)),
        (date(2026, 2, 13), 1, date(2026, 2, 23)),  # across Tết 2026
        (date(2026, 2, 23), -1, date(2026, 2, 13)),
        (date(2027, 2, 4), 1, date(2027, 2, 11)),  # from 29 Tết 2027: after Tết
        (date(2027, 2, 3), 1, date(2027, 2, 11)),
        (date(2026, 8, 21), 1, date(2026, 8, 22)),  # the swapped-in Saturday
        (date(2026, 8, 28), 1, date(2026, 9, 3)),  # 31/8, 1/9, 2/9 are days off
    ],
)
def test_add_working_days(cal: WorkCalendar, start: date, n: int, expected: date) -> None:
    assert cal.add_working_days(start, n) == expected


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (date(2026, 6, 5), date(2026, 6, 8), 1),
        (date(2026, 6, 8), date(2026, 6, 5), -1),
        (date(2026, 6, 5), date(2026, 6, 5), 0),
        (date(2026, 6, 5), date(2026, 6, 7), 0),  # only the weekend after Friday
        (date(2026, 6, 1), date(2026, 6, 15), 10),
        (date(2026, 6, 15), date(2026, 6, 1), -10),
        (date(2026, 2, 13), date(2026, 2, 23), 1),  # all of Tết is skipped
    ],
)
def test_working_days_between(cal: WorkCalendar, start: date, end: date, expected: int) -> None:
    assert cal.working_days_between(start, end) == expected


@settings(max_examples=150, deadline=None)
@given(
    start=st.dates(min_value=date(2025, 1, 1), max_value=date(2028, 12, 31)),
    n=st.integers(min_value=-40, max_value=40),
)
def test_working_days_between_inverts_add_working_days(start: date, n: int) -> None:
    cal = WorkCalendar()
    end = cal.add_working_days(start, n)
    assert cal.working_days_between(start, end) == n
    if n:
        assert cal.is_working_day(end)
        assert (end > start) == (n > 0)


@pytest.mark.parametrize(
    ("d", "rule", "expected"),
    [
        (date(2026, 6, 6), "previous", date(2026, 6, 5)),
        (date(2026, 6, 6), "next", date(2026, 6, 8)),
        (date(2026, 6, 6), "keep", date(2026, 6, 6)),
        (date(2026, 6, 10), "previous", date(2026, 6, 10)),  # a working day never moves
        (date(2026, 6, 10), "next", date(2026, 6, 10)),
        (date(2026, 2, 18), "previous", date(2026, 2, 13)),  # inside Tết
        (date(2026, 2, 18), "next", date(2026, 2, 23)),
        (date(2026, 9, 2), "previous", date(2026, 8, 28)),
    ],
)
def test_adjust(cal: WorkCalendar, d: date, rule: str, expected: date) -> None:
    assert cal.adjust(d, rule) == expected


def test_adjust_refuses_unknown_rule(cal: WorkCalendar) -> None:
    with pytest.raises(ValueError, match="sideways"):
        cal.adjust(date(2026, 6, 6), "sideways")


# --------------------------------------------------------------------------------------------------
# Plan deadlines
# --------------------------------------------------------------------------------------------------


def test_day_ten_on_a_sunday_moves_to_friday(cal: WorkCalendar) -> None:
    period = Period(2028, "9M")
    assert date(2028, 9, 10).weekday() == 6  # Sunday
    assert cal.day_in_period_month(period, 10, "previous") == date(2028, 9, 8)
    assert cal.day_in_period_month(period, 10, "next") == date(2028, 9, 11)
    assert cal.day_in_period_month(period, 10, "keep") == date(2028, 9, 10)
    # Saturday 10/6/2028 also moves back to Friday.
    assert cal.day_in_period_month(Period(2028, "H1"), 10, "previous") == date(2028, 6, 9)


def _plan(name: str) -> dict:
    return tomllib.loads((ROOT / "config" / "plans" / f"{name}.toml").read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("plan", "level", "kind", "expected"),
    [
        ("hue", "commune", "Q1", date(2026, 3, 10)),
        ("hue", "commune", "H1", date(2026, 6, 10)),
        ("hue", "department", "9M", date(2026, 9, 10)),
        ("hue", "commune", "Y", date(2026, 12, 10)),
        ("tu-ky", "commune", "H1", date(2026, 6, 5)),
        ("tu-ky", "commune", "Y", date(2026, 12, 4)),  # 5/12/2026 is a Saturday
        ("nhi-chieu", "commune", "H1", date(2026, 6, 10)),
    ],
)
def test_plan_deadlines_2026(cal: WorkCalendar, plan: str, level: str, kind: str, expected: date) -> None:
    config = _plan(plan)
    day = config["deadlines"][level]["day"]
    assert cal.day_in_period_month(Period(2026, kind), day, config["nonworking"]) == expected


def test_day_past_month_end_means_last_day(cal: WorkCalendar) -> None:
    assert cal.day_in_period_month(Period(2026, "H1"), 31, "keep") == date(2026, 6, 30)
    assert cal.day_in_period_month(Period(2026, "H1"), 31, "previous") == date(2026, 6, 30)  # a Tuesday
    with pytest.raises(ValueError):
        cal.day_in_period_month(Period(2026, "H1"), 0, "previous")


# --------------------------------------------------------------------------------------------------
# Local time
# --------------------------------------------------------------------------------------------------


def test_start_and_end_of_day_are_local(cal: WorkCalendar) -> None:
    end = cal.end_of_day(date(2026, 6, 10))
    start = cal.start_of_day(date(2026, 6, 10))
    assert end.utcoffset() == timedelta(hours=7)
    assert (end.hour, end.minute, end.second) == (23, 59, 59)
    assert end.astimezone(UTC) == datetime(2026, 6, 10, 16, 59, 59, 999999, tzinfo=UTC)
    assert start.astimezone(UTC) == datetime(2026, 6, 9, 17, 0, tzinfo=UTC)
    assert end - start == timedelta(days=1, microseconds=-1)


def test_local_date_and_lateness(cal: WorkCalendar) -> None:
    just_in = datetime(2026, 6, 10, 16, 59, 59, 500000, tzinfo=UTC)  # 23:59:59.5 in Hà Nội
    just_late = datetime(2026, 6, 10, 17, 0, tzinfo=UTC)  # 00:00 on 11/6 in Hà Nội
    assert cal.local_date(just_in) == date(2026, 6, 10)
    assert cal.local_date(just_late) == date(2026, 6, 11)
    assert not cal.is_late(just_in, date(2026, 6, 10))
    assert cal.is_late(just_late, date(2026, 6, 10))
    assert just_in <= cal.end_of_day(date(2026, 6, 10)) < just_late
    with pytest.raises(ValueError):
        cal.local_date(datetime(2026, 6, 10, 12, 0))


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [
        (datetime(2025, 12, 14, 23, 59, tzinfo=VN), "2025-Y"),
        (datetime(2025, 12, 15, 0, 0, tzinfo=VN), "2026-Q1"),
        (datetime(2026, 1, 20, 9, 0, tzinfo=VN), "2026-Q1"),
        (datetime(2026, 3, 14, 23, 0, tzinfo=VN), "2026-Q1"),
        (datetime(2026, 3, 15, 8, 0, tzinfo=VN), "2026-H1"),
        (datetime(2026, 6, 14, 8, 0, tzinfo=VN), "2026-H1"),
        (datetime(2026, 6, 15, 8, 0, tzinfo=VN), "2026-9M"),
        (datetime(2026, 9, 15, 8, 0, tzinfo=VN), "2026-Y"),
        (datetime(2026, 12, 14, 8, 0, tzinfo=VN), "2026-Y"),
        (datetime(2026, 12, 31, 8, 0, tzinfo=VN), "2027-Q1"),
        # 17:30 UTC on 14/3 is already 00:30 on 15/3 in Vietnam.
        (datetime(2026, 3, 14, 17, 30, tzinfo=UTC), "2026-H1"),
    ],
)
def test_current_period(cal: WorkCalendar, as_of: datetime, expected: str) -> None:
    assert cal.current_period(as_of) == Period.parse(expected)


def test_current_period_of_a_six_monthly_plan(cal: WorkCalendar) -> None:
    kinds = ("H1", "Y")
    assert cal.current_period(datetime(2026, 2, 1, tzinfo=VN), kinds) == Period(2026, "H1")
    assert cal.current_period(datetime(2026, 7, 1, tzinfo=VN), kinds) == Period(2026, "Y")
    assert cal.current_period(datetime(2026, 12, 20, tzinfo=VN), kinds) == Period(2027, "H1")


# --------------------------------------------------------------------------------------------------
# Deadline phrases
# --------------------------------------------------------------------------------------------------

CONTINUOUS = ("continuous", None)
CONTINUOUS_2026 = ("continuous", 2026)
YEARLY_2026 = ("yearly", 2026)
END_2026 = date(2026, 12, 31)

SEED_DEADLINES: dict[str, dict[int, tuple[str, date | tuple[str, int | None] | str]]] = {
    # seed 001: UBND phường Nhị Chiểu, 19 tasks
    "001_cedded2c61e77593.txt": {
        1: ("Trước 10/5/2026", date(2026, 5, 10)),
        2: ("Thường xuyên", CONTINUOUS),
        3: ("Hàng năm, bắt đầu từ 2026", YEARLY_2026),
        4: ("Quý II/2026", date(2026, 6, 30)),
        5: ("Thường xuyên", CONTINUOUS),
        6: ("Hàng năm, từ năm 2026", YEARLY_2026),
        7: ("Quý IV/2026", END_2026),
        8: ("Quý IV/2026", END_2026),
        9: ("Quý IV/2026", END_2026),
        10: ("Thường xuyên, từ năm 2026", CONTINUOUS_2026),
        11: ("Quý IV/2026", END_2026),
        12: ("Năm 2026", END_2026),
        13: ("Quý IV/2026", END_2026),
        14: ("Năm 2026", END_2026),
        15: ("Sau khi có hướng dẫn của Bộ Khoa học & Công nghệ và thành phố.", "on_event"),
        16: ("Thường xuyên", CONTINUOUS),
        17: ("Thường xuyên, từ năm 2026", CONTINUOUS_2026),  # the row is split by a page break
        18: ("Thường xuyên, từ năm 2026", CONTINUOUS_2026),
        19: ("Thường xuyên, từ năm 2026", CONTINUOUS_2026),
    },
    # seed 003: UBND thành phố Huế, 12 tasks
    "003_990ddbe88c7e4d67.txt": {
        1: ("Tháng 5/2026", date(2026, 5, 31)),
        2: ("Thường xuyên", CONTINUOUS),
        3: ("Hàng năm, từ năm 2026", YEARLY_2026),
        4: ("Hàng năm, từ năm 2026", YEARLY_2026),
        5: ("Quý IV/2026", END_2026),
        6: ("Đến cuối 2026", END_2026),
        7: ("Quý IV/2026", END_2026),
        8: ("Thường xuyên từ 2026", CONTINUOUS_2026),
        9: ("Năm 2026", END_2026),
        10: ("Từ 2026 và thường xuyên", CONTINUOUS_2026),
        11: ("Định kỳ hằng năm", ("yearly", None)),
        12: ("Thường xuyên từ 2026", CONTINUOUS_2026),
    },
}


def read_seed_deadlines(path: Path) -> dict[int, str]:
    """The "Thời hạn" cell of every numbered row of a seed's appendix table (tab-separated).

    The column is found from the header row. A row split across a page break (seed 001, task 17)
    has an empty deadline cell; its deadline is on the continuation line, whose number cell is empty.
    """
    deadlines: dict[int, str] = {}
    column: int | None = None
    current: int | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) < 2:
            continue
        if "Thời hạn" in fields:
            column = fields.index("Thời hạn")
            continue
        if column is None or len(fields) <= column:
            continue
        if re.fullmatch(r"\d+", fields[0]):
            current = int(fields[0])
            deadlines[current] = fields[column]
        elif fields[0] == "" and current is not None and not deadlines[current] and fields[column]:
            deadlines[current] = fields[column]
    return deadlines


@pytest.mark.parametrize("seed", sorted(SEED_DEADLINES))
def test_every_deadline_phrase_of_the_seed_appendices(seed: str) -> None:
    path = SEEDS / seed
    assert path.is_file(), f"seed file missing: {path}"
    found = read_seed_deadlines(path)
    expected = SEED_DEADLINES[seed]
    assert sorted(found) == sorted(expected)
    for number, phrase in found.items():
        text, meaning = expected[number]
        assert unicodedata.normalize("NFC", phrase) == text, number
        due = parse_due_phrase(phrase)
        assert due.text == text
        if isinstance(meaning, date):
            assert (due.due_date, due.recurrence, due.from_year) == (meaning, None, None), number
        elif meaning == "on_event":
            assert (due.due_date, due.recurrence) == (None, "on_event"), number
        else:
            assert (due.due_date, due.recurrence, due.from_year) == (None, *meaning), number


@pytest.mark.parametrize(
    ("text", "due_date"),
    [
        ("Trước 10/5/2026", date(2026, 5, 10)),
        ("Trước ngày 10/5/2026", date(2026, 5, 10)),
        ("10/5/2026", date(2026, 5, 10)),
        ("Trước ngày 10 tháng 5 năm 2026", date(2026, 5, 10)),
        ("Chậm nhất ngày 05/06/2026", date(2026, 6, 5)),
        ("Quý II/2026", date(2026, 6, 30)),
        ("Quý IV/2026", date(2026, 12, 31)),
        ("Quý 4/2026", date(2026, 12, 31)),
        ("Quý I năm 2027", date(2027, 3, 31)),
        ("Trong quý III/2026", date(2026, 9, 30)),
        ("Năm 2026", date(2026, 12, 31)),
        ("Trong năm 2026", date(2026, 12, 31)),
        ("Đến cuối 2026", date(2026, 12, 31)),
        ("Đến cuối năm 2026", date(2026, 12, 31)),
        ("Tháng 5/2026", date(2026, 5, 31)),
        ("Tháng 2/2028", date(2028, 2, 29)),
        ("Tháng 12 năm 2026", date(2026, 12, 31)),
        ("6 tháng đầu năm 2026", date(2026, 6, 30)),
        ("9 tháng đầu năm 2026", date(2026, 9, 30)),
        ("6 tháng cuối năm 2026", date(2026, 12, 31)),
    ],
)
def test_dated_phrases(text: str, due_date: date) -> None:
    due = parse_due_phrase(text)
    assert due == Due(text, due_date, None, None)


@pytest.mark.parametrize(
    ("text", "recurrence", "from_year"),
    [
        ("Thường xuyên", "continuous", None),
        ("Thường xuyên, từ năm 2026", "continuous", 2026),
        ("Thường xuyên từ 2026", "continuous", 2026),
        ("Từ 2026 và thường xuyên", "continuous", 2026),
        ("Từ năm 2027, thường xuyên", "continuous", 2027),
        ("Hàng năm", "yearly", None),
        ("Hằng năm", "yearly", None),
        ("Định kỳ hằng năm", "yearly", None),
        ("Hàng năm, từ năm 2026", "yearly", 2026),
        ("Hàng năm, bắt đầu từ 2026", "yearly", 2026),
        ("Sau khi có hướng dẫn của Bộ Khoa học & Công nghệ và thành phố.", "on_event", None),
    ],
)
def test_recurring_phrases(text: str, recurrence: str, from_year: int | None) -> None:
    due = parse_due_phrase(text)
    assert (due.due_date, due.recurrence, due.from_year) == (None, recurrence, from_year)


@pytest.mark.parametrize(
    "variant",
    [
        "QUÝ IV/2026",
        "quý iv/2026",
        "  Quý   IV / 2026  ",
        "Quý IV/2026.",
        "Quý IV\u00a0/\u00a02026;",
        unicodedata.normalize("NFD", "Quý IV/2026"),  # decomposed accents, as some editors save
        "Qúy IV/2026",  # old-style accent placement
        "Quý IV\u20132026",  # en dash
        "- Quý IV/2026",
    ],
)
def test_phrase_normalisation(variant: str) -> None:
    assert parse_due_phrase(variant).due_date == date(2026, 12, 31)


def test_normalisation_of_recurring_phrases() -> None:
    decomposed = unicodedata.normalize("NFD", "Hằng năm, từ năm 2026")
    assert parse_due_phrase(decomposed).recurrence == "yearly"
    assert parse_due_phrase("THƯỜNG XUYÊN  ,  TỪ NĂM 2026 .").from_year == 2026


def test_default_year_fills_a_phrase_without_year() -> None:
    assert parse_due_phrase("Quý IV", default_year=2026).due_date == date(2026, 12, 31)
    assert parse_due_phrase("Trước 10/5", default_year=2027).due_date == date(2027, 5, 10)
    assert parse_due_phrase("Tháng 5", default_year=2026).due_date == date(2026, 5, 31)
    # An explicit year wins over the default.
    assert parse_due_phrase("Quý IV/2026", default_year=2030).due_date == date(2026, 12, 31)


@pytest.mark.parametrize(
    ("text", "reason_vi"),
    [
        ("", "để trống"),
        ("   ", "để trống"),
        ("Số lượng, số", "không phải dạng thời hạn đã biết"),
        ("Sớm nhất có thể", "không phải dạng thời hạn đã biết"),
        ("Trước tháng 5/2026", "không phải dạng thời hạn đã biết"),
        ("Quý V/2026", "quý chỉ từ I đến IV"),
        ("Quý 5/2026", "quý chỉ từ I đến IV"),
        ("Tháng 13/2026", "tháng chỉ từ 1 đến 12"),
        ("31/2/2026", "không có thật"),
        ("Quý IV", "thiếu năm"),
        ("Trước 10/5", "thiếu năm"),
        ("Thường xuyên từ 2026 đến 2030", "không phải dạng thời hạn đã biết"),
    ],
)
def test_unreadable_phrases(text: str, reason_vi: str) -> None:
    with pytest.raises(DuePhraseError) as info:
        parse_due_phrase(text)
    error = info.value
    assert isinstance(error, ValueError)
    assert error.message_vi.startswith(f"Không đọc được thời hạn «{text.strip()}»: ")
    assert reason_vi in error.message_vi
    assert repr(text.strip()) in str(error)


def test_due_in() -> None:
    h1_2026, y_2025, y_2027 = Period(2026, "H1"), Period(2025, "Y"), Period(2027, "Y")
    one_off = parse_due_phrase("Quý II/2026")
    assert one_off.due_in(h1_2026) == date(2026, 6, 30)
    yearly = parse_due_phrase("Hàng năm, từ năm 2026")
    assert yearly.due_in(h1_2026) == date(2026, 12, 31)
    assert yearly.due_in(y_2027) == date(2027, 12, 31)
    assert yearly.due_in(y_2025) is None  # not started yet
    assert not yearly.active_in(y_2025)
    assert parse_due_phrase("Định kỳ hằng năm").due_in(y_2025) == date(2025, 12, 31)
    continuous = parse_due_phrase("Thường xuyên, từ năm 2026")
    assert continuous.due_in(h1_2026) is None
    assert continuous.active_in(h1_2026) and not continuous.active_in(y_2025)
    assert parse_due_phrase("Sau khi có hướng dẫn của Sở").due_in(h1_2026) is None
