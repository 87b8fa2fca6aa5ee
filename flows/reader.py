"""Reading what units send back: the XLSX form (however it was edited) or a CSV, safely.

Files arrive as email attachments from thousands of offices, so the reader assumes nothing:

* Hostile or broken files are refused *before* any spreadsheet parser sees them: size first, then
  the container (old ``.xls`` and encrypted workbooks are OLE/CFB files, not zips), then the zip's
  declared sizes and compression ratios (zip bombs), then the parts themselves (macros, external
  links, DTDs and entity declarations, absurd nesting, cells placed at absurd positions, which would
  make calamine allocate a dense range of billions of cells). Every refusal is a :class:`Problem`
  with a Vietnamese message naming the file; nothing here raises on bad input.
* Units move things around: rows and columns are found by the labels of their header cells and by
  the ``Mã`` column, never by fixed addresses; sheet names and labels are compared without accents,
  case or extra spaces.
* Numbers are read as people type them (:func:`flows.formatting.parse_vi_int`): ``1.234``,
  ``1 234``, a number stored as text, a formula's cached value, ``12.0``; ``12,5``, ``abc`` and
  negatives are refused with the reason.

Cell values come from python-calamine (Rust, streaming): ~1 ms per form, where openpyxl takes ~30.
"""

from __future__ import annotations

import csv
import io
import logging
import posixpath
import re
import struct
import unicodedata
import xml.parsers.expat
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from itertools import repeat
from typing import Any, Literal

import python_calamine

from flows.catalog import Catalog
from flows.formatting import number_vi, parse_vi_int
from flows.forms import (
    COUNT_HEADERS,
    CSV_OPTIONAL_COLUMNS,
    CSV_REQUIRED_COLUMNS,
    INFO_LABELS,
    SHEET_COUNTS,
    SHEET_INFO,
    SHEET_TASKS,
    SHEET_TEXTS,
    STATUS_LABELS,
    TASK_HEADERS,
    TEXT_HEADERS,
)
from flows.reporting_calendar import Period, PeriodError
from flows.tokens import token_version

__all__ = [
    "LIMITS",
    "Limits",
    "Problem",
    "Submitted",
    "TaskStatus",
    "location_vi",
    "make_problem",
    "read_submission",
]

log = logging.getLogger(__name__)

Severity = Literal["error", "warning"]


# ------------------------------------------------------------------------------------------ results
@dataclass(frozen=True)
class Problem:
    """One thing wrong with a submission, located as precisely as we can, said in Vietnamese.

    ``rule`` is a stable English identifier (for code, tests and statistics); ``message_vi`` is
    what the unit reads in the reply email.
    """

    severity: Severity
    file: str
    sheet: str | None
    cell: str | None
    code: str | None
    value: str | None
    rule: str
    message_vi: str
    # Whose problem it is in a file that holds several units (a CSV): the unit and period of its row.
    # None: the file's (encoding, header, a row naming no unit), which every unit in the file shares.
    unit: str | None = None
    period: str | None = None


def problems_for(problems: Sequence[Problem], unit: str | None, period: str | None) -> list[Problem]:
    """The problems of `problems` that concern one unit's answer: the file's own and that unit's rows.

    One bad row of a 3,000-unit CSV is its unit's problem: the other units are judged (and answered)
    without it. A problem of the unit with no period (a row whose period cannot be read) concerns
    every period of that unit in the file.
    """
    return [p for p in problems if p.unit is None
            or (p.unit == unit and (p.period is None or p.period == period))]


@dataclass
class TaskStatus:
    """A row of ``Nhiệm vụ`` as the unit filled it."""

    number: int
    status: Literal["done", "in_progress", "not_started"] | None
    product: str = ""
    note: str = ""


@dataclass
class Submitted:
    """One unit's answer as read from one file (an XLSX holds one, a CSV may hold several)."""

    unit_code: str | None
    period: str | None
    token: str | None
    form_version: int | None
    fmt: Literal["xlsx", "csv"]
    values: dict[str, int | None] = field(default_factory=dict)
    previous_year: dict[str, int | None] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    tasks: list[TaskStatus] = field(default_factory=list)
    cells: dict[str, str] = field(default_factory=dict)
    """code -> where its value is: "D5" (XLSX, sheet Chỉ tiêu) or "dòng 12" (CSV line)."""
    reported: set[str] = field(default_factory=set)
    """Codes whose value the reader already reported as missing or unreadable, so that
    :func:`flows.validation.validate` does not report the same cell twice."""
    sheet: str | None = None
    """The sheet the values were read from (None for CSV), for messages."""


@dataclass(frozen=True)
class Limits:
    """Bounds on what we agree to open. A filled form is ~15 kB zipped and ~60 kB unzipped."""

    max_members: int = 1_000
    max_total_uncompressed: int = 100_000_000
    max_part_bytes: int = 8_000_000  # any XML part we (or calamine) read
    max_ratio: float = 100.0  # uncompressed / compressed, for members above ratio_floor
    ratio_floor: int = 1_000_000
    max_rows: int = 2_000  # rows with content on a form sheet
    max_cols: int = 200
    max_nesting: int = 100
    max_csv_rows: int = 500_000
    max_problems: int = 200  # per unit and period of a CSV (or per file)
    max_problems_total: int = 20_000  # a 500,000-row CSV of errors stays a few MB


LIMITS = Limits()


# ------------------------------------------------------------------------------------------ messages
def _short(value: object, limit: int = 80) -> str:
    text = str(value).replace("\r", " ").replace("\n", " ").strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def location_vi(file: str, sheet: str | None = None, cell: str | None = None, code: str | None = None) -> str:
    """"Tệp «a.xlsx», trang «Chỉ tiêu», ô D5, mã «TIN_BAI»": where a problem is, for any message."""
    parts = [f"Tệp «{file}»"]
    if sheet:
        parts.append(f"trang «{sheet}»")
    if cell:
        parts.append(cell if cell.startswith("dòng") else f"ô {cell}")
    if code:
        parts.append(f"mã «{code}»")
    return ", ".join(parts)


def make_problem(
    severity: Severity, file: str, rule: str, detail_vi: str, *, sheet: str | None = None,
    cell: str | None = None, code: str | None = None, value: object = None,
    unit: str | None = None, period: str | None = None,
) -> Problem:
    """A :class:`Problem` whose message starts with its location, then says what is wrong and why."""
    shown = None if value is None else _short(value)
    return Problem(severity, file, sheet, cell, code, shown, rule,
                   f"{location_vi(file, sheet, cell, code)}: {detail_vi}", unit, period)


class _Problems:
    """Collects problems for one file, capped so that a 100,000-row CSV of errors stays readable.

    The cap counts per owner (the unit and period of a CSV row, or the file): a CSV of 3,000 units
    where the first ones have many errors still reports the last unit's own problem to it, and the
    "more problems" note goes to the owner whose problems were cut.
    """

    def __init__(self, file: str, limits: Limits) -> None:
        self.file = file
        self.items: list[Problem] = []
        self.counts: dict[tuple[str | None, str | None], int] = {}
        self.dropped: dict[tuple[str | None, str | None], int] = {}
        self.limit, self.total = limits.max_problems, limits.max_problems_total

    def add(self, severity: Severity, rule: str, detail_vi: str, **where: Any) -> None:
        owner = (where.get("unit"), where.get("period"))
        if self.counts.get(owner, 0) >= self.limit or len(self.items) >= self.total:
            self.dropped[owner] = self.dropped.get(owner, 0) + 1
            return
        self.counts[owner] = self.counts.get(owner, 0) + 1
        self.items.append(make_problem(severity, self.file, rule, detail_vi, **where))

    def error(self, rule: str, detail_vi: str, **where: Any) -> None:
        self.add("error", rule, detail_vi, **where)

    def warning(self, rule: str, detail_vi: str, **where: Any) -> None:
        self.add("warning", rule, detail_vi, **where)

    def done(self) -> list[Problem]:
        for (unit, period), dropped in self.dropped.items():
            own = [p for p in self.items if (p.unit, p.period) == (unit, period)]
            severity: Severity = "error" if any(p.severity == "error" for p in own) else "warning"
            self.items.append(make_problem(
                severity, self.file, "too_many_problems",
                f"còn {dropped} vấn đề khác không liệt kê; hãy sửa các lỗi trên rồi gửi lại.", unit=unit, period=period,
            ))
        self.dropped = {}
        return self.items


class _Refused(Exception):
    """Internal: the file is refused as a whole (one problem, nothing read)."""

    def __init__(self, rule: str, detail_vi: str, sheet: str | None = None) -> None:
        super().__init__(rule)
        self.rule, self.detail_vi, self.sheet = rule, detail_vi, sheet


# ------------------------------------------------------------------------------------------ helpers
@lru_cache(maxsize=4096)
def _norm(text: str) -> str:
    """Compare labels the way a person would: no accents, no case, single spaces."""
    text = unicodedata.normalize("NFD", text).replace("đ", "d").replace("Đ", "D")
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return re.sub(r"[\s_]+", " ", text).strip(" :*.\t").lower()


def _col(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def _ref(row: int, col: int) -> str:
    return f"{_col(col)}{row + 1}"


def _is_empty(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(value: object) -> str:
    """A cell as text: 12.0 -> "12" (a code or STT typed as a number), strings stripped."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _code(value: object) -> str:
    return _text(value).upper()


def _count(value: object) -> int:
    """A count from a cell, or ValueError with a Vietnamese reason."""
    if isinstance(value, bool):
        raise ValueError(f"«{value}» là giá trị đúng/sai, không phải số nguyên.")
    if isinstance(value, datetime | date | time | timedelta):
        raise ValueError(f"«{value}» đang ở dạng ngày/giờ, không phải số nguyên: "
                         "hãy định dạng ô là số và nhập lại.")
    if isinstance(value, str) and value.strip().startswith("#"):
        raise ValueError(f"«{value.strip()}» là lỗi của công thức, không phải số nguyên.")
    return parse_vi_int(value)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ entry point
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_ENCRYPTION_MARKERS = ("EncryptionInfo".encode("utf-16-le"), "EncryptedPackage".encode("utf-16-le"))


def read_submission(
    data: bytes, filename: str, catalog: Catalog, *, max_bytes: int = 10_000_000,
    limits: Limits = LIMITS,
) -> tuple[list[Submitted], list[Problem]]:
    """Read one attached file. Never raises on bad input: every refusal is a Problem.

    Returns the submissions read (one for an XLSX, one per unit and period for a CSV; none if the
    file had to be refused as a whole) and the problems found while reading. Checks that need the
    catalogue's relations or earlier reports are :func:`flows.validation.validate`'s job.
    """
    file = filename or "(không tên)"
    problems = _Problems(file, limits)
    try:
        subs = _read(bytes(data), file, catalog, max_bytes, limits, problems)
    except _Refused as refused:
        problems.error(refused.rule, refused.detail_vi, sheet=refused.sheet)
        subs = []
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException:  # noqa: BLE001 - calamine panics are BaseException; a file must never crash us
        log.exception("unexpected failure reading %r", file)
        problems.error("unreadable", "không đọc được tệp (tệp bị hỏng hoặc không đúng định dạng). "
                       "Hãy mở tệp bằng Excel hoặc LibreOffice, lưu lại dạng .xlsx rồi gửi lại.")
        subs = []
    return subs, problems.done()


def _read(data: bytes, file: str, catalog: Catalog, max_bytes: int, limits: Limits,
          problems: _Problems) -> list[Submitted]:
    size = len(data)
    if size > max_bytes:
        raise _Refused("file_too_large", f"tệp có dung lượng {number_vi(size)} byte, vượt giới hạn "
                       f"{number_vi(max_bytes)} byte. Hãy gửi đúng biểu mẫu đã nhận, không kèm hình ảnh hay dữ liệu khác.")
    if size == 0 or not data.strip():
        raise _Refused("empty_file", "tệp rỗng (không có nội dung). Hãy đính kèm biểu mẫu đã điền.")
    ext = posixpath.splitext(file.replace("\\", "/").lower())[1]
    if data.startswith(_OLE_MAGIC):
        if any(marker in data for marker in _ENCRYPTION_MARKERS):
            raise _Refused("encrypted", "tệp được đặt mật khẩu (mã hóa), hệ thống không mở được. "
                           "Hãy gỡ mật khẩu (Tệp > Thông tin > Bảo vệ sổ làm việc) rồi gửi lại.")
        raise _Refused("old_format", "tệp ở định dạng Excel cũ (.xls) hoặc định dạng Office cũ. "
                       "Hãy dùng đúng biểu mẫu .xlsx đã nhận, hoặc lưu lại dạng «Excel Workbook (.xlsx)».")
    if ext in (".xlsm", ".xltm", ".xlam"):
        raise _Refused("macro", f"tệp có đuôi «{ext}» là tệp chứa macro, không được chấp nhận vì lý do an toàn. "
                       "Hãy lưu lại dạng «Excel Workbook (.xlsx)».")
    if data.startswith(_ZIP_MAGICS):
        return [_read_xlsx(data, file, catalog, limits, problems)]
    if ext in (".csv", ".txt"):
        return _read_csv(data, file, catalog, limits, problems)
    if ext in (".xlsx", ".xltx", ".xls"):
        raise _Refused("not_xlsx", "tệp không phải là tệp Excel hợp lệ (có thể bị hỏng khi tải về, hoặc chỉ "
                       "được đổi tên đuôi). Hãy mở biểu mẫu bằng Excel hoặc LibreOffice, lưu lại rồi gửi lại.")
    raise _Refused("unknown_format", f"định dạng «{ext or 'không có đuôi'}» không được chấp nhận: "
                   "chỉ nhận biểu mẫu Excel (.xlsx) hoặc tệp CSV (.csv).")


# ------------------------------------------------------------------------------------------ zip checks
_DANGEROUS_XML = re.compile(rb"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)
# Every r="..." attribute, wherever it is: any element, any case (calamine reads "xfd1" as XFD1), spaces
# around "=", either quote; not xmlns:r or x:r, which calamine does not read as an address. Linear: the
# pattern cannot run past the attribute it starts on (and starting with a literal "r" makes it fast).
_ANY_REF = re.compile(rb"r(?<=[\s\"']r)\s*=\s*[\"']\s*([A-Za-z]*)0*([0-9]*)")
_CELL_START = re.compile(rb"<(?:\w+:)?c[\s>/]")
# A cell start tag with an address of its own: an r attribute (not x:r, not inside another attribute's
# quoted value, which may hold "<" and ">") whose value starts like an address. A cell without one is
# placed by calamine after the previous cell. Linear: a failed attempt stops at its tag's "<" or ">".
_CELL_WITH_REF = re.compile(rb"<(?:\w+:)?c(?=[\s>/])(?:[^<>\"']|\"[^\"]*+\"|'[^']*+')*?(?<=[\s\"'])r\s*=\s*[\"'][A-Za-z]+[0-9]")
_ROW_OPEN = re.compile(rb"<(?:\w+:)?row[\s>/]")


def _nesting_pattern(depth: int) -> re.Pattern[bytes]:
    # `depth` start tags in a row with no end tag between them means the document is at least that
    # deep. SpreadsheetML never goes past ~8; a parser-busting file goes to thousands.
    return re.compile(rb"(?:<[A-Za-z_][^<>/]*+(?:/[^<>/]++)*+>[^<]*+){%d}" % depth)


_NESTING = {LIMITS.max_nesting: _nesting_pattern(LIMITS.max_nesting)}


def _too_deep(content: bytes, depth: int) -> bool:
    """True if the XML nests at least ``depth`` elements deep (in a run of start tags).

    Two stages, because the exact regex costs ~1 ms per form: between two end tags there must be at
    least ``depth`` "<" for the document to get that deep, which ``bytes.count`` finds at C speed;
    only such stretches (almost never in a real workbook) get the exact test.
    """
    segments = content.split(b"</")
    if max(map(bytes.count, segments, repeat(b"<", len(segments)))) < depth:
        return False
    pattern = _NESTING.get(depth) or _nesting_pattern(depth)
    return any(pattern.search(seg) for seg in segments if seg.count(b"<") >= depth)


def _col_number(letters: bytes) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ch - 64
    return n


@dataclass
class _Package:
    """What the pre-checks learned about an XLSX: where each sheet's XML is."""

    sheet_parts: dict[str, str]
    parts: dict[str, bytes]


def _check_zip(data: bytes, limits: Limits) -> _Package:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, IndexError):
        raise _Refused("corrupt_zip", "tệp Excel bị hỏng (không giải nén được), có thể do tải về chưa xong. "
                       "Hãy mở lại biểu mẫu, lưu lại rồi gửi lại.") from None
    bomb = ("tệp có cấu trúc nén bất thường (dung lượng giải nén quá lớn so với tệp gửi), "
            "không được mở vì lý do an toàn. Hãy dùng đúng biểu mẫu đã nhận.")
    if len(infos) > limits.max_members:
        raise _Refused("zip_bomb", bomb)
    total = 0
    names: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        if info.filename.lower() in names:
            raise _Refused("corrupt_zip", "tệp Excel bị hỏng (có hai phần trùng tên).")
        if info.flag_bits & 0x1:
            raise _Refused("encrypted", "tệp được đặt mật khẩu (mã hóa), hệ thống không mở được. "
                           "Hãy gỡ mật khẩu rồi gửi lại.")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _Refused("corrupt_zip", "tệp dùng kiểu nén không hỗ trợ. Hãy lưu lại bằng Excel hoặc LibreOffice.")
        if info.file_size < 0 or info.compress_size < 0:
            raise _Refused("corrupt_zip", "tệp Excel bị hỏng.")
        total += info.file_size
        ratio = info.file_size / max(info.compress_size, 1)
        if total > limits.max_total_uncompressed or (info.file_size > limits.ratio_floor and ratio > limits.max_ratio):
            raise _Refused("zip_bomb", bomb)
        names[info.filename.lower()] = info
    _check_names(names)
    parts: dict[str, bytes] = {}

    def read(name: str) -> bytes | None:
        info = names.get(name.lower())
        if info is None:
            return None
        if name in parts:
            return parts[name]
        if info.file_size > limits.max_part_bytes:
            raise _Refused("too_large", f"phần «{info.filename}» của tệp quá lớn ({number_vi(info.file_size)} "
                           "byte). Hãy xóa các dòng, cột, hình ảnh thừa rồi gửi lại.")
        content = _inflate(data, info, bomb)
        _check_xml(info.filename, content, limits)
        parts[name] = content
        return content

    types = read("[Content_Types].xml")
    if types is None:
        if "mimetype" in names:
            raise _Refused("ods", "tệp ở định dạng OpenDocument (.ods). Hãy lưu lại dạng "
                           "«Excel 2007-365 (.xlsx)» (LibreOffice: Tệp > Lưu thành) rồi gửi lại.")
        raise _Refused("not_xlsx", "tệp nén này không phải là tệp Excel (.xlsx). Hãy gửi đúng biểu mẫu đã nhận.")
    if b"macroEnabled" in types or b"vbaProject" in types:
        raise _Refused("macro", _MACRO_VI)
    workbook_path = _office_document(read("_rels/.rels"))
    if workbook_path.lower().endswith(".bin"):
        raise _Refused("xlsb", "tệp ở định dạng Excel nhị phân (.xlsb). Hãy lưu lại dạng «Excel Workbook (.xlsx)».")
    workbook = read(workbook_path)
    if workbook is None:
        raise _Refused("not_xlsx", "tệp không có phần sổ làm việc (workbook): không phải tệp Excel hợp lệ.")
    if re.search(rb"<(?:\w+:)?externalReference\b", workbook):
        raise _Refused("external_link", _EXTERNAL_VI)
    base = posixpath.dirname(workbook_path)
    rels = _relationships(read(posixpath.join(base, "_rels", posixpath.basename(workbook_path) + ".rels")))
    for _rid, _target, mode, rel_type in rels.values():
        if mode.lower() == "external" or rel_type.endswith(("/externalLink", "/connections")):
            raise _Refused("external_link", _EXTERNAL_VI)
    sheet_parts = {name: _resolve(base, rels[rid][1]) for name, rid in _sheets(workbook) if rid in rels}
    for _rid, target, _mode, rel_type in rels.values():
        if rel_type.endswith(("/sharedStrings", "/styles")):
            read(_resolve(base, target))
    for path in sheet_parts.values():
        read(path)
    # Members we did not read (theme, images, ...) are still inflated once, in bounded chunks: a
    # member whose real size differs from the declared one (a lying header) fails its CRC here, so no
    # later reader can be fed more than the declared, already-bounded sizes.
    read_lower = {name.lower() for name in parts}
    for lower, info in names.items():
        if lower not in read_lower:
            _inflate(data, info, bomb)
    return _Package(sheet_parts, parts)


_CORRUPT_VI = "tệp Excel bị hỏng (dữ liệu nén không khớp). Hãy mở lại biểu mẫu, lưu lại rồi gửi lại."


def _inflate(data: bytes, info: zipfile.ZipInfo, bomb_vi: str) -> bytes:
    """A member's content, inflated by us from exactly its compressed bytes, refusing any stream that
    holds more than the declared size.

    zipfile would stop at the declared size and only check the CRC of what it read: a header that
    under-declares a member (with the CRC of the short prefix) would pass, while another reader
    inflating the whole stream gets the bomb. Here the declared sizes are the whole truth or the
    file is refused.
    """
    start = info.header_offset
    if data[start:start + 4] != b"PK\x03\x04":
        raise _Refused("corrupt_zip", _CORRUPT_VI)
    name_len, extra_len = struct.unpack_from("<HH", data, start + 26)
    begin = start + 30 + name_len + extra_len
    raw = data[begin:begin + info.compress_size]
    if len(raw) != info.compress_size:
        raise _Refused("corrupt_zip", _CORRUPT_VI)
    if info.compress_type == zipfile.ZIP_STORED:
        content = raw
    else:
        inflater = zlib.decompressobj(-15)
        try:
            content = inflater.decompress(raw, info.file_size + 1)
        except zlib.error:
            raise _Refused("corrupt_zip", _CORRUPT_VI) from None
        if len(content) > info.file_size or inflater.unconsumed_tail:
            raise _Refused("zip_bomb", bomb_vi)
    if len(content) != info.file_size or zlib.crc32(content) != info.CRC:
        raise _Refused("corrupt_zip", _CORRUPT_VI)
    return content


_MACRO_VI = ("tệp có chứa macro hoặc điều khiển ActiveX, không được chấp nhận vì lý do an toàn. "
             "Hãy lưu lại dạng «Excel Workbook (.xlsx)» (không macro) rồi gửi lại.")
_EXTERNAL_VI = ("tệp có liên kết đến tệp hoặc nguồn dữ liệu bên ngoài, không được chấp nhận. "
                "Hãy chép số liệu vào biểu mẫu dưới dạng giá trị (Dán đặc biệt > Giá trị), "
                "xóa liên kết (Dữ liệu > Sửa liên kết > Ngắt liên kết) rồi gửi lại.")


def _resolve(base: str, target: str) -> str:
    """A relationship target as a zip member name ("worksheets/sheet1.xml" from "xl" -> "xl/worksheets/...")."""
    target = target.replace("\\", "/")
    if target.startswith("/"):
        return target.lstrip("/")
    return posixpath.normpath(posixpath.join(base, target))


def _check_names(names: dict[str, zipfile.ZipInfo]) -> None:
    for name in names:
        if "vbaproject" in name or name.startswith(("xl/macrosheets/", "xl/activex/")):
            raise _Refused("macro", _MACRO_VI)
        if name.startswith("xl/externallinks/") or name == "xl/connections.xml":
            raise _Refused("external_link", _EXTERNAL_VI)


def _check_xml(name: str, content: bytes, limits: Limits) -> None:
    if _DANGEROUS_XML.search(content):
        raise _Refused("xml_unsafe", f"phần «{name}» của tệp có khai báo DTD/thực thể XML, "
                       "không được mở vì lý do an toàn. Hãy dùng đúng biểu mẫu đã nhận.")
    if _too_deep(content, limits.max_nesting):
        raise _Refused("xml_too_deep", f"phần «{name}» của tệp có cấu trúc XML lồng nhau quá sâu, "
                       "không được mở vì lý do an toàn. Hãy dùng đúng biểu mẫu đã nhận.")


def _xml_events(content: bytes | None, wanted: str) -> list[dict[str, str]]:
    """Attributes of every element named ``wanted`` (any prefix). Only used on tiny parts."""
    found: list[dict[str, str]] = []
    if not content:
        return found
    parser = xml.parsers.expat.ParserCreate()

    def start(tag: str, attrs: dict[str, str]) -> None:
        if tag.rpartition(":")[2] == wanted:
            found.append(attrs)

    parser.StartElementHandler = start
    try:
        parser.Parse(content, True)
    except xml.parsers.expat.ExpatError:
        raise _Refused("corrupt_xml", "tệp Excel bị hỏng (nội dung XML không hợp lệ). "
                       "Hãy mở biểu mẫu bằng Excel hoặc LibreOffice, lưu lại rồi gửi lại.") from None
    return found


def _office_document(rels: bytes | None) -> str:
    for attrs in _xml_events(rels, "Relationship"):
        if attrs.get("Type", "").endswith("/officeDocument"):
            return attrs.get("Target", "xl/workbook.xml").lstrip("/")
    return "xl/workbook.xml"


def _relationships(rels: bytes | None) -> dict[str, tuple[str, str, str, str]]:
    out = {}
    for attrs in _xml_events(rels, "Relationship"):
        rid = attrs.get("Id", "")
        out[rid] = (rid, attrs.get("Target", ""), attrs.get("TargetMode", ""), attrs.get("Type", ""))
    return out


def _sheets(workbook: bytes) -> list[tuple[str, str]]:
    out = []
    for attrs in _xml_events(workbook, "sheet"):
        rid = next((v for k, v in attrs.items() if k == "id" or k.endswith(":id")), "")
        out.append((attrs.get("name", ""), rid))
    return out


def _address_rows(digits: bytes) -> int:
    return int(digits or b"0") if len(digits) <= 12 else 10**12  # leading zeros are already left out


def _address_cols(letters: bytes) -> int:
    return _col_number(letters.upper()) if len(letters) <= 7 else 10**12


def _sheet_bounds(content: bytes, max_rows: int, max_cols: int) -> tuple[int, int]:
    """An upper bound on the rows and columns calamine will allocate for this sheet XML.

    calamine builds a dense range from the top-left to the bottom-right cell holding a value, so one
    cell at XFD1048576 means 17 billion cells: that must be refused before calamine sees it.

    The bound must hold however the XML is written, because calamine is lenient: it reads an address
    in lower case, after an attribute whose value holds ">", after a tab, the *last* of two r
    attributes, and counts self-closing cells when it places the next cell without an address. So
    every r="..." of the part counts (over-counting costs nothing, missing one may cost gigabytes),
    and when some cells have no address of their own, every such cell and every row is counted on top.
    """
    tokens = _ANY_REF.findall(content)
    cell_refs = {(letters, digits) for letters, digits in tokens if letters}
    rows = max((_address_rows(d) for _, d in cell_refs), default=0)
    cols = max((_address_cols(c) for c in {c for c, _ in cell_refs}), default=0)
    without_address = len(_CELL_START.findall(content)) - len(_CELL_WITH_REF.findall(content))
    if without_address > 0:  # cells without an address follow the previous one: count them all
        explicit_rows = [_address_rows(d) for letters, d in tokens if not letters and d]
        rows = max([rows, *explicit_rows]) + len(_ROW_OPEN.findall(content))
        cols += without_address
    return rows, cols


# ------------------------------------------------------------------------------------------ XLSX
_INFO_BY_NORM = {_norm(label): key for key, label in INFO_LABELS.items()}
_HEADER_ALIASES = {
    "code": ("ma", "ma chi tieu", "ma so"),
    "value": ("gia tri", "so lieu", "gia tri ky bao cao"),
    "previous": ("cung ky nam truoc", "cung ky"),
    "note": ("ghi chu",),
    "number": ("stt", "so tt", "so thu tu"),
    "status": ("trang thai",),
    "product": ("san pham",),
    "answer": ("y kien cua don vi", "y kien", "noi dung bao cao"),
}
_STATUS_BY_NORM = {_norm(label): key for key, label in STATUS_LABELS.items()} | {
    "hoan thanh": "done", "da thuc hien": "done", "dang trien khai": "in_progress", "chua": "not_started",
}
assert _norm(COUNT_HEADERS[0]) == "ma" and _norm(COUNT_HEADERS[3]) == "gia tri"
assert _norm(TASK_HEADERS[0]) == "stt" and _norm(TEXT_HEADERS[2]) == "y kien cua don vi"


class _Book:
    """The opened workbook: sheets by (normalised) name, loaded lazily and bounded."""

    def __init__(self, data: bytes, package: _Package, limits: Limits) -> None:
        try:
            self.wb = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
        except python_calamine.PasswordError:
            raise _Refused("encrypted", "tệp được đặt mật khẩu, hệ thống không mở được. Hãy gỡ mật khẩu.") from None
        except python_calamine.CalamineError:
            raise _Refused("unreadable", "không đọc được tệp Excel (nội dung bị hỏng). "
                           "Hãy mở biểu mẫu bằng Excel hoặc LibreOffice, lưu lại rồi gửi lại.") from None
        self.package = package
        self.limits = limits
        self.names = list(self.wb.sheet_names)
        self.by_norm: dict[str, str] = {}
        self._special: dict[str, dict[str, tuple[str, str]]] = {}
        for name in self.names:
            self.by_norm.setdefault(_norm(name), name)

    def find(self, wanted: str) -> str | None:
        if wanted in self.names:
            return wanted
        return self.by_norm.get(_norm(wanted))

    def rows(self, name: str) -> list[list[Any]]:
        content = self.package.parts.get(self.package.sheet_parts.get(name, ""))
        if content is None:
            # Never let calamine open a sheet whose XML we have not bounded (see _sheet_bounds).
            raise _Refused("unreadable", "không tìm thấy nội dung của trang này trong tệp (tệp bị hỏng). "
                           "Hãy mở biểu mẫu bằng Excel hoặc LibreOffice, lưu lại rồi gửi lại.", sheet=name)
        rows, cols = _sheet_bounds(content, self.limits.max_rows, self.limits.max_cols)
        if rows > self.limits.max_rows or cols > self.limits.max_cols:
            raise _Refused("sheet_too_large", _too_large_vi(rows, cols, self.limits), sheet=name)
        try:
            sheet = self.wb.get_sheet_by_name(name)
        except python_calamine.CalamineError:
            raise _Refused("unreadable", "không đọc được trang này (nội dung bị hỏng). "
                           "Hãy mở biểu mẫu bằng Excel hoặc LibreOffice, lưu lại rồi gửi lại.", sheet=name) from None
        end = sheet.end
        if end is not None and (end[0] + 1 > self.limits.max_rows or end[1] + 1 > self.limits.max_cols):
            raise _Refused("sheet_too_large", _too_large_vi(end[0] + 1, end[1] + 1, self.limits), sheet=name)
        return sheet.to_python(skip_empty_area=False)

    def why_empty(self, sheet: str, ref: str) -> tuple[str, str] | None:
        """Why a cell calamine gives as empty is not really empty: a formula saved without its result
        (openpyxl and some export tools do that) or an Excel error such as #DIV/0!. Each deserves its
        own message; the XML is scanned only when an empty required value is met."""
        if sheet not in self._special:
            content = self.package.parts.get(self.package.sheet_parts.get(sheet, "")) or b""
            special: dict[str, tuple[str, str]] = {}
            for attrs, body in _CELL_ELEMENT.findall(content):
                where = _ATTR_R.search(attrs)
                if where is None:
                    continue
                if _ATTR_T_ERROR.search(attrs):
                    value = _VALUE.search(body)
                    special[where[1].decode()] = ("formula_error", value[1].decode("utf-8", "replace") if value else "")
                elif _FORMULA.search(body):
                    special[where[1].decode()] = ("formula_without_value", "")
            self._special[sheet] = special
        return self._special[sheet].get(ref)


# A cell's body ends at its </c>; it cannot run on into the next <c ...> (that made unclosed cells quadratic).
_CELL_ELEMENT = re.compile(rb"<(?:\w+:)?c\s([^<>]*+)(?<!/)>((?:[^<]++|<(?!/?(?:\w+:)?c[\s/>]))*?)</(?:\w+:)?c>")
_ATTR_R = re.compile(rb"\br=[\"']([A-Z]{1,7}[0-9]{1,10})[\"']")
_ATTR_T_ERROR = re.compile(rb"\bt=[\"']e[\"']")
_VALUE = re.compile(rb"<(?:\w+:)?v>([^<]{0,40})</")
_FORMULA = re.compile(rb"<(?:\w+:)?f\b")


def _too_large_vi(rows: int, cols: int, limits: Limits) -> str:
    return (f"trang có vùng dữ liệu quá lớn ({number_vi(rows)} dòng × {number_vi(cols)} cột; tối đa "
            f"{number_vi(limits.max_rows)} dòng, {number_vi(limits.max_cols)} cột). "
            "Hãy xóa các dòng, cột thừa (kể cả ô chỉ có dấu cách) rồi gửi lại.")


@dataclass
class _Header:
    """Where a table's header row is and which column holds each wanted role."""

    row: int | None
    columns: dict[str, int]
    missing: list[str]


def _find_header(rows: list[list[Any]], required: dict[str, str], optional: Iterable[str],
                 scan: int = 30) -> _Header:
    """Find the header row by its labels (units insert title rows and move columns around)."""
    best_missing: list[str] = list(required.values())
    for r, row in enumerate(rows[:scan]):
        columns: dict[str, int] = {}
        for c, value in enumerate(row):
            if not isinstance(value, str) or not value.strip():
                continue
            key = _norm(value)
            for role, aliases in _HEADER_ALIASES.items():
                if key in aliases and role not in columns:
                    columns[role] = c
        missing = [label for role, label in required.items() if role not in columns]
        if not missing:
            wanted = [*required, *optional]
            return _Header(r, {role: c for role, c in columns.items() if role in wanted}, [])
        if len(missing) < len(best_missing):
            best_missing = missing
    return _Header(None, {}, best_missing)


def _missing_headers(header: _Header, sheet: str, problems: _Problems) -> bool:
    for label in header.missing:
        problems.error("missing_header", f"không tìm thấy cột «{label}» (dòng tiêu đề). Hãy giữ nguyên "
                       "tiêu đề các cột của biểu mẫu.", sheet=sheet)
    return header.row is None


def _read_xlsx(data: bytes, file: str, catalog: Catalog, limits: Limits, problems: _Problems) -> Submitted:
    package = _check_zip(data, limits)
    book = _Book(data, package, limits)
    sub = Submitted(unit_code=None, period=None, token=None, form_version=None, fmt="xlsx")
    found = {wanted: book.find(wanted) for wanted in (SHEET_INFO, SHEET_COUNTS, SHEET_TASKS, SHEET_TEXTS)}
    missing = [wanted for wanted, name in found.items() if name is None]
    if missing:
        have = ", ".join(f"«{n}»" for n in book.names) or "không có trang nào"
        for wanted in missing:
            problems.error("missing_sheet", f"không tìm thấy trang «{wanted}» (tệp có: {have}). "
                           "Hãy dùng đúng biểu mẫu đã nhận và giữ nguyên tên các trang.")
    if found[SHEET_INFO]:
        _read_info(book.rows(found[SHEET_INFO]), found[SHEET_INFO], sub, problems)
    if found[SHEET_COUNTS]:
        _read_counts(book, found[SHEET_COUNTS], catalog, sub, problems)
    else:
        sub.reported.update(i.code for i in catalog.counts)
    if found[SHEET_TEXTS]:
        _read_texts(book.rows(found[SHEET_TEXTS]), found[SHEET_TEXTS], catalog, sub, problems)
    if found[SHEET_TASKS]:
        _read_tasks(book.rows(found[SHEET_TASKS]), found[SHEET_TASKS], sub, problems)
    return sub


def _read_info(rows: list[list[Any]], sheet: str, sub: Submitted, problems: _Problems) -> None:
    values: dict[str, tuple[Any, str]] = {}
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            if not isinstance(cell, str) or not cell.strip():
                continue
            key = _INFO_BY_NORM.get(_norm(cell))
            if key is None or key in values:
                continue
            value, ref = "", _ref(r, c + 1)
            for c2 in range(c + 1, len(row)):
                if not _is_empty(row[c2]):
                    value, ref = row[c2], _ref(r, c2)
                    break
            values[key] = (value, ref)
    for key in ("unit_code", "period_code", "form_version", "token"):
        if key not in values:
            problems.error("missing_field", f"không tìm thấy dòng «{INFO_LABELS[key]}». "
                           "Hãy giữ nguyên trang «Thông tin» của biểu mẫu.", sheet=sheet)
    if "unit_code" in values:
        value, ref = values["unit_code"]
        sub.unit_code = _code(value) or None
        if sub.unit_code is None:
            problems.error("missing_field", "chưa có mã đơn vị.", sheet=sheet, cell=ref)
    if "period_code" in values:
        value, ref = values["period_code"]
        try:
            sub.period = Period.parse(_text(value)).code
        except PeriodError as exc:
            problems.error("bad_period", exc.message_vi, sheet=sheet, cell=ref, value=value)
    if "form_version" in values:
        value, ref = values["form_version"]
        try:
            sub.form_version = _count(value)
        except ValueError:
            problems.error("bad_form_version", f"phiên bản biểu mẫu «{_short(value)}» không hợp lệ.",
                           sheet=sheet, cell=ref, value=value)
    if "token" in values:
        sub.token = _text(values["token"][0]) or None


def _read_counts(book: _Book, sheet: str, catalog: Catalog, sub: Submitted, problems: _Problems) -> None:
    sub.sheet = sheet
    rows = book.rows(sheet)
    header = _find_header(rows, {"code": COUNT_HEADERS[0], "value": COUNT_HEADERS[3]}, ("previous", "note"))
    if _missing_headers(header, sheet, problems) or header.row is None:
        sub.reported.update(i.code for i in catalog.counts)
        return
    columns = header.columns
    code_col, value_col = columns["code"], columns["value"]
    prev_col, note_col = columns.get("previous"), columns.get("note")
    seen: dict[str, str] = {}
    for r in range(header.row + 1, len(rows)):
        row = rows[r]

        def cell(c: int | None, row: list[Any] = row) -> Any:
            return row[c] if c is not None and c < len(row) else ""

        code = _code(cell(code_col))
        value = cell(value_col)
        ref = _ref(r, value_col)
        if not code:
            if not _is_empty(value):
                problems.warning("value_without_code", f"có giá trị «{_short(value)}» nhưng dòng không có mã chỉ "
                                 "tiêu; giá trị này bị bỏ qua.", sheet=sheet, cell=ref, value=value)
            continue
        if code in seen:
            problems.error("duplicate_code", f"mã «{code}» xuất hiện hai lần (dòng {seen[code]} và dòng {r + 1}). "
                           "Mỗi chỉ tiêu chỉ được ghi một dòng.", sheet=sheet, cell=_ref(r, code_col), code=code)
            sub.reported.add(code)
            continue
        seen[code] = str(r + 1)
        if code not in catalog or catalog[code].kind != "count":
            problems.warning("unknown_code", f"mã «{code}» không có trong danh mục chỉ tiêu số lượng; "
                             "dòng này bị bỏ qua.", sheet=sheet, cell=_ref(r, code_col), code=code, value=code)
            continue
        indicator = catalog[code]
        sub.cells[code] = ref
        if _is_empty(value):
            sub.values[code] = None
            if indicator.required:
                sub.reported.add(code)
                reason = book.why_empty(sheet, ref)
                if reason is not None and reason[0] == "formula_error":
                    problems.error("non_negative_integer", f"ô có lỗi công thức «{reason[1] or '#'}», không phải số "
                                   "nguyên. Hãy sửa công thức hoặc nhập thẳng số.", sheet=sheet, cell=ref, code=code,
                                   value=reason[1])
                elif reason is not None:
                    problems.error("formula_without_value", "ô có công thức nhưng chưa có kết quả tính sẵn. "
                                   "Hãy mở tệp bằng Excel hoặc LibreOffice để tính lại rồi lưu, hoặc nhập thẳng số.",
                                   sheet=sheet, cell=ref, code=code)
                else:
                    problems.error("required", f"chưa nhập giá trị cho chỉ tiêu «{indicator.label}» "
                                   "(bắt buộc; nếu không có thì nhập 0).", sheet=sheet, cell=ref, code=code)
        else:
            try:
                sub.values[code] = _count(value)
            except ValueError as exc:
                sub.values[code] = None
                sub.reported.add(code)
                problems.error("non_negative_integer", f"giá trị không hợp lệ: {exc}", sheet=sheet, cell=ref,
                               code=code, value=value)
        if prev_col is not None:
            prev = cell(prev_col)
            sub.previous_year[code] = None
            if not _is_empty(prev):
                try:
                    sub.previous_year[code] = _count(prev)
                except ValueError as exc:
                    problems.error("non_negative_integer", f"số liệu cùng kỳ năm trước không hợp lệ: {exc}",
                                   sheet=sheet, cell=_ref(r, prev_col), code=code, value=prev)
        note = _text(cell(note_col))
        if note:
            sub.notes[code] = note
    for indicator in catalog.counts:
        if indicator.required and indicator.code not in seen:
            sub.reported.add(indicator.code)
            problems.error("missing_row", f"không có dòng cho chỉ tiêu bắt buộc «{indicator.label}». "
                           "Hãy dùng đúng biểu mẫu đã nhận, không xóa dòng.", sheet=sheet, code=indicator.code)


def _read_texts(rows: list[list[Any]], sheet: str, catalog: Catalog, sub: Submitted, problems: _Problems) -> None:
    header = _find_header(rows, {"code": TEXT_HEADERS[0], "answer": TEXT_HEADERS[2]}, ())
    if _missing_headers(header, sheet, problems) or header.row is None:
        return
    columns = header.columns
    for r in range(header.row + 1, len(rows)):
        row = rows[r]
        code = _code(row[columns["code"]]) if columns["code"] < len(row) else ""
        answer = _text(row[columns["answer"]]) if columns["answer"] < len(row) else ""
        if not code:
            continue
        if code not in catalog or catalog[code].kind != "text":
            problems.warning("unknown_code", f"mã «{code}» không có trong danh mục nội dung đánh giá; "
                             "dòng này bị bỏ qua.", sheet=sheet, cell=_ref(r, columns["code"]), code=code, value=code)
            continue
        if answer:
            if code in sub.texts:
                sub.texts[code] += "\n" + answer
            else:
                sub.texts[code] = answer


def _read_tasks(rows: list[list[Any]], sheet: str, sub: Submitted, problems: _Problems) -> None:
    header = _find_header(rows, {"number": TASK_HEADERS[0], "status": TASK_HEADERS[4]}, ("product", "note"))
    if _missing_headers(header, sheet, problems) or header.row is None:
        return
    columns = header.columns
    for r in range(header.row + 1, len(rows)):
        row = rows[r]

        def cell(role: str, row: list[Any] = row) -> Any:
            c = columns.get(role)
            return row[c] if c is not None and c < len(row) else ""

        number_text = _text(cell("number"))
        if not number_text:
            continue
        try:
            number = parse_vi_int(number_text)
        except ValueError:
            problems.warning("bad_task_number", f"số thứ tự «{_short(number_text)}» không hợp lệ; dòng bị bỏ qua.",
                             sheet=sheet, cell=_ref(r, columns["number"]), value=number_text)
            continue
        raw = _text(cell("status"))
        status = _STATUS_BY_NORM.get(_norm(raw)) if raw else None
        if raw and status is None:
            choices = ", ".join(f"«{v}»" for v in STATUS_LABELS.values())
            problems.warning("bad_status", f"trạng thái «{_short(raw)}» không hợp lệ; hãy chọn một trong {choices}.",
                             sheet=sheet, cell=_ref(r, columns["status"]), value=raw)
        sub.tasks.append(TaskStatus(number, status, _text(cell("product")), _text(cell("note"))))  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ CSV
_CSV_ALIASES = {
    "ma_don_vi": "ma_don_vi", "don_vi": "ma_don_vi",
    "ky_bao_cao": "ky_bao_cao", "ky": "ky_bao_cao",
    "ma_chi_tieu": "ma_chi_tieu", "chi_tieu": "ma_chi_tieu",
    "gia_tri": "gia_tri",
    "cung_ky_nam_truoc": "cung_ky_nam_truoc",
    "ghi_chu": "ghi_chu",
    "ma_xac_thuc": "ma_xac_thuc", "token": "ma_xac_thuc",
}


def _csv_column(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", _norm(name.lstrip("\ufeff")))


def _read_csv(data: bytes, file: str, catalog: Catalog, limits: Limits, problems: _Problems) -> list[Submitted]:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _Refused("csv_encoding", "tệp CSV được lưu ở mã UTF-16. Hãy lưu lại dạng «CSV UTF-8 (phân cách bằng "
                       "dấu phẩy)» rồi gửi lại.")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise _Refused("csv_encoding", f"tệp CSV không ở mã UTF-8 (lỗi ở dòng {line}), chữ tiếng Việt sẽ bị sai. "
                       "Hãy lưu lại dạng «CSV UTF-8» rồi gửi lại.") from None
    if "\x00" in text:
        raise _Refused("csv_encoding", "tệp CSV có ký tự không hợp lệ (tệp nhị phân?). Hãy gửi tệp CSV UTF-8.")
    first = text.split("\n", 1)[0]
    delimiter = max((";", ",", "\t"), key=first.count)
    if first.count(delimiter) == 0:
        delimiter = ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise _Refused("empty_file", "tệp CSV rỗng.")
        columns = {}
        for i, name in enumerate(header):
            key = _CSV_ALIASES.get(_csv_column(name))
            if key and key not in columns:
                columns[key] = i
        missing = [c for c in CSV_REQUIRED_COLUMNS if c not in columns]
        if missing:
            need = ", ".join(CSV_REQUIRED_COLUMNS)
            raise _Refused("csv_missing_columns", f"thiếu cột {', '.join(missing)} ở dòng tiêu đề. Dòng tiêu đề "
                           f"phải có: {need} (có thể thêm {', '.join(CSV_OPTIONAL_COLUMNS)}).")
        return _csv_rows(reader, columns, catalog, limits, problems)
    except csv.Error as exc:
        raise _Refused("csv_syntax", f"tệp CSV sai cú pháp ở dòng {reader.line_num}: dấu ngoặc kép hoặc "
                       f"dấu phân cách không đúng ({_short(exc)}).") from None


def _csv_rows(reader: Any, columns: dict[str, int], catalog: Catalog, limits: Limits,
              problems: _Problems) -> list[Submitted]:
    subs: dict[tuple[str, str], Submitted] = {}
    lines: dict[tuple[str, str, str], int] = {}
    bad_periods: set[tuple[str, str]] = set()
    count = 0
    for row in reader:
        line = reader.line_num
        if not any(field.strip() for field in row):
            continue
        count += 1
        if count > limits.max_csv_rows:
            raise _Refused("too_large", f"tệp CSV có quá nhiều dòng (tối đa {number_vi(limits.max_csv_rows)}).")

        def get(name: str, row: list[str] = row) -> str:
            i = columns.get(name)
            return row[i].strip() if i is not None and i < len(row) else ""

        where = f"dòng {line}"
        unit, period_text, code = get("ma_don_vi").upper(), get("ky_bao_cao"), get("ma_chi_tieu").upper()
        # A row's problems are its unit's (and period's): the other units of the file do not share them.
        # A row naming no unit may hold anyone's figures, so that one stays the whole file's problem.
        if not unit or not period_text or not code:
            empty = [n for n, v in (("ma_don_vi", unit), ("ky_bao_cao", period_text), ("ma_chi_tieu", code)) if not v]
            problems.error("csv_missing_field", f"thiếu {', '.join(empty)}.", cell=where, unit=unit or None)
            continue
        try:
            period = Period.parse(period_text).code
        except PeriodError as exc:
            if (unit, period_text) not in bad_periods:
                bad_periods.add((unit, period_text))
                problems.error("bad_period", exc.message_vi, cell=where, value=period_text, unit=unit)
            continue
        mine = {"unit": unit, "period": period}
        sub = subs.get((unit, period))
        if sub is None:
            sub = subs[(unit, period)] = Submitted(unit, period, None, None, "csv")
        token = get("ma_xac_thuc")
        if token:
            if sub.token is None:
                sub.token, sub.form_version = token, token_version(token)
            elif token != sub.token:
                problems.error("csv_conflicting_token", f"mã xác thực khác với các dòng trước của đơn vị «{unit}», "
                               f"kỳ {period}.", cell=where, value=token, **mine)
        key = (unit, period, code)
        if key in lines:
            problems.error("duplicate_code", f"đơn vị «{unit}», kỳ {period} đã có dòng cho mã «{code}» "
                           f"(dòng {lines[key]}).", cell=where, code=code, **mine)
            sub.reported.add(code)
            continue
        lines[key] = line
        if code not in catalog or catalog[code].kind not in ("count", "text"):
            problems.warning("unknown_code", f"mã «{code}» không có trong danh mục chỉ tiêu; dòng bị bỏ qua.",
                             cell=where, code=code, value=code, **mine)
            continue
        indicator = catalog[code]
        value = get("gia_tri")
        note = get("ghi_chu")
        if note:
            sub.notes[code] = note
        sub.cells[code] = where
        if indicator.kind == "text":
            if value:
                sub.texts[code] = value
            continue
        if not value:
            sub.values[code] = None
            if indicator.required:
                sub.reported.add(code)
                problems.error("required", f"chưa có giá trị cho chỉ tiêu bắt buộc «{indicator.label}» "
                               f"(đơn vị «{unit}», kỳ {period}).", cell=where, code=code, **mine)
        else:
            try:
                sub.values[code] = parse_vi_int(value)
            except ValueError as exc:
                sub.values[code] = None
                sub.reported.add(code)
                problems.error("non_negative_integer", f"giá trị không hợp lệ: {exc}", cell=where, code=code,
                               value=value, **mine)
        previous = get("cung_ky_nam_truoc")
        if "cung_ky_nam_truoc" in columns:
            sub.previous_year[code] = None
        if previous:
            try:
                sub.previous_year[code] = parse_vi_int(previous)
            except ValueError as exc:
                problems.error("non_negative_integer", f"số liệu cùng kỳ năm trước không hợp lệ: {exc}",
                               cell=where, code=code, value=previous, **mine)
    if not subs and not problems.items:
        raise _Refused("empty_file", "tệp CSV không có dòng số liệu nào (chỉ có dòng tiêu đề).")
    # A unit whose every row has a problem that hides its period still gets an answer of its own
    # (its problems), rather than having them land on the other units of the file.
    read_units = {unit for unit, _ in subs}
    for unit in dict.fromkeys(p.unit for p in problems.items if p.unit and p.unit not in read_units):
        subs[(unit, "")] = Submitted(unit, None, None, None, "csv")
    for sub in subs.values():
        for indicator in catalog.counts:
            if indicator.required and indicator.code not in sub.values and indicator.code not in sub.reported:
                sub.reported.add(indicator.code)
                problems.error("missing_row", f"đơn vị «{sub.unit_code}», kỳ {sub.period}: thiếu dòng cho chỉ tiêu "
                               f"bắt buộc «{indicator.label}».", code=indicator.code,
                               unit=sub.unit_code, period=sub.period)
    return list(subs.values())
