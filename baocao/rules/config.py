"""Configuration as data: the one place that reads `config/` and the environment.

Everything else receives a :class:`Config`. Every problem found while reading names the file,
the key and what is wrong, so an office that edits a TOML file can fix it without reading code.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, time
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from baocao.errors import ConfigError
from baocao.paths import PROJECT_DIR
from baocao.rules.bodies import COLLECTOR_FIELDS, CollectorRule
from baocao.rules.catalog import (
    DERIVED_KINDS,
    INDICATOR_KINDS,
    OPS,
    Catalog,
    Derived,
    Group,
    Indicator,
    PlanTarget,
    Relation,
)
from baocao.rules.escalation import policy_warnings as escalation_warnings
from baocao.rules.hierarchy import LEVELS, Hierarchy, Unit
from baocao.rules.holidaynotes import unconfirmed_warnings
from baocao.rules.overlaps import lines_vi, plan_disagreements
from baocao.rules.periods import KINDS, CalendarSettings, Period, WorkCalendar
from baocao.rules.plans import (
    ISSUE_MODES,
    NONWORKING_RULES,
    DeadlineRule,
    Plan,
    ReminderPolicy,
    ScheduleError,
    unit_deadlines,
)
from baocao.rules.yearschedule import parse_years
from baocao.tasks.taskbodies import BodyRules, TaskBodiesError, check_task_bodies, parse_task_bodies

ENV_PREFIX = "BAOCAO_"
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_CODE = re.compile(r"^[A-Z0-9][A-Z0-9-]*$")


# ----------------------------------------------------------------------------- settings
class SmtpConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str = "127.0.0.1"
    port: int = 25
    username: str = ""
    password: SecretStr = SecretStr("")
    use_tls: bool = False
    start_tls: bool | None = None
    timeout: float = 30.0
    concurrency: int = 4
    max_attempts: int = 5
    backoff_base: float = 1.0


class ImapConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str = "127.0.0.1"
    port: int = 143
    username: str = ""
    password: SecretStr = SecretStr("")
    mailbox: str = "INBOX"
    use_ssl: bool = False
    timeout: float = 30.0


class Settings(BaseModel):
    """Runtime settings: `config/settings.toml` overlaid by BAOCAO_* environment variables."""

    model_config = ConfigDict(extra="forbid")
    database_url: str = "sqlite:///var/baocao.db"
    var_dir: Path = Path("var")
    drop_folder: Path = Path("var/dropbox")
    # A dropped file is taken once it has not changed for this long (a copy still running is left for
    # the next run instead of being parked in failed/ as a broken workbook); see collect_folder.
    drop_settle_seconds: float = Field(5, ge=0)
    sender: str = "baocao@bonoivu.example"
    reply_to: str = "nopbaocao@bonoivu.example"
    token_secret: SecretStr = SecretStr("demo-secret-change-me")
    form_version: int = 1
    sender_check: str = "flag"
    max_attachment_bytes: int = 10_000_000
    # Reply floods: files read from one message (the rest are named in one reply, unread).
    max_attachments_per_message: int = Field(20, gt=0)
    # ... and replies to one address per hour: beyond, a reply is stored "throttled", not sent.
    max_replies_per_address_per_hour: int = Field(20, gt=0)
    # A login to a non-loopback IMAP/SMTP host without TLS (no SSL, no STARTTLS): "warn" or "refuse".
    plaintext_credentials: str = Field("warn", pattern="^(warn|refuse)$")
    chase_time: time = time(8, 30)
    consolidate_time: time = time(17, 0)
    collect_every_minutes: float = Field(5, gt=0)
    prefect_port: int = 4200  # the local Prefect server `baocao up` starts when PREFECT_API_URL is unset
    mail_dir: Path = Path("var/mail")  # where the built-in SMTP server of `baocao up` files what it receives
    scheduling_check_seconds: float = Field(45, gt=0)  # serve/up: how long the server may take to schedule runs
    # Where the results a Retry reuses are kept: "" Prefect's default, a path every worker mounts, or
    # "block:<type>/<name>" (a Prefect storage block); see flows/results.py.
    result_storage: str = ""
    smtp: SmtpConfig = SmtpConfig()
    imap: ImapConfig = ImapConfig()

    def secrets(self) -> list[str]:
        """Every secret value set, so that log filters and tests can look for them."""
        values = [self.token_secret, self.smtp.password, self.imap.password]
        return [v.get_secret_value() for v in values if v.get_secret_value()]

    def resolve(self, path: Path) -> Path:
        return path if path.is_absolute() else PROJECT_DIR / path

    @property
    def database_url_resolved(self) -> str:
        """A relative SQLite path is taken from the project directory, wherever the command runs."""
        prefix = "sqlite:///"
        if self.database_url.startswith(prefix) and not self.database_url.startswith(prefix + "/"):
            rel = self.database_url[len(prefix):]
            if rel and rel != ":memory:":
                return prefix + str(PROJECT_DIR / rel)
        return self.database_url


# BAOCAO_* variables that are not settings: where the config lives, and the test suite's soak switch.
_NOT_SETTINGS = frozenset({ENV_PREFIX + "CONFIG_DIR", ENV_PREFIX + "SOAK"})


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name in _NOT_SETTINGS:
            continue
        path = name[len(ENV_PREFIX):].lower().split("__")
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_settings(path: Path, env: Mapping[str, str] | None = None) -> Settings:
    data = _read_toml(path) if path.exists() else {}
    data = _merge(data, _env_overrides(os.environ if env is None else env))
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        # pydantic's message never echoes a SecretStr's value; we drop the input anyway.
        raise ConfigError(path, key, err["msg"]) from None


# ----------------------------------------------------------------------------- helpers
def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(path, "", "file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "", f"not valid TOML: {exc}") from None


def _req(data: Mapping[str, Any], key: str, typ: type | tuple[type, ...], file: Path, where: str) -> Any:
    if key not in data:
        raise ConfigError(file, f"{where}{key}", "missing")
    value = data[key]
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        names = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
        raise ConfigError(file, f"{where}{key}", f"must be {names}, got {value!r}")
    return value


def _opt(data: Mapping[str, Any], key: str, typ: type | tuple[type, ...], default: Any, file: Path, where: str) -> Any:
    return _req(data, key, typ, file, where) if key in data else default


def _emails(value: Any, file: Path, key: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ConfigError(file, key, "must be an address or a list of addresses")
    for item in items:
        if not isinstance(item, str) or not _EMAIL.match(item):
            raise ConfigError(file, key, f"{item!r} is not an email address")
    return tuple(items)


# ----------------------------------------------------------------------------- hierarchy
def _official_units(provinces: set[str] | None = None) -> list[tuple[str, str, str, str | None, int]]:
    """(code, name, level, parent, official code) of the 34 provinces and 3,321 communes.

    `provinces` keeps only those provinces (and their communes): an installation that serves one
    region, or a test that needs a small national tree.
    """
    from vietnam_provinces import Province, Ward

    rows = []
    for p in sorted(Province.iter_all(), key=lambda p: int(p.code)):
        code = f"T{int(p.code):02d}"
        if provinces is None or code in provinces:
            rows.append((code, p.name, "province", None, int(p.code)))
    for w in sorted(Ward.iter_all(), key=lambda w: (int(w.province_code), int(w.code))):
        parent = f"T{int(w.province_code):02d}"
        if provinces is None or parent in provinces:
            rows.append((f"X{int(w.code):05d}", w.name, "commune", parent, int(w.code)))
    return rows


def load_hierarchy(path: Path) -> Hierarchy:
    data = _read_toml(path)
    root = _req(data, "root", dict, path, "")
    root_code = _req(root, "code", str, path, "root.")
    contacts = _opt(data, "contacts", dict, {}, path, "")
    patterns = {
        "coordinator": _opt(contacts, "coordinator", str, "", path, "contacts."),
        "head": _opt(contacts, "head", str, "", path, "contacts."),
    }
    overrides = _opt(data, "unit_contacts", dict, {}, path, "")

    def contact(code: str, role: str, explicit: Any, key: str) -> tuple[str, ...]:
        if explicit is not None:
            return _emails(explicit, path, key)
        if code in overrides and role in overrides[code]:
            return _emails(overrides[code][role], path, f"unit_contacts.{code}.{role}")
        pattern = patterns[role]
        return (pattern.format(code=code.lower()),) if pattern else ()

    units: dict[str, Unit] = {}

    def add(code: str, name: str, level: str, parent: str | None, official: int | None = None, **extra: Any) -> None:
        units[code] = Unit(
            code=code, name=name, level=level, parent=parent, official_code=official,
            coordinator_emails=contact(code, "coordinator", extra.pop("coordinator", None), f"{code}.coordinator"),
            head_emails=contact(code, "head", extra.pop("head", None), f"{code}.head"),
            head_name=head_name(code, extra.pop("head_name", None)),
            contact_person=contact_text(code, "person"), contact_phone=contact_text(code, "phone"),
            **extra,
        )

    def contact_text(code: str, key: str) -> str:
        """`person` / `phone` of `[unit_contacts.CODE]`: whom a report of the unit names to call."""
        value = overrides.get(code, {}).get(key, "")
        if not isinstance(value, str):
            raise ConfigError(path, f"unit_contacts.{code}.{key}", "must be text")
        return value.strip()

    def head_name(code: str, explicit: Any) -> str:
        """The name printed under the signature: `head_name` of a department or of `[unit_contacts.CODE]`."""
        where = f"{code}.head_name" if explicit is not None else f"unit_contacts.{code}.head_name"
        value = explicit if explicit is not None else overrides.get(code, {}).get("head_name", "")
        if not isinstance(value, str):
            raise ConfigError(path, where, "must be a name (text)")
        return value.strip()

    add(root_code, _req(root, "name", str, path, "root."), "ministry", None)
    official = _opt(data, "official", dict, {}, path, "")
    only = _opt(official, "provinces", list, None, path, "official.")
    for code, name, level, parent, official_code in _official_units(set(only) if only is not None else None):
        add(code, name, level, parent or root_code, official_code)
    if only is not None:
        unknown = set(only) - set(units)
        if unknown:
            raise ConfigError(path, "official.provinces", f"not province codes: {', '.join(sorted(unknown))}")

    for i, dep in enumerate(_opt(data, "departments", list, [], path, "")):
        where = f"departments[{i}]."
        if only is not None and dep.get("parent") not in units:
            continue  # a department of a province left out
        code = _req(dep, "code", str, path, where)
        parent = _req(dep, "parent", str, path, where)
        if not _CODE.match(code):
            raise ConfigError(path, where + "code", f"{code!r}: use capital letters, digits and '-'")
        if code in units:
            raise ConfigError(path, where + "code", f"{code!r} is already a unit")
        if parent not in units:
            raise ConfigError(path, where + "parent", f"{parent!r} is not a unit defined before this one")
        unknown = set(dep) - {"code", "parent", "name", "kind", "aliases", "coordinator", "head", "head_name", "drafts"}
        if unknown:
            raise ConfigError(path, where + sorted(unknown)[0], "unknown key")
        aliases = _opt(dep, "aliases", list, [], path, where)
        add(
            code, _req(dep, "name", str, path, where), "department", parent,
            kind=_opt(dep, "kind", str, "", path, where), aliases=tuple(aliases),
            coordinator=dep.get("coordinator"), head=dep.get("head"), head_name=dep.get("head_name"),
            drafts=_opt(dep, "drafts", bool, False, path, where),
        )
    for code in overrides:
        if code not in units:
            raise ConfigError(path, f"unit_contacts.{code}", "no such unit")
    return Hierarchy(units=units, root_code=root_code)


# ----------------------------------------------------------------------------- catalogue
def load_catalog(path: Path) -> Catalog:
    data = _read_toml(path)
    groups = tuple(
        Group(_req(g, "code", str, path, f"groups[{i}]."), _req(g, "title", str, path, f"groups[{i}]."))
        for i, g in enumerate(_opt(data, "groups", list, [], path, ""))
    )
    group_codes = {g.code for g in groups}
    indicators: list[Indicator] = []
    seen: set[str] = set()
    for i, ind in enumerate(_req(data, "indicators", list, path, "")):
        where = f"indicators[{i}]."
        code = _req(ind, "code", str, path, where)
        if code in seen:
            raise ConfigError(path, where + "code", f"{code!r} appears twice")
        seen.add(code)
        kind = _req(ind, "kind", str, path, where)
        if kind not in INDICATOR_KINDS:
            raise ConfigError(path, where + "kind", f"{kind!r} is not one of {', '.join(INDICATOR_KINDS)}")
        group = _opt(ind, "group", str, "", path, where)
        if group and group not in group_codes:
            raise ConfigError(path, where + "group", f"{group!r} is not a group code")
        indicators.append(Indicator(
            code=code, label=_req(ind, "label", str, path, where), kind=kind,
            unit=_opt(ind, "unit", str, "", path, where), group=group,
            section=_opt(ind, "section", str, "", path, where),
            required=_opt(ind, "required", bool, False, path, where),
            aggregation=_opt(ind, "aggregation", str, "sum" if kind == "count" else "gather", path, where),
        ))
    counts = {i.code for i in indicators if i.kind == "count"}

    def count_ref(d: Mapping[str, Any], key: str, where: str) -> str:
        ref = _req(d, key, str, path, where)
        if ref not in counts:
            raise ConfigError(path, where + key, f"{ref!r} is not a count indicator")
        return ref

    derived = []
    for i, d in enumerate(_opt(data, "derived", list, [], path, "")):
        where = f"derived[{i}]."
        kind = _req(d, "kind", str, path, where)
        if kind not in DERIVED_KINDS:
            raise ConfigError(path, where + "kind", f"{kind!r} is not one of {', '.join(DERIVED_KINDS)}")
        op = _req(d, "op", str, path, where)
        if op not in OPS:
            raise ConfigError(path, where + "op", f"{op!r} is not one of {', '.join(OPS)}")
        derived.append(Derived(
            code=_req(d, "code", str, path, where), label=_req(d, "label", str, path, where), kind=kind, op=op,
            target=float(_req(d, "target", (int, float), path, where)), group=_opt(d, "group", str, "", path, where),
            numerator=count_ref(d, "numerator", where) if kind == "ratio" else None,
            denominator=count_ref(d, "denominator", where) if kind == "ratio" else None,
            of=count_ref(d, "of", where) if kind in ("cut", "max") else None,
            plans=tuple(_opt(d, "plans", list, [], path, where)),
        ))
    relations = []
    for i, r in enumerate(_opt(data, "relations", list, [], path, "")):
        where = f"relations[{i}]."
        part, whole = count_ref(r, "part", where), count_ref(r, "whole", where)
        if part == whole:
            raise ConfigError(path, where + "whole", f"{whole!r} is its own part")
        relations.append(Relation(part, whole, _req(r, "part_name", str, path, where),
                                  _req(r, "whole_name", str, path, where)))
    checks = _opt(data, "checks", dict, {}, path, "")
    return Catalog(
        groups=groups, indicators=tuple(indicators), derived=tuple(derived), relations=tuple(relations),
        jump_ratio=float(_opt(checks, "jump_ratio", (int, float), 3.0, path, "checks.")),
        jump_min_value=int(_opt(checks, "jump_min_value", int, 20, path, "checks.")),
        peer_factor=float(_opt(checks, "peer_factor", (int, float), 5.0, path, "checks.")),
        peer_min_units=int(_opt(checks, "peer_min_units", int, 5, path, "checks.")),
    )


# ----------------------------------------------------------------------------- calendar, plans
def load_calendar_settings(path: Path) -> CalendarSettings:
    data = _read_toml(path)
    cutoff = {}
    for kind, window in _opt(data, "cutoff", dict, {}, path, "").items():
        if kind not in KINDS:
            raise ConfigError(path, f"cutoff.{kind}", f"not a period kind ({', '.join(KINDS)})")
        cutoff[kind] = (_req(window, "start", str, path, f"cutoff.{kind}."), _req(window, "end", str, path, f"cutoff.{kind}."))

    def dates(key: str) -> frozenset[date]:
        try:
            return frozenset(date.fromisoformat(v) for v in _opt(data, key, list, [], path, ""))
        except (TypeError, ValueError) as exc:
            raise ConfigError(path, key, f"dates must be YYYY-MM-DD ({exc})") from None

    kwargs: dict[str, Any] = {"extra_holidays": dates("extra_holidays"), "extra_working_days": dates("extra_working_days")}
    try:  # each year's recorded holiday decision (baocao/rules/yearschedule.py)
        kwargs["years"] = parse_years(_opt(data, "years", dict, {}, path, ""))
    except ValueError as exc:
        key, _, problem = str(exc).partition(": ")
        raise ConfigError(path, key, problem) from None
    if cutoff:
        kwargs["cutoff"] = cutoff
    return CalendarSettings(timezone=_opt(data, "timezone", str, "Asia/Ho_Chi_Minh", path, ""), **kwargs)


def _parse_time(value: str, file: Path, key: str) -> time:
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise ConfigError(file, key, f"{value!r} is not a time HH:MM") from None


def load_plan(path: Path, hierarchy: Hierarchy) -> Plan:
    data = _read_toml(path)
    code = _req(data, "code", str, path, "")
    if code != path.stem:
        raise ConfigError(path, "code", f"{code!r} must match the file name {path.stem!r}")
    root = _req(data, "root", str, path, "")
    if root not in hierarchy:
        raise ConfigError(path, "root", f"{root!r} is not a unit of the hierarchy")
    kinds = tuple(_req(data, "kinds", list, path, ""))
    for k in kinds:
        if k not in KINDS:
            raise ConfigError(path, "kinds", f"{k!r} is not a period kind ({', '.join(KINDS)})")
    nonworking = _opt(data, "nonworking", str, "previous", path, "")
    if nonworking not in NONWORKING_RULES:
        raise ConfigError(path, "nonworking", f"{nonworking!r} is not one of {', '.join(NONWORKING_RULES)}")
    deadlines = {}
    for key, rule in _req(data, "deadlines", dict, path, "").items():
        where = f"deadlines.{key}."
        if key not in LEVELS and key != "root" and key not in hierarchy:
            raise ConfigError(path, f"deadlines.{key}", "not a level, 'root' or a unit code")
        if not isinstance(rule, dict) or len(set(rule) & {"day", "before_parent_working_days"}) != 1:
            raise ConfigError(path, f"deadlines.{key}", "give exactly one of day or before_parent_working_days")
        day = _opt(rule, "day", int, None, path, where)
        if day is not None and not 1 <= day <= 31:
            raise ConfigError(path, where + "day", f"{day} is not a day of the month")
        back = _opt(rule, "before_parent_working_days", int, None, path, where)
        if back is not None and back < 0:
            raise ConfigError(path, where + "before_parent_working_days", "must be 0 or more")
        offset = _opt(rule, "month_offset", int, 0, path, where)
        if day is None and offset:
            raise ConfigError(path, where + "month_offset", "goes with day, not with before_parent_working_days")
        unknown = set(rule) - {"day", "before_parent_working_days", "month_offset"}
        if unknown:
            raise ConfigError(path, where + sorted(unknown)[0], "unknown key")
        deadlines[key] = DeadlineRule(day=day, before_parent_working_days=back, month_offset=offset)
    opening = _opt(data, "open", dict, {}, path, "")
    lock = _opt(data, "lock", dict, {}, path, "")
    rem = _opt(data, "reminders", dict, {}, path, "")
    report = _opt(data, "report", dict, {}, path, "")

    def days_list(key: str, default: tuple[int, ...]) -> tuple[int, ...]:
        values = _opt(rem, key, list, list(default), path, "reminders.")
        if not all(isinstance(v, int) and v >= 0 for v in values):
            raise ConfigError(path, f"reminders.{key}", "must be a list of whole numbers of working days >= 0")
        return tuple(values)

    recipients = tuple(_opt(report, "recipients", list, ["parent:coordinator", "parent:head"], path, "report."))
    for r in recipients:
        role, _, target = r.partition(":")
        if role not in ("parent", "unit", "self") or not target:
            raise ConfigError(path, "report.recipients", f"{r!r}: use parent:coordinator, parent:head or unit:CODE")
        if role == "unit" and target not in hierarchy:
            raise ConfigError(path, "report.recipients", f"{target!r} is not a unit")
    issue = _opt(report, "issue", str, None, path, "report.")
    if issue is not None and issue not in ISSUE_MODES:
        raise ConfigError(path, "report.issue", f"{issue!r}: use \"review\" (the unit issues it: draft, number, "
                          "signature, then sent up) or \"direct\" (sent up as made)")
    extra = {}
    for unit_code, addresses in _opt(report, "extra_recipients", dict, {}, path, "report.").items():
        if unit_code not in hierarchy:
            raise ConfigError(path, f"report.extra_recipients.{unit_code}", "not a unit")
        extra[unit_code] = _emails(addresses, path, f"report.extra_recipients.{unit_code}")
    return Plan(
        code=code, name=_req(data, "name", str, path, ""), root=root, kinds=kinds, deadlines=deadlines,
        nonworking=nonworking,
        open_working_days_before=_opt(opening, "working_days_before_deadline", int, 10, path, "open."),
        open_time=_parse_time(_opt(opening, "time", str, "08:00", path, "open."), path, "open.time"),
        lock_days_after=_opt(lock, "days_after_deadline", int, 10, path, "lock."),
        reminders=ReminderPolicy(days_list("before", (3, 1)), days_list("overdue", (1,)), days_list("escalate", (3,)),
                                 _non_negative(rem, "escalate_before_parent", 2, path)),
        consolidate_days_after=_opt(report, "consolidate_days_after_deadline", int, 1, path, "report."),
        recipients=recipients, extra_recipients=extra, issue=issue,
        tasks=_opt(data, "tasks", str, None, path, ""), source=str(path),
        short_name=_opt(data, "short_name", str, "", path, ""),
        labels=_plan_labels(data, path), targets=_plan_targets(data, path),
        basis=_basis(_opt(data, "basis", list, [], path, ""), path, "basis"),
        unit_basis={code: _basis(docs, path, f"unit_basis.{code}")
                    for code, docs in _unit_basis(data, path, hierarchy).items()},
        collectors=_collectors(data, path, hierarchy),
    )


def _collectors(data: Mapping[str, Any], path: Path, hierarchy: Hierarchy) -> dict[str, CollectorRule]:
    """`[collector.<level|root|CODE>] body, person, phone, email`: who collects at each level.

    A key that is not a level, `root` or a unit of the tree fails loading (and `config check`), as a
    deadline's does: a misspelt level would otherwise sign every message with the default body.
    """
    out = {}
    for key, entry in _opt(data, "collector", dict, {}, path, "").items():
        where = f"collector.{key}"
        if key not in LEVELS and key != "root" and key not in hierarchy:
            raise ConfigError(path, where, f"{key!r} is not a level ({', '.join(LEVELS)}), 'root' or a unit code")
        if not isinstance(entry, dict):
            raise ConfigError(path, where, "must be a table: body, person, phone, email")
        unknown = sorted(set(entry) - set(COLLECTOR_FIELDS))
        if unknown:
            raise ConfigError(path, f"{where}.{unknown[0]}", f"unknown key (use {', '.join(COLLECTOR_FIELDS)})")
        values = {k: " ".join(_req(entry, k, str, path, where + ".").split()) for k in entry}
        body = values.get("body", "")
        if body and "{" in body.replace("{unit}", ""):
            raise ConfigError(path, where + ".body", f"{body!r}: the only placeholder is {{unit}}")
        if values.get("email"):
            _emails(values["email"], path, where + ".email")
        out[key] = CollectorRule(**values)
    return out


def _basis(docs: list[Any], path: Path, key: str) -> tuple[str, ...]:
    """`basis = ["Kết luận số 226-KL/TW ngày 11/12/2025 của Ban Bí thư", ...]`: the documents a report cites."""
    if not all(isinstance(d, str) and d.strip() for d in docs):
        raise ConfigError(path, key, "must be a list of document citations (text)")
    return tuple(" ".join(d.split()) for d in docs)


def _unit_basis(data: Mapping[str, Any], path: Path, hierarchy: Hierarchy) -> dict[str, list[Any]]:
    """`[unit_basis] CODE = [...]`; a unit outside this installation's tree (`[official] provinces`) is skipped."""
    table = _opt(data, "unit_basis", dict, {}, path, "")
    for code, docs in table.items():
        if not isinstance(docs, list):
            raise ConfigError(path, f"unit_basis.{code}", "must be a list of document citations (text)")
    return {code: docs for code, docs in table.items() if code in hierarchy}


def _plan_labels(data: Mapping[str, Any], path: Path) -> dict[str, str]:
    """`[indicators.<CODE>] label = "..."`: the plan's own wording of an indicator (e.g. its meeting limits)."""
    labels = {}
    for code, over in _opt(data, "indicators", dict, {}, path, "").items():
        where = f"indicators.{code}."
        if not isinstance(over, dict):
            raise ConfigError(path, f"indicators.{code}", "must be a table with label")
        unknown = set(over) - {"label"}
        if unknown:
            raise ConfigError(path, where + sorted(unknown)[0], "unknown key (a plan may set label)")
        labels[code] = _req(over, "label", str, path, where)
    return labels


def _plan_targets(data: Mapping[str, Any], path: Path) -> dict[str, PlanTarget] | None:
    """`[targets.<CODE>]`: every target the plan sets, as it states it; None when the file has no `[targets]`."""
    if "targets" not in data:
        return None
    targets = {}
    for code, t in _req(data, "targets", dict, path, "").items():
        where = f"targets.{code}."
        if not isinstance(t, dict):
            raise ConfigError(path, f"targets.{code}", "must be a table with target (and op, label, source)")
        unknown = set(t) - {"target", "op", "label", "source"}
        if unknown:
            raise ConfigError(path, where + sorted(unknown)[0], "unknown key (use target, op, label, source)")
        op = _req(t, "op", str, path, where)
        if op not in OPS:
            raise ConfigError(path, where + "op", f"{op!r} is not one of {', '.join(OPS)}")
        targets[code] = PlanTarget(
            target=float(_req(t, "target", (int, float), path, where)), op=op,
            label=_opt(t, "label", str, None, path, where), source=_opt(t, "source", str, "", path, where),
        )
    return targets


def plan_catalog(catalog: Catalog, plan: Plan, indicators_file: Path) -> Catalog:
    """The plan's own catalogue, after checking that what the plan file names exists and agrees.

    An override naming an unknown code is an error (a typo would silently leave the catalogue's
    wording or target in the plan's forms and reports). A figure that `indicators.toml` limits to
    some plans (`plans = [...]`) and a plan's `[targets]` must tell the same story.
    """
    source = Path(plan.source)
    for code in plan.labels:
        if code not in catalog:
            raise ConfigError(source, f"indicators.{code}", f"{code!r} is not an indicator of {indicators_file.name}")
    if plan.targets is not None:
        by_code = {d.code: d for d in catalog.derived}
        for code in plan.targets:
            if code not in by_code:
                raise ConfigError(source, f"targets.{code}",
                                  f"{code!r} is not a derived figure of {indicators_file.name} "
                                  f"(have: {', '.join(by_code)})")
        for d in catalog.derived:
            if not d.plans:
                continue
            if d.code in plan.targets and plan.code not in d.plans:
                raise ConfigError(source, f"targets.{d.code}",
                                  f"{indicators_file.name} says only {', '.join(d.plans)} set this target; "
                                  f"add {plan.code!r} to its plans")
            if d.code not in plan.targets and plan.code in d.plans:
                raise ConfigError(source, "targets",
                                  f"{indicators_file.name} says this plan sets {d.code}; add [targets.{d.code}] "
                                  f"or remove {plan.code!r} from its plans")
    return catalog.for_plan(plan.code, plan.labels, plan.targets)


# ----------------------------------------------------------------------------- everything
@dataclass
class Config:
    """All configuration, read once and passed around."""

    directory: Path
    settings: Settings
    hierarchy: Hierarchy
    catalog: Catalog
    calendar: WorkCalendar
    plans: dict[str, Plan]
    extra: dict[str, Any] = field(default_factory=dict)
    # Per plan: how its task appendix names bodies (config/task_bodies.toml; empty when the file is absent).
    task_bodies: Mapping[str, BodyRules] = field(default_factory=dict)
    # Per plan: the catalogue as that plan words it and the targets it sets (see catalog_for).
    catalogs: Mapping[str, Catalog] = field(default_factory=dict)

    def catalog_for(self, plan: str) -> Catalog:
        """The catalogue a cycle of `plan` uses for its forms, checks, receipts and reports.

        `catalog` (indicators.toml as written) is only for reading a file before it is known which
        cycle it answers; everything said to a unit or in a report comes from here.
        """
        if plan in self.catalogs:
            return self.catalogs[plan]
        self.plan(plan)  # raises, naming the plans there are
        return self.catalog

    def plan(self, code: str) -> Plan:
        try:
            return self.plans[code]
        except KeyError:
            raise ConfigError(self.directory / "plans", code, f"no such plan (have: {', '.join(sorted(self.plans))})") from None

    def unit(self, code: str) -> Unit:
        try:
            return self.hierarchy[code]
        except KeyError:
            raise KeyError(f"no unit with code {code!r}") from None


def config_dir() -> Path:
    return Path(os.environ.get(ENV_PREFIX + "CONFIG_DIR", PROJECT_DIR / "config"))


def load_config(directory: Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    directory = Path(directory or config_dir())
    settings = load_settings(directory / "settings.toml", env)
    return _load_static(directory).with_settings(settings)


@dataclass
class _Static:
    hierarchy: Hierarchy
    catalog: Catalog
    calendar: WorkCalendar
    plans: dict[str, Plan]
    directory: Path
    task_bodies: Mapping[str, BodyRules]
    catalogs: Mapping[str, Catalog] = field(default_factory=dict)

    def with_settings(self, settings: Settings) -> Config:
        return Config(self.directory, settings, self.hierarchy, self.catalog, self.calendar, self.plans,
                      task_bodies=self.task_bodies, catalogs=self.catalogs)


@lru_cache(maxsize=8)
def _load_static(directory: Path) -> _Static:
    """The parts that do not depend on the environment, cached: the national tree takes a moment."""
    hierarchy = load_hierarchy(directory / "hierarchy.toml")
    catalog = load_catalog(directory / "indicators.toml")
    calendar = WorkCalendar(load_calendar_settings(directory / "calendar.toml"))
    plans = {}
    for path in sorted((directory / "plans").glob("*.toml")):
        plan = load_plan(path, hierarchy)
        plans[plan.code] = plan
    if not plans:
        raise ConfigError(directory / "plans", "", "no plan files")
    for derived in catalog.derived:
        for p in derived.plans:
            if p not in plans:
                raise ConfigError(directory / "indicators.toml", f"derived {derived.code}.plans", f"{p!r} is not a plan")
    catalogs = {code: plan_catalog(catalog, plan, directory / "indicators.toml") for code, plan in plans.items()}
    return _Static(hierarchy, catalog, calendar, plans, directory, load_task_bodies_file(directory / "task_bodies.toml"),
                   catalogs)


def load_task_bodies_file(path: Path) -> dict[str, BodyRules]:
    """The appendix rules, read with the rest of ``config/``; none when the file is absent (no plan imports tasks).

    A shape error is a :class:`ConfigError` like any other file's, so a broken file stops every
    command at start-up instead of at the first appendix import.
    """
    if not path.exists():
        return {}
    try:
        return parse_task_bodies(_read_toml(path), path)
    except TaskBodiesError as exc:
        raise ConfigError(exc.file, exc.key, exc.problem) from None


# ----------------------------------------------------------------------------- public credentials
MIN_SECRET_CHARS = 24  # token_urlsafe(18); a human-typed phrase this long is still guessable, but not a default
# Credentials published with the code (settings.toml, the demo and test servers): anyone can use them.
PUBLIC_SECRETS = frozenset({
    Settings.model_fields["token_secret"].default.get_secret_value(),
    "imap-secret-42",  # baocao.devservers.imapserver.DemoImapServer's default password
    "imap-test-secret", "test-token-secret-0123456789",  # tests/conftest.py
})
_NEW_SECRET = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def is_loopback(host: str) -> bool:
    """True for a host that is this machine: 127.0.0.0/8, ::1, `localhost` (no DNS lookup: a name
    that merely resolves to 127.0.0.1 counts as remote, the safe side)."""
    name = host.strip().strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def refuse_public_credentials(settings: Settings, file: str | Path = "settings.toml") -> None:
    """Raise :class:`ConfigError` when mail leaves this machine with a credential anyone knows.

    The demo secret ships in `settings.toml`: with it anyone computes any unit's token and sends a
    form as that unit. On loopback (the demo, the tests) nothing leaves the machine, so the defaults
    stay usable there; with a non-loopback SMTP or IMAP host the token secret must be set, long and
    not one published with the code, and so must the passwords of the hosts that are remote. The
    message names the setting and the host, never the value.
    """
    remote = [f"{name}.host = {host!r}" for name, host in (("smtp", settings.smtp.host), ("imap", settings.imap.host))
              if not is_loopback(host)]
    if not remote:
        return
    where = " and ".join(remote)
    problems: list[tuple[str, str]] = []
    secret = settings.token_secret.get_secret_value()
    if not secret.strip():
        problems.append(("token_secret", "is empty"))
    elif secret in PUBLIC_SECRETS:
        problems.append(("token_secret", "is the public demo value (anyone can compute every unit's token with it)"))
    elif len(secret) < MIN_SECRET_CHARS or len(set(secret)) < 8:
        problems.append(("token_secret", f"is too short or too uniform ({len(secret)} characters; at least "
                                         f"{MIN_SECRET_CHARS}, of at least 8 different characters)"))
    for name, server in (("smtp", settings.smtp), ("imap", settings.imap)):
        if is_loopback(server.host):
            continue
        password = server.password.get_secret_value()
        if password in PUBLIC_SECRETS:
            problems.append((f"{name}.password", "is a public demo value"))
        elif not password and (server.username or name == "imap"):
            problems.append((f"{name}.password", f"is empty although {name}.username is set" if server.username
                             else "is empty"))
    if problems:
        keys = ", ".join(k for k, _ in problems)
        detail = "; ".join(f"{k} {p}" for k, p in problems)
        env = ", ".join(ENV_PREFIX + k.upper().replace(".", "__") for k, _ in problems)
        how = f" (the token secret: a new random value, e.g. `{_NEW_SECRET}`)" if "token_secret" in keys else ""
        raise ConfigError(file, keys, f"{detail}, and mail goes beyond this machine ({where}). "
                                      f"Set {env}{how} before starting.")


def check(config: Config, year: int) -> list[str]:
    """Warnings about things that are legal but suspicious; errors are raised while loading."""
    warnings = []
    cal = config.calendar
    for plan in config.plans.values():
        for kind in plan.kinds:
            period = Period(year, kind)
            try:
                unit_deadlines(plan, period, config.hierarchy, cal)
            except ScheduleError as exc:
                warnings.append(f"{plan.source}: {exc}")
                continue
            cut_end = cal.cutoff_window(period)[1]
            for key, rule in plan.deadlines.items():
                if rule.day is None:
                    continue
                raw = _raw_day(period, rule.day, rule.month_offset)
                if raw < cut_end:
                    warnings.append(
                        f"{plan.source}: deadlines.{key}: {period.code} deadline {raw:%d/%m/%Y} falls before the "
                        f"cut-off ends ({cut_end:%d/%m/%Y}): figures after it are not counted"
                    )
                if not cal.is_working_day(raw):
                    moved = cal.adjust(raw, plan.nonworking)
                    warnings.append(
                        f"{plan.source}: deadlines.{key}: {period.code} deadline {raw:%d/%m/%Y} is not a working day; "
                        f"moved to {moved:%d/%m/%Y} ({plan.nonworking})"
                    )
    for unit in config.hierarchy.units.values():
        if not unit.coordinator_emails:
            warnings.append(f"{config.directory / 'hierarchy.toml'}: unit {unit.code} ({unit.name}) has no coordinator address")
        if not unit.head_emails:
            warnings.append(f"{config.directory / 'hierarchy.toml'}: unit {unit.code} ({unit.name}) has no head address")
    warnings += check_task_bodies(config.task_bodies, config.hierarchy)
    # Holidays only computed by the `holidays` package that move a deadline or an opening day.
    warnings += unconfirmed_warnings(config.plans.values(), config.hierarchy, cal, year, config.directory / "calendar.toml")
    # A unit under two plans (the national one and its own) that give it different days: each cycle uses
    # the earliest (baocao/rules/overlaps.py); the office should know, and may align its plan.
    warnings += lines_vi(plan_disagreements(config.plans.values(), config.hierarchy, cal, year), config.hierarchy)
    # An escalation that cannot leave the parent the plan's working days before its own deadline.
    warnings += escalation_warnings(config.plans.values(), config.hierarchy, cal, year)
    return warnings


def _non_negative(data: Mapping[str, Any], key: str, default: int, path: Path) -> int:
    value = _opt(data, key, int, default, path, "reminders.")
    if value < 0:
        raise ConfigError(path, f"reminders.{key}", "must be a whole number of working days >= 0")
    return value


def _raw_day(period: Period, day: int, month_offset: int = 0) -> date:
    """The configured day before any move off a non-working day."""
    import calendar as stdcal

    year, month = divmod(period.year * 12 + period.end_month - 1 + month_offset, 12)
    last = stdcal.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day, last))
