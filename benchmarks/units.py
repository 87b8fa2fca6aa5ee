"""Simulated units at national scale: fill the form each unit was mailed, fast.

:func:`baocao.devservers.simulate.fill_form` fills a form the way an officer's spreadsheet program would
(openpyxl loads and saves the whole workbook): about 50 ms a form, which is 3 minutes of the
units' own work for the 3,351 forms of a national cycle. The benchmark measures the system, not
the units, so here the same figures (:func:`baocao.devservers.simulate.figures`, same relations, same sample
texts and task statuses) are written straight into the sheet XML of the form the unit received:
the ``Giá trị`` cells, ``Cùng kỳ năm trước`` where the form left it empty, the task status and the
narrative answers. Everything else of the received file is kept byte for byte. The smoke test
checks that :mod:`baocao.intake.reader` reads the same submission from both fillers.
"""

from __future__ import annotations

import io
import random
import re
import zipfile
from dataclasses import dataclass

from baocao.devservers.simulate import SAMPLE_TEXTS, Filled
from baocao.opening.forms import COUNT_COLUMNS, STATUS_LABELS, TEXT_COLUMNS
from baocao.rules.catalog import Catalog

__all__ = ["FastFiller", "Reply"]

_ROW = re.compile(r'<row r="(\d+)"[^>]*>(.*?)</row>', re.S)
_CODE_CELL = r'<c r="{col}\d+"[^>]*t="inlineStr"><is><t[^>]*>([^<]*)</t></is></c>'
# The Mã column of each table (the form prints it last; found from the form's own column list).
_COUNT_CODE = re.compile(_CODE_CELL.format(col="ABCDEFGHIJ"[COUNT_COLUMNS.index("Mã")]))
_TEXT_CODE = re.compile(_CODE_CELL.format(col="ABCDEFGHIJ"[TEXT_COLUMNS.index("Mã")]))
_NUM = re.compile(r'<c r="A\d+"[^>]*><v>(\d+)</v></c>')
_EMPTY = r'<c r="{ref}"(?P<s> s="\d+")?(?: t="n")?(?:/>|></c>)'

SHEET_COUNTS_PATH = "xl/worksheets/sheet2.xml"
SHEET_TASKS_PATH = "xl/worksheets/sheet3.xml"
SHEET_TEXTS_PATH = "xl/worksheets/sheet4.xml"


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _fill_cell(row_xml: str, ref: str, content: str | int) -> str:
    """Put a number or an inline string into the empty cell `ref` of a row (unchanged if not empty)."""
    pattern = re.compile(_EMPTY.format(ref=ref))
    match = pattern.search(row_xml)
    if match is None:
        return row_xml
    style = match["s"] or ""
    if isinstance(content, int):
        cell = f'<c r="{ref}"{style}><v>{content}</v></c>'
    else:
        cell = f'<c r="{ref}"{style} t="inlineStr"><is><t xml:space="preserve">{_esc(content)}</t></is></c>'
    return row_xml[:match.start()] + cell + row_xml[match.end():]


def _rows(xml: str, fill) -> str:  # noqa: ANN001 - fill(row number, row xml) -> row xml
    out, last = [], 0
    for m in _ROW.finditer(xml):
        out.append(xml[last:m.start(2)])
        out.append(fill(int(m[1]), m[2]))
        last = m.end(2)
    out.append(xml[last:])
    return "".join(out)


@dataclass(frozen=True)
class Reply:
    unit: str
    filename: str
    data: bytes


class FastFiller:
    """Fills received forms like :func:`baocao.devservers.simulate.fill_form` (no mistakes), by patching XML."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.sections = {i.code: i.section for i in catalog.texts}

    def fill(self, form: bytes, filled: Filled, rng: random.Random) -> bytes:
        src = zipfile.ZipFile(io.BytesIO(form))
        # The random draws in the order fill_form makes them: narrative answers, then task statuses.
        patched = {SHEET_COUNTS_PATH: self._counts(src.read(SHEET_COUNTS_PATH).decode("utf-8"), filled),
                   SHEET_TEXTS_PATH: self._texts(src.read(SHEET_TEXTS_PATH).decode("utf-8"), rng),
                   SHEET_TASKS_PATH: self._tasks(src.read(SHEET_TASKS_PATH).decode("utf-8"), rng)}
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as dst:
            for info in src.infolist():
                if info.filename in patched:
                    dst.writestr(info, patched[info.filename].encode("utf-8"))
                else:
                    dst.writestr(info, src.read(info))
        return out.getvalue()

    def _counts(self, xml: str, filled: Filled) -> str:
        def fill(_n: int, row: str) -> str:
            code = _COUNT_CODE.search(row)
            if code is None or code[1] not in filled.values:
                return row
            n = re.search(r'<c r="A(\d+)"', row)[1]  # type: ignore[index]
            row = _fill_cell(row, f"D{n}", filled.values[code[1]])
            return _fill_cell(row, f"E{n}", filled.previous_year[code[1]])  # only where still empty

        return _rows(xml, fill)

    def _texts(self, xml: str, rng: random.Random) -> str:
        def fill(n: int, row: str) -> str:
            code = _TEXT_CODE.search(row)
            if code is None or code[1] not in self.sections or rng.random() >= 0.8:
                return row
            return _fill_cell(row, f"C{n}", rng.choice(SAMPLE_TEXTS.get(self.sections[code[1]], ["—"])))

        return _rows(xml, fill)

    def _tasks(self, xml: str, rng: random.Random) -> str:
        def fill(n: int, row: str) -> str:
            if _NUM.search(row) is None:
                return row
            status = rng.choice(list(STATUS_LABELS))
            row = _fill_cell(row, f"E{n}", STATUS_LABELS[status])
            if status == "done":
                row = _fill_cell(row, f"F{n}", "Văn bản đã ban hành")
            return row

        return _rows(xml, fill)
