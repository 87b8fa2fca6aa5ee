"""The data period of a report, worded once: the request, the form and the report say the same.

Nghị định 09/2019/NĐ-CP sets the window of a periodic report's figures (H1: 15/12 of the year before
to 14/6; :meth:`baocao.rules.periods.WorkCalendar.cutoff_window`). A plan's deadline often falls
before the window ends (Tứ Kỳ's 05/6 for a window to 14/6), so what happens between the day a unit
sends its figures and the window's end can only be estimated (số ước thực hiện). Said three ways
in three places, a clerk reads three different periods (the request said "từ 15/12/2025", the form
"lũy kế từ đầu năm", i.e. from 1 January), so every place calls these functions.

The window sentence is the report's own (templates/report_sentences.j2 ``data_period``), word for
word, so that a report and the request it answers state the same period.
"""

from __future__ import annotations

from datetime import date

from baocao.rules.formatting import date_vi

__all__ = ["data_period_vi", "estimate_instruction_vi", "estimated"]

DECREE = "Nghị định số 09/2019/NĐ-CP"


def estimated(window: tuple[date, date], sent_by: date) -> bool:
    """Whether figures sent on ``sent_by`` (a deadline, or the report's date) hold estimates: the
    window has not ended by the end of that day (the window's own last day included)."""
    return sent_by <= window[1]


def data_period_vi(window: tuple[date, date], sent_by: date | None = None) -> str:
    """ "Số liệu báo cáo được tính từ ngày 15/12/2025 đến ngày 14/6/2026 (theo Nghị định số
    09/2019/NĐ-CP); số liệu từ ngày các đơn vị gửi báo cáo đến hết ngày 14/6/2026 là số ước thực
    hiện." The second clause only when ``sent_by`` is given and falls within the window."""
    start, end = window
    text = f"Số liệu báo cáo được tính từ ngày {date_vi(start)} đến ngày {date_vi(end)} (theo {DECREE})"
    if sent_by is not None and estimated(window, sent_by):
        text += f"; số liệu từ ngày các đơn vị gửi báo cáo đến hết ngày {date_vi(end)} là số ước thực hiện"
    return text + "."


def estimate_instruction_vi(window: tuple[date, date], deadline: date) -> str:
    """How a unit gives the estimate, for the request and the form ('' when nothing is estimated).

    The figure stays one number per indicator (what the unit has done, plus its estimate for the days
    left), so sums up the hierarchy still hold; the note column says which figures contain one.
    """
    if not estimated(window, deadline):
        return ""
    return (f"Đối với những ngày từ ngày gửi báo cáo đến hết ngày {date_vi(window[1])}, đề nghị đơn vị ước tính "
            "số liệu và cộng vào số liệu đã thực hiện (ghi một số cho mỗi chỉ tiêu); chỉ tiêu nào có số ước, "
            "đề nghị ghi \"có số ước\" ở cột Ghi chú.")
