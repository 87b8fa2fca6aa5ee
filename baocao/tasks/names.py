"""How the task appendix compares body names: the folding that makes "hoá" equal "hóa".

Shared by the appendix reader (cells, header labels) and the task-body rules (duplicate names in
``config/task_bodies.toml``), so both halves agree on what "the same name" means.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# ----------------------------------------------------------------------------- text normalisation

_MD_STRONG = re.compile(r"(\*\*|__)(.+?)\1")
_MD_EM = re.compile(r"(?<![\w*])[*_](?=\S)(.+?)(?<=\S)[*_](?![\w*])")
_HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_DASHES = re.compile(r"[\u2010-\u2015\u2212\ufe58\ufe63\uff0d]")
_SOFT_BREAK = re.compile(r"(?<=\w)-[ \t]*\n\s*")  # "HĐND-\nUBND" inside one cell


def clean_cell(text: str) -> str:
    """NFC, no markdown emphasis, one kind of dash, single spaces: what a cell means, not how it was typed."""
    text = unicodedata.normalize("NFC", text)
    text = _HTML_BREAK.sub("\n", text)
    text = _SOFT_BREAK.sub("-", text)
    text = _MD_STRONG.sub(r"\2", text)
    text = _MD_EM.sub(r"\1", text)
    text = text.replace("**", "")
    text = _DASHES.sub("-", text)
    return re.sub(r"\s+", " ", text.replace("\u00a0", " ")).strip()


def join_continuation(first: str, rest: str) -> str:
    """Join a cell with its continuation after a page break.

    A space, except after a hyphen glued to a word ("HĐND-" + "UBND" -> "HĐND-UBND"); a spaced dash
    ("Văn hóa -" + "Xã hội") keeps its space.
    """
    if not first:
        return rest
    if not rest:
        return first
    if re.search(r"\w-$", first):
        return first + rest
    return f"{first} {rest}"


_TONES = {"\u0300": "1", "\u0301": "2", "\u0303": "3", "\u0309": "4", "\u0323": "5"}


def fold(word: str) -> str:
    """A word's comparison key: lower case, composed, tone mark moved to the end of the syllable.

    Vietnamese text places tone marks two ways ("hoá"/"hóa", "Thuỷ"/"Thủy") and arrives composed or
    decomposed; all of them fold to the same key. Letters stay distinct otherwise ("đ" is not "d").
    """
    decomposed = unicodedata.normalize("NFD", word.lower())
    tones = "".join(_TONES[c] for c in decomposed if c in _TONES)
    base = unicodedata.normalize("NFC", "".join(c for c in decomposed if c not in _TONES))
    return base + (f"~{tones}" if tones else "")


# ----------------------------------------------------------------------------- tokens

_TOKEN = re.compile(r"\w+|[^\w\s]")
# Long forms the offices write out in full or abbreviate: both fold to the abbreviation.
_EXPANSIONS: tuple[tuple[tuple[str, ...], str], ...] = tuple(
    (tuple(fold(w) for w in long.split()), fold(short))
    for long, short in (("Ủy ban nhân dân", "UBND"), ("Hội đồng nhân dân", "HĐND"))
)
_AND = fold("và")
SEPARATORS = frozenset({";", ",", _AND})


@dataclass(frozen=True)
class Token:
    key: str
    start: int
    end: int


def name_tokens(text: str) -> list[Token]:
    """Words and punctuation marks with their comparison keys and their place in ``text``."""
    raw = []
    for m in _TOKEN.finditer(text):
        s = m.group()
        key = _AND if s == "&" else fold(s)
        raw.append(Token(key, m.start(), m.end()))
    out: list[Token] = []
    i = 0
    while i < len(raw):
        for long, short in _EXPANSIONS:
            if tuple(t.key for t in raw[i:i + len(long)]) == long:
                out.append(Token(short, raw[i].start, raw[i + len(long) - 1].end))
                i += len(long)
                break
        else:
            out.append(raw[i])
            i += 1
    while out and out[-1].key in {".", ";", ",", ":"}:
        out.pop()
    return out


def name_key(text: str) -> tuple[str, ...]:
    """The comparison key of a body's name: insensitive to case, tone placement, spacing and dashes."""
    return tuple(t.key for t in name_tokens(clean_cell(text)))
