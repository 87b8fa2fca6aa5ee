"""Assigned tasks (Phụ lục of KH 158/KH-UBND, Nhị Chiểu) from the import to the consolidated report.

The appendix is imported with `baocao tasks import`; the open-period flow puts each department's tasks
on the `Nhiệm vụ` sheet of its form; the departments report a status per task; the consolidate flow's
report carries the task table (Word) and the overdue units (XLSX appendix). Real Prefect API, SQLite
and a real SMTP server on loopback.
"""

from __future__ import annotations

import io
from datetime import date

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from baocao.opening.forms import ROLE_LABELS, SHEET_TASKS, STATUS_LABELS, TASK_HEADER_ROW
from baocao.store.db import Task, TaskAssignment
from baocao.tasks.appendix import read_appendix
from tests.support.issuing import draft_mails, issue
from tests.support.wards import (
    DEPTS,
    PERIOD,
    WARD,
    WARD_DUE,
    at,
    attachments,
    cli,
    docx_text,
    draw,
    forms_received,
    report_mails,
    submit,
    xlsx_totals,
)

APPENDIX = "appendices/nhi-chieu.txt"
STATUSES = list(STATUS_LABELS)  # done, in_progress, not_started


def task_counts(db) -> tuple[int, int]:  # noqa: ANN001
    with db.session() as s:
        return (s.scalar(select(func.count()).select_from(Task)) or 0,
                s.scalar(select(func.count()).select_from(TaskAssignment)) or 0)


def import_tasks(app):  # noqa: ANN001, ANN201
    from baocao.tasks.taskbook import import_appendix

    return {t.number: t for t in import_appendix(app.db, app.cfg, app.cfg.directory / APPENDIX, "nhi-chieu", 2026)}


def task_sheet(form: bytes) -> dict[int, dict[str, object]]:
    """The `Nhiệm vụ` sheet of a form: STT -> {header: value}."""
    ws = load_workbook(io.BytesIO(form))[SHEET_TASKS]
    headers = [c.value for c in ws[TASK_HEADER_ROW]]
    return {int(r[0]): dict(zip(headers, r, strict=False))
            for r in ws.iter_rows(min_row=TASK_HEADER_ROW + 1, values_only=True)
            if r[0] not in (None, "")}


# ----------------------------------------------------------------------------- import
def test_tasks_import_command_imports_the_19_tasks(app):
    run = cli("tasks", "import", str(app.cfg.directory / APPENDIX), "--plan", "nhi-chieu", "--year", "2026")
    assert run.exit_code == 0, run.output
    assert "19 tasks imported for plan nhi-chieu" in run.stdout
    n_tasks, n_assignments = task_counts(app.db)
    assert n_tasks == 19 and n_assignments > 19
    with app.db.session() as s:
        assigned = set(s.scalars(select(TaskAssignment.unit_code)))
    assert assigned <= {WARD, *DEPTS} and set(DEPTS) <= assigned
    # Importing again replaces, it does not add.
    assert cli("tasks", "import", str(app.cfg.directory / APPENDIX), "--plan", "nhi-chieu", "--year", "2026").exit_code == 0
    assert task_counts(app.db) == (n_tasks, n_assignments)


def test_a_broken_appendix_imports_nothing_and_names_the_problem(app, tmp_path):
    text = (app.cfg.directory / APPENDIX).read_text(encoding="utf-8")
    assert "\tPhòng Văn hóa - Xã hội\t" in text  # row 4's lead body
    broken = tmp_path / "nhi-chieu-broken.txt"
    broken.write_text(text.replace("\tPhòng Văn hóa - Xã hội\t", "\tPhòng Không Có Thật\t", 1), encoding="utf-8")

    run = cli("tasks", "import", str(broken), "--plan", "nhi-chieu", "--year", "2026")
    assert run.exit_code == 1
    assert "nothing imported" in run.stderr and "Phòng Không Có Thật" in run.stderr and "STT 4" in run.stderr
    assert task_counts(app.db) == (0, 0)

    # With the good appendix in place, a broken one changes nothing either.
    assert cli("tasks", "import", str(app.cfg.directory / APPENDIX), "--plan", "nhi-chieu", "--year", "2026").exit_code == 0
    before = task_counts(app.db)
    with app.db.session() as s:
        lead_of_4 = set(s.scalars(select(TaskAssignment.unit_code).join(Task).where(
            Task.number == 4, TaskAssignment.role == "lead")))
    assert cli("tasks", "import", str(broken), "--plan", "nhi-chieu", "--year", "2026").exit_code == 1
    assert task_counts(app.db) == before
    with app.db.session() as s:
        assert set(s.scalars(select(TaskAssignment.unit_code).join(Task).where(
            Task.number == 4, TaskAssignment.role == "lead"))) == lead_of_4 == {"X10714-VHXH"}


# ----------------------------------------------------------------------------- forms
@pytest.mark.usefixtures("prefect_api")
def test_each_department_form_lists_its_tasks_and_recurring_ones_every_period(app):
    from flows.open_period import open_period

    tasks = import_tasks(app)
    assert len(tasks) == len(read_appendix(app.cfg.directory / APPENDIX)) == 19
    recurring = {n for n, t in tasks.items() if t.due.recurrence in ("continuous", "yearly")}
    assert {2, 3, 5, 6, 10, 16, 17} <= recurring and 1 not in recurring

    open_period(period=PERIOD, plan="nhi-chieu")
    open_period(period="2026-Y", plan="nhi-chieu")
    for period in (PERIOD, "2026-Y"):
        forms = forms_received(app, period)
        assert sorted(forms) == sorted(DEPTS), period
        for unit in DEPTS:
            rows = task_sheet(forms[unit][0])
            mine = {n for n, t in tasks.items() if unit in t.lead_units or unit in t.partner_units}
            assert set(rows) == mine, (period, unit)
            assert recurring & mine <= set(rows)
            for n in mine:
                role = "lead" if unit in tasks[n].lead_units else "partner"
                assert rows[n]["Vai trò"] == ROLE_LABELS[role], (period, unit, n)
                assert rows[n]["Thời hạn"].startswith(tasks[n].deadline_text)  # the plan's words first
                assert rows[n]["Trạng thái"] in (None, "")
    # Task 17 is led by Phòng VHXH with Trung tâm DVSNC only: the other departments do not see it.
    h1 = forms_received(app, PERIOD)
    assert 17 in task_sheet(h1["X10714-TTDVSNC"][0]) and 17 not in task_sheet(h1["X10714-KT"][0])


@pytest.mark.usefixtures("prefect_api")
def test_a_one_off_task_reported_done_is_not_asked_again_the_next_period(app):
    from flows.open_period import open_period

    tasks = import_tasks(app)
    assert tasks[1].due.recurrence is None and tasks[2].due.recurrence in ("continuous", "yearly")
    open_period(period=PERIOD, plan="nhi-chieu")
    forms = forms_received(app, PERIOD)
    typed = draw(app, DEPTS, seed=5)
    done, busy = "X10714-VHXH", "X10714-VP"  # both hold tasks 1 (one-off, due 10/5/2026) and 2 (recurring)
    assert {1, 2} <= set(task_sheet(forms[done][0])) and {1, 2} <= set(task_sheet(forms[busy][0]))
    submit(app, forms[done], typed[done], at(app.cfg, date(2026, 6, 3)), task_status={1: "done", 2: "done"})
    submit(app, forms[busy], typed[busy], at(app.cfg, date(2026, 6, 3)), task_status={1: "in_progress"})

    open_period(period="2026-Y", plan="nhi-chieu")
    year = forms_received(app, "2026-Y")
    assert 1 not in task_sheet(year[done][0]) and 2 in task_sheet(year[done][0])  # recurring: every period
    assert {1, 2} <= set(task_sheet(year[busy][0]))  # not done yet: still asked

    # The year's report still counts task 1 as done for that unit, though it is no longer on its form.
    from baocao.consolidation.reporting import task_table
    from baocao.store.queries import find_cycle

    cycle = find_cycle(app.db, "2026-Y", "nhi-chieu")
    assert cycle is not None
    (row,) = [r for r in task_table(app.db, app.cfg, cycle, WARD, date(2026, 12, 1)) if r["number"] == 1]
    names = app.cfg.hierarchy
    assert row["done"] == 1
    assert names[done].name not in row["overdue_units"] and names[busy].name in row["overdue_units"]


# ----------------------------------------------------------------------------- the report
@pytest.mark.usefixtures("prefect_api")
def test_ward_report_has_the_task_table_and_lists_overdue_units(app):
    from flows.consolidate import consolidate

    h = app.cfg.hierarchy
    tasks = import_tasks(app)
    from flows.open_period import open_period

    open_period(period=PERIOD, plan="nhi-chieu")
    forms = forms_received(app, PERIOD)
    typed = draw(app, DEPTS, seed=19)
    reporting = [u for u in DEPTS if u != "X10714-TTDVSNC"]  # Trung tâm DVSNC never reports

    def status(unit: str, number: int) -> str:
        return STATUSES[(number + DEPTS.index(unit)) % 3]

    for unit in reporting:
        submit(app, forms[unit], typed[unit], at(app.cfg, date(2026, 5, 29)),
               task_status={n: status(unit, n) for n in range(1, 20)})
    consolidate(period=PERIOD, plan="nhi-chieu", as_of=at(app.cfg, WARD_DUE, 17))
    (draft,) = draft_mails(app, WARD)  # the report as the ward reviews it, before it signs and sends it up
    files = attachments(draft)
    stem = f"6 tháng đầu năm 2026 - {h[WARD].name}"
    docx_name, xlsx_name = f"Dự thảo Báo cáo {stem}.docx", f"Phụ lục số liệu {stem}.xlsx"

    today = WARD_DUE
    expected = {}
    for n, t in tasks.items():
        units = set(t.lead_units) | set(t.partner_units)
        if WARD in units:
            continue  # the ward itself fills no form (see tasks 6 and 7): not asserted here
        got = {u: (status(u, n) if u in reporting else None) for u in units}
        overdue = sorted(h[u].name for u, st in got.items() if t.due.due_date and t.due.due_date < today and st != "done")
        expected[n] = ([list(got.values()).count("done"), list(got.values()).count("in_progress"),
                        sum(1 for st in got.values() if st in ("not_started", None)), len(overdue)], overdue)
    assert expected[1][0][3] > 0 and all(expected[n][0][3] == 0 for n in (2, 4, 8))  # task 1 was due 10/5/2026

    _, sheets = xlsx_totals(files[xlsx_name][1])
    rows = {r[0]: r for r in sheets["Nhiệm vụ"]}
    assert set(rows) == set(range(1, 20))
    for n, (counts, overdue) in expected.items():
        assert rows[n][1] == " ".join(tasks[n].content.split())
        assert rows[n][2:6] == counts, n
        assert sorted((rows[n][6] or "").split("; ")) == (overdue or [""]), n

    text = docx_text(files[docx_name][1])
    assert "TÌNH HÌNH THỰC HIỆN CÁC NHIỆM VỤ ĐƯỢC GIAO" in text
    assert "Tình hình thực hiện 19 nhiệm vụ được giao" in text
    for name in expected[1][1]:
        assert name in text
    import docx

    table = next(t for t in docx.Document(io.BytesIO(files[docx_name][1])).tables
                 if t.rows[0].cells[0].text == "STT" and "nhiệm vụ" in t.rows[0].cells[1].text.lower())
    body = {int(r.cells[0].text): [c.text for c in r.cells] for r in table.rows[1:]}
    for n, (counts, _) in expected.items():
        assert [int(x) for x in body[n][2:6]] == counts, n

    # Issued, the same task table reaches the city in the appendix sent with the signed report.
    issue(app, WARD, PERIOD, "nhi-chieu", number="15/BC-UBND", issued_on=WARD_DUE, at=at(app.cfg, WARD_DUE, 18))
    (mail,) = report_mails(app)
    assert xlsx_totals(attachments(mail)[xlsx_name][1])[1]["Nhiệm vụ"] == sheets["Nhiệm vụ"]
