"""Issue 19, points 3-5: the form `baocao form` writes, task deadlines on non-working days, recurring tasks.

Built from the seeds' own rows: 001 (KH 158/KH-UBND, Phường Nhị Chiểu) and 003 (KH 263/KH-UBND,
Thành phố Huế), whose appendices are config/appendices/nhi-chieu.txt and hue.txt.
"""

from __future__ import annotations

import io
import random
from datetime import date

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from baocao.opening.forms import COUNT_HEADER_ROW, SHEET_TASKS, TASK_HEADER_ROW, FormBuilder
from baocao.rules.periods import Period
from baocao.store.db import Blob, OutboxMessage
from baocao.tasks.appendix import read_appendix, resolve_tasks
from baocao.tasks.deadlines import deadline_label_vi, task_deadline
from baocao.tasks.duephrases import parse_due_phrase
from baocao.tasks.recurrence import read_task_due
from baocao.tasks.taskbodies import parse_task_bodies
from tests.support.wards import at, cli

VHXH = "X10714-VHXH"


def _tasks(cfg, plan: str, overrides: dict | None = None):  # noqa: ANN001, ANN202
    rules = cfg.task_bodies[plan]
    if overrides is not None:
        from dataclasses import replace

        rules = replace(rules, deadlines=overrides)
    rows = read_appendix(cfg.directory / "appendices" / f"{plan}.txt")
    return {t.number: t for t in resolve_tasks(rows, plan=plan, root=cfg.plan(plan).root, hierarchy=cfg.hierarchy,
                                               rules=rules, year=2026)}


# ----------------------------------------------------------------------------- point 3: baocao form
def _mailed_form(app, cycle, unit: str) -> bytes:  # noqa: ANN001
    """The form the open-period flow's prepare step attached to the unit's request (read back from the outbox)."""
    from baocao.opening.dispatch import prepare_requests

    prepared = prepare_requests(app.db, app.cfg, cycle, [unit], FormBuilder(app.cfg.catalog_for(cycle.plan)))
    assert prepared.written == [unit], prepared.failed
    with app.db.session() as s:
        message = s.scalars(select(OutboxMessage).where(OutboxMessage.cycle_id == cycle.id,
                                                        OutboxMessage.unit_code == unit)).one()
        (attachment,) = message.attachments
        return s.get(Blob, attachment["blob_id"]).content


def _cells(form: bytes) -> dict[str, list[tuple]]:
    wb = load_workbook(io.BytesIO(form))
    return {ws.title: [tuple(r) for r in ws.iter_rows(values_only=True)] for ws in wb.worksheets}


def test_form_command_writes_the_form_the_flow_mails_with_tasks_and_last_year(app, tmp_path):
    """Seed 001 line 181: "1\tXây dựng, ban hành kế hoạch của UBND phường ...\tPhòng Văn hóa - Xã hội (VHXH)\t
    Các phòng, đơn vị\tKế hoạch triển khai\tTrước 10/5/2026" — Phòng VHXH's mailed H1 form lists its 19
    tasks and last year's counts; `baocao form` used to leave both out."""
    from baocao.devservers.simulate import figures, fill_form
    from baocao.intake.pipeline import Incoming, take_in
    from baocao.store.queries import open_cycle

    cfg = app.cfg
    imported = cli("tasks", "import", str(cfg.directory / "appendices" / "nhi-chieu.txt"), "--plan", "nhi-chieu",
                   "--year", "2026")
    assert imported.exit_code == 0, imported.output
    # Last year: VHXH's accepted 2025-H1 form, taken in as the intake takes any file.
    last = open_cycle(app.db, cfg, Period(2025, "H1"), "nhi-chieu")
    typed = figures(cfg.catalog, random.Random(3))
    last_form = _mailed_form(app, last, VHXH)
    filled = fill_form(last_form, cfg.catalog, typed, random.Random(3),
                       task_status=dict.fromkeys(range(1, 20), "in_progress"))  # none done: all asked again
    outcome = take_in(app.db, cfg, Incoming(filled, f"BaoCao_2025-H1_{VHXH}.xlsx", "folder", None,
                                            at(cfg, date(2025, 6, 2))))
    assert [u.status for u in outcome.units] == ["accepted"]

    mailed = _mailed_form(app, open_cycle(app.db, cfg, Period(2026, "H1"), "nhi-chieu"), VHXH)
    out = tmp_path / "form.xlsx"
    run = cli("form", "--unit", VHXH, "--period", "2026-H1", "--plan", "nhi-chieu", "-o", str(out))
    assert run.exit_code == 0, run.output
    written, sent = _cells(out.read_bytes()), _cells(mailed)
    assert written == sent
    assert len([r for r in written[SHEET_TASKS][TASK_HEADER_ROW:] if r[0] not in (None, "")]) == 19
    header = written["Chỉ tiêu"][COUNT_HEADER_ROW - 1]
    code = header.index("Mã")
    counts = {r[code]: r for r in written["Chỉ tiêu"][COUNT_HEADER_ROW:] if r[code]}
    last_year = header.index("Cùng kỳ năm trước")
    assert {code: counts[code][last_year] for code in typed.values} == typed.values


# ----------------------------------------------------------------------------- point 4: non-working days
def test_task_deadline_on_a_sunday_moves_by_the_plans_rule_and_both_dates_are_shown(cfg):
    """Seed 001 line 181 (Nhị Chiểu task 1): "... Kế hoạch triển khai\tTrước 10/5/2026"; seed 003 line 175
    (Huế task 1): "... Kế hoạch của từng đơn vị, địa phương được ban hành.\tTháng 5/2026". 10/5/2026 and
    31/5/2026 are Sundays; both plans say nonworking = "previous"."""
    nc, hue = _tasks(cfg, "nhi-chieu")[1], _tasks(cfg, "hue")[1]
    h1 = Period(2026, "H1")
    for task, plan, written, counts in ((nc, "nhi-chieu", date(2026, 5, 10), date(2026, 5, 8)),
                                        (hue, "hue", date(2026, 5, 31), date(2026, 5, 29))):
        rule = cfg.plan(plan).nonworking
        deadline = task_deadline(task.due, h1, cfg.calendar, rule)
        assert deadline is not None and (deadline.written, deadline.effective) == (written, counts)
    assert deadline_label_vi(nc.due, h1, cfg.calendar, "previous") == (
        "Trước 10/5/2026 (ngày 10/5/2026 là Chủ nhật; hạn tính đến ngày 08/5/2026)")
    assert deadline_label_vi(hue.due, h1, cfg.calendar, "previous") == (
        "Tháng 5/2026 (ngày 31/5/2026 là Chủ nhật; hạn tính đến ngày 29/5/2026)")
    # A deadline on a working day is shown as written ("Quý II/2026" = Tuesday 30/6/2026).
    assert deadline_label_vi(_tasks(cfg, "nhi-chieu")[4].due, h1, cfg.calendar, "previous") == "Quý II/2026"


def test_the_mailed_form_and_the_report_show_the_date_that_counts(app):
    """Seed 001 line 181: Nhị Chiểu task 1 "Trước 10/5/2026" (a Sunday) on Phòng VHXH's form and in the
    ward's task table; on Saturday 09/5/2026 it is already overdue (due Friday 08/5/2026)."""
    from baocao.consolidation.reporting import task_table
    from baocao.store.queries import open_cycle
    from baocao.tasks.taskbook import import_appendix

    import_appendix(app.db, app.cfg, app.cfg.directory / "appendices" / "nhi-chieu.txt", "nhi-chieu", 2026)
    cycle = open_cycle(app.db, app.cfg, Period(2026, "H1"), "nhi-chieu")
    shown = "Trước 10/5/2026 (ngày 10/5/2026 là Chủ nhật; hạn tính đến ngày 08/5/2026)"
    rows = {r[0]: r for r in _cells(_mailed_form(app, cycle, VHXH))[SHEET_TASKS][TASK_HEADER_ROW:] if r[0]}
    assert rows[1][3] == shown
    table = {r["number"]: r for r in task_table(app.db, app.cfg, cycle, "X10714", date(2026, 5, 9))}
    assert table[1]["deadline"] == shown and table[1]["overdue"] == table[1]["assigned"]


# ----------------------------------------------------------------------------- point 5: recurring tasks
HUE_11_PRODUCT = ("Báo cáo tình hình, kết quả thực hiện Kết luận 226-KL/TW định kỳ quý I (trước ngày 10 tháng 3); "
                  "6 tháng (trước ngày 10 tháng 6); 9 tháng (trước ngày 10 tháng 9) và hằng năm (trước ngày 10 "
                  "tháng 12) gửi UBND thành phố")


def test_a_task_whose_product_asks_every_period_is_periodic(cfg):
    """Seed 003 line 187 (Huế task 11): "... Báo cáo tình hình, kết quả thực hiện Kết luận 226-KL/TW định kỳ
    quý I (trước ngày 10 tháng 3); 6 tháng (trước ngày 10 tháng 6); 9 tháng (trước ngày 10 tháng 9) và hằng
    năm (trước ngày 10 tháng 12) gửi UBND thành phố\tĐịnh kỳ hằng năm"."""
    task = _tasks(cfg, "hue")[11]
    assert task.product == HUE_11_PRODUCT and task.deadline_text == "Định kỳ hằng năm"
    assert task.due.recurrence == "periodic" and task.due_basis == "product"
    assert {k: task.due.due_in(Period(2026, k)) for k in ("Q1", "H1", "9M", "Y")} == {
        "Q1": date(2026, 3, 10), "H1": date(2026, 6, 10), "9M": date(2026, 9, 10), "Y": date(2026, 12, 10)}
    assert deadline_label_vi(task.due, Period(2026, "H1"), cfg.calendar, "previous") == (
        "Định kỳ hằng năm (kỳ báo cáo 6 tháng đầu năm 2026: trước ngày 10/6/2026)")
    # The deadline cell alone still reads as once a year; a one-off date is never made periodic.
    assert parse_due_phrase("Định kỳ hằng năm").recurrence == "yearly"
    assert read_task_due("Năm 2026", HUE_11_PRODUCT, default_year=2026)[0].recurrence is None


def test_tasks_import_lists_the_recurrence_read_and_an_override_corrects_it(app, cfg, monkeypatch):
    """Seed 003 line 187 (Huế task 11, "Định kỳ hằng năm" with reports each quarter, 6 and 9 months and year):
    the import says what it read, and `[hue.deadlines]` in config/task_bodies.toml overrides it."""
    from flows import cli as baocao_cli

    monkeypatch.setattr(baocao_cli.console, "width", 400)  # one table row per line
    run = cli("tasks", "import", str(cfg.directory / "appendices" / "hue.txt"), "--plan", "hue", "--year", "2026")
    assert run.exit_code == 0, run.output
    (row_11,) = [line for line in run.stdout.splitlines() if line.startswith("│ 11 ")]
    assert ("định kỳ mỗi kỳ báo cáo: quý I trước 10/3, 6 tháng trước 10/6, 9 tháng trước 10/9, năm trước 10/12 "
            "(đọc từ cột «Sản phẩm/Kết quả»)") in row_11
    assert "[hue.deadlines]" in run.stdout
    assert _tasks(cfg, "hue", {11: "Hằng năm"})[11].due.recurrence == "yearly"
    rules = parse_task_bodies({"hue": {"deadlines": {"11": "Định kỳ: quý I trước 10/3; 6 tháng trước 10/6"}}},
                              "task_bodies.toml")
    assert rules["hue"].deadlines == {11: "Định kỳ: quý I trước 10/3; 6 tháng trước 10/6"}
    overridden = _tasks(cfg, "hue", dict(rules["hue"].deadlines))[11]
    assert overridden.due_basis == "override" and overridden.due.schedule == (("Q1", 3, 10), ("H1", 6, 10))
    from baocao.errors import TaskBodiesError

    with pytest.raises(TaskBodiesError, match="hue.deadlines"):
        parse_task_bodies({"hue": {"deadlines": {"11": "sớm nhất có thể"}}}, "task_bodies.toml")
