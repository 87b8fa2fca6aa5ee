"""The container gate: what a file must pass before any spreadsheet parser sees
it (OLE and encrypted workbooks, zip bombs, macros, external links, DTDs,
absurd nesting, sheets bounded at absurd sizes). Every refusal is a Problem
naming the file; nothing here raises on bad input.
"""

from __future__ import annotations

import io
import posixpath
import re
import struct
import xml.parsers.expat
import zipfile
import zlib
from dataclasses import dataclass
from itertools import repeat

from baocao.intake.results import LIMITS, Limits, Problem, _Refused, make_problem
from baocao.rules.formatting import number_vi

# ------------------------------------------------------------------------------------------ entry point
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_ENCRYPTION_MARKERS = ("EncryptionInfo".encode("utf-16-le"), "EncryptedPackage".encode("utf-16-le"))


def too_large(size: int, max_bytes: int) -> bool:
    """Whether a file of `size` bytes is over the limit: the one comparison every path makes, so the
    reader, the batch intake and the intake's store-without-content path never disagree at the edge."""
    return size > max_bytes


def too_large_vi(size: int, max_bytes: int) -> str:
    """What is wrong with an over-size file, after its location (the reader's refusal and the intake's reply)."""
    return (f"tệp có dung lượng {number_vi(size)} byte, vượt giới hạn {number_vi(max_bytes)} byte. "
            "Đề nghị đơn vị gửi đúng biểu mẫu đã nhận, không kèm hình ảnh hay dữ liệu khác.")


def size_problem(file: str, size: int, max_bytes: int) -> Problem | None:
    """The one size refusal (rule ``file_too_large``), or None: a file over the limit gets this
    problem and no other, whichever path met it first."""
    if not too_large(size, max_bytes):
        return None
    return make_problem("error", file, "file_too_large", too_large_vi(size, max_bytes))


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
                       "Đề nghị đơn vị mở lại biểu mẫu, lưu lại rồi gửi lại.") from None
    bomb = ("tệp có cấu trúc nén bất thường (dung lượng giải nén quá lớn so với tệp gửi), "
            "không được mở vì lý do an toàn. Đề nghị đơn vị dùng đúng biểu mẫu đã nhận.")
    if len(infos) > limits.max_members:
        raise _Refused("zip_bomb", bomb)
    total = 0
    names: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        if info.filename.lower() in names:
            raise _Refused("corrupt_zip", "tệp Excel bị hỏng (có hai phần trùng tên).")
        if info.flag_bits & 0x1:
            raise _Refused("encrypted", "tệp được đặt mật khẩu (mã hóa), hệ thống không mở được. "
                           "Đề nghị đơn vị gỡ mật khẩu rồi gửi lại.")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _Refused("corrupt_zip", "tệp dùng kiểu nén không hỗ trợ. Đề nghị đơn vị lưu lại bằng Excel hoặc LibreOffice.")
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
            raise _Refused("too_large", f"phần “{info.filename}” của tệp quá lớn ({number_vi(info.file_size)} "
                           "byte). Đề nghị đơn vị xóa các dòng, cột, hình ảnh thừa rồi gửi lại.")
        content = _inflate(data, info, bomb)
        _check_xml(info.filename, content, limits)
        parts[name] = content
        return content

    types = read("[Content_Types].xml")
    if types is None:
        if "mimetype" in names:
            raise _Refused("ods", "tệp ở định dạng OpenDocument (.ods). Đề nghị đơn vị lưu lại dạng "
                           "“Excel 2007-365 (.xlsx)” (LibreOffice: Tệp > Lưu thành) rồi gửi lại.")
        raise _Refused("not_xlsx", "tệp nén này không phải là tệp Excel (.xlsx). Đề nghị đơn vị gửi đúng biểu mẫu đã nhận.")
    if b"macroEnabled" in types or b"vbaProject" in types:
        raise _Refused("macro", _MACRO_VI)
    workbook_path = _office_document(read("_rels/.rels"))
    if workbook_path.lower().endswith(".bin"):
        raise _Refused("xlsb", "tệp ở định dạng Excel nhị phân (.xlsb). Đề nghị đơn vị lưu lại dạng “Excel Workbook (.xlsx)”.")
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


_CORRUPT_VI = "tệp Excel bị hỏng (dữ liệu nén không khớp). Đề nghị đơn vị mở lại biểu mẫu, lưu lại rồi gửi lại."


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
             "Đề nghị đơn vị lưu lại dạng “Excel Workbook (.xlsx)” (không macro) rồi gửi lại.")
_EXTERNAL_VI = ("tệp có liên kết đến tệp hoặc nguồn dữ liệu bên ngoài, không được chấp nhận. "
                "Đề nghị đơn vị chép số liệu vào biểu mẫu dưới dạng giá trị (Dán đặc biệt > Giá trị), "
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
        raise _Refused("xml_unsafe", f"phần “{name}” của tệp có khai báo DTD/thực thể XML, "
                       "không được mở vì lý do an toàn. Đề nghị đơn vị dùng đúng biểu mẫu đã nhận.")
    if _too_deep(content, limits.max_nesting):
        raise _Refused("xml_too_deep", f"phần “{name}” của tệp có cấu trúc XML lồng nhau quá sâu, "
                       "không được mở vì lý do an toàn. Đề nghị đơn vị dùng đúng biểu mẫu đã nhận.")


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
                       "Đề nghị đơn vị mở biểu mẫu bằng Excel hoặc LibreOffice, lưu lại rồi gửi lại.") from None
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
