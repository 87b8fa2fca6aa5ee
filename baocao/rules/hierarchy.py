"""The reporting hierarchy: who reports to whom.

The tree is data (built by :mod:`baocao.rules.config` from `vietnam-provinces` and
`config/hierarchy.toml`); this module only knows how to walk it. Any depth works: a unit's
level says what it is (ministry, province, commune, department), not how deep it sits.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

LEVELS = ("ministry", "province", "commune", "department")


@dataclass(frozen=True)
class Unit:
    """One reporting unit: a ministry, a province, a commune or a department of any of them."""

    code: str
    name: str
    level: str
    parent: str | None
    coordinator_emails: tuple[str, ...] = ()
    head_emails: tuple[str, ...] = ()
    official_code: int | None = None
    kind: str = ""
    aliases: tuple[str, ...] = ()
    head_name: str = ""
    """The head's name as it is printed under the signature of the unit's report ("" when not configured)."""
    drafts: bool = False
    """A department that collects the figures and drafts its parent's report: named in "- Lưu: VT, ..."."""
    contact_person: str = ""
    contact_phone: str = ""
    """Whom the unit's report names to call (`person`, `phone` of `[unit_contacts.CODE]`); "" when not configured."""

    @property
    def all_emails(self) -> tuple[str, ...]:
        return self.coordinator_emails + self.head_emails


@dataclass
class Hierarchy:
    """A tree of units indexed by code, with children kept in a stable order."""

    units: dict[str, Unit]
    root_code: str
    _children: dict[str, list[str]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._children = {code: [] for code in self.units}
        for unit in self.units.values():
            if unit.parent is not None:
                self._children[unit.parent].append(unit.code)

    def __len__(self) -> int:
        return len(self.units)

    def __contains__(self, code: object) -> bool:
        return code in self.units

    def __getitem__(self, code: str) -> Unit:
        return self.units[code]

    @property
    def root(self) -> Unit:
        return self.units[self.root_code]

    def children(self, code: str) -> list[Unit]:
        return [self.units[c] for c in self._children[code]]

    def has_children(self, code: str) -> bool:
        return bool(self._children[code])

    def parent(self, code: str) -> Unit | None:
        parent = self.units[code].parent
        return self.units[parent] if parent is not None else None

    def ancestors(self, code: str) -> list[Unit]:
        """Parent first, root last."""
        out = []
        unit = self.parent(code)
        while unit is not None:
            out.append(unit)
            unit = self.parent(unit.code)
        return out

    def walk(self, code: str | None = None) -> Iterator[Unit]:
        """Pre-order: a unit before its children (the order requests go down the cascade)."""
        stack = [code or self.root_code]
        while stack:
            current = stack.pop()
            yield self.units[current]
            stack.extend(reversed(self._children[current]))

    def walk_bottom_up(self, code: str | None = None) -> list[Unit]:
        """Post-order: children before their parent (the order reports go up)."""
        return list(reversed(list(self._walk_reverse_pre(code or self.root_code))))

    def _walk_reverse_pre(self, code: str) -> Iterator[Unit]:
        stack = [code]
        while stack:
            current = stack.pop()
            yield self.units[current]
            stack.extend(self._children[current])

    def depth(self, code: str) -> int:
        return len(self.ancestors(code))

    def is_descendant(self, code: str, of: str) -> bool:
        return any(a.code == of for a in self.ancestors(code))

    def leaves(self, code: str | None = None) -> list[Unit]:
        """Units that fill a form: those with no children under them."""
        return [u for u in self.walk(code) if not self._children[u.code]]

    def consolidators(self, code: str | None = None) -> list[Unit]:
        """Units whose figures are consolidated from their children."""
        return [u for u in self.walk(code) if self._children[u.code]]

    def subtree_codes(self, code: str) -> list[str]:
        return [u.code for u in self.walk(code)]
