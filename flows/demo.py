"""`baocao demo`: a whole H1 2026 cycle for Hải Phòng on embedded defaults.

What runs is the production path, on loopback: SQLite under `var/demo/`, a local Prefect (an
ephemeral API started for the run), the built-in SMTP server (every message stored as .eml under
`var/demo/mail/`) and a built-in IMAP mailbox that receives the units' replies. Time is simulated
with the flows' `as_of`: the period opens, units reply over the following days (most on time,
some late, some with mistakes corrected later, a few never), the collect and chase flows run each
working day, and so does the consolidate flow: each consolidator's draft is made when its children are
in or its time comes, its coordinator answers the draft's mail the next working day with the report
numbered and digitally signed (as a mail client and a records office would), and the next consolidate run
sends it up, the wards' to the city and then the city's to Bộ Nội vụ, each by its own deadline.
"""

from __future__ import annotations

import email
import email.policy
import json
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


def _form_of(mail_dir: Path, address: str) -> tuple[bytes, str, str, list[str]]:
    """The form attached to the request a unit's coordinator received: (bytes, filename, Message-ID, References)."""
    from baocao.devservers.mailserver import MailStore

    for stored in MailStore(mail_dir).messages(address):
        msg = email.message_from_bytes(stored.path.read_bytes(), policy=email.policy.default)
        for part in msg.iter_attachments():
            name = part.get_filename() or ""
            if name.endswith(".xlsx"):
                return part.get_content(), name, str(msg.get("Message-ID", "")), str(msg.get("References", "")).split()
    raise LookupError(f"no form found in the mailbox of {address}")


def _draft_of(mail_dir: Path, address: str) -> EmailMessage:
    """The latest draft report (Dự thảo) a unit's coordinator received, as its mail client shows it."""
    from baocao.devservers.mailserver import MailStore

    for stored in reversed(MailStore(mail_dir).messages(address)):
        msg = email.message_from_bytes(stored.path.read_bytes(), policy=email.policy.default)
        if msg.get("X-Baocao-Kind") == "draft":
            return msg  # type: ignore[return-value]
    raise LookupError(f"no draft report found in the mailbox of {address}")


def _reply_day(cal, drafted: date) -> date:  # noqa: ANN001 - WorkCalendar
    """When the simulated office sends its signed report back: the working day after the draft came (a
    day to review, sign and number it). Drafts are due the working day after the children's deadline,
    which the plans set before the consolidator's own, so this is by its deadline."""
    return cal.add_working_days(drafted, 1)


def _issued_reply(cfg, mail_dir: Path, unit_code: str, day: date, rng: random.Random) -> EmailMessage:  # noqa: ANN001
    """The unit's coordinator answers its draft: the report numbered by the records office, dated today,
    signed digitally by the unit's head (named as the hierarchy names them) and sent as a PDF."""
    import pendulum

    from baocao.consolidation.report import body_name, signer_title_for, symbol_for
    from baocao.devservers.signedpdf import signed_report_pdf
    from baocao.devservers.simulate import issued_reply, issued_report_lines
    from baocao.rules.formatting import date_long_vi, date_vi

    h = cfg.hierarchy
    unit = h[unit_code]
    draft = _draft_of(mail_dir, unit.coordinator_emails[0])
    docx = next(part.get_content() for part in draft.iter_attachments()
                if (part.get_filename() or "").lower().endswith(".docx"))
    number = f"{rng.randint(80, 260)}/{symbol_for(unit, h)}"
    body = body_name(unit)
    short = body.replace("Ủy ban nhân dân", "UBND", 1)
    position = f"{signer_title_for(unit, h)[-1].capitalize()} {short}"
    signer = f"{unit.head_name}, {position}" if unit.head_name else position
    pdf = signed_report_pdf(issued_report_lines(docx, number, date_long_vi(day)), signer, short)
    name = next((part.get_filename() for part in draft.iter_attachments()
                 if (part.get_filename() or "").lower().endswith(".docx")), "Báo cáo.docx")
    pdf_name = name.removeprefix("Dự thảo ").rsplit(".", 1)[0] + " (đã ký).pdf"
    sent_at = pendulum.datetime(day.year, day.month, day.day, 10, 0, tz=cfg.calendar.settings.timezone)
    return issued_reply(draft, unit.coordinator_emails[0], cfg.settings.reply_to, number=number,
                        issued_on=date_vi(day), pdf=pdf, pdf_name=pdf_name, sent_at=sent_at)


def _status_of(db, cycle_id: int, unit_code: str, report_model) -> str | None:  # noqa: ANN001
    from sqlalchemy import select

    with db.reading() as s:
        return s.scalar(select(report_model.status).where(report_model.cycle_id == cycle_id,
                                                          report_model.unit_code == unit_code)
                        .order_by(report_model.version.desc()).limit(1))


def _consolidate_has_work(db, cfg, cycle, as_of) -> bool:  # noqa: ANN001
    """Whether a consolidate run at `as_of` would make a report or send one (what the flow itself checks)."""
    from baocao.consolidation.reporting import due_units
    from baocao.mail import outbox
    from baocao.mail.kinds import STEP_KINDS

    return bool(due_units(db, cfg, cycle, as_of)) or any(
        outbox.messages(db, cycle_id=cycle.id, kind=kind, status=status)
        for kind in STEP_KINDS["consolidate"] for status in ("pending", "failed"))


def _sent_up(db, cycle_id: int, outbox) -> set[str]:  # noqa: ANN001
    """Units whose report to the parent has been sent (the consolidate step's REPORT messages)."""
    from baocao.mail.kinds import Kind

    return {m.unit_code for m in outbox.messages(db, cycle_id=cycle_id, kind=Kind.REPORT, status="sent")
            if m.unit_code}


def _reply(smtp_port: int, msg: EmailMessage) -> None:
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
    from baocao.devservers.simulate import fill_form, unit_mail
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
        end = max(cfg.calendar.add_working_days(last_deadline, 4), cfg.calendar.add_working_days(max(deadlines.values()), 1))
        tz = cfg.calendar.settings.timezone
        drafted: dict[str, date] = {}  # consolidator -> the day the consolidate flow made its draft
        replies: dict[str, date] = {}  # consolidator -> the day its coordinator sends the signed report back
        went_up: dict[str, date] = {}  # consolidator -> the day its report was sent to its parent
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
                    form, filename, message_id, references = _form_of(workdir / "mail", unit.coordinator_emails[0])
                    data = fill_form(form, cfg.catalog, drawn[b.unit], rng, mistake=mistake)
                    sent_at = pendulum.datetime(day.year, day.month, day.day, 9, 0, tz=cfg.calendar.settings.timezone)
                    _reply(mail.port, unit_mail(unit.coordinator_emails[0], cfg.settings.reply_to,
                                                f"Re: Báo cáo {period.label_vi} — {unit.name}", [(filename, data)],
                                                sent_at=sent_at,
                                                in_reply_to=message_id, references=references))
                    sent_today += 1
                issued_today = []
                for code in [c for c, d in replies.items() if d == day]:
                    issued_today.append(code)
                    _reply(mail.port, _issued_reply(cfg, workdir / "mail", code, day, rng))
                morning = pendulum.datetime(day.year, day.month, day.day, 8, 30, tz=tz)
                evening = morning.add(hours=9)
                chased = chase(as_of=morning)
                collected = collect(as_of=evening)
                mb = collected.get("mailbox", {}).get("by_status", {})
                # The consolidate flow runs every working day after the intake, as its schedule does: a
                # consolidator's draft is made when its children are in or its time has come, and a report
                # issued since the last run goes up to the parent.
                # (A day it would find nothing to do is skipped: the demo's runtime stays what it was.)
                made = []
                if _consolidate_has_work(db, cfg, cycle, evening.add(minutes=15)):
                    results = consolidate(period=PERIOD, plan=PLAN, root=ROOT, as_of=evening.add(minutes=15))
                    made = next(iter(results.values()))["reports"]
                for code in made:
                    drafted.setdefault(code, day)
                    if _status_of(db, cycle.id, code, Report) == "draft":
                        replies[code] = _reply_day(cfg.calendar, day)
                for code in _sent_up(db, cycle.id, outbox):
                    went_up.setdefault(code, day)
                events = ([f"drafts {', '.join(cfg.hierarchy[c].name for c in made)}"] if made else []) + \
                         ([f"signed reports of {', '.join(cfg.hierarchy[c].name for c in issued_today)} returned"]
                          if issued_today else []) + \
                         ([f"sent up {', '.join(cfg.hierarchy[c].name for c, d in went_up.items() if d == day)}"]
                          if day in went_up.values() else [])
                console.print(f"{day:%d/%m} replies sent {sent_today:3d} | collect {dict(mb)} | chase: "
                              f"{chased['actions']} message(s)" + (f" | consolidate: {'; '.join(events)}"
                                                                   if events else ""), highlight=False)
            day += timedelta(days=1)

        cons_day = drafted.get(ROOT, end)
        as_of = pendulum.datetime(cons_day.year, cons_day.month, cons_day.day, 17, 45, tz=tz)

        reports_dir = workdir / "reports"
        figures = figures_for(db, cfg, cycle, as_of)
        rendered = render(cfg, cycle, ROOT, figures, cons_day, tasks=task_table(db, cfg, cycle, ROOT, cons_day),
                          correction_of=None)
        paths = render_all(rendered.context, reports_dir)
        _print_summary(console, cfg, db, cycle, status_json(db, cfg, cycle), outbox, Report)
        issued = _report_rows(cfg, db, cycle, deadlines, drafted, went_up)
        _print_reports(console, issued)
        summary_path = workdir / "summary.json"
        summary_path.write_text(json.dumps({"period": PERIOD, "plan": PLAN, "root": ROOT, "reports": issued},
                                           ensure_ascii=False, indent=2), encoding="utf-8")
        signed_pdf = _save_issued_pdf(db, cycle.id, ROOT, reports_dir)
        console.rule("where to look")
        console.print(f"the city's report (Word, ND 30/2020 format): {paths.get('docx')}")
        console.print(f"its XLSX appendix: {paths.get('xlsx')}; email body: {paths.get('html')}")
        if signed_pdf is not None:
            console.print(f"the version the city signed and issued (PDF, digitally signed): {signed_pdf}")
        console.print(f"every consolidated report (number, date, signature, days): {summary_path}")
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


def _report_rows(cfg, db, cycle, deadlines: dict[str, date], drafted: dict[str, date],  # noqa: ANN001
                 went_up: dict[str, date]) -> list[dict[str, object]]:
    """Each consolidator's report as the summary lists it: when drafted, number and date of issue, when
    it came back and whether by its deadline, what the PDF's signature says, and when it went up."""
    from sqlalchemy import select

    from baocao.store.db import Report

    with db.reading() as s:
        latest: dict[str, Report] = {}
        for r in s.scalars(select(Report).where(Report.cycle_id == cycle.id).order_by(Report.version)):
            latest[r.unit_code] = r
        rows = []
        for unit in cfg.hierarchy.walk_bottom_up(cycle.root):
            r = latest.get(unit.code)
            if r is None:
                continue
            received = cfg.calendar.local_date(r.issued_at) if r.issued_at else None
            deadline = deadlines.get(unit.code)
            parent = cfg.hierarchy.parent(unit.code)
            rows.append({
                "unit": unit.code, "name": unit.name, "to": parent.name if parent else "",
                "status": r.status, "deadline": deadline.isoformat() if deadline else None,
                "drafted": drafted[unit.code].isoformat() if unit.code in drafted else None,
                "number": r.number, "issued_on": r.issued_on.isoformat() if r.issued_on else None,
                "received": received.isoformat() if received else None,
                "on_time": (received <= deadline) if received and deadline else None,
                "signature": r.signature, "signer": r.signer,
                "signed_at": r.signed_at.isoformat() if r.signed_at else None,
                "sent_up": went_up[unit.code].isoformat() if unit.code in went_up else None,
            })
    return rows


def _print_reports(console: Console, rows: list[dict[str, object]]) -> None:
    from baocao.rules.formatting import date_vi

    def day(value: object) -> str:  # "04/6": the year is the period's
        return date_vi(date.fromisoformat(str(value))).rsplit("/", 1)[0] if value else "—"

    table = Table(title="consolidated reports: drafted, issued (number, date, signature), sent up")
    for col, wrap in (("unit", True), ("draft", False), ("issued: Số, ngày", False), ("back / deadline", False),
                      ("signature", True), ("sent up", False)):
        table.add_column(col, no_wrap=not wrap)
    for r in rows:
        late = "" if r["on_time"] is not False else " [red]LATE[/red]"
        signer = str(r["signer"] or "").split(",")[0]  # the certificate's name (CN), not its organisation
        table.add_row(str(r["name"]), day(r["drafted"]), f"{r['number'] or '—'}, {day(r['issued_on'])}",
                      f"{day(r['received'])} / {day(r['deadline'])}{late}",
                      str(r["signature"] or "—") + (f": {signer}" if signer else ""), day(r["sent_up"]))
    console.print(table)


def _save_issued_pdf(db, cycle_id: int, unit_code: str, directory: Path) -> Path | None:  # noqa: ANN001
    """The signed PDF the unit returned, next to the rendered report (None when it has not issued one)."""
    from sqlalchemy import select

    from baocao.store.db import Blob, Report

    with db.reading() as s:
        report = s.scalar(select(Report).where(Report.cycle_id == cycle_id, Report.unit_code == unit_code)
                          .order_by(Report.version.desc()).limit(1))
        blob = s.get(Blob, report.issued_pdf_blob_id) if report is not None and report.issued_pdf_blob_id else None
        if blob is None:
            return None
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"bao-cao-{unit_code.lower()}-da-ky.pdf"
        path.write_bytes(blob.content)
        return path
