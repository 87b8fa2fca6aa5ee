"""Build templates/report.docx, the docxtpl template of the consolidated report (Nghị định 30/2020/NĐ-CP).

Run `.venv/bin/python templates/make_report_template.py` to rebuild it. The .docx is what office staff
edit in Word afterwards (wording, fonts, spacing); this script exists so that the layout can be
recreated from scratch, and documents what the template expects from baocao/consolidation/report.py:

    issuer_plain, issuer_bold   lines of the issuing body (plain above, bold below), upper case
    symbol                      "BC-UBND", after "Số:"
    place_date                  "Hải Phòng, ngày 05 tháng 6 năm 2026"
    correction_of, correction_note
    draft                       True: "DỰ THẢO" under the number (the unit still checks, numbers and signs it)
    attached                    "(Kèm theo Báo cáo số …/BC-UBND ngày … của ...)" on each appendix
    summary, intro, data_period, completeness, period_label, unit_name
    groups                      [{number, title, sentences: [str]}]   (the catalogue's six groups)
    results, shortcomings, next_steps
                                [{label, lines: [str]}]               (units' words: the largest points, counted)
    opinions                    [{label, groups: [{text, count, names}]}]  (every point, with the units' names)
    proposals, proposals_to     [{text, count, names}]; "UBND thành phố Hải Phòng" (the children's proposals to it)
    annex                       {"figures": "I", "tasks": "II", "opinions": "III", "proposals": "IV"} (those present)
    shortcomings_auto           [str]                                 (targets missed, units missing)
    tasks_summary, tasks        [{number, content, done, in_progress, not_started, overdue, overdue_units}]
    recipients, signer_title, signer_name
    figures_appendix            Phụ lục I, the figures by unit (tables built by baocao/consolidation/docx_appendix.py)

Every figure sentence is rendered from templates/report_sentences.j2, so it cannot be edited here:
the email and the XLSX say the same thing.

Layout per ND 30/2020, Phụ lục I: A4, margins top/bottom 20 mm, left 30 mm, right 15 mm;
Times New Roman; issuer and national motto 13 pt, body 14 pt, "Nơi nhận" 12 pt bold italic,
the recipients 11 pt; page numbers from the second page, centred in the top margin (ND 30, Phụ lục I,
II.1.đ). Every style and run is Vietnamese (vi-VN), so that Word's spelling checker reads the text as
Vietnamese. The appendices (Phụ lục I: the figures by unit; Phụ lục II: the tasks) are a landscape
section after the signature.
"""

from __future__ import annotations

from pathlib import Path

from docx import Document
from docx.enum.section import WD_ORIENT, WD_SECTION
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_BREAK, WD_COLOR_INDEX
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.oxml.ns import qn
from docx.shared import Cm, Mm, Pt
from docx.table import _Cell
from docx.text.paragraph import Paragraph

OUT = Path(__file__).resolve().parent / "report.docx"
FONT = "Times New Roman"
LANG = "vi-VN"
CENTER = WD_ALIGN_PARAGRAPH.CENTER
JUSTIFY = WD_ALIGN_PARAGRAPH.JUSTIFY


def _font(style_or_run, size: float | None = None) -> None:
    """Times New Roman for every script, Vietnamese included (python-docx only sets ascii/hAnsi)."""
    style_or_run.font.name = FONT
    if size:
        style_or_run.font.size = Pt(size)
    r_pr = style_or_run.element.get_or_add_rPr()
    fonts = r_pr.find(qn("w:rFonts"))
    if fonts is None:
        fonts = r_pr.makeelement(qn("w:rFonts"), {})
        r_pr.append(fonts)
    for attr in ("w:ascii", "w:hAnsi", "w:cs", "w:eastAsia"):
        fonts.set(qn(attr), FONT)
    _lang(r_pr)


def _lang(r_pr) -> None:
    """Mark the text Vietnamese: without it Word checks it as English and underlines every word."""
    lang = r_pr.find(qn("w:lang"))
    if lang is None:
        lang = r_pr.makeelement(qn("w:lang"), {})
        r_pr.append(lang)  # w:lang follows every property python-docx sets here (schema order)
    for attr in ("w:val", "w:eastAsia", "w:bidi"):
        lang.set(qn(attr), LANG)


def para(
    container,
    text: str = "",
    *,
    size: float = 14,
    bold: bool = False,
    italic: bool = False,
    underline: bool = False,
    align=JUSTIFY,
    indent: bool = False,
    after: float = 6,
    first: bool = False,
) -> Paragraph:
    """One paragraph with one run, so that a Jinja tag is never split across runs."""
    p = container.paragraphs[0] if first else container.add_paragraph()
    p.alignment = align
    fmt = p.paragraph_format
    fmt.space_before = Pt(0)
    fmt.space_after = Pt(after)
    if indent:
        fmt.first_line_indent = Cm(1)
    if text:
        run = p.add_run(text)
        _font(run, size)
        run.bold, run.italic, run.underline = bold, italic, underline
    return p


def tag(container, text: str, *, first: bool = False) -> Paragraph:
    """A docxtpl paragraph tag ({%p ... %}): the whole paragraph disappears when rendered."""
    return para(container, text, size=11, after=0, first=first, align=WD_ALIGN_PARAGRAPH.LEFT)


def _no_borders(table) -> None:
    tbl_pr = table._tbl.tblPr
    borders = tbl_pr.makeelement(qn("w:tblBorders"), {})
    for edge in ("top", "left", "bottom", "right", "insideH", "insideV"):
        borders.append(borders.makeelement(qn(f"w:{edge}"), {qn("w:val"): "nil"}))
    tbl_pr.append(borders)


def _widths(table, widths_cm: list[float]) -> None:
    """Column widths in the grid (LibreOffice reads these) and in every cell (Word reads those)."""
    table.autofit = False
    for column, width in zip(table.columns, widths_cm, strict=True):
        column.width = Cm(width)
    for row in table.rows:
        for cell, width in zip(row.cells, widths_cm, strict=True):
            cell.width = Cm(width)


def _header(doc) -> None:
    table = doc.add_table(rows=1, cols=2)
    _no_borders(table)
    _widths(table, [6.2, 10.3])
    left: _Cell = table.cell(0, 0)
    right: _Cell = table.cell(0, 1)
    tag(left, "{%p for line in issuer_plain %}", first=True)
    para(left, "{{ line }}", size=13, align=CENTER, after=0)
    tag(left, "{%p endfor %}")
    tag(left, "{%p for line in issuer_bold %}")
    para(left, "{{ line }}", size=13, bold=True, align=CENTER, after=0)
    tag(left, "{%p endfor %}")
    para(left, "───────", size=13, align=CENTER, after=6)
    para(left, "Số:        /{{ symbol }}", size=13, align=CENTER, after=0)
    tag(left, "{%p if draft %}")
    mark = para(left, "DỰ THẢO", size=13, bold=True, align=CENTER, after=0)  # a draft cannot pass for the issued text
    mark.paragraph_format.space_before = Pt(6)
    for run in mark.runs:
        run.font.highlight_color = WD_COLOR_INDEX.YELLOW
    tag(left, "{%p endif %}")
    para(right, "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", size=13, bold=True, align=CENTER, after=0, first=True)
    para(right, "Độc lập - Tự do - Hạnh phúc", size=14, bold=True, align=CENTER, after=0)
    para(right, "──────────────", size=13, align=CENTER, after=6)
    para(right, "{{ place_date }}", size=14, italic=True, align=CENTER, after=0)


def _items(doc, loop: str, *, label: bool) -> None:
    """A list of blocks {label, items} (units' words grouped by indicator)."""
    tag(doc, "{%p for block in " + loop + " %}")
    if label:
        para(doc, "{{ block.label }}", italic=True, indent=True)
    tag(doc, "{%p for item in block.lines %}")
    para(doc, "- {{ item }}", indent=True)
    tag(doc, "{%p endfor %}")
    tag(doc, "{%p endfor %}")


def _own_words(doc, text: str) -> None:
    """Where the issuing unit writes its own assessment: a highlighted placeholder that cannot go out unnoticed."""
    p = para(doc, text, italic=True, indent=True)
    for run in p.runs:
        run.font.highlight_color = WD_COLOR_INDEX.YELLOW


def _body(doc) -> None:
    tag(doc, "{%p if correction_of %}")
    para(doc, "ĐÍNH CHÍNH", size=14, bold=True, align=CENTER, after=0).paragraph_format.space_before = Pt(12)
    para(doc, "{{ correction_note }}", size=13, italic=True, align=CENTER)
    tag(doc, "{%p endif %}")
    para(doc, "BÁO CÁO", size=14, bold=True, align=CENTER, after=0).paragraph_format.space_before = Pt(12)
    para(doc, "{{ summary }}", size=14, bold=True, align=CENTER, after=0)
    para(doc, "────────", size=13, align=CENTER, after=12)
    para(doc, "{{ intro }}", indent=True)
    tag(doc, "{%p if data_period %}")
    para(doc, "{{ data_period }}", italic=True, indent=True)
    tag(doc, "{%p endif %}")

    para(doc, "I. KẾT QUẢ THỰC HIỆN", bold=True, indent=True)
    para(doc, "Tình hình tổng hợp báo cáo: {{ completeness }}", indent=True)
    tag(doc, "{%p for g in groups %}")
    para(doc, "{{ g.number }}. {{ g.title }}", bold=True, indent=True)
    tag(doc, "{%p for s in g.sentences %}")
    para(doc, "- {{ s }}", indent=True)
    tag(doc, "{%p endfor %}")
    tag(doc, "{%p endfor %}")
    _items(doc, "results", label=True)
    tag(doc, "{%p if tasks_summary %}")
    para(doc, "- {{ tasks_summary }}", indent=True)
    tag(doc, "{%p endif %}")
    _own_words(doc, "[Đánh giá của đơn vị về kết quả nổi bật: …]")

    para(doc, "II. TỒN TẠI, HẠN CHẾ VÀ NGUYÊN NHÂN", bold=True, indent=True)
    tag(doc, "{%p for s in shortcomings_auto %}")
    para(doc, "- {{ s }}", indent=True)
    tag(doc, "{%p endfor %}")
    _items(doc, "shortcomings", label=True)
    _own_words(doc, "[Đánh giá của đơn vị về tồn tại, hạn chế và nguyên nhân: …]")

    para(doc, "III. PHƯƠNG HƯỚNG, NHIỆM VỤ THỜI GIAN TỚI", bold=True, indent=True)
    para(
        doc,
        "- Tiếp tục triển khai đồng bộ, hiệu quả các nhiệm vụ, giải pháp theo Kế hoạch; tập trung chỉ đạo "
        "khắc phục các chỉ tiêu chưa đạt và đôn đốc các đơn vị gửi báo cáo đầy đủ, đúng hạn.",
        indent=True,
    )
    _items(doc, "next_steps", label=True)
    _own_words(doc, "[Phương hướng, nhiệm vụ của đơn vị trong thời gian tới: …]")

    para(doc, "IV. KIẾN NGHỊ, ĐỀ XUẤT", bold=True, indent=True)
    _own_words(doc, "[Kiến nghị, đề xuất của đơn vị (nếu có): …]")
    tag(doc, "{%p if proposals %}")
    para(doc, "Kiến nghị, đề xuất của các đơn vị gửi {{ proposals_to }} được tổng hợp tại Phụ lục {{ annex.proposals }} "
         "để xem xét, giải quyết theo thẩm quyền.", italic=True, indent=True)
    tag(doc, "{%p endif %}")
    para(
        doc,
        "Số liệu chi tiết theo từng đơn vị (kể cả đơn vị chưa báo cáo, báo cáo trễ hạn) tại Phụ lục I kèm theo.",
        italic=True,
        indent=True,
    )
    para(doc, "Trên đây là báo cáo kết quả thực hiện {{ period_label }} của {{ unit_name }}./.", indent=True)


def _signature(doc) -> None:
    table = doc.add_table(rows=1, cols=2)
    _no_borders(table)
    _widths(table, [8.0, 8.5])
    left, right = table.cell(0, 0), table.cell(0, 1)
    para(left, "Nơi nhận:", size=12, bold=True, italic=True, align=WD_ALIGN_PARAGRAPH.LEFT, after=0, first=True)
    tag(left, "{%p for r in recipients %}")
    para(left, "{{ r }}", size=11, align=WD_ALIGN_PARAGRAPH.LEFT, after=0)
    tag(left, "{%p endfor %}")
    tag(right, "{%p for line in signer_title %}", first=True)
    para(right, "{{ line }}", size=14, bold=True, align=CENTER, after=0)
    tag(right, "{%p endfor %}")
    for _ in range(5):  # room for the signature and the seal
        para(right, "", after=0)
    para(right, "{{ signer_name }}", size=14, bold=True, align=CENTER, after=0)


ATTACHED = "{{ attached }}"
"""The appendix's link to the report, "(Kèm theo Báo cáo số …/BC-UBND ngày … của ...)": number and date are
written in once the report is issued (baocao.consolidation.report.attached_line)."""


def _figures(doc) -> None:
    """Phụ lục I: the figures by unit, the tables themselves built at render time (their columns are the
    catalogue's indicators)."""
    para(doc, "PHỤ LỤC I", bold=True, align=CENTER, after=0)
    para(doc, "SỐ LIỆU KẾT QUẢ THỰC HIỆN THEO ĐƠN VỊ {{ period_label | upper }}", bold=True, align=CENTER, after=0)
    para(doc, ATTACHED, size=13, italic=True, align=CENTER)
    tag(doc, "{{p figures_appendix }}")


def _annex_heading(doc, name: str, title: str) -> None:
    """An annex that appears only when the report has `name`: a new page, "PHỤ LỤC <n>", its title, the attachment line."""
    tag(doc, "{%p if " + name + " %}")
    p = para(doc, "", align=CENTER, after=0)
    p.add_run().add_break(WD_BREAK.PAGE)
    para(doc, "PHỤ LỤC {{ annex." + name + " }}", bold=True, align=CENTER, after=0)
    para(doc, title, bold=True, align=CENTER, after=0)
    para(doc, ATTACHED, size=13, italic=True, align=CENTER)


def _tasks(doc) -> None:
    _annex_heading(doc, "tasks", "TÌNH HÌNH THỰC HIỆN CÁC NHIỆM VỤ ĐƯỢC GIAO")
    headers = ["STT", "Nội dung nhiệm vụ", "Hoàn thành", "Đang thực hiện", "Chưa thực hiện", "Quá hạn",
               "Đơn vị quá hạn"]
    cells = ["{{ t.number }}", "{{ t.content }}", "{{ t.done }}", "{{ t.in_progress }}", "{{ t.not_started }}",
             "{{ t.overdue }}", "{{ t.overdue_units }}"]
    table = doc.add_table(rows=4, cols=len(headers))
    table.style = "Table Grid"
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    _widths(table, [1.2, 10.5, 2.4, 2.4, 2.4, 2.0, 4.3])  # the landscape section's 25,2 cm
    for j, text in enumerate(headers):
        para(table.cell(0, j), text, size=11, bold=True, align=CENTER, after=0, first=True)
    table.cell(1, 0).merge(table.cell(1, len(headers) - 1))
    para(table.cell(1, 0), "{%tr for t in tasks %}", size=11, after=0, first=True)
    for j, text in enumerate(cells):
        align = WD_ALIGN_PARAGRAPH.LEFT if j in (1, 6) else CENTER
        para(table.cell(2, j), text, size=11, align=align, after=0, first=True)
    table.cell(3, 0).merge(table.cell(3, len(headers) - 1))
    para(table.cell(3, 0), "{%tr endfor %}", size=11, after=0, first=True)
    tag(doc, "{%p endif %}")


def _opinions(doc) -> None:
    """The units' words, every point with how many units and which ones raised it (the body states the largest);
    then the children's proposals, addressed to the issuing unit, as an annex of their own."""
    _annex_heading(doc, "opinions", "TỔNG HỢP Ý KIẾN CỦA CÁC ĐƠN VỊ")
    tag(doc, "{%p for block in opinions %}")
    para(doc, "{{ loop.index }}. {{ block.label }}", bold=True, align=WD_ALIGN_PARAGRAPH.LEFT, after=3)
    tag(doc, "{%p for g in block.groups %}")
    para(doc, "- {{ g.text }} ({{ g.count }}: {{ g.names }})", size=13, indent=True, after=3)
    tag(doc, "{%p endfor %}")
    tag(doc, "{%p endfor %}")
    tag(doc, "{%p endif %}")
    _annex_heading(doc, "proposals", "KIẾN NGHỊ, ĐỀ XUẤT CỦA CÁC ĐƠN VỊ GỬI {{ proposals_to | upper }}")
    para(doc, "(Để {{ proposals_to }} xem xét, giải quyết theo thẩm quyền; không phải kiến nghị của {{ proposals_to }} "
         "gửi cấp trên)", size=13, italic=True, align=CENTER)
    tag(doc, "{%p for g in proposals %}")
    para(doc, "{{ loop.index }}. {{ g.text }} ({{ g.count }}: {{ g.names }})", size=13, indent=True, after=3)
    tag(doc, "{%p endfor %}")
    tag(doc, "{%p endif %}")
    para(doc, "", after=0)  # Word wants a paragraph after a table at the end of the body


def _page_number(section) -> None:
    """ND 30: page numbers centred in the top margin, not on the first page (a different first-page header,
    left empty)."""
    section.different_first_page_header_footer = True
    para(section.first_page_header, "", size=13, align=CENTER, after=0, first=True)
    p = para(section.header, "", size=13, align=CENTER, after=0, first=True)
    for kind, text in (("begin", None), (None, " PAGE "), ("separate", None), (None, "2"), ("end", None)):
        run = p.add_run()
        _font(run, 13)
        if kind:
            run._r.append(run._r.makeelement(qn("w:fldChar"), {qn("w:fldCharType"): kind}))
        elif text.strip() == "PAGE":
            instr = run._r.makeelement(qn("w:instrText"), {qn("xml:space"): "preserve"})
            instr.text = text
            run._r.append(instr)
        else:
            run.text = text


def _vietnamese(doc) -> None:
    """vi-VN as the document's default language, in every style that names one, and for the theme."""
    styles = doc.styles.element
    for r_pr in styles.iter(qn("w:rPr")):
        if r_pr.find(qn("w:lang")) is not None:
            _lang(r_pr)
    defaults = styles.find(qn("w:docDefaults"))
    r_pr = defaults.find(qn("w:rPrDefault")).find(qn("w:rPr"))
    _lang(r_pr)
    _lang(doc.styles["Normal"].element.get_or_add_rPr())
    theme_lang = doc.settings.element.find(qn("w:themeFontLang"))
    if theme_lang is not None:
        theme_lang.set(qn("w:val"), LANG)


def _no_thumbnail(doc) -> None:
    """python-docx's default document carries a thumbnail of an unrelated page: Explorer would show it."""
    package = doc.part.package
    for r_id, rel in list(package.rels.items()):
        if rel.reltype == RT.THUMBNAIL:
            package.rels.pop(r_id)


def _tiny_break(doc) -> None:
    """The paragraph that ends the portrait section (and holds its properties), 1 pt high: after a signature
    that fills the page, a normal-height one would spill over onto a page of its own, blank but numbered."""
    for p_pr in doc.element.body.iter(qn("w:pPr")):
        if p_pr.find(qn("w:sectPr")) is None:
            continue
        spacing = p_pr.makeelement(qn("w:spacing"), {qn("w:before"): "0", qn("w:after"): "0", qn("w:line"): "20",
                                                      qn("w:lineRule"): "exact"})
        p_pr.insert(0, spacing)
        r_pr = p_pr.makeelement(qn("w:rPr"), {})
        r_pr.append(r_pr.makeelement(qn("w:sz"), {qn("w:val"): "2"}))
        r_pr.append(r_pr.makeelement(qn("w:szCs"), {qn("w:val"): "2"}))
        p_pr.find(qn("w:sectPr")).addprevious(r_pr)


def build(path: Path = OUT) -> Path:
    doc = Document()
    section = doc.sections[0]
    section.orientation = WD_ORIENT.PORTRAIT
    section.page_width, section.page_height = Mm(210), Mm(297)
    section.top_margin, section.bottom_margin = Mm(20), Mm(20)
    section.left_margin, section.right_margin = Mm(30), Mm(15)
    section.header_distance = Mm(10)
    normal = doc.styles["Normal"]
    _font(normal, 14)
    normal.paragraph_format.space_after = Pt(6)
    _vietnamese(doc)
    doc.core_properties.title = "Báo cáo kết quả thực hiện Kết luận số 226-KL/TW"
    doc.core_properties.author = "baocao"
    _no_thumbnail(doc)
    _page_number(section)
    _header(doc)
    _body(doc)
    _signature(doc)
    appendix = doc.add_section(WD_SECTION.NEW_PAGE)
    appendix.orientation = WD_ORIENT.LANDSCAPE
    appendix.page_width, appendix.page_height = Mm(297), Mm(210)
    appendix.top_margin, appendix.bottom_margin = Mm(30), Mm(15)
    appendix.left_margin, appendix.right_margin = Mm(20), Mm(20)
    appendix.different_first_page_header_footer = False  # numbered on every page, continuing the report's
    _tiny_break(doc)
    _figures(doc)
    _tasks(doc)
    _opinions(doc)
    body = doc.element.body
    first = body[0]
    if first.tag == qn("w:p") and not first.xpath(".//w:t"):
        body.remove(first)
    doc.save(str(path))
    return path


if __name__ == "__main__":
    print(build())
