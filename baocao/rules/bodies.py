"""Administrative bodies: how a message addresses a unit and who signs it.

A unit of the hierarchy is a place or an office ("Phường Lê Thanh Nghị", "Sở Nội vụ thành phố
Huế"); a letter is addressed to, and signed by, a *body*: "Ủy ban nhân dân phường Lê Thanh Nghị",
the department by its own name, "Bộ Nội vụ". And the body that asks for the figures is seldom
the People's Committee itself but the office that collects them for it (Sở Nội vụ, Văn phòng UBND,
Phòng Văn hóa - Xã hội): each plan says which, per level, in ``[collector]`` (read by
:mod:`baocao.rules.config`), with the person and phone number a clerk can call.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from baocao.rules.hierarchy import Hierarchy, Unit

__all__ = ["COLLECTOR_FIELDS", "Collector", "CollectorRule", "body_name", "collector_for", "full_name",
           "place_name"]

# What a `[collector.<level|root|CODE>]` entry may hold; `body` may say `{unit}` for the collecting
# unit as a sentence names it ("thành phố Hải Phòng").
COLLECTOR_FIELDS = ("body", "person", "phone", "email")

_KINDS = ("Thành phố", "Tỉnh", "Đặc khu", "Phường", "Xã", "Thị trấn")


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip()


def full_name(unit: Unit) -> str:
    """The unit's name with its kind: the official list names most provinces bare ("Lai Châu")."""
    name = _nfc(unit.name)
    if unit.level == "province" and not any(name.casefold().startswith(k.casefold() + " ") for k in _KINDS):
        return f"Tỉnh {name}"
    return name


def place_name(unit: Unit) -> str:
    """The unit as a sentence names it after a noun: "thành phố Hải Phòng", "phường Nhị Chiểu".

    Only a place's kind is lowered: a department keeps its capital ("Sở Nội vụ ...").
    """
    name = full_name(unit)
    if unit.level in ("province", "commune"):
        return name[:1].lower() + name[1:]
    return name


def body_name(unit: Unit) -> str:
    """The body a letter addresses: "Ủy ban nhân dân phường Nhị Chiểu" for a province or commune (its
    People's Committee), a department's or the ministry's own name ("Sở Nội vụ thành phố Hải Phòng",
    "Bộ Nội vụ")."""
    if unit.level in ("province", "commune"):
        return "Ủy ban nhân dân " + place_name(unit)
    return _nfc(unit.name)


@dataclass(frozen=True)
class CollectorRule:
    """One ``[collector.<key>]`` entry of a plan, as configured (``body`` may hold ``{unit}``)."""

    body: str = ""
    person: str = ""
    phone: str = ""
    email: str = ""


@dataclass(frozen=True)
class Collector:
    """The body that asks a unit for its report, chases it and answers it, with whom to call there."""

    body: str
    person: str = ""
    phone: str = ""
    email: str = ""

    @property
    def contact_line(self) -> str:
        """ "Đầu mối liên hệ: Nguyễn Thị Hoa, Sở Nội vụ thành phố Hải Phòng, điện thoại 0225.3000.226,
        thư điện tử daumoi...": what a clerk needs to pick up the phone; missing parts are left out."""
        return self.contact_intro + (f", thư điện tử {self.email}" if self.email else "")

    @property
    def contact_intro(self) -> str:
        """:attr:`contact_line` without the address (HTML writes the address as a link after it)."""
        parts = [p for p in (self.person, self.body) if p]
        if self.phone:
            parts.append(f"điện thoại {self.phone}")
        return "Đầu mối liên hệ: " + ", ".join(parts)


def _default_body(collecting: Unit, hierarchy: Hierarchy) -> str:
    """Unconfigured: a People's Committee collects through its office, a ministry or department itself."""
    if collecting.level in ("province", "commune"):
        return "Văn phòng Ủy ban nhân dân " + place_name(collecting)
    return body_name(collecting)


def collector_for(rules: dict[str, CollectorRule], plan_root: str, hierarchy: Hierarchy, unit_code: str, *,
                  fallback_email: str = "") -> Collector:
    """Who collects `unit_code`'s report under a plan whose ``[collector]`` is `rules`.

    The collecting unit is the unit's parent (the root answers to itself). Its entry is looked up
    by its code, then ``root`` (the plan's root), then its level; the first entry that says a field
    gives it. Unconfigured, the body is :func:`_default_body`. The address is the entry's ``email``,
    else that of the department of the collecting unit bearing the body's name (Sở Nội vụ thành phố
    Hải Phòng is a unit of the tree), else the collecting unit's coordinator, else `fallback_email`.
    """
    collecting = hierarchy.parent(unit_code) or hierarchy[unit_code]
    keys = [collecting.code] + (["root"] if collecting.code == plan_root else []) + [collecting.level]
    entries = [rules[k] for k in keys if k in rules]

    def first(attr: str) -> str:
        return next((getattr(e, attr) for e in entries if getattr(e, attr)), "")

    template = first("body")
    body = template.replace("{unit}", place_name(collecting)) if template else _default_body(collecting, hierarchy)
    email = first("email")
    if not email:
        office = next((c for c in hierarchy.children(collecting.code)
                       if _nfc(c.name).casefold() == body.casefold() and c.coordinator_emails), None)
        email = (office or collecting).coordinator_emails[0] if (office or collecting).coordinator_emails else ""
    return Collector(body=body, person=first("person"), phone=first("phone"), email=email or fallback_email)
