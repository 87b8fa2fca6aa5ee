"""Print setup of the XLSX appendix: what comes out of the printer is what an office files with the report.

Without it a city's figures print on dozens of A4 portrait pages, in Calibri, without borders, the title cut
where the next column starts and every page after the first without the units' names. Here a sheet prints
landscape, as many pages wide as its columns need at a readable scale (and as long as its rows need: fitToHeight
0), with its header rows and its unit-name columns repeated on every page, thin borders around every cell of
its table, Times New Roman throughout, and its title merged across the used columns and wrapped.
"""

from __future__ import annotations

from math import ceil
from typing import Any

from openpyxl.styles import Alignment, Border, Font, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.properties import PageSetupProperties
from openpyxl.worksheet.worksheet import Worksheet

__all__ = ["FONT", "PRINT_WIDTH_CHARS", "pages_wide", "print_ready", "title_row"]

FONT = "Times New Roman"
PRINT_WIDTH_CHARS = 150
"""Column-width units across A4 landscape at 100 % between 1 cm margins (277 mm at about 1,85 mm each)."""
MIN_SCALE = 0.7
"""The smallest print scale still read without a magnifier (11 pt prints at about 8 pt)."""
THIN = Side(style="thin", color="000000")
BOX = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)


def pages_wide(widths: list[float], repeated: int = 0) -> int:
    """Pages across for columns of these widths at :data:`MIN_SCALE` or larger, the first ``repeated``
    columns printed again on every page."""
    fixed = sum(widths[:repeated])
    room = PRINT_WIDTH_CHARS / MIN_SCALE - fixed
    return max(1, ceil((sum(widths) - fixed) / room))


def title_row(ws: Worksheet, row: int, last_col: int, *, size: float = 13, bold: bool = True,
              height: float = 36) -> None:
    """Merge a title across the used columns and wrap it, so it is never cut at the next column's edge.

    Left-aligned: across a sheet printed several pages wide a centred title would land on a middle page.
    """
    if last_col > 1:
        ws.merge_cells(start_row=row, start_column=1, end_row=row, end_column=last_col)
    cell = ws.cell(row=row, column=1)
    cell.font = Font(name=FONT, size=size, bold=bold)
    cell.alignment = Alignment(wrap_text=True, horizontal="left", vertical="center")
    ws.row_dimensions[row].height = height


def print_ready(ws: Worksheet, *, table: tuple[int, int, int, int], title_rows: tuple[int, int],
                title_cols: int = 0, widths: list[float] | None = None, footer: str = "Trang &P") -> None:
    """Landscape A4, fit to width, print titles, borders on ``table`` (first row, first col, last row, last col)
    and Times New Roman in every used cell (bold and size kept)."""
    first_row, first_col, last_row, last_col = table
    for row in ws.iter_rows(min_row=1, max_row=ws.max_row, max_col=max(ws.max_column, last_col)):
        for cell in row:
            if cell.value is not None or first_row <= cell.row <= last_row:
                old: Any = cell.font
                cell.font = Font(name=FONT, size=old.sz or 11, bold=old.b, italic=old.i, color=old.color)
            if first_row <= cell.row <= last_row and first_col <= cell.column <= last_col:
                cell.border = BOX
    setup = ws.page_setup
    setup.orientation = "landscape"
    setup.paperSize = ws.PAPERSIZE_A4
    setup.fitToWidth = pages_wide(widths, title_cols) if widths else 1
    setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    ws.page_margins.left = ws.page_margins.right = 0.4
    ws.page_margins.top, ws.page_margins.bottom = 0.5, 0.6
    ws.print_options.horizontalCentered = False
    ws.print_title_rows = f"{title_rows[0]}:{title_rows[1]}"
    if title_cols:
        ws.print_title_cols = f"A:{get_column_letter(title_cols)}"
    ws.oddFooter.center.text = footer
    ws.oddFooter.center.font = FONT
