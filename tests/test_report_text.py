"""What the consolidated report says, read as the provincial official reads it (issue 20, section 2):
its legal basis, its data period, counts that name what they count, the city speaking of its direct
children, and figures whose printed digits never contradict their verdict."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from baocao.consolidation.aggregate import consolidate_tree
from baocao.consolidation.report import derived_sentence, render_docx, report_context, report_text
from baocao.consolidation.reporting import render
from baocao.rules.catalog import Catalog, Derived, Indicator
from baocao.rules.formatting import percent_vi
from baocao.store.queries import CycleInfo
from tests.support.reports import H1, REPORT_DATE, docx_paragraphs, small_context

KL = "Kết luận số 226-KL/TW ngày 11/12/2025 của Ban Bí thư"
QD = "Quyết định số 534/QĐ-TTg ngày 31/3/2026 của Thủ tướng Chính phủ"
HP = "Kế hoạch số 144/KH-UBND ngày 21/4/2026 của Ủy ban nhân dân thành phố Hải Phòng"


# ----------------------------------------------------------------------------- legal basis and data period
@pytest.mark.parametrize(("plan", "unit", "local"), [
    # The unit's own plan is cited without the place it names in full right after ("..., Ủy ban nhân dân
    # thành phố Hải Phòng báo cáo").
    ("national", "T31", ["Kế hoạch số 144/KH-UBND ngày 21/4/2026 của Ủy ban nhân dân thành phố"]),
    ("nhi-chieu", "X10714", [HP, "Kế hoạch số 158/KH-UBND ngày 05/5/2026 của Ủy ban nhân dân phường"]),
    ("tu-ky", "X11074", [HP, "Kế hoạch của Ủy ban nhân dân xã Tứ Kỳ triển khai thực hiện Quyết định số "
                             "534/QĐ-TTg trên địa bàn xã"]),
    ("hue", "T46", ["Kế hoạch số 263/KH-UBND ngày 08/5/2026 của Ủy ban nhân dân thành phố"]),
    ("lai-chau-vp", "T12-VPUB", ["Kế hoạch số 2798/KH-UBND ngày 20/4/2026 của Ủy ban nhân dân tỉnh Lai Châu",
                                 "Kế hoạch của Văn phòng Ủy ban nhân dân tỉnh Lai Châu triển khai thực hiện "
                                 "Quyết định số 534/QĐ-TTg"]),
    ("thien-tan", "X06421", ["Kế hoạch số 170/KH-UBND ngày 02/5/2026 của Ủy ban nhân dân tỉnh Lạng Sơn",
                             "Kế hoạch của Ủy ban nhân dân xã Thiện Tân thực hiện Quyết định số 534/QĐ-TTg"]),
])
def test_each_plans_report_opens_with_its_real_basis_documents_and_the_data_period(cfg, plan, unit, local):
    """The seeds' headers name KL 226, QĐ 534 and the local Kế hoạch; the plan file's own `name` (for the
    national plan "Chế độ báo cáo định kỳ ... (mặc định toàn quốc)", a document that does not exist) is not
    what a report carries out."""
    h = cfg.hierarchy
    empty = pd.DataFrame(columns=["unit_code", "indicator", "value", "previous_year"])
    figures = consolidate_tree(unit, h, cfg.catalog_for(plan), empty, pd.DataFrame(columns=["unit_code", "state",
                               "on_time"]), plan=plan)
    rendered = render(cfg, CycleInfo(1, "2026-H1", plan, cfg.plan(plan).root), unit, figures, date(2026, 6, 5),
                      tasks=None, correction_of=None)
    text = report_text(rendered.context)
    assert text.intro.startswith("Thực hiện " + "; ".join([KL, QD, *local]) + ", ")
    assert text.intro.endswith("báo cáo kết quả thực hiện 6 tháng đầu năm 2026 như sau:")
    assert "mặc định toàn quốc" not in text.intro
    assert text.data_period == (
        "Số liệu báo cáo được tính từ ngày 15/12/2025 đến ngày 14/6/2026 (theo Nghị định số 09/2019/NĐ-CP); "
        "số liệu từ ngày các đơn vị gửi báo cáo đến hết ngày 14/6/2026 là số ước thực hiện.")
    paragraphs = docx_paragraphs(rendered.docx)
    assert text.intro in paragraphs and text.data_period in paragraphs


# ----------------------------------------------------------------------------- numbers and verdicts
def test_percent_has_no_space_before_the_sign(cfg):
    assert percent_vi(0.742) == "74,2%"
    sentence = report_text(small_context(cfg)).groups[3]["sentences"]
    assert "Tỷ lệ hội nghị trực tuyến đạt 64,2%, vượt chỉ tiêu (≥ 60%)." in sentence
    assert "Số hội nghị, cuộc họp vượt thời gian quy định: không có cuộc nào, đạt yêu cầu." in sentence
    assert not any(" %" in s or "không quá 0" in s for s in sentence)


def _one_ratio(value_num: float, value_den: float, target: float) -> str:
    """The sentence of a single ratio figure of num/den against ``target`` (a catalogue of two counts)."""
    figs, catalog, _ = _one_ratio_figures(value_num, value_den, target)
    return derived_sentence(figs["P"], catalog, "TL")


def _one_ratio_figures(value_num: float, value_den: float, target: float):  # noqa: ANN202
    from baocao.rules.hierarchy import Hierarchy, Unit

    catalog = Catalog((), (Indicator("A", "Số văn bản điện tử", "count", unit="văn bản"),
                           Indicator("B", "Số văn bản", "count", unit="văn bản")),
                      (Derived("TL", "Tỷ lệ văn bản điện tử", "ratio", ">=", target, numerator="A",
                               denominator="B"),), ())
    h = Hierarchy({"P": Unit("P", "Thành phố P", "province", None), "X": Unit("X", "Xã X", "commune", "P")}, "P")
    values = pd.DataFrame([{"unit_code": "X", "indicator": "A", "value": value_num, "previous_year": None},
                           {"unit_code": "X", "indicator": "B", "value": value_den, "previous_year": None}])
    figs = consolidate_tree("P", h, catalog, values, pd.DataFrame({"unit_code": ["X"], "state": ["accepted"],
                                                                   "on_time": [True]}))
    return figs, catalog, h


@pytest.mark.parametrize(("num", "den", "target", "sentence"), [
    (1999, 2000, 100, "Tỷ lệ văn bản điện tử đạt 99,95%, chưa đạt chỉ tiêu (≥ 100%)."),  # not "100,0%, chưa đạt"
    (2000, 2000, 100, "Tỷ lệ văn bản điện tử đạt 100,0%, đạt chỉ tiêu (≥ 100%)."),
    (5996, 10000, 60, "Tỷ lệ văn bản điện tử đạt 59,96%, chưa đạt chỉ tiêu (≥ 60%)."),
    (6004, 10000, 60, "Tỷ lệ văn bản điện tử đạt 60,0%, đạt chỉ tiêu (≥ 60%)."),  # printed 60,0: not "vượt"
    (6006, 10000, 60, "Tỷ lệ văn bản điện tử đạt 60,1%, vượt chỉ tiêu (≥ 60%)."),
    (742, 1000, 60, "Tỷ lệ văn bản điện tử đạt 74,2%, vượt chỉ tiêu (≥ 60%)."),
])
def test_a_printed_figure_never_contradicts_its_verdict(num, den, target, sentence):
    assert _one_ratio(num, den, target) == sentence


def test_the_workbook_shows_the_deciding_digits_too():
    """99,95% against 100%: the XLSX cell is formatted 0.00, so it reads 99.95 beside "Chưa đạt", not 100.0."""
    import io

    import openpyxl

    from baocao.consolidation.report import render_xlsx

    figs, catalog, h = _one_ratio_figures(1999, 2000, 100)
    ctx = report_context(figs, "P", h, catalog, H1, "", REPORT_DATE)
    ws = openpyxl.load_workbook(io.BytesIO(render_xlsx(ctx)))["Số liệu theo đơn vị"]
    (cell,) = [c for row in ws.iter_rows() for c in row if c.value == pytest.approx(99.95)][-1:]
    assert cell.number_format == "0.00" and ws.cell(cell.row, cell.column + 1).value == "Chưa đạt"


def test_deciding_digits_at_the_edges():
    from baocao.rules.formatting import verdict_percent_vi

    assert verdict_percent_vi(99.95, 100) == "99,95%" and verdict_percent_vi(59.96, 60) == "59,96%"
    assert verdict_percent_vi(99.99996, 100) == "99,999%"  # still below: rounded towards its own side
    assert verdict_percent_vi(64.25) == "64,3%" and verdict_percent_vi(95.0, 95) == "95,0%"


# ----------------------------------------------------------------------------- whom the city speaks of
@pytest.fixture(scope="module")
def city(cfg):
    """Hải Phòng: every leaf reports on time except Xã Tứ Kỳ's Văn phòng (a commune department) and the first
    plain commune; Sở Nội vụ reports late. Xã Tứ Kỳ and Phường Nhị Chiểu have departments of their own."""
    h = cfg.hierarchy
    leaves = [u.code for u in h.leaves("T31")]
    communes = [u.code for u in h.children("T31") if u.level == "commune" and not h.has_children(u.code)]
    absent = {"X11074-VP", communes[0]}
    rows = [{"unit_code": u, "indicator": i.code, "value": 10.0, "previous_year": 10.0}
            for u in leaves if u not in absent for i in cfg.catalog.counts]
    requests = pd.DataFrame({"unit_code": leaves,
                             "state": ["overdue" if u in absent else "accepted" for u in leaves],
                             "on_time": [None if u in absent else u != "T31-SNV" for u in leaves]})
    texts = pd.DataFrame([{"unit_code": u, "indicator": "HAN_CHE", "text": t} for u, t in
                          [(communes[1], "Hạ tầng mạng còn yếu."), (communes[2], "hạ tầng mạng còn yếu"),
                           ("X11074-KT", "Hạ tầng mạng, còn yếu"), ("X10714-VP", "Kinh phí còn hạn chế.")]])
    figs = consolidate_tree("T31", h, cfg.catalog, pd.DataFrame(rows), requests, texts=texts, plan="national")
    return report_context(figs, "T31", h, cfg.catalog, H1, "", REPORT_DATE), communes


def test_the_city_counts_its_communes_and_its_departments_each_with_its_denominator(city):
    ctx, communes = city
    text = report_text(ctx)
    assert text.completeness == (
        "Đã nhận báo cáo của 112/114 xã, phường, đặc khu và 2/2 sở, ngành; gửi đúng hạn: 112/114 xã, phường, "
        "đặc khu và 1/2 sở, ngành (tính đến từng cơ quan, đơn vị lập biểu: 121/123 cơ quan, đơn vị đã gửi).")
    assert "Gửi báo cáo trễ hạn (1/2 sở, ngành): Sở Nội vụ thành phố Hải Phòng." in text.shortcomings_auto


def test_a_wards_departments_are_not_the_citys_missing_units(city, cfg):
    """Xã Tứ Kỳ's Văn phòng did not report: in the city's report Tứ Kỳ is one unit, partly in; its
    department is named in Tứ Kỳ's own report, not among the city's missing units."""
    ctx, communes = city
    h = cfg.hierarchy
    text = report_text(ctx)
    missing = next(s for s in text.shortcomings_auto if s.startswith("Chưa gửi báo cáo"))
    assert missing == f"Chưa gửi báo cáo (1/114 xã, phường, đặc khu): {h[communes[0]].name}."
    assert "Chưa tổng hợp đầy đủ báo cáo của các cơ quan, đơn vị trực thuộc: Xã Tứ Kỳ (đã nhận 3/4)." \
        in text.shortcomings_auto
    everything = "\n".join(docx_paragraphs(render_docx(ctx)))
    assert h["X11074-VP"].name not in everything.split("PHỤ LỤC I")[0]


def test_the_units_words_are_grouped_counted_by_kind_and_attributed_to_the_citys_children(city, cfg):
    """Three units write the same shortcoming in three ways (one of them a department of Xã Tứ Kỳ, which
    speaks as Tứ Kỳ): one point, 3/114; every point with its units' names in the appendix."""
    ctx, communes = city
    h = cfg.hierarchy
    text = report_text(ctx)
    (block,) = text.sections["shortcomings"]
    assert block["lines"] == ["3/114 xã, phường, đặc khu nêu: Hạ tầng mạng còn yếu.",
                              "1/114 xã, phường, đặc khu nêu: Kinh phí còn hạn chế."]
    (appendix,) = text.opinions
    assert appendix["groups"][0]["names"] == f"{h[communes[1]].name}, {h[communes[2]].name}, Xã Tứ Kỳ"
    paragraphs = docx_paragraphs(render_docx(ctx))
    assert "[Đánh giá của đơn vị về tồn tại, hạn chế và nguyên nhân: …]" in paragraphs
    assert "PHỤ LỤC II" in paragraphs and "TỔNG HỢP Ý KIẾN CỦA CÁC ĐƠN VỊ" in paragraphs  # no tasks: II


@pytest.mark.usefixtures("prefect_api")
def test_the_request_to_a_department_cites_the_wards_documents_not_the_plan_files_name(app):
    """The email that asks Nhị Chiểu's departments to report opens as the ward would write it."""
    from tests.support.wards import open_ward

    open_ward(app)
    (mail,) = [m for m in app.smtp.messages
               if m.message["X-Baocao-Kind"] == "request" and m.message["X-Baocao-Unit"] == "X10714-VHXH"]
    body = mail.message.get_body(("plain",)).get_content()
    nc = "Kế hoạch số 158/KH-UBND ngày 05/5/2026 của Ủy ban nhân dân phường Nhị Chiểu"
    # The ward's collecting office (config/plans/nhi-chieu.toml [collector.root], seed 001) is the very
    # department asked here: it is asked by the ward it collects for, not by itself.
    assert f"Thực hiện {KL}; {QD}; {HP}; {nc}, Ủy ban nhân dân phường Nhị Chiểu đề nghị" in " ".join(body.split())
