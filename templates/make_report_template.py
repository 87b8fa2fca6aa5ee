"""Build templates/report.docx, the docxtpl template of the consolidated report (Nghị định 30/2020/NĐ-CP).

Run `.venv/bin/python templates/make_report_template.py` to rebuild it. The .docx is what office staff
edit in Word afterwards (wording, fonts, spacing); this script exists so that the layout can be
recreated from scratch, and documents what the template expects from baocao/consolidation/report.py:

    issuer_plain, issuer_bold   lines of the issuing body (plain above, bold below), upper case
    symbol                      "BC-UBND", after "Số:"
    place_date                  "Hải Phòng, ngày 05 tháng 6 năm 2026"
    correction_of, correction_note
    summary, intro, completeness, period_label, unit_name
    groups                      [{number, title, sentences: [str]}]   (the catalogue's six groups)
    results, shortcomings, next_steps, proposals
                                [{label, lines: [str]}]               (units' own words, by indicator)
    shortcomings_auto           [str]                                 (targets missed, units missing)
    tasks_summary, tasks        [{number, content, done, in_progress, not_started, overdue, overdue_units}]
    recipients, signer_title, signer_name

Every figure sentence is rendered from templates/report_sentences.j2, so it cannot be edited here:
the email and the XLSX say the same thing.

Layout per ND 30/2020, Phụ lục I: A4, margins top/bottom 20 mm, left 30 mm, right 15 mm;
Times New Roman; issuer and national motto 13 pt, body 14 pt, "Nơi nhận" 12 pt bold italic,
the recipients 11 pt.
"""

from __future__ import annotations

from pathlib import Path

from docx import Document
from docx.enum.section import WD_ORIENT
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_BREAK
from docx.oxml.ns import qn
from docx.shared import Cm, Mm, Pt
from docx.table import _Cell
from docx.text.paragraph import Paragraph

OUT = Path(__file__).resolve().parent / "report.docx"
FONT = "Times New Roman"
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


def _body(doc) -> None:
    tag(doc, "{%p if correction_of %}")
    para(doc, "ĐÍNH CHÍNH", size=14, bold=True, align=CENTER, after=0).paragraph_format.space_before = Pt(12)
    para(doc, "{{ correction_note }}", size=13, italic=True, align=CENTER)
    tag(doc, "{%p endif %}")
    para(doc, "BÁO CÁO", size=14, bold=True, align=CENTER, after=0).paragraph_format.space_before = Pt(12)
    para(doc, "{{ summary }}", size=14, bold=True, align=CENTER, after=0)
    para(doc, "────────", size=13, align=CENTER, after=12)
    para(doc, "{{ intro }}", indent=True)

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

    para(doc, "II. TỒN TẠI, HẠN CHẾ VÀ NGUYÊN NHÂN", bold=True, indent=True)
    tag(doc, "{%p for s in shortcomings_auto %}")
    para(doc, "- {{ s }}", indent=True)
    tag(doc, "{%p endfor %}")
    _items(doc, "shortcomings", label=True)

    para(doc, "III. PHƯƠNG HƯỚNG, NHIỆM VỤ THỜI GIAN TỚI", bold=True, indent=True)
    para(
        doc,
        "- Tiếp tục triển khai đồng bộ, hiệu quả các nhiệm vụ, giải pháp theo Kế hoạch; tập trung chỉ đạo "
        "khắc phục các chỉ tiêu chưa đạt và đôn đốc các đơn vị gửi báo cáo đầy đủ, đúng hạn.",
        indent=True,
    )
    _items(doc, "next_steps", label=False)

    para(doc, "IV. KIẾN NGHỊ, ĐỀ XUẤT", bold=True, indent=True)
    _items(doc, "proposals", label=False)
    tag(doc, "{%p if not proposals %}")
    para(doc, "Không có kiến nghị, đề xuất.", indent=True)
    tag(doc, "{%p endif %}")
    para(
        doc,
        "Số liệu chi tiết theo từng đơn vị và danh sách đơn vị chưa báo cáo, báo cáo trễ hạn tại Phụ lục kèm theo.",
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
    for _ in range(4):
        para(right, "", after=0)
    para(right, "{{ signer_name }}", size=14, bold=True, align=CENTER, after=0)


def _tasks(doc) -> None:
    tag(doc, "{%p if tasks %}")
    p = para(doc, "", align=CENTER, after=0)
    p.add_run().add_break(WD_BREAK.PAGE)
    para(doc, "PHỤ LỤC", bold=True, align=CENTER, after=0)
    para(doc, "TÌNH HÌNH THỰC HIỆN CÁC NHIỆM VỤ ĐƯỢC GIAO", bold=True, align=CENTER, after=0)
    para(doc, "(Kèm theo Báo cáo {{ period_label }} của {{ unit_name }})", size=13, italic=True, align=CENTER)
    headers = ["STT", "Nội dung nhiệm vụ", "Hoàn thành", "Đang thực hiện", "Chưa thực hiện", "Quá hạn",
               "Đơn vị quá hạn"]
    cells = ["{{ t.number }}", "{{ t.content }}", "{{ t.done }}", "{{ t.in_progress }}", "{{ t.not_started }}",
             "{{ t.overdue }}", "{{ t.overdue_units }}"]
    table = doc.add_table(rows=4, cols=len(headers))
    table.style = "Table Grid"
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    _widths(table, [1.1, 5.4, 1.9, 1.9, 1.9, 1.6, 2.7])
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
    para(doc, "", after=0)  # Word wants a paragraph after a table at the end of the body


def build(path: Path = OUT) -> Path:
    doc = Document()
    section = doc.sections[0]
    section.orientation = WD_ORIENT.PORTRAIT
    section.page_width, section.page_height = Mm(210), Mm(297)
    section.top_margin, section.bottom_margin = Mm(20), Mm(20)
    section.left_margin, section.right_margin = Mm(30), Mm(15)
    normal = doc.styles["Normal"]
    _font(normal, 14)
    normal.paragraph_format.space_after = Pt(6)
    doc.core_properties.title = "Báo cáo kết quả thực hiện Kết luận số 226-KL/TW"
    doc.core_properties.author = "baocao"
    _header(doc)
    _body(doc)
    _signature(doc)
    _tasks(doc)
    body = doc.element.body
    first = body[0]
    if first.tag == qn("w:p") and not first.xpath(".//w:t"):
        body.remove(first)
    doc.save(str(path))
    return path


if __name__ == "__main__":
    print(build())
