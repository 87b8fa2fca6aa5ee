"""Text from outside (file names, figures' notes) made safe to show and to write into reports.

Bidirectional overrides and isolates (U+202A-U+202E, U+2066-U+2069), the implicit marks and
zero-width characters can make "mau.exe\u202excod.xlsx" read as another name in a reply, or reorder a
sentence in the consolidated docx/xlsx. None of them is needed in Vietnamese text, so they go.
"""

from __future__ import annotations

import re

__all__ = ["INVISIBLE", "clean_text", "short_name"]

INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u061c\u180e]")
NAME_IN_SUBJECT = 80  # characters of a file name a reply's subject quotes


def clean_text(text: str) -> str:
    """`text` without bidi controls and zero-width characters."""
    return INVISIBLE.sub("", text)


def short_name(name: str, limit: int = NAME_IN_SUBJECT) -> str:
    """A name cut to `limit` characters (keeping its extension) for a subject line."""
    name = clean_text(name)
    if len(name) <= limit:
        return name
    stem, dot, ext = name.rpartition(".")
    if dot and 0 < len(ext) <= 8:
        return stem[: limit - len(ext) - 2] + "…." + ext
    return name[: limit - 1] + "…"
