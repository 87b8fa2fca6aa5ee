"""The indicator catalogue: what units report and what is derived from it.

Built from `config/indicators.toml` by :mod:`baocao.rules.config`; nothing else in the code names
an indicator code. Validation, aggregation, forms and reports all read this catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass, field

INDICATOR_KINDS = ("count", "text", "task_status")
DERIVED_KINDS = ("ratio", "cut", "max")
OPS = (">=", "<=")


@dataclass(frozen=True)
class Indicator:
    code: str
    label: str
    kind: str
    unit: str = ""
    group: str = ""
    section: str = ""
    required: bool = False
    aggregation: str = "sum"


@dataclass(frozen=True)
class Derived:
    """A ratio, a cut against last year, or a cap; each with a target in percent (or a count for caps)."""

    code: str
    label: str
    kind: str
    op: str
    target: float
    group: str = ""
    numerator: str | None = None
    denominator: str | None = None
    of: str | None = None
    plans: tuple[str, ...] = ()

    def applies_to(self, plan: str | None) -> bool:
        """A target set only by some plans is still computed elsewhere, just without a target."""
        return not self.plans or plan is None or plan in self.plans

    def met(self, value: float | None) -> bool | None:
        if value is None:
            return None
        return value >= self.target if self.op == ">=" else value <= self.target


@dataclass(frozen=True)
class Relation:
    """A sanity relation inside one submission: left <= right."""

    left: str
    right: str
    message: str


@dataclass(frozen=True)
class Group:
    code: str
    title: str


@dataclass(frozen=True)
class Catalog:
    groups: tuple[Group, ...]
    indicators: tuple[Indicator, ...]
    derived: tuple[Derived, ...]
    relations: tuple[Relation, ...]
    jump_ratio: float = 3.0
    jump_min_value: int = 20
    _by_code: dict[str, Indicator] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_code.update({i.code: i for i in self.indicators})

    def __getitem__(self, code: str) -> Indicator:
        return self._by_code[code]

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    @property
    def counts(self) -> list[Indicator]:
        return [i for i in self.indicators if i.kind == "count"]

    @property
    def texts(self) -> list[Indicator]:
        return [i for i in self.indicators if i.kind == "text"]

    def derived_for(self, plan: str | None) -> list[Derived]:
        return list(self.derived)

    def group_title(self, code: str) -> str:
        return next((g.title for g in self.groups if g.code == code), code)
