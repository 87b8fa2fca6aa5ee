"""Nhị Chiểu's H1 2026 cycle for consolidation tests: open it, fill and take in the forms, read the reports.

Shared by test_consolidate and test_tasks_flow.
"""

from __future__ import annotations

import io
import random
from datetime import date

import pendulum
from openpyxl import load_workbook
from sqlalchemy import select

from baocao.devservers.simulate import Filled, fill_form
from baocao.devservers.simulate import figures as draw_figures
from baocao.intake.pipeline import Incoming, take_in
from baocao.store.db import Report

PERIOD = "2026-H1"
DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def at(cfg, day: date, hour: int = 10):  # noqa: ANN001, ANN201
    """A local (Asia/Ho_Chi_Minh) instant on `day`."""
    return pendulum.datetime(day.year, day.month, day.day, hour, 0, tz=cfg.calendar.settings.timezone)


def forms_received(app, period: str = PERIOD) -> dict[str, tuple[bytes, str]]:  # noqa: ANN001
    """unit code -> (form bytes, file name): the forms the SMTP server delivered with the requests."""
    out: dict[str, tuple[bytes, str]] = {}
    for m in app.smtp.messages:
        if m.message["X-Baocao-Kind"] != "request" or m.message["X-Baocao-Period"] != period:
            continue
        for part in m.message.iter_attachments():
            name = part.get_filename() or ""
            if name.endswith(".xlsx"):
                out[m.message["X-Baocao-Unit"]] = (part.get_content(), name)
    return out


def report_mails(app) -> list:  # noqa: ANN001
    """The report messages the SMTP server accepted, in the order it accepted them."""
    return [m for m in app.smtp.messages if m.message["X-Baocao-Kind"] == "report"]


def submit(app, form: tuple[bytes, str], filled: Filled, when, *, seed: int = 1,  # noqa: ANN001
           task_status: dict[int, str] | None = None) -> str:
    """Fill the form as the unit would and take it in through the drop folder channel; the outcome's status."""
    data = fill_form(form[0], app.cfg.catalog, filled, random.Random(seed), task_status=task_status)
    outcome = take_in(app.db, app.cfg, Incoming(data, form[1], "folder", None, when))
    (unit,) = outcome.units
    assert unit.status == "accepted", [p.message_vi for p in unit.problems]
    return unit.status


def deadlines(app, cycle_id: int) -> dict[str, date]:  # noqa: ANN001
    from baocao.store.db import Request

    with app.db.session() as s:
        return {r.unit_code: r.deadline for r in s.scalars(select(Request).where(Request.cycle_id == cycle_id))}


def reports(app) -> list[Report]:  # noqa: ANN001
    with app.db.session() as s:
        return list(s.scalars(select(Report).order_by(Report.id)))


def xlsx_totals(data: bytes) -> tuple[dict[str, dict[str, object]], dict[str, list]]:
    """The appendix's "Số liệu theo đơn vị" sheet as {unit code: {header: value}} and the other sheets' rows."""
    wb = load_workbook(io.BytesIO(data))
    ws = wb["Số liệu theo đơn vị"]
    headers = [c.value for c in ws[4]]
    rows = {}
    for r in ws.iter_rows(min_row=6, values_only=True):
        if r[1]:
            rows[r[1]] = dict(zip(headers, r, strict=False))
    others = {name: [list(r) for r in wb[name].iter_rows(min_row=2, values_only=True)]
              for name in wb.sheetnames if name != "Số liệu theo đơn vị"}
    return rows, others


def docx_text(data: bytes) -> str:
    """Every paragraph and table cell of a Word file, one per line (python-docx)."""
    import docx

    d = docx.Document(io.BytesIO(data))
    lines = [p.text for p in d.paragraphs]
    for t in d.tables:
        for row in t.rows:
            lines += [c.text for c in row.cells]
    return "\n".join(lines)


def attachments(mail) -> dict[str, tuple[str, bytes]]:  # noqa: ANN001
    """file name -> (content type, bytes) of a received message's attachments."""
    return {p.get_filename(): (p.get_content_type(), p.get_content()) for p in mail.message.iter_attachments()}


def cli(*args: str):  # noqa: ANN201
    """`baocao ARGS` in this process, configured by the environment the `app` fixture set."""
    from typer.testing import CliRunner

    from flows.cli import app as baocao

    return CliRunner().invoke(baocao, list(args))


def draw(app, units, seed: int) -> dict[str, Filled]:  # noqa: ANN001
    """Plausible figures (all sanity relations hold) for each unit, reproducible."""
    rng = random.Random(seed)
    return {u: draw_figures(app.cfg.catalog, rng, scale=rng.uniform(0.5, 3.0)) for u in units}


def count_header(ind) -> str:  # noqa: ANN001
    return f"{ind.label} ({ind.unit})" if ind.unit else ind.label


def ratio(typed: dict[str, Filled], units, num: str, den: str) -> float:
    return sum(typed[u].values[num] for u in units) * 100 / sum(typed[u].values[den] for u in units)


WARD = "X10714"
DEPTS = ["X10714-VHXH", "X10714-VP", "X10714-KT", "X10714-TTHCC", "X10714-TTDVSNC"]
# Nhị Chiểu, H1 2026: KH 158 says the ward reports to the city before 10/6, but the national plan has
# the city collect its wards by 05/6 (Fri), and the earlier day applies (issue 19.2); its departments
# 3 working days earlier, 02/6 (Tue); the ward is due 1 working day after that, 03/6 (Wed).
WARD_DEADLINE, DEPT_DEADLINE, WARD_DUE = date(2026, 6, 5), date(2026, 6, 2), date(2026, 6, 3)


def open_ward(app, seed: int = 7):  # noqa: ANN001, ANN201
    """Open Nhị Chiểu's H1 cycle with the flow; (cycle, forms mailed to the departments, figures to type in)."""
    from baocao.store.queries import find_cycle
    from flows.open_period import open_period

    open_period(period=PERIOD, plan="nhi-chieu")
    cycle = find_cycle(app.db, PERIOD, "nhi-chieu")
    assert cycle is not None and cycle.root == WARD
    dl = deadlines(app, cycle.id)
    assert dl[WARD] == WARD_DEADLINE and {dl[d] for d in DEPTS} == {DEPT_DEADLINE}
    forms = forms_received(app)
    assert sorted(forms) == sorted(DEPTS)
    return cycle, forms, draw(app, DEPTS, seed)


def exempt(app, unit: str) -> None:  # noqa: ANN001
    from baocao.intake.operations import exempt as do_exempt

    do_exempt(app.db, app.cfg, unit, PERIOD, "đơn vị đang sáp nhập", actor="test")
