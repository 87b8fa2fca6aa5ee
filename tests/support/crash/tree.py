"""A configuration directory for the crash tests: the shipped `config/` plus one more level.

The Tứ Kỳ plan (seed 000) has the commune and four departments. Three of the departments get
three teams each (tổ), so the tree is three levels deep: the commune consolidates the
departments, three departments consolidate their teams, and ten units fill a form. Small enough
to run a whole cycle in seconds, deep enough that consolidation goes children before parents.
The shipped files are copied, never changed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[3]
PLAN = "tu-ky"
PERIOD = "2026-H1"
ROOT = "X11074"
SPLIT = {"X11074-VHXH": "Phòng Văn hóa - Xã hội", "X11074-VP": "Văn phòng HĐND và UBND",
         "X11074-KT": "Phòng Kinh tế"}
TEAMS = 3


def team_codes() -> list[str]:
    return [f"{dep}-T{i}" for dep in SPLIT for i in range(1, TEAMS + 1)]


def make_config(dest: Path) -> Path:
    """Copy config/ to `dest` and add the teams to its hierarchy; returns `dest`."""
    if dest.exists():
        return dest
    shutil.copytree(PROJECT / "config", dest)
    lines = ["", "# --- crash tests: teams under three of Tứ Kỳ's departments (a third level)"]
    for dep, name in SPLIT.items():
        for i in range(1, TEAMS + 1):
            lines += ["[[departments]]", f'parent = "{dep}"', f'code = "{dep}-T{i}"',
                      f'name = "Tổ {i} {name} xã Tứ Kỳ"', 'kind = "tổ"', ""]
    with (dest / "hierarchy.toml").open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines))
    return dest
