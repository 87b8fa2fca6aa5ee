"""A report that prints and opens right (issue 20, section 3): the Word report's pages, language, properties,
signature, recipients and Phụ lục I; the XLSX appendix's print setup; the chart's order and labels; and, on
paper (LibreOffice to PDF), the city's appendix in few pages with the units' names on every one."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime, timedelta

import openpyxl
import pandas as pd
import pytest
from docx import Document
from docx.enum.section import WD_ORIENT
from docx.oxml.ns import qn
from matplotlib.backends.backend_agg import FigureCanvasAgg

from baocao.consolidation.aggregate import consolidate_tree
from baocao.consolidation.charts import chart_derived, chart_units
from baocao.consolidation.report import ReportContext, render_docx, render_xlsx, report_context
from baocao.rules.config import load_hierarchy
from baocao.rules.hierarchy import Hierarchy, Unit
from tests.support.reports import H1, PLAN_NAME, REPORT_DATE, docx_paragraphs, haiphong_context, small_context

FIGURES_SHEET = "Số liệu theo đơn vị"
ATTACHED = "(Kèm theo Báo cáo số …/BC-UBND ngày … của Ủy ban nhân dân thành phố Hải Phòng)"


@pytest.fixture(scope="module")
def haiphong(cfg) -> ReportContext:
    """Hải Phòng's real tree (114 communes and 2 departments under the city) with seeded random figures."""
    return haiphong_context(cfg)


def _instr(element) -> str:  # noqa: ANN001
    return "".join(t.text or "" for t in element.iter(qn("w:instrText")))


# ----------------------------------------------------------------------------- Word: pages, language, properties
def test_pages_are_numbered_at_the_top_from_the_second_page(cfg):
    doc = Document(io.BytesIO(render_docx(small_context(cfg))))
    first = doc.sections[0]
    assert first.different_first_page_header_footer
    assert _instr(first.header._element).strip() == "PAGE"
    assert first.header.paragraphs[0].alignment == 1  # centred
    assert _instr(first.first_page_header._element) == "" and first.first_page_header.paragraphs[0].text == ""
    appendix = doc.sections[-1]
    assert not appendix.different_first_page_header_footer  # numbered on its first page too
    assert _instr(appendix.header._element).strip() == "PAGE"  # the report's header, continued


def test_the_text_is_vietnamese_for_word_s_spelling_checker(cfg):
    data = render_docx(small_context(cfg))
    doc = Document(io.BytesIO(data))
    defaults = doc.styles.element.find(qn("w:docDefaults")).find(qn("w:rPrDefault")).find(qn("w:rPr"))
    assert defaults.find(qn("w:lang")).get(qn("w:val")) == "vi-VN"
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for name in ("word/styles.xml", "word/document.xml", "word/header1.xml", "word/header2.xml"):
            assert b"en-US" not in z.read(name), name
    runs = [r for r in doc.element.body.iter(qn("w:r")) if "".join(t.text or "" for t in r.iter(qn("w:t"))).strip()]
    assert len(runs) > 50
    assert all(r.find(qn("w:rPr")).find(qn("w:lang")).get(qn("w:val")) == "vi-VN" for r in runs)


def test_properties_name_this_report_and_its_issuer_without_a_thumbnail(cfg):
    data = render_docx(small_context(cfg))
    props = Document(io.BytesIO(data)).core_properties
    assert props.title.startswith("Báo cáo kết quả thực hiện Kết luận số 226-KL/TW")
    assert props.title.endswith("6 tháng đầu năm 2026")
    assert props.author == props.last_modified_by == "Ủy ban nhân dân thành phố Hải Phòng"
    assert props.comments == "" and props.subject == PLAN_NAME
    now = datetime.now(UTC)
    assert abs(props.created.replace(tzinfo=UTC) - now) < timedelta(days=1) and props.modified == props.created  # not 2013-12-23
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert not [n for n in z.namelist() if "thumbnail" in n.lower()]
        assert b"thumbnail" not in z.read("_rels/.rels")
        assert "<Company>Ủy ban nhân dân thành phố Hải Phòng</Company>" in z.read("docProps/app.xml").decode()


# ----------------------------------------------------------------------------- Word: signature, recipients
def _tree_with_head() -> Hierarchy:
    units = {
        "BNV": Unit("BNV", "Bộ Nội vụ", "ministry", None),
        "T31": Unit("T31", "Thành phố Hải Phòng", "province", "BNV", head_name="Trần Thị Bình"),
        "T31-SNV": Unit("T31-SNV", "Sở Nội vụ thành phố Hải Phòng", "department", "T31", drafts=True),
        "X1": Unit("X1", "Phường Một", "commune", "T31"),
    }
    return Hierarchy(units=units, root_code="BNV")


def test_signature_block_has_room_the_position_and_the_head_s_name(cfg):
    h = _tree_with_head()
    values = pd.DataFrame(columns=["unit_code", "indicator", "value", "previous_year"])
    requests = pd.DataFrame({"unit_code": ["T31-SNV", "X1"], "state": ["late", "late"], "on_time": [None, None]})
    figs = consolidate_tree("T31", h, cfg.catalog, values, requests, plan="national", period="2026-H1")
    ctx = report_context(figs, "T31", h, cfg.catalog, H1, PLAN_NAME, REPORT_DATE)
    doc = Document(io.BytesIO(render_docx(ctx)))
    signature = doc.tables[1].cell(0, 1)  # the ND 30 header is the first table
    lines = [p.text for p in signature.paragraphs]
    assert lines[:2] == ["TM. ỦY BAN NHÂN DÂN", "CHỦ TỊCH"] and lines[-1] == "Trần Thị Bình"
    assert lines[2:-1] == [""] * (len(lines) - 3) and len(lines) - 3 >= 4  # room to sign and seal
    paragraphs = docx_paragraphs(render_docx(ctx))
    start = paragraphs.index("Nơi nhận:")
    assert paragraphs[start + 1: start + 3] == ["- Bộ Nội vụ (b/c);", "- Lưu: VT, SNV."]


def test_head_name_and_drafting_department_are_read_from_hierarchy_toml(tmp_path):
    path = tmp_path / "hierarchy.toml"
    path.write_text('[root]\ncode = "BNV"\nname = "Bộ Nội vụ"\n[official]\nprovinces = ["T31"]\n'
                    '[unit_contacts.T31]\nhead_name = "Trần Thị Bình"\n'
                    '[[departments]]\nparent = "T31"\ncode = "T31-SNV"\nname = "Sở Nội vụ thành phố Hải Phòng"\n'
                    'drafts = true\nhead_name = "Lê Văn Cường"\n', encoding="utf-8")
    h = load_hierarchy(path)
    assert h["T31"].head_name == "Trần Thị Bình" and h["T31-SNV"].head_name == "Lê Văn Cường"
    assert h["T31-SNV"].drafts and not h["T31"].drafts and h["X10714"].head_name == ""


def test_noi_nhan_lists_the_bodies_the_plan_sends_the_report_to(cfg):
    from baocao.consolidation.report import recipients_for
    from baocao.consolidation.reporting import receiver_lines

    h = cfg.hierarchy
    # seed 001: the ward reports to the city; its Phòng VHXH collects and drafts
    assert receiver_lines(cfg, "nhi-chieu", "X10714") == ("- UBND thành phố Hải Phòng (b/c);", "- Lưu: VT, VHXH.")
    assert recipients_for(("parent:coordinator", "parent:head", "unit:T31-SNV", "self:coordinator"), h["X10714"], h) \
        == ("- UBND thành phố Hải Phòng (b/c);", "- Sở Nội vụ thành phố Hải Phòng (b/c);", "- Lưu: VT, VHXH.")
    assert receiver_lines(cfg, "lai-chau-vp", "T12-VPUB")[-1] == "- Lưu: VT, HCQT."
    # the national plan also mails the ministry's report to the Government Office, outside the hierarchy
    assert receiver_lines(cfg, "national", "BNV") == ("- Lưu: VT.",)


# ----------------------------------------------------------------------------- Word: Phụ lục I
def test_phu_luc_i_is_a_landscape_section_with_a_bordered_table_of_unit_names(haiphong):
    data = render_docx(haiphong)
    doc = Document(io.BytesIO(data))
    assert doc.sections[0].orientation == WD_ORIENT.PORTRAIT
    appendix = doc.sections[-1]
    assert appendix.orientation == WD_ORIENT.LANDSCAPE and appendix.page_width.mm == pytest.approx(297, abs=0.5)
    paragraphs = docx_paragraphs(data)
    assert "PHỤ LỤC I" in paragraphs and "PHỤ LỤC II" in paragraphs
    # Phụ lục I, the tasks' Phụ lục II, the units' words (III) and the communes' proposals to the city (IV)
    assert paragraphs.count(ATTACHED) == 4
    children = [haiphong.child_figures[c].name for c in haiphong.figures.children]
    tables = [t for t in doc.tables if t.rows[0].cells[0].text == "STT" and t.rows[0].cells[1].text == "Đơn vị"]
    indicators = len(haiphong.figures.derived) + len(haiphong.catalog.counts)
    assert sum(len(t.columns) - 2 for t in tables) - 1 == indicators  # every indicator, + the status column
    for table in tables:
        borders = table._tbl.tblPr.find(qn("w:tblBorders"))
        assert {b.get(qn("w:val")) for b in borders} == {"single"} and len(borders) == 6
        assert table.rows[0]._tr.trPr.find(qn("w:tblHeader")) is not None  # repeated on every page
        names = [row.cells[1].text for row in table.rows if row.cells[0].text.isdigit()]
        assert names == children  # names, not codes, in the tree's order
        assert table.rows[-1].cells[1].text == "Tổng cộng: Thành phố Hải Phòng"
    first = tables[0]
    header = [c.text for c in first.rows[0].cells]
    online = header.index("Tỷ lệ hội nghị trực tuyến (%)")
    assert first.rows[1].cells[online].text == "≥ 60%"  # the target row
    expected = haiphong.figures.derived["TL_HN_TRUC_TUYEN"]["value"]
    assert first.rows[-1].cells[online].text == f"{expected:.1f}".replace(".", ",")


# ----------------------------------------------------------------------------- XLSX print setup
def test_xlsx_appendix_is_set_up_to_print(haiphong):
    wb = openpyxl.load_workbook(io.BytesIO(render_xlsx(haiphong)))
    ws = wb[FIGURES_SHEET]
    setup = ws.page_setup
    assert setup.orientation == "landscape" and int(setup.paperSize) == 9  # A4
    assert ws.sheet_properties.pageSetUpPr.fitToPage
    assert int(setup.fitToWidth) >= 1 and int(setup.fitToHeight) == 0
    assert ws.print_title_rows == "$4:$5" and ws.print_title_cols == "$A:$C"
    assert ws.freeze_panes == "E6"
    title = f"PHỤ LỤC: SỐ LIỆU THEO ĐƠN VỊ - {H1.label_vi.upper()}"
    assert ws["A1"].value == title and title.endswith("NĂM 2026")
    merged = next(r for r in ws.merged_cells.ranges if r.min_row == r.max_row == 1)
    assert merged.min_col == 1 and merged.max_col >= 3 and ws["A1"].alignment.wrap_text
    width = sum(ws.column_dimensions[openpyxl.utils.get_column_letter(c)].width for c in range(1, merged.max_col + 1))
    lines = ws.row_dimensions[1].height / 17  # 13 pt lines
    assert width * lines >= len(title) * 1.3  # room for the whole title (13 pt is wider than a width unit)
    for sheet in wb.worksheets:
        cells = [c for row in sheet.iter_rows() for c in row if c.value is not None]
        assert {c.font.name for c in cells} == {"Times New Roman"}, sheet.title
        assert sheet.page_setup.orientation == "landscape" and int(sheet.page_setup.fitToHeight) == 0, sheet.title
    for row in ws.iter_rows(min_row=4, max_row=ws.max_row):
        for cell in row:
            assert cell.border.left.style == cell.border.bottom.style == "thin", cell.coordinate


# ----------------------------------------------------------------------------- chart
def _chart_tree(cfg) -> object:
    """Three wards against the online-conference target of 60 %: 55 % (its label would cross the line),
    30 % and 80 %; procedures handled digitally 90 %, 99 %, 50 % against 95 %."""
    units = {"T31": Unit("T31", "Thành phố Hải Phòng", "province", None)}
    given = {"X1": (55, 90), "X2": (30, 99), "X3": (80, 50)}
    rows = []
    for code, (online, digital) in given.items():
        units[code] = Unit(code, f"Phường {code}", "commune", "T31")
        for ind in cfg.catalog.counts:
            value = {"HN_TONG": 100, "HN_TRUC_TUYEN": online, "TTHC_TIEP_NHAN": 100,
                     "TTHC_MOI_TRUONG_SO": digital}.get(ind.code, 5)
            rows.append({"unit_code": code, "indicator": ind.code, "value": float(value), "previous_year": 5.0})
    h = Hierarchy(units=units, root_code="T31")
    requests = pd.DataFrame({"unit_code": list(given), "state": ["accepted"] * 3, "on_time": [True] * 3})
    figs = consolidate_tree("T31", h, cfg.catalog, pd.DataFrame(rows), requests, plan="national", period="2026-H1")
    return report_context(figs, "T31", h, cfg.catalog, H1, PLAN_NAME, REPORT_DATE)


def test_chart_puts_the_worst_units_first(cfg):
    ctx = _chart_tree(cfg)
    codes = chart_derived(ctx.figures)
    shown, total = chart_units(ctx, codes)

    def worst(f) -> tuple[int, float]:  # noqa: ANN001 - targets missed, then points below them in all
        missed = [c for c in codes if f.derived[c]["met"] is False]
        return len(missed), sum(f.derived[c]["target"] - f.derived[c]["value"] for c in missed)

    assert total == 3 and [worst(f) for f in shown] == sorted((worst(f) for f in shown), reverse=True)
    # X1 misses two targets (by 5 and 5 points), X3 one by 45, X2 one by 30
    assert [f.unit for f in shown] == ["X1", "X3", "X2"]


def test_value_labels_do_not_sit_on_the_target_line(cfg):
    from baocao.consolidation.charts import chart_figure

    fig = chart_figure(_chart_tree(cfg))
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    checked = 0
    for ax in fig.axes:
        (line,) = [ln for ln in ax.lines if ln.get_linestyle() == "--"]
        x = ax.transData.transform((line.get_xdata()[0], 0))[0]
        for text in ax.texts:
            box = text.get_window_extent(renderer)
            assert not (box.x0 - 1 <= x <= box.x1 + 1), (text.get_text(), ax.get_title())
            checked += 1
    assert checked >= 8


def test_chart_writes_percentages_without_a_space(cfg):
    """"60%", as the report's text writes it (issue 20 §2): the titles and the axis ticks."""
    from baocao.consolidation.charts import chart_figure

    fig = chart_figure(_chart_tree(cfg))
    FigureCanvasAgg(fig).draw()
    texts = [ax.get_title() for ax in fig.axes] + [t.get_text() for ax in fig.axes for t in ax.get_xticklabels()]
    percents = [t for t in texts if "%" in t]
    assert len(percents) >= len(fig.axes) * 2, texts
    assert not any(" %" in t for t in percents), percents


# ----------------------------------------------------------------------------- on paper (LibreOffice)
@pytest.mark.slow
def test_city_xlsx_appendix_prints_on_few_pages_each_with_unit_names(haiphong, office, tmp_path):
    source = tmp_path / "phu-luc.xlsx"
    source.write_bytes(render_xlsx(haiphong))
    pages = office.page_texts(office.to_pdf(source, tmp_path))
    rows = len(haiphong.figures.children) + 1
    # portrait, Calibri, no fit: 37 pages for these 117 rows (68 with the data); landscape, fit to width
    assert len(pages) <= rows / 6, len(pages)
    names = [haiphong.child_figures[c].name for c in haiphong.figures.children]
    for number, text in enumerate(pages, start=1):
        assert any(name in text for name in names), f"page {number} names no unit"
    assert "PHỤ LỤC: SỐ LIỆU THEO ĐƠN VỊ - 6 THÁNG ĐẦU NĂM 2026" in " ".join(pages[0].split())  # whole, wrapped


@pytest.mark.slow
def test_city_report_prints_numbered_with_phu_luc_i_landscape(haiphong, office, tmp_path):
    source = tmp_path / "bao-cao.docx"
    source.write_bytes(render_docx(haiphong))
    pdf = office.to_pdf(source, tmp_path)
    pages, sizes = office.page_texts(pdf), office.page_sizes(pdf)
    assert len(pages) == len(sizes) > 4
    first_lines = [next((line.strip() for line in p.splitlines() if line.strip()), "") for p in pages]
    assert not first_lines[0].isdigit()  # no number on the first page
    assert first_lines[1:] == [str(n) for n in range(2, len(pages) + 1)]
    appendix = next(i for i, p in enumerate(pages) if "PHỤ LỤC I" in p)
    assert all(w < h for w, h in sizes[:appendix]) and all(w > h for w, h in sizes[appendix:])
    one_line = [n for n in (haiphong.child_figures[c].name for c in haiphong.figures.children) if len(n) < 28]
    assert len(one_line) > 100 and all(name in "".join(pages[appendix:]) for name in one_line)  # longer ones wrap
    assert "Nguyễn Văn A" in pages[appendix - 1]  # the signature closes the report before its appendices


def test_phu_luc_i_prints_the_digits_that_decide_a_missed_target(cfg):
    """A unit at 99,95% of a 100% target is shaded as missed: its cell must not read "100,0"."""
    from baocao.consolidation.docx_appendix import figures_appendix_xml

    ctx = small_context(cfg)
    entry = ctx.child_figures["X1"].derived["TL_VB_DIEN_TU"]
    assert entry["has_target"] and entry["target"] == 100
    entry.update(value=99.95, met=False)
    xml = str(figures_appendix_xml(ctx))
    assert ">99,95<" in xml  # (the old cell printed "100,0" beside the shading that says missed)
