"""Dashboards as Prefect artifacts, with stable keys so the UI keeps their history.

Per open cycle and per consolidating unit: a table of each child's state and a progress
artifact of completeness. Published by the collect and chase flows after each run.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from prefect.artifacts import Artifact, ProgressArtifact, TableArtifact, create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.utilities.asyncutils import run_coro_as_sync

from baocao import runtime
from baocao.rules.formatting import percent_vi
from baocao.store.queries import open_cycles
from baocao.store.states import RequestState
from baocao.store.status import subtree_counts, unit_statuses

MAX_TABLES_PER_CYCLE = 40  # a national cycle has 35 consolidators at province level and above
IN_FLIGHT = 8  # artifacts being created at once (each is one request and one write on the API)


def artifact_key(*parts: str) -> str:
    """Prefect artifact keys allow lower-case letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")


STATE_VI = {state.value: state.label_vi for state in RequestState}
"""How the status table's header counts each state (the rows keep the state codes of `baocao status`)."""


def rows_summary(states: Sequence[str]) -> str:
    """`4 đơn vị trực thuộc: 3 đã nộp, 1 chưa gửi yêu cầu`: counts of exactly the rows shown.

    The header used to give the whole subtree's form units (a province's: every commune's
    departments) above a table of its direct children only, so the two never agreed.
    """
    counts: dict[str, int] = {}
    for state in states:
        counts[state] = counts.get(state, 0) + 1
    order = list(STATE_VI)
    parts = [f"{n} {STATE_VI.get(state, state)}"
             for state, n in sorted(counts.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else 99))]
    return f"{len(states)} đơn vị trực thuộc" + (": " + ", ".join(parts) if parts else "")


def shown_state(state: str, on_time: bool | None) -> str:
    """A row's state as the table shows it: a report accepted after its deadline is "late" ("nộp muộn").

    A consolidator's request becomes ``accepted`` with ``on_time`` when its report is issued or sent;
    shown as accepted alone, a ward that issued its report a week late looked punctual.
    """
    return RequestState.LATE.value if state == RequestState.ACCEPTED and on_time is False else state


def completeness_line(counts: dict[str, Any]) -> str:
    """`12/25 đơn vị đã nộp (48,0%), 10 đúng hạn, 14 đã gửi tệp`: the counts behind the percentage."""
    return (f"{counts['accepted']}/{counts['expected']} đơn vị đã nộp ({percent_vi(counts['completeness'])}), "
            f"{counts['on_time']} đúng hạn, {counts['received']} đã gửi tệp")


def publish_progress(as_of: datetime | None = None) -> int:
    """Publish the state table and completeness of each consolidator of every open cycle.

    Per cycle also one table `completeness-<period>-<plan>` with every consolidator's counts
    (expected, received, accepted, on time): a progress bar alone shows 48 % but not of how many.
    """
    cfg = runtime.config()
    db = runtime.database(cfg)
    artifacts: list[Artifact] = []
    published = 0
    for cycle in open_cycles(db):
        statuses = unit_statuses(db, cfg, cycle)
        by_parent: dict[str, list[Any]] = {}
        for s in statuses:
            if s.parent:
                by_parent.setdefault(s.parent, []).append(s)
        parents = [s.unit for s in statuses if s.role == "consolidate"]
        parents.sort(key=lambda code: cfg.hierarchy.depth(code))
        totals = []
        for parent in parents[:MAX_TABLES_PER_CYCLE]:
            counts = subtree_counts(cfg, statuses, parent)
            children = by_parent.get(parent, [])
            rows = [{"unit": c.unit, "name": c.name, "state": shown_state(c.state, c.on_time), "deadline": c.deadline,
                     "files": c.files, "reason": (c.reason or "")[:200]} for c in children]
            name = cfg.hierarchy[parent].name
            artifacts.append(TableArtifact(
                key=artifact_key("status", cycle.period, cycle.plan, parent), table=rows,
                description=f"{name} — {cycle.period} ({cycle.plan}): "
                            f"{rows_summary([shown_state(c.state, c.on_time) for c in children])}"))
            artifacts.append(ProgressArtifact(
                key=artifact_key("completeness", cycle.period, cycle.plan, parent),
                progress=100.0 * (counts["completeness"] or 0.0),
                description=f"{name} — {cycle.period} ({cycle.plan}): {completeness_line(counts)}"))
            totals.append({"unit": parent, "name": name, "expected": counts["expected"],
                           "received": counts["received"], "accepted": counts["accepted"],
                           "on_time": counts["on_time"], "exempt": counts["exempt"],
                           "completeness": percent_vi(counts["completeness"])})
        published += len(totals)
        if totals:
            artifacts.append(TableArtifact(
                key=artifact_key("completeness", cycle.period, cycle.plan), table=totals,
                description=f"Tiến độ nộp báo cáo kỳ {cycle.period} ({cycle.plan}) theo đơn vị tổng hợp: "
                            "số đơn vị phải nộp, đã gửi tệp, đã nộp, đúng hạn"))
    create_all(artifacts)
    return published  # the consolidators published


def create_all(artifacts: Sequence[Artifact]) -> None:
    """Create the artifacts over one client, several requests in flight.

    One after another, each with its own client as ``create_table_artifact`` makes, the 78 of a
    national cycle took 1.5 s of every collect run. ``run_coro_as_sync`` carries the run's context
    into the event loop, so each artifact still belongs to the run that published it (tested).
    """
    async def create() -> None:
        gate = asyncio.Semaphore(IN_FLIGHT)
        async with get_client() as client:
            async def one(artifact: Artifact) -> None:
                async with gate:
                    await artifact.acreate(client)

            await asyncio.gather(*(one(a) for a in artifacts))

    if artifacts:
        run_coro_as_sync(create())


def publish_headline(unit: str, period: str, plan: str, figures: dict[str, Any]) -> None:
    """A markdown artifact with a consolidated report's headline figures."""
    cfg = runtime.config()
    lines = [f"# {cfg.hierarchy[unit].name} — {period} ({plan})", ""]
    comp = figures.get("completeness", {})
    lines.append(f"Completeness: {comp.get('accepted', 0)}/{comp.get('expected', 0)} "
                 f"({percent_vi(comp.get('rate'))}), on time {percent_vi(comp.get('timeliness'))}")
    lines.append("")
    lines.append("| figure | value | target | met |")
    lines.append("|---|---|---|---|")
    for code, d in figures.get("derived", {}).items():
        value = d.get("value")
        shown = "—" if value is None else (f"{value:.1f} %" if d.get("kind") in ("ratio", "cut") else f"{value:.0f}")
        lines.append(f"| {d.get('label', code)} | {shown} | {d.get('op', '')} {d.get('target', '')} | "
                     f"{'yes' if d.get('met') else ('no' if d.get('met') is False else '—')} |")
    create_markdown_artifact(key=artifact_key("headline", period, plan, unit), markdown="\n".join(lines),
                             description=f"Consolidated figures of {cfg.hierarchy[unit].name}, {period}")
