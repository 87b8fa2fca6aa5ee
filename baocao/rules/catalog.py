"""The indicator catalogue: what units report and what is derived from it.

Built from `config/indicators.toml` by :mod:`baocao.rules.config`; nothing else in the code names
an indicator code. Validation, aggregation, forms and reports all read this catalogue.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

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
    """A ratio, a cut against last year, or a cap; each with a target in percent (or a count for caps).

    ``target`` is None in a plan's own catalogue (:meth:`Catalog.for_plan`) when that plan sets no
    target for the figure: it is still computed, but no report may claim a target the plan never set.
    """

    code: str
    label: str
    kind: str
    op: str
    target: float | None
    group: str = ""
    numerator: str | None = None
    denominator: str | None = None
    of: str | None = None
    plans: tuple[str, ...] = ()

    def applies_to(self, plan: str | None) -> bool:
        """A target set only by some plans is still computed elsewhere, just without a target."""
        if self.target is None:
            return False
        return not self.plans or plan is None or plan in self.plans

    def met(self, value: float | None) -> bool | None:
        if value is None or self.target is None:
            return None
        return value >= self.target if self.op == ">=" else value <= self.target


@dataclass(frozen=True)
class PlanTarget:
    """A target as one plan states it (`[targets.<CODE>]` of `config/plans/<plan>.toml`).

    ``source`` says where the plan sets it (section or appendix line), so an office checking the
    configuration against the signed plan finds the sentence.
    """

    target: float
    op: str
    label: str | None = None
    source: str = ""


@dataclass(frozen=True)
class Relation:
    """A part is at most its whole, inside one submission (`[[relations]]` of indicators.toml).

    The catalogue implies it (dissemination conferences are conferences; online ones too), so a
    form that breaks it is wrong, not unlikely: an error, whose message names both figures by
    ``part_name`` and ``whole_name`` (short Vietnamese names, e.g. "Số hội nghị quán triệt",
    "tổng số hội nghị") with their cells. ``left``/``right`` read the same pair as an inequality.
    """

    part: str
    whole: str
    part_name: str
    whole_name: str

    @property
    def left(self) -> str:
        return self.part

    @property
    def right(self) -> str:
        return self.whole

    def holds(self, part: int, whole: int) -> bool:
        """Equal is fine (every conference was a dissemination one); one more is not."""
        return part <= whole


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
    # A unit's count above peer_factor x the median of its siblings' (at least peer_min_units of them
    # reporting, the count at least jump_min_value) is flagged "Cần kiểm tra" in the report's appendix.
    peer_factor: float = 5.0
    peer_min_units: int = 5
    plan: str | None = None  # the plan this catalogue was made for (for_plan); None: indicators.toml as written
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

    def for_plan(self, plan: str, labels: Mapping[str, str],
                 targets: Mapping[str, PlanTarget] | None) -> Catalog:
        """The catalogue as one plan words it: its labels, and exactly the targets it sets.

        Plans differ (Tứ Kỳ limits discussion meetings to 01 day, others to 1,5 days; only some set
        the 15 % cut of documents), and every form, check and report of a cycle must say what *its*
        plan says. ``targets`` None (the plan file has no `[targets]`): the catalogue's targets,
        limited by each figure's ``plans``. Otherwise the figures it does not name have no target.
        """
        indicators = tuple(replace(i, label=labels[i.code]) if i.code in labels else i for i in self.indicators)
        derived = []
        for d in self.derived:
            if targets is None:
                d = d if d.applies_to(plan) else replace(d, target=None)
            elif d.code in targets:
                t = targets[d.code]
                d = replace(d, target=t.target, op=t.op, label=t.label or d.label)
            else:
                d = replace(d, target=None)
            derived.append(replace(d, plans=()))
        return Catalog(self.groups, indicators, tuple(derived), self.relations, self.jump_ratio,
                       self.jump_min_value, self.peer_factor, self.peer_min_units, plan=plan)

    def group_title(self, code: str) -> str:
        return next((g.title for g in self.groups if g.code == code), code)
