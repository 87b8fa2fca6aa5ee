"""Phụ lục I of the Word report: the figures by unit, in the signed document and not only in the workbook.

The report is what is signed and filed; a figure a unit is judged on belongs in it (the XLSX appendix is for
working with the numbers). One row per direct child with its name (a code means nothing on paper), its
reporting status, and the figures; the consolidated figure in a last, bold row. The catalogue decides the
columns: the derived figures against their targets first, then the counts, :data:`MAX_COLUMNS` indicators per
table so that a table fits the landscape A4 page at a readable size. Header rows repeat on every page; rows do
not break across pages; borders are set on the table itself, whatever the template's table styles.

Built as WordprocessingML text (a report of 116 units has some 4,000 cells: python-docx's object API takes
about a second for them, this a few milliseconds) and put in place by the template's
``{{p figures_appendix }}`` tag.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

from markupsafe import Markup

from baocao.rules.formatting import number_vi

if TYPE_CHECKING:
    from baocao.consolidation.aggregate import Figures
    from baocao.consolidation.report import ReportContext

__all__ = ["MAX_COLUMNS", "TABLE_WIDTH_CM", "figures_appendix_xml"]

MAX_COLUMNS = 10
"""Indicator columns per table: ten columns of 1,9 cm beside the unit's name fit A4 landscape at 10 pt."""
TABLE_WIDTH_CM = 25.4
"""The landscape section's text width (297 mm less 2 x 20 mm margins, rounded down)."""
FONT = "Times New Roman"
LANG = "vi-VN"
MISSED_FILL = "F4CCCC"  # light red behind a figure that misses its target (still readable in black and white)
TWIPS_PER_CM = 567


@dataclass
class _Column:
    header: str
    width_cm: float
    cells: list[tuple[str, bool]]  # (text, missed) per row, the total row last


def _run(text: str, *, size: float, bold: bool = False, italic: bool = False) -> str:
    half_points = int(round(size * 2))
    props = (f'<w:rFonts w:ascii="{FONT}" w:hAnsi="{FONT}" w:cs="{FONT}" w:eastAsia="{FONT}"/>'
             + ("<w:b/>" if bold else "") + ("<w:i/>" if italic else "")
             + f'<w:sz w:val="{half_points}"/><w:szCs w:val="{half_points}"/>'
             + f'<w:lang w:val="{LANG}" w:eastAsia="{LANG}" w:bidi="{LANG}"/>')
    return f'<w:r><w:rPr>{props}</w:rPr><w:t xml:space="preserve">{escape(text)}</w:t></w:r>'


def _paragraph(text: str, *, size: float = 11, bold: bool = False, italic: bool = False, align: str = "center",
               before: int = 0, after: int = 0) -> str:
    return (f'<w:p><w:pPr><w:keepNext/><w:spacing w:before="{before}" w:after="{after}"/><w:jc w:val="{align}"/>'
            f"</w:pPr>{_run(text, size=size, bold=bold, italic=italic)}</w:p>")


def _cell(text: str, width: int, *, bold: bool = False, fill: str | None = None, align: str = "center",
          size: float = 11) -> str:
    shading = f'<w:shd w:val="clear" w:color="auto" w:fill="{fill}"/>' if fill else ""
    return (f'<w:tc><w:tcPr><w:tcW w:w="{width}" w:type="dxa"/>{shading}<w:vAlign w:val="center"/></w:tcPr>'
            f'<w:p><w:pPr><w:spacing w:before="0" w:after="0"/><w:jc w:val="{align}"/></w:pPr>'
            f"{_run(text, size=size, bold=bold)}</w:p></w:tc>")


def _table(columns: list[_Column], names: list[str], statuses: list[str] | None, target_row: list[str] | None) -> str:
    """One bordered table: STT, unit, [reporting status], the columns; header (and target) rows repeat."""
    fixed = [("STT", 1.0), ("Đơn vị", 5.0)] + ([("Tình hình báo cáo", 3.0)] if statuses is not None else [])
    rest = TABLE_WIDTH_CM - sum(w for _, w in fixed)
    for column in columns:
        column.width_cm = rest / len(columns)
    widths = [int(w * TWIPS_PER_CM) for _, w in fixed] + [int(c.width_cm * TWIPS_PER_CM) for c in columns]
    edges = "".join(f'<w:{e} w:val="single" w:sz="4" w:space="0" w:color="000000"/>'
                    for e in ("top", "left", "bottom", "right", "insideH", "insideV"))
    out = [f'<w:tbl><w:tblPr><w:tblW w:w="{sum(widths)}" w:type="dxa"/><w:jc w:val="center"/>'
           f'<w:tblBorders>{edges}</w:tblBorders><w:tblLayout w:type="fixed"/>'
           '<w:tblCellMar><w:left w:w="57" w:type="dxa"/><w:right w:w="57" w:type="dxa"/></w:tblCellMar>'
           "</w:tblPr><w:tblGrid>" + "".join(f'<w:gridCol w:w="{w}"/>' for w in widths) + "</w:tblGrid>"]
    header_row = "<w:trPr><w:cantSplit/><w:tblHeader/></w:trPr>"
    headers = [h for h, _ in fixed] + [c.header for c in columns]
    out.append(f"<w:tr>{header_row}" + "".join(_cell(h, w, bold=True, size=10) for h, w in zip(headers, widths,
                                                                                               strict=True))
               + "</w:tr>")
    if target_row is not None:
        cells = ["", "Chỉ tiêu"] + ([""] if statuses is not None else []) + target_row
        out.append(f"<w:tr>{header_row}" + "".join(_cell(t, w, bold=True, size=10)
                                                   for t, w in zip(cells, widths, strict=True)) + "</w:tr>")
    last = len(names) - 1
    for i, name in enumerate(names):
        total = i == last
        row = [("" if total else str(i + 1), "center"), (name, "left")]
        if statuses is not None:
            row.append((statuses[i], "center"))
        cells_xml = [_cell(t, w, bold=total, align=a, size=10 if j == 2 else 11)
                     for j, ((t, a), w) in enumerate(zip(row, widths, strict=False))]
        for column, w in zip(columns, widths[len(row):], strict=True):
            text, missed = column.cells[i]
            cells_xml.append(_cell(text, w, bold=total, fill=MISSED_FILL if missed else None))
        out.append("<w:tr><w:trPr><w:cantSplit/></w:trPr>" + "".join(cells_xml) + "</w:tr>")
    out.append("</w:tbl>")
    return "".join(out)


def figures_appendix_xml(ctx: ReportContext) -> Markup:
    """The tables of Phụ lục I as WordprocessingML body elements (safe markup for the docx template)."""
    from baocao.consolidation.report import _clean, _derived_unit, _report_status, _say, _value_text

    f, catalog = ctx.figures, ctx.catalog
    rows: list[Figures] = [ctx.child_figures[c] for c in f.children if c in ctx.child_figures] + [f]
    names = [_clean(r.name) for r in rows[:-1]] + ["Tổng cộng: " + _clean(f.name)]
    statuses = [_report_status(r.unit, r) for r in rows]

    derived: list[_Column] = []
    targets: list[str] = []
    for code, e in f.derived.items():
        is_count = e["kind"] == "max"
        cells = []
        for r in rows:
            entry = r.derived.get(code, {})
            value = entry.get("value")
            # As the body prints it (the digits that decide the shading: 99,95, not 100,0); "%" is in the header.
            text = "—" if value is None else _value_text(entry).removesuffix("%")
            cells.append((text, entry.get("met") is False))
        derived.append(_Column(_clean(e["label"]) + ("" if is_count else " (%)"), 0.0, cells))
        unit = _derived_unit(catalog, code)
        targets.append(_say("target_text", e["kind"], e["op"], e["target"], unit) if e["has_target"] else "")
    counts = [
        _Column(_clean(f"{i.label} ({i.unit})" if i.unit else i.label), 0.0,
                [("—" if r.totals.get(i.code) is None else number_vi(float(r.totals[i.code]), 0), False)
                 for r in rows])
        for i in catalog.counts
    ]

    parts: list[str] = []
    if derived:
        parts.append(_paragraph("1. Kết quả thực hiện các chỉ tiêu", bold=True, align="left", size=13, after=60))
        for n, start in enumerate(range(0, len(derived), MAX_COLUMNS)):
            chunk = slice(start, start + MAX_COLUMNS)
            parts.append(_table(derived[chunk], names, statuses if n == 0 else None, targets[chunk]))
            parts.append(_paragraph("", after=120))
        parts.append(_paragraph("Ghi chú: số liệu tô nền là số liệu chưa đạt chỉ tiêu.", italic=True, align="left", size=11, after=120))
    if counts:
        number = 2 if derived else 1
        parts.append(_paragraph(f"{number}. Số liệu tổng hợp theo đơn vị", bold=True, align="left", size=13,
                                before=120, after=60))
        for start in range(0, len(counts), MAX_COLUMNS):
            parts.append(_table(counts[start:start + MAX_COLUMNS], names, None, None))
            parts.append(_paragraph("", after=120))
    return Markup("".join(parts))
