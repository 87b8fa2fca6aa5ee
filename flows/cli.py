"""`baocao`: a thin command line over the library.

Each command parses its options, calls one library function and prints the result. Nothing here
computes a figure or a date: that lives in the modules the commands call.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from baocao.rules.config import Config, ConfigError, check, load_config, refuse_public_credentials
from baocao.rules.formatting import date_vi
from baocao.rules.periods import Period, PeriodError
from flows.quiet import quiet_prefect

if TYPE_CHECKING:
    from baocao.consolidation.aggregate import Figures
    from baocao.store.queries import CycleInfo

quiet_prefect()  # before any flow starts a temporary Prefect server (flows/quiet.py)

app = typer.Typer(help="baocao: periodic reporting cycles under Kết luận 226-KL/TW, run by Prefect flows.",
                  no_args_is_help=True, add_completion=False)
config_app = typer.Typer(help="Configuration.", no_args_is_help=True)
units_app = typer.Typer(help="The reporting hierarchy.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(units_app, name="units")



class _Console(Console):
    """A console that measures the terminal (or COLUMNS) at each print, not once at import.

    Rich fixes its width when COLUMNS is set at creation; a process that runs the CLI several times (the
    tests' CliRunner, each call with its own COLUMNS) then wrapped every later table and message at the
    first call's width, and lines an operator or a test reads were cut in two."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._width = self._height = None  # rich's `size` then reads the terminal and COLUMNS/LINES each time


console = _Console()
err = _Console(stderr=True)


def _config() -> Config:
    try:
        return load_config()
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None


def _safe_config() -> Config:
    """The configuration, refused (exit 2) when mail would leave this machine with a public credential."""
    cfg = _config()
    try:
        refuse_public_credentials(cfg.settings, cfg.directory / "settings.toml")
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    return cfg


def _period(code: str) -> Period:
    try:
        return Period.parse(code)
    except PeriodError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def _as_of(value: str | None) -> datetime | None:
    if value is None:
        return None
    import pendulum

    try:
        parsed = pendulum.parse(value, tz="Asia/Ho_Chi_Minh")
    except Exception:  # pendulum raises several types for bad input
        err.print(f"[red]--as-of: {value!r} is not a date or date-time (e.g. 2026-06-05T09:00)[/red]")
        raise typer.Exit(2) from None
    assert isinstance(parsed, datetime)
    return parsed


# ----------------------------------------------------------------------------- init, config
@app.command()
def init() -> None:
    """Create or upgrade the database and load the configured hierarchy into it."""
    from flows.up import init_database

    init_database(_config(), console)


@config_app.command("check")
def config_check(year: Annotated[int | None, typer.Option(help="Year whose deadlines to check.")] = None) -> None:
    """Validate every configuration file; print warnings about legal but suspicious things."""
    cfg = _safe_config()
    year = year or datetime.now().year
    warnings = check(cfg, year)
    console.print(
        f"configuration OK: {len(cfg.hierarchy)} units, {len(cfg.catalog.indicators)} indicators, "
        f"{len(cfg.catalog.derived)} derived figures, {len(cfg.plans)} plans ({', '.join(sorted(cfg.plans))})"
    )
    for w in warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(w)}", highlight=False)  # a warning may quote "[years.2027]"


# ----------------------------------------------------------------------------- units
@units_app.command("list")
def units_list(
    level: Annotated[str | None, typer.Option(help="ministry, province, commune or department.")] = None,
    parent: Annotated[str | None, typer.Option(help="Only the direct children of this unit.")] = None,
    under: Annotated[str | None, typer.Option(help="Only units in this unit's subtree.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """List units of the hierarchy."""
    cfg = _config()
    h = cfg.hierarchy
    for code in (parent, under):
        if code and code not in h:
            err.print(f"[red]no unit with code {code!r}[/red]")
            raise typer.Exit(2)
    units = h.children(parent) if parent else list(h.walk(under))
    if level:
        units = [u for u in units if u.level == level]
    rows = [
        {"code": u.code, "name": u.name, "level": u.level, "parent": u.parent or "",
         "coordinator": ";".join(u.coordinator_emails), "head": ";".join(u.head_emails)}
        for u in units
    ]
    _print_rows(rows, fmt, title=f"{len(rows)} units")


def _print_rows(rows: list[dict], fmt: str, *, title: str = "") -> None:
    if fmt == "json":
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=1, default=str) + "\n")
    elif fmt == "csv":
        buf = io.StringIO()
        if rows:
            writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        sys.stdout.write(buf.getvalue())
    elif fmt == "table":
        table = Table(title=title)
        for col in rows[0] if rows else []:
            table.add_column(col)
        for row in rows:
            table.add_row(*(str(v) for v in row.values()))
        console.print(table)
    else:
        err.print(f"[red]--format must be table, csv or json, not {fmt!r}[/red]")
        raise typer.Exit(2)


# ----------------------------------------------------------------------------- calendar
@app.command("calendar")
def calendar_cmd(
    period: Annotated[str, typer.Option(help="Period code, e.g. 2026-H1.")],
    plan: Annotated[str, typer.Option(help="Plan code.")] = "national",
    root: Annotated[str | None, typer.Option(help="Root unit of the cycle (default: the plan's).")] = None,
) -> None:
    """Cut-off window, deadlines by level and the holidays applied, for one period under one plan."""
    from baocao.rules.holidaynotes import cycle_special_days, weekday_vi
    from baocao.rules.plans import open_at, unit_deadlines

    cfg = _config()
    p = _period(period)
    pl = _plan(cfg, plan)
    cal = cfg.calendar
    start, end = cal.cutoff_window(p)
    console.print(f"[bold]{p.code}[/bold] ({p.label_vi}) under plan [bold]{pl.code}[/bold]: {pl.name}")
    if not pl.covers(p):
        console.print(f"[yellow]plan {pl.code} does not report {p.kind} (it reports {', '.join(pl.kinds)})[/yellow]")
    console.print(f"cut-off window (ND 09/2019): {date_vi(start)} – {date_vi(end)}")
    plans = tuple(cfg.plans.values())  # a unit also under another plan owes the earlier day
    schedules = unit_deadlines(pl, p, cfg.hierarchy, cal, root=root, plans=plans)
    opens = open_at(pl, p, cfg.hierarchy, cal, root=root, plans=plans)
    console.print(f"period opens: {opens:%H:%M} {date_vi(opens)}")
    table = Table(title="deadlines (inclusive, end of day, Asia/Ho_Chi_Minh)")
    for col in ("level", "units", "deadline", "weekday", "lock after", "example"):
        table.add_column(col)
    groups: dict[tuple, list[str]] = {}
    for code, s in schedules.items():
        u = cfg.hierarchy[code]
        key = ("root" if code == (root or pl.root) else u.level, s.deadline, cal.local_date(s.lock_at))
        groups.setdefault(key, []).append(code)
    for (level, deadline, lock), codes in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        ex = cfg.hierarchy[codes[0]]
        table.add_row(level, str(len(codes)), date_vi(deadline), deadline.strftime("%A"), date_vi(lock), f"{ex.code} {ex.name}")
    console.print(table)
    _print_overlaps(cfg, pl, p, root, plans)
    marked = cycle_special_days(pl, p, cfg.hierarchy, cal, root=root)
    if marked:
        days = Table(title="ngày nghỉ lễ, Tết và ngày làm việc bù trong kỳ (config/calendar.toml)")
        for col in ("ngày", "thứ", "tên", "tình trạng", "làm dời"):
            days.add_column(col)
        for m in marked:
            days.add_row(date_vi(m.special.day), weekday_vi(m.special.day), m.special.name, m.special.status_vi,
                         "; ".join(m.moves))
        console.print(days)
    unconfirmed = sorted({m.special.day.year for m in marked if not m.special.confirmed})
    if unconfirmed:
        console.print("Ngày «dự kiến» do thư viện holidays tính theo quy tắc, chưa đối chiếu với lịch nghỉ do Chính phủ "
                      "công bố: khi có văn bản, xác nhận hoặc sửa tại config/calendar.toml, mục "
                      + ", ".join(f"[years.{y}]" for y in unconfirmed) + ".", highlight=False, markup=False)


def _print_overlaps(cfg: Config, pl, p, root: str | None, plans: tuple) -> None:  # noqa: ANN001 - Plan, Period
    """Units of the cycle whose deadline a covering plan set otherwise: the day that applies, and who said what."""
    from baocao.rules.overlaps import cycle_overlaps

    groups: dict[str, list] = {}
    for o in cycle_overlaps(pl, p, cfg.hierarchy, cfg.calendar, plans, root=root):
        groups.setdefault(o.explain_vi(), []).append(o.unit)
    if not groups:
        return
    table = Table(title="hạn nộp khác nhau giữa các kế hoạch cùng áp dụng cho đơn vị: áp dụng hạn sớm nhất")
    for col in ("đơn vị", "hạn áp dụng (kế hoạch: hạn theo kế hoạch đó)"):
        table.add_column(col)
    for explained, units in groups.items():
        shown = f"{units[0].code} {units[0].name}" if len(units) == 1 else \
            f"{len(units)} đơn vị, ví dụ {units[0].code} {units[0].name}"
        table.add_row(shown, explained)
    console.print(table)


def _plan(cfg: Config, code: str):  # noqa: ANN202 - returns baocao.rules.plans.Plan
    try:
        return cfg.plan(code)
    except ConfigError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None



# ----------------------------------------------------------------------------- shared helpers
def _db(cfg: Config):  # noqa: ANN202 - baocao.store.db.Database
    from baocao import runtime

    return runtime.database(cfg)


def _cycle(cfg: Config, period: str, plan: str | None, root: str | None = None):  # noqa: ANN202
    from baocao.store.queries import find_cycle

    info = find_cycle(_db(cfg), _period(period).code, plan, root)
    if info is None:
        err.print(f"[red]no cycle for {period}{' under ' + plan if plan else ''}: open it first "
                  "(baocao cycle open)[/red]")
        raise typer.Exit(2)
    return info


def _actor(actor: str | None) -> str:
    import getpass

    return actor or getpass.getuser()


# ----------------------------------------------------------------------------- forms and cycles
cycle_app = typer.Typer(help="Reporting cycles.", no_args_is_help=True)
app.add_typer(cycle_app, name="cycle")


@app.command()
def form(
    unit: Annotated[str, typer.Option(help="Unit code, e.g. X10714.")],
    period: Annotated[str, typer.Option(help="Period code, e.g. 2026-H1.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the .xlsx.")],
    plan: Annotated[str, typer.Option(help="Plan whose deadline the form states.")] = "national",
) -> None:
    """Write one unit's form for one period (the same file the open-period flow attaches)."""
    from baocao.opening.dispatch import form_inputs, unit_form
    from baocao.opening.forms import FormBuilder
    from baocao.rules.plans import unit_deadlines

    cfg = _config()
    if unit not in cfg.hierarchy:
        err.print(f"[red]no unit with code {unit!r}[/red]")
        raise typer.Exit(2)
    p = _period(period)
    pl = _plan(cfg, plan)
    root = pl.root if cfg.hierarchy.is_descendant(unit, pl.root) or unit == pl.root else cfg.hierarchy.root_code
    deadline = unit_deadlines(pl, p, cfg.hierarchy, cfg.calendar, root=root, plans=cfg.plans.values())[unit].deadline
    # Last year's counts and the unit's tasks come from the database, as for the flow's forms.
    from sqlalchemy.exc import OperationalError, ProgrammingError

    builder = FormBuilder(cfg.catalog_for(pl.code))
    try:
        inputs = form_inputs(_db(cfg), cfg, [unit], p)
    except (OperationalError, ProgrammingError) as exc:
        err.print(f"[red]cannot read the database ({type(exc).__name__}); set it up first: baocao init[/red]")
        raise typer.Exit(2) from None
    _, data = unit_form(cfg, builder, inputs, unit, p, deadline)
    output.write_bytes(data)
    console.print(f"form of {unit} ({cfg.hierarchy[unit].name}) for {p.code}, deadline {date_vi(deadline)}: {output}")


@cycle_app.command("open")
def cycle_open(
    period: Annotated[str, typer.Option(help="Period code (2026-H1) or kind (H1).")],
    plan: Annotated[str, typer.Option()] = "national",
    root: Annotated[str | None, typer.Option(help="Root unit (default: the plan's).")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Pretend it is this date-time.")] = None,
) -> None:
    """Run the open-period flow: record the cycle and email every unit its request and form."""
    from flows.open_period import open_period

    result = open_period(period=period, plan=plan, root=root, as_of=_as_of(as_of))
    console.print(result)


# ----------------------------------------------------------------------------- intake
@app.command()
def validate(files: Annotated[list[Path], typer.Argument(help="Files to check.")]) -> None:
    """Check files and print every problem; nothing is stored."""
    from baocao.intake.pipeline import form_identity
    from baocao.intake.reader import read_submission
    from baocao.intake.validation import token_problems
    from baocao.intake.validation import validate as check_values

    cfg = _config()
    secret = cfg.settings.token_secret.get_secret_value()
    bad = False
    for path in files:
        submitted, problems = read_submission(path.read_bytes(), path.name, cfg.catalog,
                                              max_bytes=cfg.settings.max_attachment_bytes)
        for sub in submitted:  # the same checks as the intake: who the form is for, its token, then its values
            unit, period, wrong = form_identity(cfg, sub, filename=path.name)
            if unit is not None and period is not None:
                wrong = token_problems(sub, secret, filename=path.name, form_version=cfg.settings.form_version,
                                       unit_code=unit, period=period.code, unit_name=cfg.hierarchy[unit].name)
            problems = (list(problems) + wrong
                        + check_values(sub, cfg.catalog, filename=path.name, last_year=sub.previous_year))
        errors = [p for p in problems if p.severity == "error"]
        bad = bad or bool(errors) or not submitted
        units = ", ".join(f"{s.unit_code} {s.period}" for s in submitted) or "?"
        console.print(f"[bold]{path}[/bold] ({units}): {len(errors)} error(s), {len(problems) - len(errors)} warning(s)")
        for p in problems:
            colour = "red" if p.severity == "error" else "yellow"
            console.print(f"  [{colour}]{p.severity}[/{colour}] {p.message_vi}", highlight=False)
    raise typer.Exit(1 if bad else 0)


@app.command()
def submit(
    files: Annotated[list[Path], typer.Argument(help="Files that reached the office by other means.")],
    unit: Annotated[str | None, typer.Option(help="The unit the files are from (checked against the form).")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="When the files were received.")] = None,
    override: Annotated[str | None, typer.Option(help="Accept despite a bad token or sender: the reason, recorded.")] = None,
    actor: Annotated[str | None, typer.Option(help="Who overrides (default: your login).")] = None,
) -> None:
    """Take files in as an operator: stored, checked and answered like a mailed form."""
    from baocao.intake.pipeline import Incoming, Override, take_in
    from baocao.intake.steps import send_replies

    cfg = _config()
    db = _db(cfg)
    ov = Override(_actor(actor), override, unit) if override else None
    for path in files:
        outcome = take_in(db, cfg, Incoming(path.read_bytes(), path.name, "cli", None, _as_of(as_of)),
                          override=ov, unit_hint=unit)
        for u in outcome.units:
            console.print(f"{path.name}: {u.status} {u.unit or ''} {u.period or ''}{' (late)' if u.late else ''}")
            for p in u.problems:
                console.print(f"  {p.severity}: {p.message_vi}", highlight=False)
    send_replies(db, cfg, with_operator=False)


@app.command("collect")
def collect_cmd(as_of: Annotated[str | None, typer.Option("--as-of")] = None) -> None:
    """Run the collect flow once: the mailbox and the drop folder."""
    from flows.collect import collect

    console.print(collect(as_of=_as_of(as_of)))


def _operator_action(name: str):  # noqa: ANN202
    from baocao.intake.operations import OperationError

    def run(fn, *args, **kwargs) -> None:  # noqa: ANN001
        try:
            fn(*args, **kwargs)
        except OperationError as exc:
            err.print(f"[red]{name}: {exc}[/red]")
            raise typer.Exit(2) from None
    return run


@app.command("return")
def return_cmd(
    unit: Annotated[str, typer.Option()], period: Annotated[str, typer.Option()],
    reason: Annotated[str, typer.Option(help="Told to the unit.")],
    plan: Annotated[str | None, typer.Option()] = None, actor: Annotated[str | None, typer.Option()] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="When it is returned (default: now).")] = None,
) -> None:
    """Return an accepted submission for correction; the unit is told and expected again."""
    from baocao.intake.operations import return_submission
    from baocao.intake.steps import send_returned

    cfg = _config()
    _operator_action("return")(return_submission, _db(cfg), cfg, unit, _period(period).code, reason,
                               actor=_actor(actor), plan=plan, at=_as_of(as_of))
    send_returned(_db(cfg), cfg, unit)
    console.print(f"{unit}: returned for correction")


@app.command()
def reopen(
    unit: Annotated[str, typer.Option()], period: Annotated[str, typer.Option()],
    until: Annotated[str, typer.Option(help="Accept files until this date-time.")],
    reason: Annotated[str, typer.Option()], plan: Annotated[str | None, typer.Option()] = None,
    actor: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Let a unit submit after the lock date."""
    from baocao.intake.operations import reopen as do_reopen

    cfg = _config()
    when = _as_of(until)
    assert when is not None
    _operator_action("reopen")(do_reopen, _db(cfg), cfg, unit, _period(period).code, when, reason,
                               actor=_actor(actor), plan=plan)
    console.print(f"{unit}: open for submissions until {when}")


@app.command()
def exempt(
    unit: Annotated[str, typer.Option()], period: Annotated[str, typer.Option()],
    reason: Annotated[str, typer.Option()], plan: Annotated[str | None, typer.Option()] = None,
    actor: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Exempt a unit from a period: never chased, not expected."""
    from baocao.intake.operations import exempt as do_exempt

    cfg = _config()
    _operator_action("exempt")(do_exempt, _db(cfg), cfg, unit, _period(period).code, reason,
                               actor=_actor(actor), plan=plan)
    console.print(f"{unit}: exempt from {period}")


@app.command()
def status(
    period: Annotated[str, typer.Option()], unit: Annotated[str | None, typer.Option()] = None,
    plan: Annotated[str | None, typer.Option()] = None, root: Annotated[str | None, typer.Option()] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """Each unit's state with times; at each parent the expected, received, accepted and on-time counts."""
    from baocao.store.status import status_json

    cfg = _config()
    info = _cycle(cfg, period, plan, root)
    doc = status_json(_db(cfg), cfg, info, unit)
    if fmt == "json":
        sys.stdout.write(json.dumps(doc, ensure_ascii=False, indent=1) + "\n")
        return
    rows = [{k: ("" if v is None else v) for k, v in u.items() if k in
             ("unit", "name", "role", "state", "deadline", "accepted_at", "on_time", "files", "reason")}
            for u in doc["units"]]
    _print_rows(rows, fmt, title=f"{info.period} {info.plan} {info.root}")
    if fmt == "table":
        _print_rows([{k: ("" if v is None else (f"{v:.1%}" if isinstance(v, float) else v)) for k, v in t.items()}
                     for t in doc["totals"]], "table", title="totals")


# ----------------------------------------------------------------------------- chase and consolidate
@app.command()
def chase(
    as_of: Annotated[str | None, typer.Option("--as-of")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be sent; send nothing.")] = False,
) -> None:
    """Send (or with --dry-run, show) today's reminders, overdue notices and escalations."""
    import pendulum

    cfg = _config()
    when = _as_of(as_of) or pendulum.now(cfg.calendar.settings.timezone)
    if not dry_run:
        from flows.chase import chase as chase_flow

        console.print(chase_flow(as_of=when))
        return
    from baocao.chasing.reminders import chase_cycle
    from baocao.store.queries import open_cycles

    rows = []
    for info in open_cycles(_db(cfg)):
        for a in chase_cycle(_db(cfg), cfg, info, when, dry_run=True):
            rows.append({"cycle": f"{info.period} {info.plan}", "stage": a.stage, "unit": a.unit,
                         "name": cfg.hierarchy[a.unit].name, "to": ", ".join(a.recipients),
                         "cc": ", ".join(a.cc), "why": a.why})
    _print_rows(rows, "table", title=f"would send on {cfg.calendar.local_date(when):%d/%m/%Y}")


@app.command()
def consolidate(
    period: Annotated[str, typer.Option()], unit: Annotated[str | None, typer.Option(help="With --resend.")] = None,
    plan: Annotated[str | None, typer.Option()] = None, root: Annotated[str | None, typer.Option()] = None,
    resend: Annotated[bool, typer.Option("--resend", help="Make and send a corrected report of --unit.")] = False,
    as_of: Annotated[str | None, typer.Option("--as-of")] = None,
) -> None:
    """Run the consolidate flow for one period: due units' reports, bottom-up, sent up the chain."""
    from flows.consolidate import consolidate as consolidate_flow

    if resend and not unit:
        err.print("[red]--resend needs --unit[/red]")
        raise typer.Exit(2)
    console.print(consolidate_flow(period=_period(period).code, plan=plan, root=root, as_of=_as_of(as_of),
                                   resend=unit if resend else None))


report_app = typer.Typer(help="A unit's report: render it (without sending), or record its issued version.",
                         invoke_without_command=True, no_args_is_help=True)
app.add_typer(report_app, name="report")


@report_app.command("issue")
def report_issue(
    unit: Annotated[str, typer.Option()], period: Annotated[str, typer.Option()],
    file: Annotated[Path, typer.Option("--file", help="The signed PDF.")],
    number: Annotated[str, typer.Option(help="Số of the issued report, e.g. 123/BC-UBND.")],
    date_: Annotated[str, typer.Option("--date", help="Date on the issued report, e.g. 2026-06-10.")],
    docx: Annotated[Path | None, typer.Option("--docx", help="The edited Word file (kept with it).")] = None,
    plan: Annotated[str | None, typer.Option()] = None, actor: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Record the issued (numbered, signed) version of a unit's draft report and send it up to the parent."""
    from datetime import date as date_cls

    from baocao.consolidation import issuing, steps
    from baocao.intake.steps import send_replies
    from baocao.store.db import utcnow

    cfg = _config()
    db = _db(cfg)
    try:
        day = date_cls.fromisoformat(date_)
    except ValueError:
        err.print(f"[red]--date: {date_!r} is not a date (e.g. 2026-06-10)[/red]")
        raise typer.Exit(2) from None
    try:
        draft = issuing.draft_report(db, cfg, unit, _period(period).code, plan)
        issued = issuing.record_issued(db, cfg, draft.id, pdf=file.read_bytes(), pdf_name=file.name, number=number,
                                       issued_on=day, via=f"cli:{_actor(actor)}", issued_at=utcnow(),
                                       docx=docx.read_bytes() if docx else None)
    except issuing.IssueError as exc:
        err.print(f"[red]report issue: {exc}[/red]", highlight=False)
        raise typer.Exit(2) from None
    info = _cycle(cfg, period, plan)
    steps.send_reports(db, cfg, info, [unit])
    send_replies(db, cfg, units=[unit], with_operator=False)
    console.print(f"{unit}: report {issued.number} of {issued.issued_on:%d/%m/%Y} recorded "
                  f"(signature: {issued.signature.state}{', ' + issued.signature.signer if issued.signature.signer else ''})"
                  f"{' (already recorded)' if issued.again else ''}; sent to the parent", highlight=False)


@report_app.callback()
def report(
    ctx: typer.Context,
    unit: Annotated[str | None, typer.Option()] = None, period: Annotated[str | None, typer.Option()] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Directory.")] = None,
    plan: Annotated[str | None, typer.Option()] = None, as_of: Annotated[str | None, typer.Option("--as-of")] = None,
) -> None:
    """Render a unit's report (Word, XLSX appendix, email, chart) into a directory, without sending."""
    if ctx.invoked_subcommand is not None:
        return
    if unit is None or period is None or output is None:
        err.print("[red]report: --unit, --period and -o are needed (or: baocao report issue ...)[/red]")
        raise typer.Exit(2)
    from baocao.consolidation.report import render_all
    from baocao.consolidation.reporting import render, task_table

    cfg = _config()
    info, when, figs = _figures_at(cfg, unit, period, plan, as_of)
    today = cfg.calendar.local_date(when)
    rendered = render(cfg, info, unit, figs, today, tasks=task_table(_db(cfg), cfg, info, unit, today), correction_of=None)
    paths = render_all(rendered.context, output)
    for kind, path in paths.items():
        console.print(f"{kind}: {path}")


def _figures_at(cfg: Config, unit: str, period: str, plan: str | None,
                as_of: str | None) -> tuple[CycleInfo, datetime, dict[str, Figures]]:
    """The cycle, the instant and the figures of its tree at that instant; exit 2 if `unit` is not in it."""
    import pendulum

    from baocao.consolidation.reporting import figures_for

    info = _cycle(cfg, period, plan)
    when = _as_of(as_of) or pendulum.now(cfg.calendar.settings.timezone)
    figs = figures_for(_db(cfg), cfg, info, when)
    if unit not in figs:
        err.print(f"[red]{unit} is not in the cycle's tree ({info.root})[/red]")
        raise typer.Exit(2)
    return info, when, figs


@app.command()
def figures(
    unit: Annotated[str, typer.Option()], period: Annotated[str, typer.Option()],
    plan: Annotated[str | None, typer.Option()] = None, as_of: Annotated[str | None, typer.Option("--as-of")] = None,
    fmt: Annotated[str, typer.Option("--format", help="json")] = "json",
) -> None:
    """Print a unit's consolidated figures (keys documented in the README)."""
    _, _, figs = _figures_at(_config(), unit, period, plan, as_of)
    sys.stdout.write(json.dumps(figs[unit].to_dict(), ensure_ascii=False, indent=1, default=str) + "\n")


# ----------------------------------------------------------------------------- tasks (Phụ lục)
tasks_app = typer.Typer(help="The plans' assigned tasks (Phụ lục).", no_args_is_help=True)
app.add_typer(tasks_app, name="tasks")


@tasks_app.command("import")
def tasks_import(
    file: Annotated[Path, typer.Argument(help="The appendix: text (tab-separated, as in the plan) or .xlsx.")],
    plan: Annotated[str, typer.Option()],
    year: Annotated[int | None, typer.Option(help="Year of the plan (default: this year).")] = None,
) -> None:
    """Import a plan's appendix of assigned tasks; all or nothing, every problem listed."""
    from baocao.tasks.appendix import AppendixImportError
    from baocao.tasks.recurrence import describe_vi
    from baocao.tasks.taskbook import import_appendix

    cfg = _config()
    _plan(cfg, plan)
    try:
        tasks = import_appendix(_db(cfg), cfg, file, plan, year or datetime.now().year)
    except AppendixImportError as exc:
        err.print(f"[red]nothing imported from {file}:[/red]\n{exc}", highlight=False)
        raise typer.Exit(1) from None
    # The recurrence read for each task, so an office can check it (and correct it in
    # config/task_bodies.toml, [<plan>.deadlines], then import again).
    table = Table(title=f"{len(tasks)} tasks imported for plan {plan}")
    for col in ("STT", "deadline", "due", "recurrence", "lead units", "partner units"):
        table.add_column(col)
    for t in tasks:
        table.add_row(str(t.number), t.deadline_text, str(t.due.due_date or t.due.recurrence or ""),
                      describe_vi(t.due, t.due_basis), str(len(t.lead_units)), str(len(t.partner_units)))
    console.print(table)
    console.print("Đọc sai thời hạn hoặc chu kỳ của nhiệm vụ nào thì ghi lại trong config/task_bodies.toml, "
                  f"mục [{plan}.deadlines] (ví dụ \"11\" = \"Hằng năm\"), rồi nhập lại phụ lục.", highlight=False, markup=False)


@tasks_app.command("list")
def tasks_list(plan: Annotated[str, typer.Option()], unit: Annotated[str | None, typer.Option()] = None) -> None:
    """List a plan's imported tasks (optionally those of one unit)."""
    from baocao.tasks.taskbook import list_tasks

    cfg = _config()
    _print_rows(list_tasks(_db(cfg), plan, unit), "table", title=f"tasks of {plan}")


# ----------------------------------------------------------------------------- schedules and serving
@app.command()
def schedule(year: Annotated[int | None, typer.Option(help="List that year's openings (computed; no server asked).")] = None
             ) -> None:
    """Each deployment's next run: as the Prefect server has scheduled it, else computed from its schedule."""
    import asyncio

    from flows.deployments import computed_next_runs, server_next_runs
    from flows.schedules import specs

    cfg = _config()
    if year is not None:
        rows = [{"flow": s.flow, "deployment": s.name, "schedule": s.when,
                 "parameters": json.dumps(s.parameters, ensure_ascii=False)} for s in specs(cfg, year)]
        _print_rows(rows, "table", title=f"schedules of {year} ({cfg.calendar.settings.timezone})")
        return
    api = _prefect_api_url()
    runs = None
    if api:
        try:
            runs = asyncio.run(server_next_runs(cfg))
            title = f"next runs as the Prefect server at {api} has scheduled them"
        except Exception as exc:  # noqa: BLE001 - any failure to reach the server is reported, then computed
            err.print(f"[red]the Prefect server at {api} did not answer ({type(exc).__name__}: {exc}); "
                      "showing the next runs computed from the schedules[/red]")
    if runs is None:
        runs = computed_next_runs(cfg)
        title = "next runs computed from the schedules (no Prefect server asked: set PREFECT_API_URL or run baocao up)"
    rows = [{"flow": r.flow, "deployment": r.deployment,
             "next run": (f"{r.at:%d/%m/%Y %H:%M}" + ("" if r.source == "server" or not api else " (not yet on the server)"))
             if r.at else "-",
             "schedule": r.when, "parameters": json.dumps(r.parameters, ensure_ascii=False)}
            for r in sorted(runs, key=lambda r: (r.at is None, r.at.timestamp() if r.at else 0))]
    _print_rows(rows, "table", title=f"{title} ({cfg.calendar.settings.timezone})")


def _prefect_api_url() -> str | None:
    """The Prefect API this command would talk to (environment or active profile), if any."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None


@app.command()
def serve() -> None:
    """Serve every deployment with its schedules from this process, against the Prefect server of PREFECT_API_URL.

    At start it checks that the server creates the scheduled runs it owes, and prints what is next.
    """
    from flows.deployments import serve as serve_all
    from flows.up import announce

    cfg = _safe_config()
    if not _prefect_api_url():
        err.print("[red]serve needs a Prefect server: with none configured, Prefect would start a temporary one "
                  "whose scheduler never runs. Set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api), or run "
                  "`baocao up`, which starts one.[/red]")
        raise typer.Exit(2)
    serve_all(cfg, on_started=lambda spec_list: announce(cfg, spec_list, console))


@app.command()
def up() -> None:
    """Run baocao for real on the embedded defaults: database, Prefect server, mail servers, every schedule.

    Starts what is not already there (a local Prefect server unless PREFECT_API_URL is set, the built-in
    SMTP and IMAP servers unless real ones are configured), serves every deployment and prints the UI's
    address, the mail folder and what is scheduled next. Ctrl-C or SIGTERM stops everything.
    """
    from flows.up import UpError
    from flows.up import up as run_up

    try:
        run_up(_safe_config(), console)
    except UpError as exc:
        err.print(f"[red]up: {exc}[/red]")
        raise typer.Exit(2) from None


@app.command()
def deploy(pool: Annotated[str, typer.Option(help="Process work pool name.")] = "baocao") -> None:
    """Register the deployments with the Prefect server, for workers of a process work pool."""
    import asyncio

    from flows.deployments import deploy as deploy_all

    ids = asyncio.run(deploy_all(_config(), pool))
    console.print(f"{len(ids)} deployments registered in work pool {pool!r}")


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="Where the demo keeps its database, mail and reports.")] = Path("var/demo"),
    seed: Annotated[int, typer.Option(help="Random seed of the simulated units.")] = 2026,
) -> None:
    """A full simulated cycle for Hải Phòng on embedded defaults (SQLite, local Prefect, built-in mail)."""
    from flows.demo import run_demo

    run_demo(workdir, seed=seed, console=console)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
