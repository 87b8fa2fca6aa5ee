"""How often a task of a plan's appendix is asked, read from its "Thời hạn" and "Sản phẩm/Kết quả" cells together.

The plans do not keep recurrence in one column: Huế's task 11 says "Định kỳ hằng năm" under Thời hạn
while its product asks for reports "định kỳ quý I (trước ngày 10 tháng 3); 6 tháng (trước ngày 10
tháng 6); 9 tháng (...) và hằng năm (...)", i.e. one every period, each with its own day. Reading the
deadline cell alone would ask once a year, due 31/12. What was read is listed by ``baocao tasks
import`` (:func:`describe_vi`) so an office can check it, and a plan's ``deadlines`` override in
``config/task_bodies.toml`` replaces the reading of a task it got wrong.
"""

from __future__ import annotations

from baocao.rules.formatting import date_vi
from baocao.tasks.duephrases import Due, parse_due_phrase, read_schedule

BASES: tuple[str, ...] = ("deadline", "product", "override")
"""Where a task's deadline was read: its Thời hạn cell, its Sản phẩm/Kết quả cell too, or the config."""

_KIND_VI = {"Q1": "quý I", "H1": "6 tháng", "9M": "9 tháng", "Y": "năm"}
_BASIS_VI = {
    "deadline": "",
    "product": " (đọc từ cột «Sản phẩm/Kết quả»)",
    "override": " (theo cấu hình config/task_bodies.toml)",
}


def read_task_due(deadline: str, product: str, *, default_year: int | None,
                  override: str | None = None) -> tuple[Due, str]:
    """The task's :class:`Due` and where it was read (one of :data:`BASES`).

    An override is read on its own (the office has said what it means). Otherwise a recurring
    deadline ("Định kỳ hằng năm", "Thường xuyên") whose product names the periods and days of its
    reports becomes "periodic" with that schedule, keeping the deadline's first year. A one-off
    deadline is never turned periodic by its product: the date the plan wrote wins.
    Raises :class:`~baocao.errors.DuePhraseError` like :func:`parse_due_phrase`.
    """
    if override is not None:
        return parse_due_phrase(override, default_year=default_year), "override"
    due = parse_due_phrase(deadline, default_year=default_year)
    if due.recurrence in ("yearly", "continuous"):
        schedule = read_schedule(product)
        if schedule:
            return Due(due.text, None, "periodic", due.from_year, schedule), "product"
    return due, "deadline"


def describe_vi(due: Due, basis: str = "deadline") -> str:
    """What was read, in the office's words: "định kỳ mỗi kỳ: quý I trước 10/3, 6 tháng trước 10/6 ..."."""
    since = f", từ năm {due.from_year}" if due.from_year else ""
    if due.recurrence is None and due.due_date is not None:
        text = f"một lần, hạn {date_vi(due.due_date)}"
    elif due.recurrence == "periodic":
        items = ", ".join(f"{_KIND_VI.get(kind, kind)} trước {day}/{month}" for kind, month, day in due.schedule)
        text = f"định kỳ mỗi kỳ báo cáo: {items}{since}"
    elif due.recurrence == "yearly":
        text = f"hằng năm, hạn 31/12{since}"
    elif due.recurrence == "continuous":
        text = f"thường xuyên, báo cáo mỗi kỳ{since}"
    else:
        text = "khi phát sinh sự việc, chưa có hạn"
    return text + _BASIS_VI.get(basis, "")
