"""One scale of the benchmark: a whole simulated H1 cycle, as Prefect flows and as plain functions.

Imported only after :mod:`benchmarks.__main__` has pointed the configuration and Prefect at the
benchmark's temporary directory (Prefect reads PREFECT_HOME when it is first imported).

What one scale does, each figure from this one run:

1. **Flow run** on a fresh SQLite database: the ``open-period`` flow (forms built, requests mailed),
   the units reply (their forms filled and dropped in the drop folder; the units' side, timed
   apart), the ``collect`` flow (drop folder only; receipts mailed), the ``consolidate`` flow
   (every consolidator's report rendered and mailed). As in :mod:`flows.demo`, time is simulated
   with ``as_of``.
2. **Plain run** on another fresh database: the same stages as plain function calls, no Prefect
   the library's calls in the flows' order (``dispatch.prepare_requests`` + ``opening.steps.send_requests``;
   ``channels.collect_folder`` + ``intake.steps.send_replies``; ``consolidation.steps.reports_due`` +
   ``make_report`` + ``consolidation.steps.send_reports``, level by level). Forms per second and
   drop-folder submissions per second come from here; the aggregation time (frames loaded, then
   ``consolidate_tree``) is measured in one more call, kept out of the totals;
   the collected files are then read and validated again in this process alone (the checks' rate
   on one core, without storing, replying or reader processes).
3. **Sending against a slow server**: requests of the plain run are set pending again and sent to
   the SMTP sink answering every DATA after 50 ms.
4. **IMAP path**: corrected forms of up to 200 units are APPENDed to a real pymap server and the
   mailbox is collected (``channels.collect_mailbox``).
"""

from __future__ import annotations

import email.policy
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pendulum
import psutil
from sqlalchemy import func, select, update

from baocao import runtime
from baocao.consolidation.aggregate import consolidate_tree
from baocao.consolidation.renderpool import REPORT_THREADS, RenderPool
from baocao.consolidation.reporting import costliest_first, frames, make_report
from baocao.consolidation.steps import reports_due, send_reports
from baocao.devservers.simulate import figures as draw_figures
from baocao.intake.channels import collect_folder, collect_mailbox
from baocao.intake.steps import send_replies
from baocao.mail import outbox
from baocao.mail.kinds import Kind
from baocao.opening import dispatch
from baocao.opening.forms import FormBuilder, FormSpec
from baocao.opening.steps import send_requests
from baocao.rules.config import Config
from baocao.rules.periods import Period
from baocao.rules.plans import open_at
from baocao.store.db import Blob, Database, OutboxMessage, Report, Request, Submission
from baocao.store.migrate import upgrade
from baocao.store.queries import CycleInfo, find_cycle, open_cycle, sync_units
from baocao.tasks.taskbook import import_appendix
from benchmarks.servers import SinkClient, start_imap
from benchmarks.units import FastFiller

PERIOD = "2026-H1"
PLAN = "national"
TASK_APPENDIX = ("nhi-chieu", "appendices/nhi-chieu.txt")  # as the demo: tasks on some units' forms
SLOW_SMTP_DELAY = 0.05
IMAP_MESSAGES = 200


@dataclass
class ScaleResult:
    scale: str
    root: str
    root_name: str
    units: int
    form_units: int
    consolidators: int
    flow: dict[str, float] = field(default_factory=dict)  # stage -> wall seconds
    plain: dict[str, float] = field(default_factory=dict)  # stage -> wall seconds
    flow_cpu: dict[str, float] = field(default_factory=dict)  # stage -> CPU seconds of this process
    flow_server_cpu: dict[str, float] = field(default_factory=dict)  # stage -> CPU seconds of the Prefect server
    plain_cpu: dict[str, float] = field(default_factory=dict)
    rss_after: dict[str, dict[str, int]] = field(default_factory=dict)  # run -> stage -> RSS (bytes) at its end
    intake: dict[str, float] = field(default_factory=dict)  # reading and validating the same files, one process
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # run -> count -> n
    forms_built: int = 0
    build_seconds: float = 0.0  # FormBuilder.build alone, inside the plain run's prepare stage
    mail: dict[str, float] = field(default_factory=dict)
    imap: dict[str, float] = field(default_factory=dict)
    aggregation: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class TimedBuilder(FormBuilder):
    """A FormBuilder that adds up the time spent in :meth:`build` (the form itself, nothing else)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seconds = 0.0
        self.built = 0

    def build(self, spec: FormSpec) -> bytes:
        t = time.perf_counter()
        try:
            return super().build(spec)
        finally:
            self.seconds += time.perf_counter() - t
            self.built += 1


# ----------------------------------------------------------------------------- profiling
PROFILE_DIR: Path | None = None  # set by --profile: each plain stage writes a pyinstrument profile there


@contextmanager
def profiled(name: str) -> Iterator[None]:
    """Profile the block with pyinstrument when --profile is given (text and HTML under PROFILE_DIR)."""
    if PROFILE_DIR is None:
        yield
        return
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.001)
    profiler.start()
    try:
        yield
    finally:
        profiler.stop()
        PROFILE_DIR.mkdir(parents=True, exist_ok=True)
        (PROFILE_DIR / f"{name}.txt").write_text(profiler.output_text(unicode=True, color=False))
        (PROFILE_DIR / f"{name}.html").write_text(profiler.output_html())


# ----------------------------------------------------------------------------- setup
def use_database(tmp: Path, name: str) -> tuple[Config, Database]:
    """Point the configuration at a fresh SQLite file and drop folder; migrate, load units and tasks."""
    url = f"sqlite:///{tmp / f'{name}.db'}"
    os.environ["BAOCAO_DATABASE_URL"] = url
    os.environ["BAOCAO_DROP_FOLDER"] = str(tmp / f"{name}-dropbox")
    runtime.reset()
    cfg = runtime.config()
    upgrade(url)
    db = runtime.database(cfg)
    sync_units(db, cfg.hierarchy)
    plan_code, appendix = TASK_APPENDIX
    import_appendix(db, cfg, cfg.directory / appendix, plan_code, int(PERIOD[:4]))
    return cfg, db


@dataclass(frozen=True)
class Timeline:
    opened: datetime
    collect_at: datetime
    imap_at: datetime
    consolidate_at: datetime


def timeline(cfg: Config, db: Database, cycle: CycleInfo, opened: datetime) -> Timeline:
    """Replies the day after opening (before every deadline); consolidation after the last deadline."""
    with db.session() as s:
        first_due = s.scalar(select(func.min(Request.due_at)).where(Request.cycle_id == cycle.id,
                                                                    Request.role == "form"))
        last = s.scalar(select(func.max(Request.deadline)).where(Request.cycle_id == cycle.id))
    tz = cfg.calendar.settings.timezone
    collect_at = min(pendulum.instance(opened).add(days=1), pendulum.instance(first_due).in_tz(tz).subtract(hours=2))
    plan = cfg.plan(cycle.plan)
    day = cfg.calendar.add_working_days(last, plan.consolidate_days_after + 1)
    cons = pendulum.datetime(day.year, day.month, day.day, 17, 0, tz=tz)
    return Timeline(opened, collect_at, collect_at.add(hours=1), cons)


def sent_forms(db: Database, cycle: CycleInfo) -> dict[str, tuple[bytes, str]]:
    """unit -> (form, file name): the form attached to each unit's request, as the SMTP server got it."""
    with db.session() as s:
        rows = s.execute(select(OutboxMessage.unit_code, OutboxMessage.attachments)
                         .where(OutboxMessage.cycle_id == cycle.id, OutboxMessage.kind == Kind.REQUEST)).all()
        refs = {a["blob_id"]: (unit, a["filename"]) for unit, atts in rows for a in atts
                if a["filename"].endswith(".xlsx")}
        out = {}
        for blob in s.scalars(select(Blob).where(Blob.id.in_(list(refs)))):
            unit, name = refs[blob.id]
            out[unit] = (blob.content, name)
    return out


def units_reply(cfg: Config, db: Database, cycle: CycleInfo, drop: Path, seed: int) -> int:
    """Every unit that was sent a form fills it and drops it in the drop folder."""
    rng = random.Random(seed)
    filler = FastFiller(cfg.catalog)
    drop.mkdir(parents=True, exist_ok=True)
    forms = sent_forms(db, cycle)
    for unit in sorted(forms):
        form, name = forms[unit]
        filled = draw_figures(cfg.catalog, rng, scale=rng.uniform(0.5, 3.0))
        (drop / name).write_bytes(filler.fill(form, filled, rng))
    return len(forms)


def counts(db: Database, cycle: CycleInfo) -> dict[str, int]:
    with db.session() as s:
        def n(q: Any) -> int:
            return int(s.scalar(q) or 0)

        forms = sum(1 for atts in s.scalars(select(OutboxMessage.attachments).where(
            OutboxMessage.cycle_id == cycle.id, OutboxMessage.kind == Kind.REQUEST))
            if any(a["filename"].endswith(".xlsx") for a in atts))
        return {
            "requests_written": n(select(func.count()).select_from(OutboxMessage).where(
                OutboxMessage.cycle_id == cycle.id, OutboxMessage.kind == Kind.REQUEST)),
            "requests_sent": n(select(func.count()).select_from(OutboxMessage).where(
                OutboxMessage.cycle_id == cycle.id, OutboxMessage.kind == Kind.REQUEST, OutboxMessage.status == "sent")),
            "forms_built": forms,
            "replies_stored": n(select(func.count(func.distinct(Submission.unit_code))).select_from(Submission)
                                .join(Request, Request.id == Submission.request_id)
                                .where(Request.cycle_id == cycle.id, Submission.status == "accepted")),
            "receipts_sent": n(select(func.count()).select_from(OutboxMessage).where(
                OutboxMessage.cycle_id == cycle.id, OutboxMessage.kind == Kind.RECEIPT, OutboxMessage.status == "sent")),
            "reports_made": n(select(func.count()).select_from(Report).where(Report.cycle_id == cycle.id)),
            # A report made is mailed up (direct) or, reviewed, as the draft to its unit: the same rendered files.
            "reports_sent": n(select(func.count()).select_from(OutboxMessage).where(
                OutboxMessage.cycle_id == cycle.id, OutboxMessage.kind.in_((Kind.REPORT, Kind.DRAFT)),
                OutboxMessage.status == "sent")),
        }


# ----------------------------------------------------------------------------- clocks
class Clock:
    """Wall and CPU seconds per stage: CPU of this process (all its threads) and, when given, of the
    Prefect server process; on a shared machine the CPU seconds show what the wall seconds cost."""

    def __init__(self, server_cpu: Callable[[], float] | None = None) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.server_cpu: dict[str, float] = {}
        self.rss: dict[str, int] = {}  # this process's RSS when the stage ended: where memory grows
        self._server = server_cpu

    @contextmanager
    def __call__(self, name: str, *, profile: str | None = None) -> Iterator[None]:
        s0 = self._server() if self._server else 0.0
        c0, w0 = time.process_time(), time.perf_counter()
        with profiled(profile) if profile else nullcontext():
            yield
        self.wall[name] = time.perf_counter() - w0
        self.cpu[name] = time.process_time() - c0
        self.rss[name] = psutil.Process().memory_info().rss
        if self._server:
            self.server_cpu[name] = self._server() - s0

    def add(self, name: str, *parts: str) -> None:
        for d in (self.wall, self.cpu, self.server_cpu):
            if all(p in d for p in parts):
                d[name] = sum(d[p] for p in parts)


# ----------------------------------------------------------------------------- the flow run
def flow_run(res: ScaleResult, tmp: Path, seed: int, sink: SinkClient, server_cpu: Callable[[], float]) -> None:
    from flows.collect import collect
    from flows.consolidate import consolidate
    from flows.open_period import open_period

    cfg, db = use_database(tmp, f"{res.scale}-flow")
    plan = cfg.plan(PLAN)
    opened = open_at(plan, Period.parse(PERIOD), cfg.hierarchy, cfg.calendar, root=res.root)
    sink.reset()
    clock = Clock(server_cpu)
    with clock("open"):
        opened_result = open_period(period=PERIOD, plan=PLAN, root=res.root, as_of=opened)
    cycle = find_cycle(db, PERIOD, PLAN, res.root)
    assert cycle is not None
    when = timeline(cfg, db, cycle, opened)
    with clock("units_fill"):
        replied = units_reply(cfg, db, cycle, cfg.settings.resolve(cfg.settings.drop_folder), seed)
    with clock("collect"):
        collected = collect(as_of=when.collect_at, mailbox=False, folder=True)
    with clock("consolidate"):
        consolidated = consolidate(period=PERIOD, plan=PLAN, root=res.root, as_of=when.consolidate_at)
    clock.add("total", "open", "collect", "consolidate")
    clock.add("wall_with_units", "open", "units_fill", "collect", "consolidate")
    res.flow, res.flow_cpu, res.flow_server_cpu = clock.wall, clock.cpu, clock.server_cpu
    res.rss_after["flow"] = clock.rss
    res.counts["flow"] = counts(db, cycle) | {"units_replied": replied, "batches": int(opened_result["batches"]),
                                              "sink_messages": sink.stats()["messages"]}
    by_status = collected.get("folder", {}).get("by_status", {})
    if set(by_status) - {"accepted"}:
        res.notes.append(f"flow run: collect outcomes {by_status}")
    reports = next(iter(consolidated.values()))["reports"] if consolidated else []
    res.counts["flow"]["reports_in_run"] = len(reports)


# ----------------------------------------------------------------------------- the plain run
def plain_run(res: ScaleResult, tmp: Path, seed: int, sink: SinkClient) -> tuple[Config, Database, CycleInfo, Timeline]:
    cfg, db = use_database(tmp, f"{res.scale}-plain")
    h = cfg.hierarchy
    plan = cfg.plan(PLAN)
    period = Period.parse(PERIOD)
    opened = open_at(plan, period, h, cfg.calendar, root=res.root)
    sink.reset()
    clock = Clock()
    tag = res.scale

    # open: record the cycle, build forms and write requests per batch, send them (higher levels first)
    with clock("record"):
        cycle = open_cycle(db, cfg, period, PLAN, res.root)
    with clock("prepare", profile=f"{tag}-prepare"):
        builder = TimedBuilder(cfg.catalog)  # open-period builds its builder in its first task too
        written = 0
        for units in dispatch.cascade_batches(cfg, cycle.root):
            prepared = dispatch.prepare_requests(db, cfg, cycle, units, builder)
            if prepared.failed:
                raise RuntimeError(f"plain run: units failed: {prepared.failed}")
            written += len(prepared.written)
    with clock("send_requests", profile=f"{tag}-send-requests"):
        send_requests(db, cfg, cycle)
    clock.add("open", "record", "prepare", "send_requests")
    res.forms_built, res.build_seconds = builder.built, builder.seconds

    when = timeline(cfg, db, cycle, opened)
    with clock("units_fill"):
        replied = units_reply(cfg, db, cycle, cfg.settings.resolve(cfg.settings.drop_folder), seed)

    # collect: the drop folder, then the receipts
    drop = cfg.settings.resolve(cfg.settings.drop_folder)
    with clock("collect_folder", profile=f"{tag}-collect-folder"):
        report = collect_folder(db, cfg, as_of=when.collect_at)
    res.intake = check_rate(cfg, sorted((drop / "done").iterdir()))
    with clock("send_replies", profile=f"{tag}-send-replies"):
        send_replies(db, cfg)
    clock.add("collect", "collect_folder", "send_replies")
    outcomes = Counter(o.status for _, o in report.outcomes)
    if set(outcomes) - {"accepted"}:
        res.notes.append(f"plain run: collect outcomes {dict(outcomes)}")

    # consolidate: the due units with the whole tree's figures, each report, then send them
    with clock("reports_due"):
        due, figures = reports_due(db, cfg, cycle, when.consolidate_at)
    with clock("reports", profile=f"{tag}-reports"):  # as the flow does: costliest first, in processes
        pool = RenderPool.for_reports(len(due))
        try:
            with ThreadPoolExecutor(max_workers=REPORT_THREADS) as threads:
                list(threads.map(lambda unit: make_report(db, cfg, cycle, unit, figures, when.consolidate_at,
                                                          pool=pool), costliest_first(cfg, due)))
        finally:
            if pool is not None:
                pool.close()
    with clock("send_reports"):
        send_reports(db, cfg, cycle)
    clock.add("consolidate", "reports_due", "reports", "send_reports")
    clock.add("total", "open", "collect", "consolidate")
    clock.add("wall_with_units", "total", "units_fill")
    res.plain, res.plain_cpu = clock.wall, clock.cpu
    res.rss_after["plain"] = clock.rss
    # The aggregation alone, split into loading the frames and the tree's pass: one more call, out of the totals.
    split = Clock()
    with split("load_frames"):
        values, texts, requests = frames(db, cycle, cfg.calendar.local_date(when.consolidate_at))
    with split("consolidate_tree"):
        tree = consolidate_tree(cycle.root, h, cfg.catalog, values, requests, texts=texts, plan=cycle.plan)
    p = split.wall
    res.aggregation = {"consolidate_tree": p["consolidate_tree"], "with_db_load": p["load_frames"] + p["consolidate_tree"],
                       "units": len(tree)}
    res.counts["plain"] = counts(db, cycle) | {"units_replied": replied, "files_collected": report.files,
                                               "due_consolidators": len(due), "requests_prepared": written,
                                               "sink_messages": sink.stats()["messages"]}
    return cfg, db, cycle, when


def check_rate(cfg: Config, files: list[Path]) -> dict[str, float]:
    """Reading and validating the collected files again, in this process alone: the intake's checks
    without storing, replying or the reader processes (what one core does)."""
    from baocao.intake.reader import read_submission
    from baocao.intake.validation import validate

    blobs = [(p.read_bytes(), p.name.split("-", 1)[-1]) for p in files]
    read = check = 0.0
    for data, name in blobs:
        t = time.perf_counter()
        subs, _ = read_submission(data, name, cfg.catalog, max_bytes=cfg.settings.max_attachment_bytes)
        t2 = time.perf_counter()
        for sub in subs:
            validate(sub, cfg.catalog, filename=name)
        read, check = read + t2 - t, check + time.perf_counter() - t2
    return {"read_seconds": read, "validate_seconds": check, "files": len(blobs)}


# ----------------------------------------------------------------------------- sending against 50 ms
def slow_server_run(res: ScaleResult, cfg: Config, db: Database, cycle: CycleInfo, sink: SinkClient,
                    limit: int) -> None:
    """Send (again) up to `limit` requests of the plain run to the sink answering each DATA after 50 ms."""
    with db.session() as s:
        keys = list(s.scalars(select(OutboxMessage.key).where(OutboxMessage.cycle_id == cycle.id,
                                                              OutboxMessage.kind == Kind.REQUEST)
                              .order_by(OutboxMessage.id).limit(limit)))
        s.execute(update(OutboxMessage).where(OutboxMessage.key.in_(keys)).values(status="pending"))
    concurrency = cfg.settings.smtp.concurrency
    sink.set_delay(SLOW_SMTP_DELAY)
    sink.reset()
    try:
        t = time.perf_counter()
        with profiled(f"{res.scale}-send-slow-server"):
            delivery = outbox.deliver(db, cfg.settings, keys=keys)
        seconds = time.perf_counter() - t
        stats = sink.stats()
    finally:
        sink.set_delay(0)
    bound = concurrency / SLOW_SMTP_DELAY
    rate = len(delivery.sent) / seconds
    res.mail = {"messages": len(delivery.sent), "failed": len(delivery.failed), "seconds": seconds, "rate": rate,
                "bound": bound, "concurrency": concurrency, "delay": SLOW_SMTP_DELAY,
                "bound_over_rate": bound / rate if rate else float("inf"),
                "server_messages": stats["messages"], "max_connections": stats["max_conn"],
                "mean_bytes": stats["bytes"] / max(1, stats["messages"])}


# ----------------------------------------------------------------------------- IMAP
def _reply_mail(sender: str, to: str, subject: str, filename: str, data: bytes) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg.set_content("Kính gửi bộ phận tổng hợp,\n\nĐơn vị gửi lại báo cáo (bản đính chính) theo biểu mẫu đính kèm.")
    msg.add_attachment(data, maintype="application",
                       subtype="vnd.openxmlformats-officedocument.spreadsheetml.sheet", filename=filename)
    return msg.as_bytes(policy=email.policy.SMTP)


def imap_run(res: ScaleResult, cfg: Config, db: Database, cycle: CycleInfo, when: Timeline, seed: int,
             register: Any) -> None:
    """Corrected forms of up to 200 units through a real IMAP server; only the collection is timed."""
    forms = sent_forms(db, cycle)
    units = sorted(forms)[:IMAP_MESSAGES]
    rng = random.Random(seed + 1)
    filler = FastFiller(cfg.catalog)
    raws = []
    for unit in units:
        form, name = forms[unit]
        data = filler.fill(form, draw_figures(cfg.catalog, rng, scale=rng.uniform(0.5, 3.0)), rng)
        raws.append(_reply_mail(cfg.hierarchy[unit].coordinator_emails[0], cfg.settings.reply_to,
                                f"Báo cáo 6 tháng — {cfg.hierarchy[unit].name}", name, data))
    password = f"bench-{seed}-imap"
    server = start_imap(cfg.settings.imap.username, password)
    register(server.pid, "imap server")
    try:
        appended = server.append_all(raws)
        os.environ.update({"BAOCAO_IMAP__PORT": str(server.port), "BAOCAO_IMAP__PASSWORD": password,
                           "BAOCAO_IMAP__USERNAME": cfg.settings.imap.username})
        cfg = runtime.config()
        t = time.perf_counter()
        with profiled(f"{res.scale}-collect-mailbox"):
            report = collect_mailbox(db, cfg, as_of=when.imap_at)
        seconds = time.perf_counter() - t
    finally:
        server.stop()
    statuses = Counter(u.status for _, o in report.outcomes for u in o.units)
    res.imap = {"messages": report.messages, "appended": appended, "files": report.files, "seconds": seconds,
                "rate": report.messages / seconds if seconds else 0.0, "accepted": statuses.get("accepted", 0),
                "mean_bytes": sum(map(len, raws)) / max(1, len(raws))}
    if set(statuses) - {"accepted"}:
        res.notes.append(f"imap: outcomes {dict(statuses)}")


# ----------------------------------------------------------------------------- one scale
def run_scale(scale: str, root: str, tmp: Path, seed: int, sink: SinkClient, register: Any, *,
              mail_limit: int, progress: Any, server_cpu: Callable[[], float]) -> ScaleResult:
    cfg = runtime.config()
    h = cfg.hierarchy
    res = ScaleResult(scale=scale, root=root, root_name=h[root].name, units=len(h.subtree_codes(root)),
                      form_units=len(h.leaves(root)), consolidators=len(h.consolidators(root)))
    work = tmp / scale
    work.mkdir(parents=True, exist_ok=True)
    progress(f"{scale}: flow run (open-period, units reply, collect, consolidate) on {res.units} units")
    flow_run(res, work, seed, sink, server_cpu)
    progress(f"{scale}: the same stages as plain functions")
    cfg, db, cycle, when = plain_run(res, work, seed, sink)
    progress(f"{scale}: sending to the SMTP sink answering after {SLOW_SMTP_DELAY * 1000:.0f} ms")
    slow_server_run(res, cfg, db, cycle, sink, mail_limit)
    progress(f"{scale}: IMAP path")
    imap_run(res, cfg, db, cycle, when, seed, register)
    runtime.reset()
    return res
