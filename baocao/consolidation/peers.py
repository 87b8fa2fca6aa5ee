"""Figures far outside a unit's peers: flagged "Cần kiểm tra" in the report's appendix, never refused.

A unit's own form can only be checked against itself and its history (baocao.intake.validation);
how its figures compare with its siblings' is known only when the parent consolidates. A count more
than ``peer_factor`` times the median of the same count among the unit's siblings of the same level
that report the same way (communes with communes, a commune consolidating its departments with its own
kind, departments with departments) is likely a typo (an extra digit), but may be
true (a large ward), so the parent's appendix marks the cell for a look rather than rejecting it.
Thresholds are catalogue data (`[checks]` of config/indicators.toml).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import median

from baocao.rules.catalog import Catalog
from baocao.rules.hierarchy import Hierarchy

__all__ = ["PeerFlag", "peer_flags"]

FLAG_WORD = "Cần kiểm tra"


@dataclass(frozen=True)
class PeerFlag:
    """One count of one unit far above its peers: the value, the peers' median, how many peers."""

    unit: str
    code: str
    value: float
    median: float
    peers: int

    @property
    def times(self) -> float:
        return self.value / self.median if self.median else float("inf")


def peer_flags(totals: Mapping[str, Mapping[str, float | None]], units: Sequence[str], hierarchy: Hierarchy,
               catalog: Catalog) -> dict[tuple[str, str], PeerFlag]:
    """(unit, count code) -> flag, over ``units`` (the siblings in a report) and their ``totals``.

    Each unit is compared with the *other* siblings of its level that gave the count (at least
    ``catalog.peer_min_units`` of them); a value is flagged when it is at least
    ``catalog.jump_min_value`` (from 2 to 12 conferences is not news) and above ``peer_factor`` x
    their median (a median of 0 counts as 1: then anything from jump_min_value up stands out).
    """
    flags: dict[tuple[str, str], PeerFlag] = {}
    by_level: dict[tuple[str, bool], list[str]] = {}
    for code in units:
        if code in hierarchy:  # a ward adding up its departments is compared with its own kind only
            by_level.setdefault((hierarchy[code].level, hierarchy.has_children(code)), []).append(code)
    for siblings in by_level.values():
        for ind in catalog.counts:
            known = {u: float(v) for u in siblings if (v := totals.get(u, {}).get(ind.code)) is not None}
            if len(known) <= catalog.peer_min_units:
                continue
            for unit, value in known.items():
                if value < catalog.jump_min_value:
                    continue
                others = [v for u, v in known.items() if u != unit]
                mid = median(others)
                if value > catalog.peer_factor * max(mid, 1.0):
                    flags[(unit, ind.code)] = PeerFlag(unit, ind.code, value, mid, len(others))
    return flags
