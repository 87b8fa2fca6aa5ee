"""`baocao demo`: a whole H1 2026 cycle for Hải Phòng on embedded defaults.

What runs is the production path, on loopback: SQLite under `var/demo/`, a local Prefect (an
ephemeral API started for the run), the built-in SMTP server (every message stored as .eml under
`var/demo/mail/`) and a built-in IMAP mailbox that receives the units' replies. Time is simulated
with the flows' `as_of`: the period opens, units reply over the following days (most on time,
some late, some with mistakes corrected later, a few never), the collect and chase flows run each
working day, and the consolidate flow sends the communes' and then the city's report up.
"""

from __future__ import annotations

import email
import email.policy
import os
import random
import secrets
import shutil
import smtplib
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from email.message import EmailMessage
from pathlib import Path

from rich.console import Console
from rich.table import Table

from baocao.rules.config import PROJECT_DIR

PERIOD = "2026-H1"
PLAN = "national"
ROOT = "T31"  # Thành phố Hải Phòng: 114 communes and the configured departments
TASK_APPENDIX = ("nhi-chieu", "appendices/nhi-chieu.txt")


@dataclass
class Behaviour:
    unit: str
    kind: str  # on_time | late | mistake_then_fix | never
    day: date  # first reply
    fix_day: date | None = None
    mistake: str | None = None


def _prepare_environment(workdir: Path) -> dict[str, str]:
    """Point the configuration and Prefect at the demo's directory before anything imports Prefect."""
    for name in ("baocao.db", "baocao.db-wal", "baocao.db-shm"):
        (workdir / name).unlink(missing_ok=True)
    for name in ("mail", "dropbox", "reports", "prefect"):
        shutil.rmtree(workdir / name, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    env = {
        "BAOCAO_DATABASE_URL": f"sqlite:///{workdir / 'baocao.db'}",
        "BAOCAO_VAR_DIR": str(workdir),
        "BAOCAO_DROP_FOLDER": str(workdir / "dropbox"),
        "PREFECT_HOME": str(workdir / "prefect"),
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_LOGGING_EXTRA_LOGGERS": "baocao",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    }
    os.environ.pop("PREFECT_API_URL", None)
    os.environ.update(env)
    return env


def _behaviours(units: list[str], deadlines: dict[str, date], cal, rng: random.Random) -> list[Behaviour]:  # noqa: ANN001
    out = []
    for code in units:
        d = deadlines[code]
        r = rng.random()
        if r < 0.70:
            out.append(Behaviour(code, "on_time", cal.add_working_days(d, -rng.randint(0, 4))))
        elif r < 0.80:
            out.append(Behaviour(code, "late", cal.add_working_days(d, rng.randint(1, 3))))
        elif r < 0.92:
            first = cal.add_working_days(d, -rng.randint(1, 3))
            out.append(Behaviour(code, "mistake_then_fix", first, cal.add_working_days(first, rng.randint(1, 2)),
                                 rng.choice(["relation", "decimal"])))
        else:
            out.append(Behaviour(code, "never", d))
    return out


def _form_of(mail_dir: Path, address: str) -> tuple[bytes, str, str]:
    """The form attached to the request a unit's coordinator received: (bytes, filename, Message-ID)."""
    from baocao.devservers.mailserver import MailStore

    for stored in MailStore(mail_dir).messages(address):
        msg = email.message_from_bytes(stored.path.read_bytes(), policy=email.policy.default)
        for part in msg.iter_attachments():
            name = part.get_filename() or ""
            if name.endswith(".xlsx"):
                return part.get_content(), name, str(msg.get("Message-ID", ""))
    raise LookupError(f"no form found in the mailbox of {address}")


def _reply(smtp_port: int, sender: str, to: str, subject: str, in_reply_to: str, filename: str, data: bytes) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, f"Re: {subject}"
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    msg.set_content("Kính gửi bộ phận tổng hợp,\n\nĐơn vị gửi báo cáo theo biểu mẫu đính kèm.\n\nTrân trọng.")
    msg.add_attachment(data, maintype="application",
                       subtype="vnd.openxmlformats-officedocument.spreadsheetml.sheet", filename=filename)
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as smtp:
        smtp.send_message(msg)


def run_demo(workdir: Path, *, seed: int = 2026, console: Console | None = None) -> None:
    console = console or Console()
    workdir = workdir if workdir.is_absolute() else PROJECT_DIR / workdir
    _prepare_environment(workdir)
    started = time.monotonic()

    # Imported only now: Prefect reads PREFECT_HOME when it is first imported.
    import pendulum

    from baocao import runtime
    from baocao.consolidation.report import render_all
    from baocao.consolidation.reporting import figures_for, render, task_table
    from baocao.devservers.imapserver import DemoImapServer
    from baocao.devservers.mailserver import DemoMailServer
    from baocao.devservers.simulate import figures as draw_figures
    from baocao.devservers.simulate import fill_form
    from baocao.mail import outbox
    from baocao.rules.periods import Period
    from baocao.rules.plans import open_at
    from baocao.store.db import Database, Report
    from baocao.store.migrate import upgrade
    from baocao.store.queries import find_cycle, sync_units
    from baocao.store.status import status_json
    from baocao.tasks.taskbook import import_appendix
    from flows.chase import chase
    from flows.collect import collect
    from flows.consolidate import consolidate
    from flows.open_period import open_period

    rng = random.Random(seed)
    runtime.reset()
    cfg0 = runtime.config()
    imap_password = secrets.token_urlsafe(12)
    imap = DemoImapServer(cfg0.settings.imap.username, imap_password).start()
    reply_to = cfg0.settings.reply_to.lower()

    def deliver_to_mailbox(stored, raw: bytes) -> None:  # noqa: ANN001 - StoredMessage
        if stored.recipient == reply_to:
            imap.append(raw)

    mail = DemoMailServer(workdir / "mail", on_message=deliver_to_mailbox).start()
    os.environ.update({"BAOCAO_SMTP__PORT": str(mail.port), "BAOCAO_IMAP__PORT": str(imap.port),
                       "BAOCAO_IMAP__PASSWORD": imap_password, "BAOCAO_SMTP__BACKOFF_BASE": "0.2"})
    try:
        cfg = runtime.config()
        db: Database = runtime.database(cfg)
        console.rule("[bold]baocao demo[/bold]: 6 tháng đầu năm 2026, Thành phố Hải Phòng")
        console.print(f"working directory: {workdir}")
        console.print(f"built-in SMTP server on 127.0.0.1:{mail.port}, IMAP mailbox {reply_to} on 127.0.0.1:{imap.port}")
        upgrade(cfg.settings.database_url_resolved)
        console.print(f"database: {sync_units(db, cfg.hierarchy)} units loaded")
        plan_code, appendix = TASK_APPENDIX
        tasks = import_appendix(db, cfg, cfg.directory / appendix, plan_code, 2026)
        console.print(f"tasks: {len(tasks)} tasks of plan {plan_code} imported (Phụ lục of KH 158/KH-UBND)")

        plan = cfg.plan(PLAN)
        period = Period.parse(PERIOD)
        opened = open_at(plan, period, cfg.hierarchy, cfg.calendar, root=ROOT, plans=cfg.plans.values())
        with console.status("opening the period: building and mailing every unit's form..."):
            result = open_period(period=PERIOD, plan=PLAN, root=ROOT, as_of=opened)
        console.print(f"[green]open-period[/green] {opened:%d/%m/%Y %H:%M}: {result['sent']} requests sent "
                      f"in {result['batches']} batches")
        cycle = find_cycle(db, PERIOD, PLAN, ROOT)
        assert cycle is not None
        from sqlalchemy import select

        from baocao.store.db import Request

        with db.session() as s:
            reqs = list(s.scalars(select(Request).where(Request.cycle_id == cycle.id)))
        form_units = sorted(r.unit_code for r in reqs if r.role == "form")
        deadlines = {r.unit_code: r.deadline for r in reqs}
        behaviours = _behaviours(form_units, deadlines, cfg.calendar, rng)
        counts = Counter(b.kind for b in behaviours)
        console.print(f"simulated units: {counts['on_time']} on time, {counts['late']} late, "
                      f"{counts['mistake_then_fix']} with a mistake corrected later, {counts['never']} never reply")
        drawn = {b.unit: draw_figures(cfg.catalog, rng, scale=rng.uniform(0.5, 3.0)) for b in behaviours}

        last_deadline = max(deadlines[u] for u in form_units)
        day = cfg.calendar.local_date(opened)
        end = cfg.calendar.add_working_days(last_deadline, 4)
        while day <= end:
            if cfg.calendar.is_working_day(day):
                sent_today = 0
                for b in behaviours:
                    mistake = None
                    if b.kind == "never":
                        continue
                    if b.day == day:
                        mistake = b.mistake
                    elif not (b.fix_day == day):
                        continue
                    unit = cfg.hierarchy[b.unit]
                    form, filename, message_id = _form_of(workdir / "mail", unit.coordinator_emails[0])
                    data = fill_form(form, cfg.catalog, drawn[b.unit], rng, mistake=mistake)
                    _reply(mail.port, unit.coordinator_emails[0], cfg.settings.reply_to,
                           f"Báo cáo {period.label_vi} — {unit.name}", message_id, filename, data)
                    sent_today += 1
                morning = pendulum.datetime(day.year, day.month, day.day, 8, 30, tz=cfg.calendar.settings.timezone)
                evening = morning.add(hours=9)
                chased = chase(as_of=morning)
                collected = collect(as_of=evening)
                mb = collected.get("mailbox", {}).get("by_status", {})
                console.print(f"{day:%d/%m} replies sent {sent_today:3d} | collect {dict(mb)} | chase: "
                              f"{chased['actions']} message(s)", highlight=False)
            day += timedelta(days=1)

        cons_day = cfg.calendar.add_working_days(last_deadline, plan.consolidate_days_after + 3)
        as_of = pendulum.datetime(cons_day.year, cons_day.month, cons_day.day, 17, 0, tz=cfg.calendar.settings.timezone)
        with console.status("consolidating bottom-up and sending the reports..."):
            results = consolidate(period=PERIOD, plan=PLAN, root=ROOT, as_of=as_of)
        made = next(iter(results.values()))["reports"]
        console.print(f"[green]consolidate[/green] {cons_day:%d/%m}: reports of {', '.join(made)} written and sent")

        reports_dir = workdir / "reports"
        figures = figures_for(db, cfg, cycle, as_of)
        rendered = render(cfg, cycle, ROOT, figures, cons_day, tasks=task_table(db, cfg, cycle, ROOT, cons_day),
                          correction_of=None)
        paths = render_all(rendered.context, reports_dir)
        _print_summary(console, cfg, db, cycle, status_json(db, cfg, cycle), outbox, Report)
        console.rule("where to look")
        console.print(f"the city's report (Word, ND 30/2020 format): {paths.get('docx')}")
        console.print(f"its XLSX appendix: {paths.get('xlsx')}; email body: {paths.get('html')}")
        parent = cfg.hierarchy.parent(ROOT)
        assert parent is not None
        console.print(f"every message sent, as .eml files: {workdir / 'mail'} (index.csv lists them); "
                      f"the report to {parent.name} is in {workdir / 'mail' / parent.coordinator_emails[0]}")
        console.print(f"status as JSON: baocao status --period {PERIOD} --plan {PLAN} --format json "
                      f"(with BAOCAO_DATABASE_URL=sqlite:///{workdir / 'baocao.db'})")
        console.print(f"done in {time.monotonic() - started:.0f} s")
    finally:
        mail.stop()
        imap.stop()
        runtime.reset()


def _print_summary(console: Console, cfg, db, cycle, doc, outbox, report_model) -> None:  # noqa: ANN001
    from sqlalchemy import func, select

    from baocao.store.db import OutboxMessage

    console.rule("status of the units (baocao status)")
    totals = Table(title=f"{cycle.period} — {cfg.hierarchy[cycle.root].name} and its consolidating units")
    for col in ("unit", "name", "expected", "received", "accepted", "on time", "completeness", "timeliness"):
        totals.add_column(col)
    from baocao.rules.formatting import percent_vi

    for t in doc["totals"]:
        totals.add_row(t["unit"], cfg.hierarchy[t["unit"]].name, str(t["expected"]), str(t["received"]),
                       str(t["accepted"]), str(t["on_time"]), percent_vi(t["completeness"]), percent_vi(t["timeliness"]))
    console.print(totals)
    states = Counter(u["state"] for u in doc["units"] if u["role"] == "form")
    console.print("form units by state: " + ", ".join(f"{k} {v}" for k, v in sorted(states.items())))
    with db.session() as s:
        kinds = dict(s.execute(select(OutboxMessage.kind, func.count()).where(OutboxMessage.status == "sent")
                               .group_by(OutboxMessage.kind)).all())
        reports = s.scalar(select(func.count()).select_from(report_model).where(report_model.cycle_id == cycle.id))
    console.print("messages sent by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    console.print(f"consolidated reports: {reports}")
