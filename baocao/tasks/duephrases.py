"""Deadline phrases of the government's task appendix ("trước ngày 10 tháng
6", "hằng quý", "từ ... đến ...") parsed into :class:`Due` values.

Only the appendix reads them; the dates they give follow the deadline
semantics of :mod:`baocao.rules.periods`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from baocao.errors import DuePhraseError
from baocao.rules.periods import Period, _last_day_of_month

__all__ = [
    "Due", "DuePhraseError", "parse_due_phrase", "read_schedule",
]


# --------------------------------------------------------------------------------------------------
# Deadline phrases of the plans' task appendices
# --------------------------------------------------------------------------------------------------

RECURRENCES: tuple[str, ...] = ("continuous", "yearly", "on_event", "periodic")

ScheduleItem = tuple[str, int, int]
"""(period kind, month, day): a periodic task's report for that period is due on that day of its year."""


@dataclass(frozen=True)
class Due:
    """A deadline from a plan's task appendix ("Thời hạn" column).

    ``due_date`` is the last day (inclusive) for one-off tasks. Recurring tasks carry ``recurrence``:
    "continuous" (Thường xuyên: reported every period, no due date), "yearly" (Hằng năm: due by
    31/12 of each year), "on_event" (Sau khi có hướng dẫn ...: no date until the event happens).
    "periodic" (Định kỳ quý I, 6 tháng, 9 tháng và năm: asked in every period of ``schedule``, each
    with its own day, e.g. ("H1", 6, 10) for "6 tháng (trước ngày 10 tháng 6)").
    ``from_year`` is the first year a recurring task applies, when the phrase names one.
    """

    text: str
    due_date: date | None
    recurrence: str | None
    from_year: int | None
    schedule: tuple[ScheduleItem, ...] = ()

    @property
    def schedule_code(self) -> str | None:
        """The schedule as stored in the database ("Q1:10/3 H1:10/6"); None when there is none."""
        return " ".join(f"{kind}:{day}/{month}" for kind, month, day in self.schedule) or None

    @staticmethod
    def schedule_from_code(code: str | None) -> tuple[ScheduleItem, ...]:
        """Inverse of :attr:`schedule_code`."""
        items = []
        for item in (code or "").split():
            kind, _, day_month = item.partition(":")
            day, _, month = day_month.partition("/")
            items.append((kind, int(month), int(day)))
        return tuple(items)

    def active_in(self, period: Period) -> bool:
        """Whether a recurring task is expected to be running in ``period`` (``from_year`` reached)."""
        return self.from_year is None or period.year >= self.from_year

    def due_in(self, period: Period) -> date | None:
        """The due date that applies when reporting ``period``.

        One-off: its date. Yearly: 31/12 of the period's year, once ``from_year`` is reached.
        Continuous and on-event: None (no due date; the task's status is reported each period).
        """
        if self.recurrence is None:
            return self.due_date
        if self.recurrence == "yearly" and self.active_in(period):
            return date(period.year, 12, 31)
        if self.recurrence == "periodic" and self.active_in(period):
            for kind, month, day in self.schedule:
                if kind == period.kind:
                    return date(period.year, month, day)
        return None


_ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4}
_DASHES = re.compile(r"[\u2010-\u2015\u2212\u2043\ufe58\ufe63\uff0d]")
_YEAR = r"(?P<year>\d{4})"
_OPT_YEAR = r"(?:(?:/|-|\s)(?:năm\s)?(?P<year>\d{4}))?"

_DATE_PREFIX = r"(?:(?:trước|đến|tới|chậm nhất(?:\slà)?|hạn(?:\schót)?|hoàn thành trước)\s)?(?:ngày\s)?"
_SPAN_PREFIX = (
    r"(?:(?:trong|hoàn thành trong|đến(?:\s(?:cuối|hết))?|tới(?:\s(?:cuối|hết))?|cuối|hết|"
    r"chậm nhất(?:\s(?:cuối|hết))?)\s)?"
)

_RE_DATE = re.compile(
    rf"^{_DATE_PREFIX}(?P<day>\d{{1,2}})(?P<sep>[/.-])(?P<month>\d{{1,2}})(?:(?P=sep)(?P<year>\d{{4}}))?$"
)
_RE_DATE_WORDS = re.compile(
    rf"^{_DATE_PREFIX}(?P<day>\d{{1,2}})\stháng\s(?P<month>\d{{1,2}})(?:\snăm\s(?P<year>\d{{4}}))?$"
)
_RE_QUARTER = re.compile(rf"^{_SPAN_PREFIX}(?:quý|qúy|quí)\s?(?P<q>iv|iii|ii|i|v|\d+){_OPT_YEAR}$")
_RE_MONTH = re.compile(rf"^{_SPAN_PREFIX}tháng\s?(?P<month>\d{{1,2}}){_OPT_YEAR}$")
_RE_YEAR = re.compile(rf"^{_SPAN_PREFIX}(?:năm\s)?{_YEAR}$")
_RE_MONTHS_OF_YEAR = re.compile(
    rf"^{_SPAN_PREFIX}(?P<span>(?:6|sáu)\stháng\s(?:đầu|cuối)|(?:9|chín)\stháng\sđầu)\snăm(?:\s(?P<year>\d{{4}}))?$"
)
_SPAN_END_MONTH = {
    "6 tháng đầu": 6,
    "sáu tháng đầu": 6,
    "6 tháng cuối": 12,
    "sáu tháng cuối": 12,
    "9 tháng đầu": 9,
    "chín tháng đầu": 9,
}
_RE_FROM = re.compile(r"(?:bắt đầu\s)?từ\s(?:năm\s)?(?P<from>\d{4})")
_RE_CONTINUOUS = re.compile(r"^(?:thường xuyên|liên tục)$")
_RE_YEARLY = re.compile(r"^(?:định kỳ\s)?(?:hàng|hằng)\snăm$")
_RE_ON_EVENT = re.compile(r"^(?:sau khi|khi)\s\S")

# A periodic report's periods and days, as a product cell or an override names them:
# "định kỳ quý I (trước ngày 10 tháng 3); 6 tháng (trước ngày 10 tháng 6); ... hằng năm (trước ngày 10 tháng 12)".
_SCHEDULE_LABELS: tuple[tuple[str, str], ...] = (
    (r"quý\s?(?:i|1)", "Q1"),
    (r"(?:6|sáu)\stháng(?:\sđầu\snăm)?", "H1"),
    (r"(?:9|chín)\stháng(?:\sđầu\snăm)?", "9M"),
    (r"(?:(?:hằng|hàng|cả)\s)?năm", "Y"),
)
_RE_SCHEDULE_ITEM = re.compile(
    r"(?<!\w)(?P<label>" + "|".join(f"(?:{label})" for label, _ in _SCHEDULE_LABELS) + r")"
    r"\s?[(:]?\s?(?:(?:trước|chậm nhất|hạn|đến)\s)?(?:ngày\s)?"
    r"(?P<day>\d{1,2})(?:/|\stháng\s)(?P<month>\d{1,2})(?!\d)"
)
_RE_PERIODIC = re.compile(r"^định kỳ(?:\s|:|$)")

_EXAMPLES_VI = (
    "«Trước 10/5/2026», «Tháng 5/2026», «Quý IV/2026», «Năm 2026», «Thường xuyên», «Hằng năm, từ năm 2026»"
)


def _normalise(text: str) -> str:
    """NFC, lower case, one kind of dash and space, no trailing punctuation: what the regexes read."""
    cleaned = unicodedata.normalize("NFC", text)
    cleaned = _DASHES.sub("-", cleaned)
    cleaned = cleaned.replace("\u00a0", " ").replace("\u202f", " ").replace("\u2009", " ")
    cleaned = cleaned.lower()
    cleaned = re.sub(r"\s*/\s*", "/", cleaned)
    cleaned = re.sub(r"\s*,\s*", ", ", cleaned)
    cleaned = re.sub(r"\s+", " ", cleaned).strip()
    cleaned = re.sub(r"[\s.,;:!…*]+$", "", cleaned)  # "… và thành phố." / "**Năm 2026**"
    cleaned = re.sub(r"^[\s*+•-]+", "", cleaned)  # a bullet or bold marker in front
    return cleaned.strip()


def _year_or_default(phrase: str, year: str | None, default_year: int | None) -> int:
    if year:
        value = int(year)
        if not 1 <= value <= 9999:  # "Năm 0000": date() would raise a bare ValueError
            raise DuePhraseError(phrase, f"year {year} does not exist", f"năm «{year}» không hợp lệ.")
        return value
    if default_year is not None:
        return default_year
    raise DuePhraseError(
        phrase,
        "the phrase names no year and no default year was given",
        "thiếu năm; hãy ghi rõ năm, ví dụ «Quý IV/2026».",
    )


def _checked_date(phrase: str, year: int, month: int, day: int) -> date:
    try:
        return date(year, month, day)
    except ValueError as exc:
        raise DuePhraseError(
            phrase,
            f"{day}/{month}/{year} is not a real date",
            f"ngày {day}/{month}/{year} không có thật.",
        ) from exc


def read_schedule(text: str) -> tuple[ScheduleItem, ...]:
    """The periods and days a periodic report names, in period order; () when it names none.

    Read from free text ("... định kỳ quý I (trước ngày 10 tháng 3); 6 tháng (trước ngày 10 tháng 6)
    ...") because the plans put this in the "Sản phẩm/Kết quả" column, not in "Thời hạn". A period
    named twice keeps its first day; a day that does not exist raises :class:`DuePhraseError`.
    """
    norm = _normalise(text) if isinstance(text, str) else ""
    found: dict[str, tuple[int, int]] = {}
    for match in _RE_SCHEDULE_ITEM.finditer(norm):
        label = match["label"]
        kind = next(k for pattern, k in _SCHEDULE_LABELS if re.fullmatch(pattern, label))
        day, month = int(match["day"]), int(match["month"])
        _checked_date(text, 2000, month, day)  # a leap year: 29/2 is a day some years have
        found.setdefault(kind, (month, day))
    order = [k for _, k in _SCHEDULE_LABELS]
    return tuple((k, *found[k]) for k in sorted(found, key=order.index))


def _recurring(phrase: str, norm: str) -> Due | None:
    """Read "Thường xuyên[, từ năm 2026]", "Từ 2026 và thường xuyên", "Hằng năm, bắt đầu từ 2026"."""
    from_years = list(_RE_FROM.finditer(norm))
    if len(from_years) > 1:
        return None
    from_year = int(from_years[0]["from"]) if from_years else None
    rest = _RE_FROM.sub(" ", norm)
    rest = re.sub(r"(?:^|\s)(?:và|,|;|-)(?=\s|$)", " ", rest)
    rest = re.sub(r"[,;]", " ", rest)
    rest = re.sub(r"\s+", " ", rest).strip()
    if _RE_CONTINUOUS.match(rest):
        return Due(phrase, None, "continuous", from_year)
    if _RE_YEARLY.match(rest):
        return Due(phrase, None, "yearly", from_year)
    return None


def parse_due_phrase(text: str, *, default_year: int | None = None) -> Due:
    """Read a "Thời hạn" cell of a plan's appendix.

    Dates are the last day, inclusive: "Trước 10/5/2026" -> 10/5/2026 (the plans' "trước ngày" is
    stored as the deadline date itself), "Tháng 5/2026" -> 31/5, "Quý II/2026" -> 30/6,
    "6 tháng đầu năm 2026" -> 30/6, "Năm 2026" / "Đến cuối 2026" -> 31/12. ``default_year`` fills a
    phrase without a year ("Quý IV"). Anything unrecognised raises :class:`DuePhraseError` rather
    than guessing, because a wrong deadline silently produces wrong overdue notices.
    """
    if not isinstance(text, str):
        raise DuePhraseError(str(text), "the deadline is not text", "thời hạn không phải là chữ.")
    phrase = re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).strip()
    norm = _normalise(phrase)
    if not norm:
        raise DuePhraseError(phrase, "the deadline is empty", "thời hạn để trống.")

    if _RE_ON_EVENT.match(norm):
        return Due(phrase, None, "on_event", None)

    if _RE_PERIODIC.match(norm):
        schedule = read_schedule(norm)
        if schedule:
            from_year = _RE_FROM.search(norm)
            return Due(phrase, None, "periodic", int(from_year["from"]) if from_year else None, schedule)

    recurring = _recurring(phrase, norm)
    if recurring is not None:
        return recurring

    match = _RE_DATE.match(norm) or _RE_DATE_WORDS.match(norm)
    if match:
        year = _year_or_default(phrase, match["year"], default_year)
        return Due(phrase, _checked_date(phrase, year, int(match["month"]), int(match["day"])), None, None)

    match = _RE_QUARTER.match(norm)
    if match:
        raw_q = match["q"]
        quarter = _ROMAN.get(raw_q) or (int(raw_q) if raw_q.isdigit() else 0)
        if not 1 <= quarter <= 4:
            raise DuePhraseError(
                phrase,
                f"quarter {raw_q!r} does not exist",
                f"quý «{raw_q.upper()}» không có; quý chỉ từ I đến IV.",
            )
        year = _year_or_default(phrase, match["year"], default_year)
        return Due(phrase, _last_day_of_month(year, quarter * 3), None, None)

    match = _RE_MONTH.match(norm)
    if match:
        month = int(match["month"])
        if not 1 <= month <= 12:
            raise DuePhraseError(
                phrase, f"month {month} does not exist", f"tháng {month} không có; tháng chỉ từ 1 đến 12."
            )
        year = _year_or_default(phrase, match["year"], default_year)
        return Due(phrase, _last_day_of_month(year, month), None, None)

    match = _RE_MONTHS_OF_YEAR.match(norm)
    if match:
        year = _year_or_default(phrase, match["year"], default_year)
        return Due(phrase, _last_day_of_month(year, _SPAN_END_MONTH[match["span"]]), None, None)

    match = _RE_YEAR.match(norm)
    if match:
        return Due(phrase, date(_year_or_default(phrase, match["year"], None), 12, 31), None, None)

    raise DuePhraseError(
        phrase,
        "not a known deadline form",
        f"không phải dạng thời hạn đã biết (ví dụ {_EXAMPLES_VI}).",
    )


def parse_due_phrases(texts: Iterable[str], *, default_year: int | None = None) -> list[Due]:
    """Read a whole "Thời hạn" column; the first unreadable phrase raises (with its text)."""
    return [parse_due_phrase(t, default_year=default_year) for t in texts]
