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
* Numbers are read as people type them (:func:`baocao.rules.formatting.parse_vi_int`): ``1.234``,
  ``1 234``, a number stored as text, a formula's cached value, ``12.0``; ``12,5``, ``abc`` and
  negatives are refused with the reason.

Cell values come from python-calamine (Rust, streaming): ~1 ms per form, where openpyxl takes ~30.
"""

from __future__ import annotations

import logging
import posixpath

from baocao.intake.csvfile import _read_csv
from baocao.intake.results import LIMITS, Limits, Problem, Submitted, _Problems, _Refused
from baocao.intake.safety import _ENCRYPTION_MARKERS, _OLE_MAGIC, _ZIP_MAGICS, too_large, too_large_vi
from baocao.intake.xlsx import _read_xlsx
from baocao.rules.catalog import Catalog

__all__ = [
    "read_submission",
]

log = logging.getLogger("baocao.reader")


def read_submission(
    data: bytes, filename: str, catalog: Catalog, *, max_bytes: int = 10_000_000,
    limits: Limits = LIMITS,
) -> tuple[list[Submitted], list[Problem]]:
    """Read one attached file. Never raises on bad input: every refusal is a Problem.

    Returns the submissions read (one for an XLSX, one per unit and period for a CSV; none if the
    file had to be refused as a whole) and the problems found while reading. Checks that need the
    catalogue's relations or earlier reports are :func:`baocao.intake.validation.validate`'s job.
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
                       "Đề nghị đơn vị mở tệp bằng Excel hoặc LibreOffice, lưu lại dạng .xlsx rồi gửi lại.")
        subs = []
    return subs, problems.done()


def _read(data: bytes, file: str, catalog: Catalog, max_bytes: int, limits: Limits,
          problems: _Problems) -> list[Submitted]:
    size = len(data)
    if too_large(size, max_bytes):
        raise _Refused("file_too_large", too_large_vi(size, max_bytes))
    if size == 0 or not data.strip():
        raise _Refused("empty_file", "tệp rỗng (không có nội dung). Đề nghị đơn vị đính kèm biểu mẫu đã điền.")
    ext = posixpath.splitext(file.replace("\\", "/").lower())[1]
    if data.startswith(_OLE_MAGIC):
        if any(marker in data for marker in _ENCRYPTION_MARKERS):
            raise _Refused("encrypted", "tệp được đặt mật khẩu (mã hóa), hệ thống không mở được. "
                           "Đề nghị đơn vị gỡ mật khẩu (Tệp > Thông tin > Bảo vệ sổ làm việc) rồi gửi lại.")
        raise _Refused("old_format", "tệp ở định dạng Excel cũ (.xls) hoặc định dạng Office cũ. "
                       "Đề nghị đơn vị dùng đúng biểu mẫu .xlsx đã nhận, hoặc lưu lại dạng “Excel Workbook (.xlsx)”.")
    if ext in (".xlsm", ".xltm", ".xlam"):
        raise _Refused("macro", f"tệp có đuôi “{ext}” là tệp chứa macro, không được chấp nhận vì lý do an toàn. "
                       "Đề nghị đơn vị lưu lại dạng “Excel Workbook (.xlsx)”.")
    if data.startswith(_ZIP_MAGICS):
        return [_read_xlsx(data, file, catalog, limits, problems)]
    if ext in (".csv", ".txt"):
        return _read_csv(data, file, catalog, limits, problems)
    if ext in (".xlsx", ".xltx", ".xls"):
        raise _Refused("not_xlsx", "tệp không phải là tệp Excel hợp lệ (có thể bị hỏng khi tải về, hoặc chỉ "
                       "được đổi tên đuôi). Đề nghị đơn vị mở biểu mẫu bằng Excel hoặc LibreOffice, lưu lại rồi gửi lại.")
    raise _Refused("unknown_format", f"định dạng “{ext or 'không có đuôi'}” không được chấp nhận: "
                   "chỉ nhận biểu mẫu Excel (.xlsx) hoặc tệp CSV (.csv).")
