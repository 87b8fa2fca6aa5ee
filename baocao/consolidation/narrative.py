"""Units' own words, grouped the way an official summarises them: one point, how many units raised it.

A city receives a "Tồn tại, hạn chế" answer from each of its 120 units, most of them saying one of a few
things in slightly different words ("Hạ tầng mạng còn yếu." / "hạ tầng mạng còn yếu, chưa đồng bộ").
Listed unit by unit, the report's section is a hundred bullets nobody reads; an official writes
"42/114 xã, phường phản ánh hạ tầng mạng còn yếu". :func:`group_texts` finds those points: texts are
compared after normalisation (case, diacritics, punctuation, whitespace), and near-duplicates join one
group when their word sets overlap enough (Jaccard similarity, or difflib's ratio for short rewrites).

Pure Python, no Prefect, no database: tested on its own (tests/test_narrative.py).
"""

from __future__ import annotations

import difflib
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TextGroup", "group_texts", "normalise", "split_points"]

JACCARD = 0.6
"""Word-set overlap from which two points are the same point (0.6: "hạ tầng mạng còn yếu" and
"hạ tầng mạng còn yếu, chưa đồng bộ" share 5 of 7 words)."""
RATIO = 0.85
"""difflib's character ratio from which two points are the same (a typo, a dropped word) ..."""
NEAR = 0.4
"""... when their word sets overlap at least this much (a near miss of JACCARD): no word in common
leaves no point in comparing characters."""

_BULLET = re.compile(r"^\s*(?:[-+•*–—]|\d{1,2}[.)]|[a-zđ][)])\s+", re.IGNORECASE)
_NOT_WORD = re.compile(r"[^\w]+")


def normalise(text: str) -> str:
    """Lower case, no diacritics (đ -> d), punctuation as spaces, single spaces: the key texts are compared on."""
    text = unicodedata.normalize("NFD", text.casefold().replace("đ", "d"))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return " ".join(_NOT_WORD.sub(" ", text).replace("_", " ").split())


def split_points(text: str) -> list[str]:
    """A unit's answer as its points: one per line, list markers ("-", "+", "1.", "a)") removed.

    Units often write several shortcomings in one answer, one per line; each is a point of its own.
    Sentences inside a line are kept together (abbreviations such as "TP." make splitting on dots unsafe).
    """
    points = []
    for line in text.splitlines():
        line = _BULLET.sub("", line).strip(" \t;")
        if normalise(line):
            points.append(" ".join(line.split()))
    return points


@dataclass
class TextGroup:
    """One point made by one or more units: its wording as most of them wrote it, and who wrote it."""

    text: str
    units: list[str] = field(default_factory=list)
    """Unit codes in the order they first appear in the input; each unit once."""
    variants: int = 1
    """How many different wordings (after normalisation) the group holds."""

    @property
    def count(self) -> int:
        return len(self.units)


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    union = a | b
    return len(a & b) / len(union) if union else 1.0


def _similar(a: str, b: str, words_a: frozenset[str], words_b: frozenset[str]) -> bool:
    """Same point: enough words in common, or (for a near miss) almost the same characters."""
    jaccard = _jaccard(words_a, words_b)
    if jaccard >= JACCARD:
        return True
    if jaccard < NEAR:
        return False
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return matcher.real_quick_ratio() >= RATIO and matcher.quick_ratio() >= RATIO and matcher.ratio() >= RATIO


def _prefix(words: list[str], threshold: float) -> list[str]:
    """The prefix filter of set-similarity joins: two sets with Jaccard >= ``threshold`` share a word among
    the first ``n - ceil(threshold * n) + 1`` of each, words ordered rarest first. Only those are indexed,
    so a point is compared with the few groups that can match it, not with every group (a ministry's
    report gathers thousands of answers)."""
    return words[: len(words) - math.ceil(threshold * len(words)) + 1]


def group_texts(texts_by_unit: Mapping[str, str | Iterable[str]]) -> list[TextGroup]:
    """Group the units' texts that say the same thing; largest group first (ties: first seen first).

    ``texts_by_unit``: unit code -> its answer (a string, split into points by :func:`split_points`,
    or a list of answers). A unit counts once per group however many of its points fall in it. The
    group's wording is the most frequent original form of its most frequent normalised form.
    """
    # Exact (normalised) duplicates first: cheap, and most repeated texts are copies.
    by_key: dict[str, dict[str, Any]] = {}
    for unit, answer in texts_by_unit.items():
        answers = [answer] if isinstance(answer, str) else list(answer)
        for one in answers:
            for point in split_points(one):
                entry = by_key.setdefault(normalise(point), {"units": [], "forms": Counter()})
                if unit not in entry["units"]:
                    entry["units"].append(unit)
                entry["forms"][point.rstrip(" .;")] += 1

    words = {k: frozenset(k.split()) for k in by_key}
    frequency = Counter(w for ws in words.values() for w in ws)
    ranked = {k: sorted(ws, key=lambda w: (frequency[w], w)) for k, ws in words.items()}
    clusters: list[list[str]] = []  # keys, the first one the cluster's reference
    index: dict[str, list[int]] = {}  # prefix word -> clusters whose reference has it in its prefix
    # The most common wording of a point seeds its cluster, so the near-duplicates gather round it.
    for key in sorted(by_key, key=lambda k: -len(by_key[k]["units"])):
        candidates = sorted({c for w in _prefix(ranked[key], NEAR) for c in index.get(w, ())})
        for c in candidates:
            ref = clusters[c][0]
            if _similar(key, ref, words[key], words[ref]):
                clusters[c].append(key)
                break
        else:
            clusters.append([key])
            for w in _prefix(ranked[key], NEAR):
                index.setdefault(w, []).append(len(clusters) - 1)

    order = {key: i for i, key in enumerate(by_key)}
    groups = []
    for cluster in clusters:
        units: list[str] = []
        for key in sorted(cluster, key=order.__getitem__):
            units += [u for u in by_key[key]["units"] if u not in units]
        forms: Counter[str] = by_key[cluster[0]]["forms"]
        text = forms.most_common(1)[0][0]
        groups.append((min(order[k] for k in cluster), TextGroup(text=text, units=units, variants=len(cluster))))
    groups.sort(key=lambda pair: (-pair[1].count, pair[0]))
    return [g for _, g in groups]
