"""What reading a submission gives: its figures (:class:`Submitted`) and its
:class:`Problem` list, and the size limits a file is read within.

Shared by the reader, the validation and the intake pipeline, so none of
them imports another to name a result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "LIMITS", "Limits", "Problem", "Submitted", "TaskStatus", "location_vi", "make_problem",
]


Severity = Literal["error", "warning"]


# ------------------------------------------------------------------------------------------ results
@dataclass(frozen=True)
class Problem:
    """One thing wrong with a submission, located as precisely as we can, said in Vietnamese.

    ``rule`` is a stable English identifier (for code, tests and statistics); ``message_vi`` is
    what the unit reads in the reply email.
    """

    severity: Severity
    file: str
    sheet: str | None
    cell: str | None
    code: str | None
    value: str | None
    rule: str
    message_vi: str
    # Whose problem it is in a file that holds several units (a CSV): the unit and period of its row.
    # None: the file's (encoding, header, a row naming no unit), which every unit in the file shares.
    unit: str | None = None
    period: str | None = None


def problems_for(problems: Sequence[Problem], unit: str | None, period: str | None) -> list[Problem]:
    """The problems of `problems` that concern one unit's answer: the file's own and that unit's rows.

    One bad row of a 3,000-unit CSV is its unit's problem: the other units are judged (and answered)
    without it. A problem of the unit with no period (a row whose period cannot be read) concerns
    every period of that unit in the file.
    """
    return [p for p in problems if p.unit is None
            or (p.unit == unit and (p.period is None or p.period == period))]


@dataclass
class TaskStatus:
    """A row of ``Nhiệm vụ`` as the unit filled it."""

    number: int
    status: Literal["done", "in_progress", "not_started"] | None
    product: str = ""
    note: str = ""


@dataclass
class Submitted:
    """One unit's answer as read from one file (an XLSX holds one, a CSV may hold several)."""

    unit_code: str | None
    period: str | None
    token: str | None
    form_version: int | None
    fmt: Literal["xlsx", "csv"]
    values: dict[str, int | None] = field(default_factory=dict)
    previous_year: dict[str, int | None] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    tasks: list[TaskStatus] = field(default_factory=list)
    cells: dict[str, str] = field(default_factory=dict)
    """code -> where its value is: "D5" (XLSX, sheet Chỉ tiêu) or "dòng 12" (CSV line)."""
    reported: set[str] = field(default_factory=set)
    """Codes whose value the reader already reported as missing or unreadable, so that
    :func:`baocao.intake.validation.validate` does not report the same cell twice."""
    sheet: str | None = None
    """The sheet the values were read from (None for CSV), for messages."""
    contact: dict[str, str] = field(default_factory=dict)
    """Who prepared the form, their phone, the unit's head ("preparer", "phone", "head"), as written
    on ``Thông tin``; stored in ``submissions.contact`` and read back in the receipt."""


@dataclass(frozen=True)
class Limits:
    """Bounds on what we agree to open. A filled form is ~15 kB zipped and ~60 kB unzipped."""

    max_members: int = 1_000
    max_total_uncompressed: int = 100_000_000
    max_part_bytes: int = 8_000_000  # any XML part we (or calamine) read
    max_ratio: float = 100.0  # uncompressed / compressed, for members above ratio_floor
    ratio_floor: int = 1_000_000
    max_rows: int = 2_000  # rows with content on a form sheet
    max_cols: int = 200
    max_nesting: int = 100
    max_csv_rows: int = 500_000
    max_problems: int = 200  # per unit and period of a CSV (or per file)
    max_problems_total: int = 20_000  # a 500,000-row CSV of errors stays a few MB


LIMITS = Limits()


# ------------------------------------------------------------------------------------------ messages
def _short(value: object, limit: int = 80) -> str:
    text = str(value).replace("\r", " ").replace("\n", " ").strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def location_vi(file: str, sheet: str | None = None, cell: str | None = None, code: str | None = None) -> str:
    """"Tệp “a.xlsx”, trang “Chỉ tiêu”, ô D5": where a problem is, for any message.

    The indicator's `code` is not said: the message names the indicator by its words and the cell (a
    unit never typed the code); it stays on the :class:`Problem` for the operator and the tests.
    """
    parts = [f"Tệp “{file}”"]
    if sheet:
        parts.append(f"trang “{sheet}”")
    if cell:
        parts.append(cell if cell.startswith("dòng") else f"ô {cell}")
    return ", ".join(parts)


def make_problem(
    severity: Severity, file: str, rule: str, detail_vi: str, *, sheet: str | None = None,
    cell: str | None = None, code: str | None = None, value: object = None,
    unit: str | None = None, period: str | None = None,
) -> Problem:
    """A :class:`Problem` whose message starts with its location, then says what is wrong and why."""
    shown = None if value is None else _short(value)
    return Problem(severity, file, sheet, cell, code, shown, rule,
                   f"{location_vi(file, sheet, cell, code)}: {detail_vi}", unit, period)


class _Problems:
    """Collects problems for one file, capped so that a 100,000-row CSV of errors stays readable.

    The cap counts per owner (the unit and period of a CSV row, or the file): a CSV of 3,000 units
    where the first ones have many errors still reports the last unit's own problem to it, and the
    "more problems" note goes to the owner whose problems were cut.
    """

    def __init__(self, file: str, limits: Limits) -> None:
        self.file = file
        self.items: list[Problem] = []
        self.counts: dict[tuple[str | None, str | None], int] = {}
        self.dropped: dict[tuple[str | None, str | None], int] = {}
        self.limit, self.total = limits.max_problems, limits.max_problems_total

    def add(self, severity: Severity, rule: str, detail_vi: str, **where: Any) -> None:
        owner = (where.get("unit"), where.get("period"))
        if self.counts.get(owner, 0) >= self.limit or len(self.items) >= self.total:
            self.dropped[owner] = self.dropped.get(owner, 0) + 1
            return
        self.counts[owner] = self.counts.get(owner, 0) + 1
        self.items.append(make_problem(severity, self.file, rule, detail_vi, **where))

    def error(self, rule: str, detail_vi: str, **where: Any) -> None:
        self.add("error", rule, detail_vi, **where)

    def warning(self, rule: str, detail_vi: str, **where: Any) -> None:
        self.add("warning", rule, detail_vi, **where)

    def done(self) -> list[Problem]:
        for (unit, period), dropped in self.dropped.items():
            own = [p for p in self.items if (p.unit, p.period) == (unit, period)]
            severity: Severity = "error" if any(p.severity == "error" for p in own) else "warning"
            self.items.append(make_problem(
                severity, self.file, "too_many_problems",
                f"còn {dropped} vấn đề khác không liệt kê; đề nghị đơn vị sửa các lỗi trên rồi gửi lại.", unit=unit, period=period,
            ))
        self.dropped = {}
        return self.items


class _Refused(Exception):
    """Internal: the file is refused as a whole (one problem, nothing read)."""

    def __init__(self, rule: str, detail_vi: str, sheet: str | None = None) -> None:
        super().__init__(rule)
        self.rule, self.detail_vi, self.sheet = rule, detail_vi, sheet
