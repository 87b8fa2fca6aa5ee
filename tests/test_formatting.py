"""Tests for baocao.rules.formatting: Vietnamese numbers, percentages, dates, and reading typed counts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from baocao.rules.formatting import (
    date_long_vi,
    date_vi,
    datetime_vi,
    number_vi,
    parse_vi_int,
    percent_vi,
    place_date_vi,
)


@pytest.mark.parametrize(
    ("n", "decimals", "expected"),
    [
        (0, 0, "0"),
        (7, 0, "7"),
        (999, 0, "999"),
        (1000, 0, "1.000"),
        (1234567, 0, "1.234.567"),
        (-1234567, 0, "-1.234.567"),
        (64.25, 1, "64,3"),  # half up, as people round by hand (float banker's rounding would give 64,2)
        (64.24, 1, "64,2"),
        (2.5, 0, "3"),
        (1234.5, 2, "1.234,50"),
        (Decimal("1234567.891"), 2, "1.234.567,89"),
        (-0.04, 1, "0,0"),  # no negative zero
        (1e6, 0, "1.000.000"),
    ],
)
def test_number_vi(n: int | float | Decimal, decimals: int, expected: str) -> None:
    assert number_vi(n, decimals) == expected


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_number_vi_of_an_int_is_the_decimal_path(n: int) -> None:
    """An int takes a fast path; it must write what the Decimal path writes."""
    assert number_vi(n) == number_vi(Decimal(n)) == number_vi(n, 0)
    assert number_vi(n, 1) == number_vi(Decimal(n), 1)


def test_number_vi_missing_and_invalid() -> None:
    assert number_vi(float("nan")) == "—"
    with pytest.raises(ValueError):
        number_vi(float("inf"))
    with pytest.raises(ValueError):
        number_vi(1, -1)
    with pytest.raises(TypeError):
        number_vi(True)


@pytest.mark.parametrize(
    ("ratio", "decimals", "expected"),
    [
        (0.642, 1, "64,2%"),
        (0.95, 1, "95,0%"),
        (1, 1, "100,0%"),
        (0, 1, "0,0%"),
        (0.6425, 2, "64,25%"),
        (0.6, 0, "60%"),
        (12.5, 0, "1.250%"),
        (None, 1, "—"),
        (float("nan"), 1, "—"),
    ],
)
def test_percent_vi(ratio: float | None, decimals: int, expected: str) -> None:
    assert percent_vi(ratio, decimals) == expected


@pytest.mark.parametrize(
    ("d", "short", "long"),
    [
        (date(2026, 6, 5), "05/6/2026", "ngày 05 tháng 6 năm 2026"),
        (date(2026, 12, 10), "10/12/2026", "ngày 10 tháng 12 năm 2026"),
        (date(2026, 11, 25), "25/11/2026", "ngày 25 tháng 11 năm 2026"),
        # ND 30/2020: January and February take a leading zero (as in "ngày 24/01/2019" of the plans).
        (date(2019, 1, 24), "24/01/2019", "ngày 24 tháng 01 năm 2019"),
        (date(2026, 2, 5), "05/02/2026", "ngày 05 tháng 02 năm 2026"),
        (date(2026, 3, 1), "01/3/2026", "ngày 01 tháng 3 năm 2026"),
    ],
)
def test_dates(d: date, short: str, long: str) -> None:
    assert date_vi(d) == short
    assert date_long_vi(d) == long


def test_datetime_vi_is_in_vietnam_time() -> None:
    assert datetime_vi(datetime(2026, 6, 5, 1, 30, tzinfo=UTC)) == "08:30 ngày 05/6/2026"
    # 20:00 UTC on 4/6 is already 03:00 on 5/6 in Vietnam.
    assert datetime_vi(datetime(2026, 6, 4, 20, 0, tzinfo=UTC)) == "03:00 ngày 05/6/2026"
    assert (
        datetime_vi(datetime(2026, 6, 5, 8, 30, tzinfo=timezone(timedelta(hours=7))))
        == "08:30 ngày 05/6/2026"
    )
    with pytest.raises(ValueError):
        datetime_vi(datetime(2026, 6, 5, 8, 30))


def test_place_date_vi() -> None:
    assert place_date_vi("Hải Phòng", date(2026, 6, 5)) == "Hải Phòng, ngày 05 tháng 6 năm 2026"
    assert place_date_vi(" Huế ", date(2026, 12, 10)) == "Huế, ngày 10 tháng 12 năm 2026"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1234", 1234),
        ("1.234", 1234),  # a dot groups thousands in Vietnamese
        ("1.234.567", 1234567),
        ("1 234", 1234),
        ("1\u00a0234", 1234),  # non-breaking space from a spreadsheet
        ("1,234", 1234),  # exactly three digits after the comma: thousands
        ("1,234,567", 1234567),
        (" 12 ", 12),
        ("0", 0),
        ("007", 7),
        ("12.0", 12),  # a number cell turned into text
        ("12,00", 12),
        (12, 12),
        (12.0, 12),  # Excel numbers
        (0.0, 0),
        (Decimal("15"), 15),
    ],
)
def test_parse_vi_int_accepts(value: str | int | float | Decimal, expected: int) -> None:
    result = parse_vi_int(value)
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("12,5", "phần thập phân"),  # a decimal in Vietnamese: not a count
        ("1,23", "phần thập phân"),
        ("12.5", "phần thập phân"),
        ("1.234,5", "phần thập phân"),
        ("abc", "không phải số nguyên"),
        ("1.2345", "không phải số nguyên"),
        ("12a", "không phải số nguyên"),
        ("1.23.456", "không phải số nguyên"),
        ("+3", "không phải số nguyên"),
        ("-3", "số âm"),
        ("\u22123", "số âm"),
        ("", "để trống"),
        ("   ", "để trống"),
        (12.5, "không phải số nguyên"),
        (float("nan"), "để trống"),
        (float("inf"), "không phải số nguyên"),
        (-1, "số âm"),
        (-2.0, "số âm"),
        (True, "không phải số nguyên"),
    ],
)
def test_parse_vi_int_refuses(value: str | int | float, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_vi_int(value)
    assert message in str(info.value)
