"""Cell values as people type them: labels compared without accents, case or
extra spaces; column letters; texts, codes and counts. Shared by the XLSX and
CSV readers so both read a value the same way.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, time, timedelta
from functools import lru_cache

from baocao.rules.formatting import parse_vi_int


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
        raise ValueError(f"“{value}” là giá trị đúng/sai, không phải số nguyên.")
    if isinstance(value, datetime | date | time | timedelta):
        raise ValueError(f"“{value}” đang ở dạng ngày/giờ, không phải số nguyên: "
                         "đề nghị định dạng ô là số và nhập lại.")
    if isinstance(value, str) and value.strip().startswith("#"):
        raise ValueError(f"“{value.strip()}” là lỗi của công thức, không phải số nguyên.")
    return parse_vi_int(value)  # type: ignore[arg-type]
