"""The data period (ND 09/2019 cut-off window) is stated once, the same in the request, the form and the report.

Issue 21 §3: the request said "Số liệu tính từ 15/12/2025 đến 14/6/2026" under a deadline of 05/6 without a
word on estimates, and the form said "lũy kế từ đầu năm" (from 1 January). Read as received: the request
from the SMTP server, the form from its attachment (openpyxl), the report from its rendered text and .docx.
"""

from __future__ import annotations

import html
import io
from datetime import date

import pandas as pd
from openpyxl import load_workbook

from baocao.consolidation.aggregate import consolidate_tree
from baocao.consolidation.report import report_text
from baocao.consolidation.reporting import render
from baocao.opening.forms import SHEET_COUNTS, SHEET_INFO
from baocao.rules.dataperiod import data_period_vi, estimate_instruction_vi
from baocao.rules.periods import Period
from baocao.store.queries import CycleInfo
from tests.support.reports import docx_paragraphs
from tests.support.tuky import TuKy, text_of

WINDOW_H1 = (date(2025, 12, 15), date(2026, 6, 14))
SENTENCE = ("Số liệu báo cáo được tính từ ngày 15/12/2025 đến ngày 14/6/2026 (theo Nghị định số 09/2019/NĐ-CP); "
            "số liệu từ ngày các đơn vị gửi báo cáo đến hết ngày 14/6/2026 là số ước thực hiện.")


def _all_text(data: bytes) -> str:
    wb = load_workbook(io.BytesIO(data))
    return "\n".join(str(c.value) for ws in wb for row in ws.iter_rows() for c in row if c.value is not None)


def test_request_form_and_report_state_the_same_window_and_how_to_estimate(tu_ky: TuKy, cfg) -> None:
    unit = "X11074-KT"
    deadline = tu_ky.request(unit).deadline  # 02/6/2026: twelve days before the window ends
    assert deadline < WINDOW_H1[1]
    assert data_period_vi(WINDOW_H1, deadline) == SENTENCE
    how = estimate_instruction_vi(WINDOW_H1, deadline)
    assert "ước tính" in how and "14/6/2026" in how

    (request,) = [m for m in tu_ky.app.smtp.messages[:tu_ky.seen] if m.message["X-Baocao-Unit"] == unit]
    text = text_of(request)
    page = html.unescape(request.message.get_body(("html",)).get_content())
    assert SENTENCE in text and how in text
    assert SENTENCE in page and how in page

    form = tu_ky.forms[unit][1]
    wb = load_workbook(io.BytesIO(form))
    info = {r[0].value: r[1].value for r in wb[SHEET_INFO].iter_rows(max_col=2) if r[0].value}
    assert info["Thời gian lấy số liệu"] == f"{SENTENCE} {how}"
    everything = _all_text(form)
    assert "từ đầu năm" not in everything  # would mean from 1 January, against a window from 15/12
    assert "thời gian lấy số liệu" in str(wb[SHEET_COUNTS].data_validations.dataValidation[0].prompt)

    h = cfg.hierarchy
    empty = pd.DataFrame(columns=["unit_code", "indicator", "value", "previous_year"])
    figures = consolidate_tree("X11074", h, cfg.catalog_for("tu-ky"), empty,
                               pd.DataFrame(columns=["unit_code", "state", "on_time"]), plan="tu-ky")
    rendered = render(cfg, CycleInfo(1, "2026-H1", "tu-ky", "X11074"), "X11074", figures, date(2026, 6, 5),
                      tasks=None, correction_of=None)
    assert report_text(rendered.context).data_period == SENTENCE
    assert SENTENCE in docx_paragraphs(rendered.docx)


def test_no_estimate_when_figures_are_sent_after_the_window_ends() -> None:
    window = (date(2025, 12, 15), date(2026, 3, 14))
    assert data_period_vi(window, date(2026, 3, 16)) == (
        "Số liệu báo cáo được tính từ ngày 15/12/2025 đến ngày 14/3/2026 (theo Nghị định số 09/2019/NĐ-CP).")
    assert estimate_instruction_vi(window, date(2026, 3, 16)) == ""
    assert estimate_instruction_vi(window, date(2026, 3, 14))  # the window's last day is still estimated
    assert Period.parse("2026-Q1").kind == "Q1"
