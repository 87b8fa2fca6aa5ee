"""Whom a report speaks of: its direct children, by kind, each kind with its own denominator.

A city's report counts its communes and wards and its own departments ("110/114 xã, phường và 2/2 sở,
ngành"), not the departments of a ward: those belong in the ward's report, and in the city's the ward
is one unit. A bare "113/123 đơn vị" leaves the reader guessing what was counted. The figures
themselves (totals, ratios) still add up every leaf once (:mod:`baocao.consolidation.aggregate`).

A child that consolidates (a ward with departments) has reported when its own report is issued or
sent (its request accepted, :attr:`Figures.own`), and was late when that came after its deadline: a
ward whose departments were all on time but which issued its report a week late is late, and one
whose report is not in has not reported, however many of its forms are. Without a request of its own
(figures computed from forms alone) it has reported when every form below it is in, partly when some
are; it was late when any form below it was.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from baocao.consolidation.aggregate import Figures
from baocao.rules.hierarchy import Hierarchy, Unit
from baocao.store.states import Standing

__all__ = ["ChildStatus", "categories", "category_of", "child_statuses", "direct_child", "tally"]

_COMMUNE_WORDS = (("xã", "Xã"), ("phường", "Phường"), ("đặc khu", "Đặc khu"), ("thị trấn", "Thị trấn"))


def category_of(unit: Unit, hierarchy: Hierarchy) -> str:
    """The kind of unit a sentence counts: "commune", "province", "department"."""
    return unit.level if unit.level in ("commune", "province") else "department"


def _noun(category: str, members: list[Unit], parent: Unit) -> str:
    """How the text names a kind, from what its members are: "xã, phường, đặc khu", "sở, ngành", "phòng"."""
    if category == "commune":
        words = [w for w, prefix in _COMMUNE_WORDS if any(u.name.startswith(prefix + " ") for u in members)]
        return ", ".join(words) or "xã, phường"
    if category == "province":
        return "tỉnh, thành phố"
    kinds = {u.kind for u in members}
    if parent.level == "province":
        return "sở, ngành"
    if kinds == {"phòng"}:
        return "phòng"
    return "phòng, đơn vị"


def categories(parent: str, hierarchy: Hierarchy) -> dict[str, tuple[str, list[str]]]:
    """category -> (noun, direct children's codes), communes first, in the tree's order."""
    out: dict[str, list[Unit]] = {}
    for child in hierarchy.children(parent):
        out.setdefault(category_of(child, hierarchy), []).append(child)
    order = {"province": 0, "commune": 1, "department": 2}
    return {cat: (_noun(cat, units, hierarchy[parent]), [u.code for u in units])
            for cat, units in sorted(out.items(), key=lambda kv: order[kv[0]])}


def direct_child(code: str, parent: str, hierarchy: Hierarchy) -> str | None:
    """The child of ``parent`` that ``code`` is, or sits under; None for ``parent`` itself or outside it."""
    unit = hierarchy[code] if code in hierarchy else None
    while unit is not None and unit.parent != parent:
        unit = hierarchy.parent(unit.code)
    return unit.code if unit is not None else None


def tally(codes: Iterable[str], parent: str, hierarchy: Hierarchy, *, of: Mapping[str, list[str]] | None = None
          ) -> list[tuple[int, int, str]]:
    """(how many of ``codes``, out of how many, noun) per kind of ``parent``'s children that ``codes`` has.

    ``of`` restricts the denominators (category -> codes), e.g. to the children that gave a figure.
    """
    wanted = set(codes)
    out = []
    for cat, (noun, members) in categories(parent, hierarchy).items():
        pool = members if of is None else [c for c in members if c in set(of.get(cat, ()))]
        n = sum(1 for c in pool if c in wanted)
        if n:
            out.append((n, len(pool), noun))
    return out


@dataclass(frozen=True)
class ChildStatus:
    code: str
    name: str
    category: str
    state: str
    """"sent", "partial" (a consolidator with some of its forms in), "missing" or "exempt"."""
    on_time: bool
    """Everything it sent came before its deadline (False for one that sent nothing)."""
    received: int
    expected: int


def child_statuses(figures: Figures, child_figures: Mapping[str, Figures], hierarchy: Hierarchy) -> list[ChildStatus]:
    """Each direct child's reporting status, as the parent's report counts it."""
    missing, late = set(figures.missing), set(figures.late)
    out = []
    for code in figures.children:
        unit = hierarchy[code]
        cat = category_of(unit, hierarchy)
        f = child_figures.get(code)
        c = f.completeness if f is not None else {"expected": 1, "accepted": 0, "on_time": 0, "exempt": 0}
        if c["expected"] == 0 and c.get("exempt"):
            state, on_time = "exempt", False
        elif f is None or not f.children:
            state = "missing" if code in missing else "sent"
            on_time = state == "sent" and code not in late
        elif f.own is not None:
            state = "sent" if f.own["state"] == Standing.ACCEPTED else "missing"
            on_time = state == "sent" and f.own["on_time"] is not False
        else:
            state = "sent" if c["accepted"] == c["expected"] else ("partial" if c["accepted"] else "missing")
            on_time = c["on_time"] == c["accepted"]  # what it sent came in time (the missing ones are said apart)
        out.append(ChildStatus(code, unit.name, cat, state, on_time, int(c["accepted"]), int(c["expected"])))
    return out
