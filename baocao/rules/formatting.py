"""Vietnamese formatting of what users read, and reading the whole numbers they type.

Vietnamese writes 1.234.567 for a thousand-grouped number and 64,3 for a decimal, the reverse of
English. Reports, emails and forms must use that convention or a figure is misread by a factor of a
thousand. Dates follow Nghị định 30/2020/NĐ-CP (administrative documents): days below 10 and the
months January and February get a leading zero ("ngày 05 tháng 01", but "tháng 6"), so "tháng 1"
cannot be turned into "tháng 11" by hand.
"""

from __future__ import annotations

import math
import re
import unicodedata
from datetime import date, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

__all__ = [
    "MISSING",
    "TIMEZONE",
    "date_long_vi",
    "date_vi",
    "datetime_vi",
    "number_vi",
    "parse_vi_int",
    "percent_vi",
    "verdict_percent_vi",
    "place_date_vi",
]

TIMEZONE = ZoneInfo("Asia/Ho_Chi_Minh")
MISSING = "—"
"""Shown where there is no figure (no denominator, not reported)."""


def _to_decimal(n: int | float | Decimal) -> Decimal | None:
    """Exact decimal of ``n``; None for NaN (pandas' missing value). Floats go through repr so that
    64.25 stays 64.25 and rounds half up to 64,3 the way people round by hand."""
    if isinstance(n, bool):
        raise TypeError("number_vi takes a number, not a bool")
    if isinstance(n, Decimal):
        value = n
    elif isinstance(n, int):
        value = Decimal(n)
    elif isinstance(n, float):
        if math.isnan(n):
            return None
        value = Decimal(repr(n))
    else:
        raise TypeError(f"number_vi takes an int, float or Decimal, got {type(n).__name__}")
    if value.is_nan():
        return None
    if not value.is_finite():
        raise ValueError(f"Cannot format an infinite number: {n!r}")
    return value


def _group_thousands(digits: str) -> str:
    groups = []
    while len(digits) > 3:
        groups.append(digits[-3:])
        digits = digits[:-3]
    groups.append(digits)
    return ".".join(reversed(groups))


def number_vi(n: int | float | Decimal, decimals: int = 0) -> str:
    """1234567 -> "1.234.567"; (64.25, 1) -> "64,3" (half up); NaN -> "—"."""
    if decimals < 0:
        raise ValueError(f"decimals must be >= 0, got {decimals}")
    if type(n) is int and not decimals:  # the counts of a form: same result, a tenth of the time
        return f"{n:,}".replace(",", ".")
    value = _to_decimal(n)
    if value is None:
        return MISSING
    rounded = value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    if rounded == 0:
        rounded = abs(rounded)  # no "-0,0" for a tiny negative value
    sign = "-" if rounded < 0 else ""
    text = f"{abs(rounded):f}"
    whole, _, fraction = text.partition(".")
    result = sign + _group_thousands(whole)
    return f"{result},{fraction}" if decimals else result


def percent_vi(ratio: float | None, decimals: int = 1) -> str:
    """0.642 -> "64,2%" (a ratio, not a percentage); None or NaN -> "—" (nothing to divide by).

    No space before "%": Vietnamese administrative documents write "64,2%" (and "≥ 60%"), and a
    line break can then never separate the number from its sign."""
    if ratio is None:
        return MISSING
    value = _to_decimal(ratio)
    if value is None:
        return MISSING
    return f"{number_vi(value * 100, decimals)}%"


def verdict_percent_vi(value: float, target: float | None = None, op: str = ">=", decimals: int = 1,
                       most: int = 3) -> str:
    """A percentage (64.2 -> "64,2%") printed with the digits that decide its verdict against ``target``.

    Printed with one decimal, 99.95 reads "100,0%" next to "chưa đạt chỉ tiêu (100%)", and 59.96 reads
    "60,0%" next to "chưa đạt (≥ 60%)": the reader sees a figure that contradicts its verdict. So a value
    whose rounding would cross the target gets more decimals ("99,95%", "59,96%"), up to ``most``;
    beyond that it is rounded towards its own side of the target ("99,999%" for 99.99996).
    """
    if target is None:
        return f"{number_vi(float(value), decimals)}%"
    exact = Decimal(repr(float(value)))
    limit = Decimal(repr(float(target)))

    def meets(v: Decimal) -> bool:
        return v >= limit if op == ">=" else v <= limit

    truth = meets(exact)
    for places in range(decimals, most + 1):
        shown = exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
        if meets(shown) == truth:
            return f"{number_vi(shown, places)}%"
    towards = ROUND_FLOOR if (op == ">=") != truth else ROUND_CEILING
    return f"{number_vi(exact.quantize(Decimal(1).scaleb(-most), rounding=towards), most)}%"


def _day(d: date) -> str:
    return f"{d.day:02d}"


def _month(d: date) -> str:
    # ND 30/2020: months 1 and 2 take a leading zero, the others do not.
    return f"{d.month:02d}" if d.month < 3 else str(d.month)


def date_vi(d: date) -> str:
    """ "05/6/2026", "24/01/2019": as the plans and Vietnamese offices write dates."""
    return f"{_day(d)}/{_month(d)}/{d.year}"


def date_long_vi(d: date) -> str:
    """ "ngày 05 tháng 6 năm 2026": the date line of a report (ND 30/2020)."""
    return f"ngày {_day(d)} tháng {_month(d)} năm {d.year}"


def datetime_vi(t: datetime) -> str:
    """ "08:30 ngày 05/6/2026" in Asia/Ho_Chi_Minh; naive datetimes are refused (whose 08:30?)."""
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"Expected a timezone-aware datetime, got naive {t!r}")
    local = t.astimezone(TIMEZONE)
    return f"{local:%H:%M} ngày {date_vi(local.date())}"


def place_date_vi(place: str, d: date) -> str:
    """ "Hải Phòng, ngày 05 tháng 6 năm 2026": the place-and-date line under a report's number."""
    return f"{place.strip()}, {date_long_vi(d)}"


_SPACES = re.compile(r"[\s\u00a0\u202f\u2007\u2009]+")
_PLAIN = re.compile(r"^[0-9]+$")
_DOT_GROUPED = re.compile(r"^[0-9]{1,3}(?:\.[0-9]{3})+$")
_SPACE_GROUPED = re.compile(r"^[0-9]{1,3}(?: [0-9]{3})+$")
_COMMA_GROUPED = re.compile(r"^[0-9]{1,3}(?:,[0-9]{3})+$")
_ZERO_FRACTION = re.compile(r"^(?P<whole>[0-9]+)[.,]0{1,2}$")
_MINUS = re.compile(r"^[-\u2212\u2010-\u2015]\s*[0-9]")


def parse_vi_int(text: str | int | float | Decimal) -> int:
    """Read a count as people type it: "1.234", "1 234", "1234", " 12 ", "1,234" -> whole numbers.

    Dots and spaces group thousands. A comma is a decimal mark in Vietnamese, so "12,5" is refused
    (a count has no fraction); "1,234" is read as 1234 only because exactly three digits follow
    every comma. Excel cells arrive as numbers: 12.0 is accepted, 12.5 is not. Errors are
    ValueError with a Vietnamese message, shown to the person who filled the form. The same holds for
    such a number turned into text: "12.0" and "12,00" are 12 (one or two digits after the mark can
    never be a thousands group).
    """
    if isinstance(text, bool):
        raise ValueError(f"“{text}” không phải số nguyên.")
    if isinstance(text, int):
        number = text
    elif isinstance(text, float | Decimal):
        if (isinstance(text, float) and math.isnan(text)) or (isinstance(text, Decimal) and text.is_nan()):
            raise ValueError("Ô để trống: cần nhập một số nguyên không âm.")
        if not math.isfinite(text) or text != int(text):
            shown = str(text).replace(".", ",")
            raise ValueError(f"“{shown}” không phải số nguyên: số lượng không có phần thập phân.")
        number = int(text)
    elif isinstance(text, str):
        number = _parse_int_text(text)
    else:
        raise ValueError(f"“{text}” không phải số nguyên.")
    if number < 0:
        raise ValueError(f"“{number}” là số âm: số lượng phải là số nguyên không âm.")
    if number > MAX_COUNT:
        raise ValueError(_too_large(str(text)))
    return number


MAX_COUNT = 10**15 - 1
"""The largest count accepted: far above any real figure, and exact in a float and in a 64-bit column."""


def _too_large(shown: str) -> str:
    shown = shown.strip()
    if len(shown) > 40:
        shown = f"{shown[:20]}…{shown[-10:]}"
    return f"“{shown}” quá lớn: số lượng không được vượt quá {number_vi(MAX_COUNT)}."


def _parse_int_text(text: str) -> int:
    shown = text.strip()
    cleaned = _SPACES.sub(" ", unicodedata.normalize("NFKC", text)).strip()
    if not cleaned:
        raise ValueError("Ô để trống: cần nhập một số nguyên không âm.")
    if _MINUS.match(cleaned):
        raise ValueError(f"“{shown}” là số âm: số lượng phải là số nguyên không âm.")
    if sum(ch.isdigit() for ch in cleaned) > len(str(MAX_COUNT)) + 2:  # before int(): no 4,300-digit parse
        raise ValueError(_too_large(shown))
    if _PLAIN.match(cleaned):
        return int(cleaned)
    for pattern, separator in ((_DOT_GROUPED, "."), (_SPACE_GROUPED, " "), (_COMMA_GROUPED, ",")):
        if pattern.match(cleaned):
            return int(cleaned.replace(separator, ""))
    whole_with_zeros = _ZERO_FRACTION.match(cleaned)
    if (
        whole_with_zeros
    ):  # "12.0" / "12,00": a number cell turned into text; one or two digits are never thousands
        return int(whole_with_zeros["whole"])
    if re.match(r"^[0-9 .]*,[0-9]+$", cleaned) or re.match(r"^[0-9]+\.[0-9]{1,2}$", cleaned):
        raise ValueError(f"“{shown}” có phần thập phân: số lượng phải là số nguyên, ví dụ “12” hoặc “1.234”.")
    raise ValueError(f"“{shown}” không phải số nguyên: đề nghị đơn vị nhập chữ số, ví dụ “12” hoặc “1.234”.")
