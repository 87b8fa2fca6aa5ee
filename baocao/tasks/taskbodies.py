"""The per-plan rules of ``config/task_bodies.toml``: how an appendix's bodies map to units.

Read by the configuration loader (:func:`baocao.rules.config.load_config` gives them as
``Config.task_bodies``) and checked by ``baocao config check``; used by
:func:`baocao.tasks.appendix.resolve_tasks`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from baocao.errors import DuePhraseError, TaskBodiesError
from baocao.rules.hierarchy import Hierarchy
from baocao.tasks.duephrases import parse_due_phrase
from baocao.tasks.names import name_key

_RULE_OF = re.compile(r"^(departments|communes|children)\s+of\s+(\S+)$")
_RULE_ITSELF = re.compile(r"^(\S+)\s+itself$")


@dataclass(frozen=True)
class BodyRules:
    """How one plan's appendix names bodies, beyond the units' own names and aliases.

    ``groups``: name -> rules, each "departments of CODE", "communes of CODE", "children of CODE",
    "CODE itself" or a bare unit code; a task given to a group goes to each unit of it.
    ``aliases``: name -> unit code. ``external``: bodies outside the hierarchy (kept as text).
    ``deadlines``: task number (STT) -> a deadline phrase read instead of the task's "Thời hạn" and
    "Sản phẩm/Kết quả" cells, for a task whose recurrence or date the import read wrongly.
    """

    plan: str
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=dict)
    external: tuple[str, ...] = ()
    source: str = ""
    deadlines: Mapping[int, str] = field(default_factory=dict)

    def group_units(self, name: str, hierarchy: Hierarchy) -> tuple[str, ...]:
        """The unit codes a group stands for; unknown codes raise :class:`TaskBodiesError`."""
        codes: list[str] = []
        for rule in self.groups[name]:
            key = f"{self.plan}.groups.{name!r}"
            m = _RULE_OF.match(rule)
            if m:
                kind, code = m.groups()
                require_unit(code, hierarchy, self.source, key)
                level = {"departments": "department", "communes": "commune"}.get(kind)
                codes += [u.code for u in hierarchy.children(code) if level is None or u.level == level]
                continue
            m = _RULE_ITSELF.match(rule)
            code = m.group(1) if m else rule
            require_unit(code, hierarchy, self.source, key)
            codes.append(code)
        return tuple(dict.fromkeys(codes))


def require_unit(code: str, hierarchy: Hierarchy, source: str, key: str) -> None:
    if code not in hierarchy:
        raise TaskBodiesError(source, key, f"{code!r} is not a unit of the hierarchy")


def _check_rule(rule: Any, file: Path, key: str) -> str:
    if not isinstance(rule, str) or not rule.strip():
        raise TaskBodiesError(file, key, f"rule must be text, got {rule!r}")
    rule = " ".join(rule.split())
    if _RULE_OF.match(rule) or _RULE_ITSELF.match(rule) or re.fullmatch(r"[A-Z0-9][A-Z0-9-]*", rule):
        return rule
    raise TaskBodiesError(
        file, key,
        f"{rule!r}: use 'departments of CODE', 'communes of CODE', 'children of CODE', "
        "'CODE itself' or a unit code",
    )


def load_task_bodies(path: Path) -> dict[str, BodyRules]:
    """Read ``config/task_bodies.toml`` and check its shape (:func:`parse_task_bodies`)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TaskBodiesError(path, "", "file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise TaskBodiesError(path, "", f"not valid TOML: {exc}") from None
    return parse_task_bodies(data, path)


def parse_task_bodies(data: Mapping[str, Any], path: str | Path) -> dict[str, BodyRules]:
    """The rules of a parsed ``task_bodies.toml``: one table per plan code with ``groups``, ``aliases``, ``external``.

    Pure, so the configuration loader reads the file with the rest of ``config/`` and hands the
    data here. The shape and the rule syntax are checked here; unit codes need the hierarchy and
    are checked by :func:`check_task_bodies` (``baocao config check``) and again when the rules are
    used (:func:`~baocao.tasks.appendix.resolve_tasks`).
    """
    path = Path(path)
    out: dict[str, BodyRules] = {}
    for plan, table in data.items():
        if not isinstance(table, dict):
            raise TaskBodiesError(path, plan, "must be a table ([plan-code]) of groups, aliases and external")
        unknown = set(table) - {"groups", "aliases", "external", "deadlines"}
        if unknown:
            key = f"{plan}.{sorted(unknown)[0]}"
            raise TaskBodiesError(path, key, "unknown key (use groups, aliases, external, deadlines)")
        groups_raw = table.get("groups", {})
        aliases_raw = table.get("aliases", {})
        external_raw = table.get("external", [])
        if not isinstance(groups_raw, dict):
            raise TaskBodiesError(path, f"{plan}.groups", "must be a table of name = rule")
        if not isinstance(aliases_raw, dict):
            raise TaskBodiesError(path, f"{plan}.aliases", "must be a table of name = unit code")
        if not isinstance(external_raw, list):
            raise TaskBodiesError(path, f"{plan}.external", "must be a list of names")
        groups: dict[str, tuple[str, ...]] = {}
        for name, rule in groups_raw.items():
            key = f"{plan}.groups.{name!r}"
            items = rule if isinstance(rule, list) else [rule]
            if not items:
                raise TaskBodiesError(path, key, "empty list of rules")
            groups[name] = tuple(_check_rule(r, path, key) for r in items)
        aliases: dict[str, str] = {}
        for name, code in aliases_raw.items():
            if not isinstance(code, str) or not re.fullmatch(r"[A-Z0-9][A-Z0-9-]*", code):
                raise TaskBodiesError(path, f"{plan}.aliases.{name!r}", f"must be a unit code, got {code!r}")
            aliases[name] = code
        for i, name in enumerate(external_raw):
            if not isinstance(name, str) or not name.strip():
                raise TaskBodiesError(path, f"{plan}.external[{i}]", f"must be a name, got {name!r}")
        seen: dict[tuple[str, ...], str] = {}
        named = [("groups", n) for n in groups] + [("aliases", n) for n in aliases]
        named += [("external", n) for n in external_raw]
        for section, name in named:
            key = name_key(name)
            if not key:
                raise TaskBodiesError(path, f"{plan}.{section}", f"{name!r} is not a name")
            if key in seen:
                raise TaskBodiesError(path, f"{plan}.{section}.{name!r}", f"same name as {seen[key]}")
            seen[key] = f"{plan}.{section}.{name!r}"
        deadlines = _deadlines(table.get("deadlines", {}), path, plan)
        out[plan] = BodyRules(plan, groups, aliases, tuple(external_raw), str(path), deadlines)
    return out


def _deadlines(raw: Any, path: Path, plan: str) -> dict[int, str]:
    """``[plan.deadlines]``: "STT" = "phrase"; each phrase must read (checked here, with a stand-in
    year for phrases that name none, so ``config check`` names a bad override before an import)."""
    if not isinstance(raw, dict):
        raise TaskBodiesError(path, f"{plan}.deadlines", 'must be a table of "STT" = "deadline phrase"')
    out: dict[int, str] = {}
    for number, phrase in raw.items():
        key = f"{plan}.deadlines.{number!r}"
        if not str(number).isdigit() or int(number) < 1:
            raise TaskBodiesError(path, key, "the key must be a task number (STT), e.g. \"11\"")
        if not isinstance(phrase, str):
            raise TaskBodiesError(path, key, f"must be a deadline phrase, got {phrase!r}")
        try:
            parse_due_phrase(phrase, default_year=2000)
        except DuePhraseError as exc:
            raise TaskBodiesError(path, key, str(exc)) from None
        out[int(number)] = phrase
    return out


def rule_units(rule: str) -> tuple[str, ...]:
    """The unit codes a syntactically valid group rule names ("departments of X1" -> ("X1",))."""
    m = _RULE_OF.match(rule) or _RULE_ITSELF.match(rule)
    return (m.groups()[-1],) if m else (rule,)


def check_task_bodies(rules: Mapping[str, BodyRules], hierarchy: Hierarchy) -> list[str]:
    """Every unit code in the aliases and groups that the hierarchy does not have, one line each.

    Loading cannot check them (the file is read beside the hierarchy, not after it), and an import
    would only fail on the first one, at the moment an office uploads its appendix; ``config check``
    lists them all beforehand, naming the file and the key.
    """
    problems = []
    for plan in rules.values():
        for name, code in plan.aliases.items():
            if code not in hierarchy:
                problems.append(f"{plan.source}: {plan.plan}.aliases.{name!r}: {code!r} is not a unit of the hierarchy")
        for name, group in plan.groups.items():
            for rule in group:
                for code in rule_units(rule):
                    if code not in hierarchy:
                        problems.append(f"{plan.source}: {plan.plan}.groups.{name!r}: {code!r} is not a unit "
                                        "of the hierarchy")
    return problems
