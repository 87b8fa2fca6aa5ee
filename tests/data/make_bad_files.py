"""Generate the corpus of bad submissions in tests/data/bad/ (run from the project root):

    .venv/bin/python tests/data/make_bad_files.py [OUTPUT_DIR]

Each file is something a unit (or an attacker) could really send: a broken download, an old .xls,
a password-protected or macro-enabled workbook, a zip bomb, a form with renamed sheets or moved
columns, a number typed with a decimal comma, a CSV in the wrong encoding... `expected.json` says,
for each file, which rule must produce an error; tests/test_bad_files.py checks that reading (and
validating, and checking the token) gives that error with a Vietnamese message naming the file,
and never raises. Files are kept small; the "huge" cases are produced at test time.

Forms are built with a fixed secret (SECRET) so that the token cases can be verified.
"""

from __future__ import annotations

import io
import json
import struct
import sys
import zipfile
import zlib
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

from openpyxl import load_workbook

from baocao.opening.forms import (
    COUNT_HEADERS,
    INFO_LABELS,
    SHEET_COUNTS,
    SHEET_INFO,
    FormBuilder,
    FormSpec,
    FormTask,
)
from baocao.opening.tokens import make_token
from baocao.rules.config import load_config
from baocao.rules.periods import Period

SECRET = "corpus-secret"
UNIT = "X10714"
OTHER_UNIT = "X11074"
PERIOD = "2026-H1"
VERSION = 1
HERE = Path(__file__).resolve().parent
OUT = HERE / "bad"

CFG = load_config(env={})
CATALOG = CFG.catalog


def spec(unit: str = UNIT) -> FormSpec:
    period = Period.parse(PERIOD)
    return FormSpec(
        unit=CFG.hierarchy[unit], period=period, deadline=date(2026, 6, 10),
        token=make_token(SECRET, unit, period.code, VERSION), form_version=VERSION,
        coordinator_name="Phòng Văn hóa - Xã hội", coordinator_email="vhxh@haiphong.example",
        reply_to="nopbaocao@haiphong.example",
        previous_year={CATALOG.counts[0].code: 12},
        tasks=[FormTask(1, "Quán triệt Kết luận 226-KL/TW", "Trước 10/5/2026", "lead"),
               FormTask(2, "Rà soát, cắt giảm hội họp", "Thường xuyên", "partner")],
    )


def good_values() -> dict[str, int]:
    """Figures that satisfy every relation of the catalogue (derived from it, no code named here)."""
    values = {ind.code: 20 for ind in CATALOG.counts}
    for rel in CATALOG.relations:
        values[rel.left] = 10
    return values


def blank() -> bytes:
    return FormBuilder(CATALOG).build(spec())


def _header_row(ws) -> int:  # noqa: ANN001
    """The row of the table's header labels (title lines may stand above it, as on today's form)."""
    return next(r for r in range(1, min(ws.max_row, 30) + 1)
                if any(c.value in ("Mã", "STT") for c in ws[r]) and any(c.value is not None for c in ws[r][1:]))


def _col(ws, label: str) -> int:  # noqa: ANN001
    return next(c.column for c in ws[_header_row(ws)] if c.value == label)


def _row_of(ws, code: str) -> int:  # noqa: ANN001
    col = _col(ws, "Mã")
    return next(r for r in range(_header_row(ws) + 1, ws.max_row + 1) if ws.cell(r, col).value == code)


def _unmerge(ws) -> None:  # noqa: ANN001
    for merged in list(ws.merged_cells.ranges):
        ws.unmerge_cells(str(merged))


def filled(mutate: Callable | None = None) -> bytes:
    """The form filled as a unit would in Excel (through openpyxl), then changed by ``mutate(wb)``."""
    wb = load_workbook(io.BytesIO(blank()))
    ws = wb[SHEET_COUNTS]
    value_col = _col(ws, COUNT_HEADERS[3])
    for code, value in good_values().items():
        ws.cell(_row_of(ws, code), value_col, value)
    texts = wb["Đánh giá"]
    answer = _col(texts, "Ý kiến của đơn vị")
    for r in range(_header_row(texts) + 1, texts.max_row + 1):
        texts.cell(r, answer, "Đơn vị đã triển khai đầy đủ.")
    tasks = wb["Nhiệm vụ"]
    first, status = _header_row(tasks) + 1, _col(tasks, "Trạng thái")
    tasks.cell(first, status).value, tasks.cell(first + 1, status).value = "Đã hoàn thành", "Đang thực hiện"
    if mutate is not None:
        mutate(wb)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def set_value(code_index: int, value: object) -> Callable:
    def mutate(wb) -> None:  # noqa: ANN001
        ws = wb[SHEET_COUNTS]
        ws.cell(_row_of(ws, CATALOG.counts[code_index].code), _col(ws, COUNT_HEADERS[3])).value = value
    return mutate


def set_info(key: str, value: object) -> Callable:
    def mutate(wb) -> None:  # noqa: ANN001
        ws = wb[SHEET_INFO]
        row = next(r for r in range(1, ws.max_row + 1) if ws.cell(r, 1).value == INFO_LABELS[key])
        ws.cell(row, 2).value = value  # ws.cell(r, c, None) would not clear it
    return mutate


# ------------------------------------------------------------------------------------------ zip surgery
def rezip(data: bytes, *, replace: dict[str, bytes] | None = None, add: dict[str, bytes] | None = None,
          drop: tuple[str, ...] = (), transform: dict[str, Callable[[bytes], bytes]] | None = None) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for info in src.infolist():
            if info.filename in drop:
                continue
            content = (replace or {}).get(info.filename, src.read(info.filename))
            if transform and info.filename in transform:
                content = transform[info.filename](content)
            zf.writestr(info.filename, content)
        for name, content in (add or {}).items():
            zf.writestr(name, content)
    return out.getvalue()


def counts_part(data: bytes) -> str:
    """The zip member of sheet Chỉ tiêu (through workbook.xml and its relationships)."""
    wb = load_workbook(io.BytesIO(data))
    index = wb.sheetnames.index(SHEET_COUNTS) + 1
    return f"xl/worksheets/sheet{index}.xml"


def in_counts_sheet(edit: Callable[[bytes], bytes]) -> bytes:
    data = filled()
    return rezip(data, transform={counts_part(data): edit})


def set_declared_size(data: bytes, name: str, size: int, crc: int | None = None) -> bytes:
    """Lie about a member's uncompressed size (and CRC) in the local and central headers."""
    buf = bytearray(data)
    raw = name.encode()
    pos = 0
    while (pos := buf.find(b"PK\x01\x02", pos)) != -1:
        name_len = struct.unpack_from("<H", buf, pos + 28)[0]
        if bytes(buf[pos + 46: pos + 46 + name_len]) == raw:
            struct.pack_into("<I", buf, pos + 24, size)
            local = struct.unpack_from("<I", buf, pos + 42)[0]
            struct.pack_into("<I", buf, local + 22, size)
            if crc is not None:
                struct.pack_into("<I", buf, pos + 16, crc)
                struct.pack_into("<I", buf, local + 14, crc)
        pos += 4
    return bytes(buf)


def set_encrypted_flag(data: bytes) -> bytes:
    """Mark every member as zip-encrypted (a password-protected zip renamed .xlsx)."""
    buf = bytearray(data)
    for sig, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        pos = 0
        while (pos := buf.find(sig, pos)) != -1:
            flags = struct.unpack_from("<H", buf, pos + offset)[0]
            struct.pack_into("<H", buf, pos + offset, flags | 0x1)
            pos += 4
    return bytes(buf)


def ole_container(streams: list[str]) -> bytes:
    """A compound file (CFB) header and directory as Excel writes for .xls and encrypted .xlsx."""
    header = bytearray(512)
    header[0:8] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
    struct.pack_into("<HHHHH", header, 24, 0x3E, 3, 0xFFFE, 9, 6)
    struct.pack_into("<IIII", header, 44, 1, 1, 0, 4096)  # FAT sectors, first directory sector...
    struct.pack_into("<III", header, 60, 0xFFFFFFFE, 0, 0xFFFFFFFE)
    header[76:80] = struct.pack("<I", 0)
    for i in range(1, 109):
        struct.pack_into("<I", header, 76 + 4 * i, 0xFFFFFFFF)
    fat = bytearray(struct.pack("<I", 0xFFFFFFFD) + struct.pack("<I", 0xFFFFFFFE) + b"\xff" * 504)
    directory = bytearray()
    for name in ["Root Entry", *streams]:
        entry = bytearray(128)
        encoded = name.encode("utf-16-le") + b"\x00\x00"
        entry[0:len(encoded)] = encoded
        struct.pack_into("<HBB", entry, 64, len(encoded), 5 if name == "Root Entry" else 2, 1)
        directory += entry
    directory += b"\x00" * (512 - len(directory) % 512)
    return bytes(header + fat + directory)


# ------------------------------------------------------------------------------------------ the corpus
def moved_columns(wb) -> None:  # noqa: ANN001
    """Title rows above, columns in another order, rows reversed: and one bad value ("abc")."""
    ws = wb[SHEET_COUNTS]
    ws.protection.sheet = False
    _unmerge(ws)
    start = _header_row(ws)
    rows = [[c.value for c in row] for row in ws.iter_rows(min_row=start, max_row=ws.max_row)]
    ws.delete_rows(1, ws.max_row)
    header = rows[0]
    order = [header.index(label) for label in ("Giá trị", "Ghi chú", "Mã", "Chỉ tiêu", "Đơn vị tính",
                                               "Cùng kỳ năm trước")]
    ws.cell(1, 1, "BÁO CÁO SỐ LIỆU")
    body = rows[1:][::-1]
    body[0][header.index("Giá trị")] = "abc"
    for r, row in enumerate([header, *body], start=3):
        for c, src in enumerate(order, start=2):
            ws.cell(r, c, row[src])


def rename_header(old: str, new: str) -> Callable:
    def mutate(wb) -> None:  # noqa: ANN001
        ws = wb[SHEET_COUNTS]
        ws.cell(_header_row(ws), _col(ws, old), new)
    return mutate


def delete_first_row_and_add_unknown(wb) -> None:  # noqa: ANN001
    ws = wb[SHEET_COUNTS]
    ws.protection.sheet = False
    code_col, value_col = _col(ws, "Mã"), _col(ws, "Giá trị")
    _unmerge(ws)
    ws.delete_rows(_row_of(ws, CATALOG.counts[0].code), 1)
    ws.cell(ws.max_row + 1, code_col, "MA_KHONG_CO")
    ws.cell(ws.max_row, value_col, 5)


def duplicate_code(wb) -> None:  # noqa: ANN001
    ws = wb[SHEET_COUNTS]
    col = _col(ws, "Mã")
    ws.cell(_row_of(ws, CATALOG.counts[1].code), col, CATALOG.counts[0].code)


def broken_relation(wb) -> None:  # noqa: ANN001
    rel = CATALOG.relations[0]
    ws = wb[SHEET_COUNTS]
    ws.cell(_row_of(ws, rel.left), _col(ws, "Giá trị"), 50)
    ws.cell(_row_of(ws, rel.right), _col(ws, "Giá trị"), 40)


def rename_sheets(wb) -> None:  # noqa: ANN001
    for i, ws in enumerate(wb.worksheets, start=1):
        ws.title = f"Sheet{i}"


def drop_sheet(title: str) -> Callable:
    def mutate(wb) -> None:  # noqa: ANN001
        del wb[title]
    return mutate


def formula_without_value(wb) -> None:  # noqa: ANN001
    ws = wb[SHEET_COUNTS]
    ws.cell(_row_of(ws, CATALOG.counts[0].code), _col(ws, "Giá trị"), "=10+10")  # openpyxl stores no cached result, like some export tools


def external_link(data: bytes) -> bytes:
    link = (b'<?xml version="1.0" encoding="UTF-8"?><externalLink xmlns="http://schemas.openxmlformats.org/'
            b'spreadsheetml/2006/main"><externalBook xmlns:r="http://schemas.openxmlformats.org/officeDocument/'
            b'2006/relationships" r:id="rId1"/></externalLink>')
    link_rels = (b'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/'
                 b'package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/'
                 b'officeDocument/2006/relationships/externalLinkPath" Target="file:///C:/SoLieu/tong_hop.xlsx" '
                 b'TargetMode="External"/></Relationships>')

    def rels(content: bytes) -> bytes:
        return content.replace(b"</Relationships>", b'<Relationship Id="rId99" Type="http://schemas.openxmlformats.'
                               b'org/officeDocument/2006/relationships/externalLink" Target="externalLinks/'
                               b'externalLink1.xml"/></Relationships>')

    def workbook(content: bytes) -> bytes:
        return content.replace(b"</workbook>", b'<externalReferences><externalReference xmlns:r="http://schemas.'
                               b'openxmlformats.org/officeDocument/2006/relationships" r:id="rId99"/>'
                               b"</externalReferences></workbook>")

    return rezip(data, add={"xl/externalLinks/externalLink1.xml": link,
                            "xl/externalLinks/_rels/externalLink1.xml.rels": link_rels},
                 transform={"xl/_rels/workbook.xml.rels": rels, "xl/workbook.xml": workbook})


def with_macro(data: bytes) -> bytes:
    def types(content: bytes) -> bytes:
        return content.replace(b"</Types>", b'<Default Extension="bin" ContentType="application/vnd.ms-office.'
                               b'vbaProject"/></Types>')
    return rezip(data, add={"xl/vbaProject.bin": ole_container(["VBA", "PROJECT"])},
                 transform={"[Content_Types].xml": types})


def nested(content: bytes) -> bytes:
    return content.replace(b"</sheetData>", b"</sheetData>" + b"<x>" * 5000 + b"</x>" * 5000)


def entity_bomb(content: bytes) -> bytes:
    dtd = b'<?xml version="1.0"?><!DOCTYPE worksheet [<!ENTITY a "aaaaaaaaaa">'
    for i in range(1, 10):
        dtd += b'<!ENTITY a%d "%s">' % (i, b"&a%d;" % (i - 1) * 10 if i > 1 else b"&a;" * 10)
    dtd += b"]>"
    body = content.split(b"?>", 1)[-1] if content.startswith(b"<?xml") else content
    return dtd + body.replace(b"</sheetData>", b'<row r="99"><c r="A99" t="inlineStr"><is><t>&a9;</t></is>'
                              b"</c></row></sheetData>")


def far_cell(content: bytes) -> bytes:
    return content.replace(b"</sheetData>", b'<row r="1048576"><c r="XFD1048576"><v>1</v></c></row></sheetData>')


def many_rows(content: bytes) -> bytes:
    rows = b"".join(b'<row r="%d"><c r="D%d"><v>1</v></c></row>' % (r, r) for r in range(100, 2600))
    return content.replace(b"</sheetData>", rows + b"</sheetData>")


def zip_bomb(data: bytes) -> bytes:
    padding = b" " * 30_000_000
    return rezip(data, transform={counts_part(data): lambda c: c.replace(b"</worksheet>", padding + b"</worksheet>")})


def under_declared(data: bytes) -> bytes:
    """The sheet's real stream inflates to 5 MB, but the headers declare the original size and CRC:
    a reader that stops at the declared size sees a valid sheet, one that inflates the stream gets
    the bomb."""
    part = counts_part(data)
    original = zipfile.ZipFile(io.BytesIO(data)).read(part)
    padded = rezip(data, transform={part: lambda c: c + b" " * 5_000_000})
    return set_declared_size(padded, part, len(original), zlib.crc32(original))


def empty_zip() -> bytes:
    out = io.BytesIO()
    zipfile.ZipFile(out, "w").close()
    return out.getvalue()


def ods() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        zf.writestr("content.xml", '<?xml version="1.0"?><office:document-content xmlns:office="urn:oasis:names:'
                    'tc:opendocument:xmlns:office:1.0"/>')
    return out.getvalue()


def xlsb() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/'
                    'package/2006/content-types"><Override PartName="/xl/workbook.bin" ContentType="application/'
                    'vnd.ms-excel.sheet.binary.main"/></Types>')
        zf.writestr("_rels/.rels", '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/'
                    'package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/'
                    'officeDocument/2006/relationships/officeDocument" Target="xl/workbook.bin"/></Relationships>')
        zf.writestr("xl/workbook.bin", b"\x83\x01\x00\x80\x01\x00")
    return out.getvalue()


CSV_HEADER = "ma_don_vi,ky_bao_cao,ma_chi_tieu,gia_tri,cung_ky_nam_truoc,ghi_chu,ma_xac_thuc"


def csv_rows(sep: str = ",", overrides: dict[int, str] | None = None, skip: int | None = None,
             repeat_first: bool = False) -> str:
    token = make_token(SECRET, UNIT, PERIOD, VERSION)
    lines = [CSV_HEADER.replace(",", sep)]
    values = good_values()
    for i, ind in enumerate(CATALOG.counts):
        if i == skip:
            continue
        value = (overrides or {}).get(i, str(values[ind.code]))
        lines.append(sep.join([UNIT, PERIOD, ind.code, value, "", "", token]))
    if repeat_first:
        lines.append(lines[1])
    return "\r\n".join(lines) + "\r\n"


def corpus() -> dict[str, tuple[Callable[[], bytes], str, str]]:
    """file name -> (how to make it, the rule that must give an error, what it shows)."""
    other_token = make_token(SECRET, OTHER_UNIT, PERIOD, VERSION)
    return {
        "zero_bytes.xlsx": (lambda: b"", "empty_file", "a 0-byte attachment"),
        "only_spaces.csv": (lambda: b"  \r\n \r\n", "empty_file", "an empty file (whitespace only)"),
        "empty_zip.xlsx": (empty_zip, "not_xlsx", "a valid zip with nothing in it"),
        "truncated_download.xlsx": (lambda: filled()[:6000], "corrupt_zip", "a download cut in the middle"),
        "not_a_zip.xlsx": (lambda: b"<html><body>Error 404</body></html>", "not_xlsx", "an HTML page named .xlsx"),
        "old_format.xls": (lambda: ole_container(["Workbook", "\x05SummaryInformation"]), "old_format",
                           "Excel 97-2003 (.xls), an OLE compound file"),
        "password_protected.xlsx": (
            lambda: ole_container(["EncryptionInfo", "EncryptedPackage", "\x06DataSpaces"]), "encrypted",
            "a workbook saved with a password: Excel wraps it in an OLE container"),
        "zip_password.xlsx": (lambda: set_encrypted_flag(filled()), "encrypted", "a zip with encrypted members"),
        "macro_enabled.xlsm": (lambda: with_macro(filled()), "macro", "saved as .xlsm with a VBA project"),
        "macro_inside.xlsx": (lambda: with_macro(filled()), "macro", "a VBA project inside a file named .xlsx"),
        "zip_bomb_ratio.xlsx": (lambda: zip_bomb(filled()), "zip_bomb", "30 MB of XML compressed 1000:1"),
        "zip_bomb_declared.xlsx": (lambda: set_declared_size(filled(), "xl/styles.xml", 3_000_000_000), "zip_bomb",
                                   "a member claiming 3 GB"),
        "zip_bomb_underdeclared.xlsx": (lambda: under_declared(filled()), "zip_bomb",
                                        "a sheet whose stream holds 5 MB more than its header says"),
        "deeply_nested.xlsx": (lambda: in_counts_sheet(nested), "xml_too_deep", "5,000 nested elements"),
        "entity_bomb.xlsx": (lambda: in_counts_sheet(entity_bomb), "xml_unsafe", "billion laughs in a sheet"),
        "external_link.xlsx": (lambda: external_link(filled()), "external_link", "a link to another workbook"),
        "absurd_dimension.xlsx": (lambda: in_counts_sheet(far_cell), "sheet_too_large", "a value in XFD1048576"),
        "too_many_rows.xlsx": (lambda: in_counts_sheet(many_rows), "sheet_too_large", "2,600 rows on Chỉ tiêu"),
        "wrong_sheet_names.xlsx": (lambda: filled(rename_sheets), "missing_sheet", "sheets renamed Sheet1..4"),
        "missing_counts_sheet.xlsx": (lambda: filled(drop_sheet(SHEET_COUNTS)), "missing_sheet",
                                      "sheet Chỉ tiêu deleted"),
        "missing_info_sheet.xlsx": (lambda: filled(drop_sheet(SHEET_INFO)), "missing_sheet", "sheet Thông tin deleted"),
        "moved_columns_bad_value.xlsx": (lambda: filled(moved_columns), "non_negative_integer",
                                         "columns and rows moved, then “abc” typed"),
        "missing_code_header.xlsx": (lambda: filled(rename_header(COUNT_HEADERS[0], "Ký hiệu")), "missing_header",
                                     "header “Mã” renamed"),
        "missing_value_header.xlsx": (lambda: filled(rename_header(COUNT_HEADERS[3], "Số")), "missing_header",
                                      "header “Giá trị” renamed"),
        "text_in_number.xlsx": (lambda: filled(set_value(0, "abc")), "non_negative_integer", "“abc” as a count"),
        "negative_number.xlsx": (lambda: filled(set_value(0, -5)), "non_negative_integer", "-5 as a number"),
        "negative_text.xlsx": (lambda: filled(set_value(0, "-5")), "non_negative_integer", "“-5” as text"),
        "decimal_comma.xlsx": (lambda: filled(set_value(0, "12,5")), "non_negative_integer", "“12,5” as text"),
        "decimal_number.xlsx": (lambda: filled(set_value(0, 12.5)), "non_negative_integer", "12.5 as a number"),
        "date_in_value.xlsx": (lambda: filled(set_value(0, datetime(2026, 5, 12))), "non_negative_integer",
                               "Excel turned the figure into a date"),
        "empty_required.xlsx": (lambda: filled(set_value(0, None)), "required", "one required figure left empty"),
        "blank_form.xlsx": (blank, "required", "the form sent back unfilled"),
        "row_deleted.xlsx": (lambda: filled(delete_first_row_and_add_unknown), "missing_row",
                             "a required row deleted (and an unknown code added)"),
        "duplicate_code.xlsx": (lambda: filled(duplicate_code), "duplicate_code", "the same Mã on two rows"),
        "broken_relation.xlsx": (lambda: filled(broken_relation), "relation", "more online conferences than all"),
        "formula_no_cached_value.xlsx": (lambda: filled(formula_without_value), "formula_without_value",
                                         "a formula saved without its result"),
        "bad_period.xlsx": (lambda: filled(set_info("period_code", "2026-H3")), "bad_period", "period “2026-H3”"),
        "forged_token.xlsx": (lambda: filled(set_info("token", "v1-" + "a" * 26)), "token_invalid",
                              "a made-up token"),
        "other_unit_token.xlsx": (lambda: filled(set_info("token", other_token)), "token_invalid",
                                  "the token of another unit's form pasted in"),
        "old_form_version.xlsx": (lambda: filled(set_info("token", make_token(SECRET, UNIT, PERIOD, 0))),
                                  "form_version", "a token of form version 0"),
        "missing_token.xlsx": (lambda: filled(set_info("token", None)), "token_missing", "the token cell cleared"),
        "report.pdf": (lambda: b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "unknown_format", "a PDF"),
        "spreadsheet.ods": (ods, "ods", "LibreOffice's own format"),
        "binary_workbook.xlsx": (xlsb, "xlsb", "Excel binary workbook (.xlsb) renamed"),
        "csv_windows_1258.csv": (lambda: csv_rows().replace(",,,", ",,Hà Nam,").encode("cp1258"), "csv_encoding",
                                 "CSV saved in the Vietnamese Windows code page"),
        "csv_utf16.csv": (lambda: csv_rows().encode("utf-16"), "csv_encoding", "CSV saved as UTF-16"),
        "csv_missing_columns.csv": (
            lambda: csv_rows().replace("gia_tri,", "so_lieu,", 1).encode(), "csv_missing_columns",
            "column gia_tri missing"),
        "csv_semicolons_decimal_comma.csv": (lambda: csv_rows(";", {0: "12,5"}).encode("utf-8-sig"),
                                             "non_negative_integer", "semicolons (fine) and “12,5” (not)"),
        "csv_text_in_number.csv": (lambda: csv_rows(",", {1: "mười"}).encode(), "non_negative_integer",
                                   "a count in words"),
        "csv_duplicate_rows.csv": (lambda: csv_rows(repeat_first=True).encode(), "duplicate_code",
                                   "the same code twice for a unit"),
        "csv_missing_required.csv": (lambda: csv_rows(skip=2).encode(), "missing_row", "a required code absent"),
        "csv_header_only.csv": (lambda: (CSV_HEADER + "\r\n").encode(), "empty_file", "header, no rows"),
        "csv_broken_quotes.csv": (lambda: (csv_rows() + f'{UNIT},{PERIOD},"KHEN_THUONG,1\r\n').encode(),
                                  "csv_syntax", "an unterminated quote"),
        "csv_bad_period.csv": (lambda: csv_rows().replace(PERIOD, "6 tháng 2026").encode(), "bad_period",
                               "period written in words"),
    }


def main(out: Path = OUT) -> dict[str, dict[str, str]]:
    out.mkdir(parents=True, exist_ok=True)
    expected = {}
    for name, (make, rule, what) in corpus().items():
        (out / name).write_bytes(make())
        expected[name] = {"rule": rule, "what": what}
    (out / "expected.json").write_text(json.dumps(expected, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return expected


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    made = main(target)
    print(f"{len(made)} files in {target}")
