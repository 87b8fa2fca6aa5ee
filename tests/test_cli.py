"""The command line: a thin layer, tested as a user runs it (typer's runner, real configuration and database)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()


@pytest.fixture
def cli_env(monkeypatch, tmp_path):  # noqa: ANN001, ANN201
    from baocao import runtime

    monkeypatch.setenv("BAOCAO_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("BAOCAO_VAR_DIR", str(tmp_path))
    runtime.reset()
    yield tmp_path
    runtime.reset()


def test_units_list_json_has_the_official_tree_and_departments(cfg):
    result = runner.invoke(app, ["units", "list", "--format", "json"])
    assert result.exit_code == 0, result.output
    units = json.loads(result.stdout)
    levels = [u["level"] for u in units]
    assert levels.count("ministry") == 1 and levels.count("province") == 34 and levels.count("commune") == 3321
    departments = [u for u in units if u["level"] == "department"]
    assert len(units) == 1 + 34 + 3321 + len(departments) and len(departments) >= 30
    assert {"code": "X10714", "name": "Phường Nhị Chiểu", "level": "commune", "parent": "T31"}.items() <= next(
        u for u in units if u["code"] == "X10714").items()


def test_units_list_filters_and_formats():
    result = runner.invoke(app, ["units", "list", "--parent", "X10714", "--format", "csv"])
    assert result.exit_code == 0
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("code,name,level,parent") and len(lines) == 1 + 5
    result = runner.invoke(app, ["units", "list", "--under", "T46", "--level", "department", "--format", "json"])
    assert len(json.loads(result.stdout)) == 12
    assert runner.invoke(app, ["units", "list", "--parent", "NOPE"]).exit_code == 2


@pytest.mark.parametrize(("plan", "shown"), [("hue", "10/6/2026"), ("tu-ky", "05/6/2026"), ("nhi-chieu", "10/6/2026")])
def test_calendar_shows_the_plan_deadlines(plan, shown):
    result = runner.invoke(app, ["calendar", "--period", "2026-H1", "--plan", plan], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert shown in result.stdout
    assert "15/12/2025 – 14/6/2026" in result.stdout  # the ND 09 cut-off window


def test_calendar_rejects_a_bad_period():
    result = runner.invoke(app, ["calendar", "--period", "2026-H3", "--plan", "hue"])
    assert result.exit_code == 2


def test_config_check_reports_counts_and_warnings():
    result = runner.invoke(app, ["config", "check", "--year", "2026"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "configuration OK: 3390 units" in result.stdout
    assert "falls before the cut-off ends" in result.stdout


def test_init_creates_the_database_and_form_writes_a_workbook(cli_env):
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 0, result.output
    assert "3390 units loaded" in result.stdout
    out = cli_env / "form.xlsx"
    result = runner.invoke(app, ["form", "--unit", "X10714-VHXH", "--period", "2026-H1", "--plan", "nhi-chieu",
                                 "-o", str(out)])
    assert result.exit_code == 0, result.output
    from openpyxl import load_workbook

    wb = load_workbook(out)
    assert wb.sheetnames == ["Thông tin", "Chỉ tiêu", "Nhiệm vụ", "Đánh giá"]
    info = {r[0].value: r[1].value for r in wb["Thông tin"].iter_rows(max_col=2) if r[0].value}
    assert info["Mã đơn vị"] == "X10714-VHXH" and info["Mã kỳ báo cáo"] == "2026-H1"


def test_schedule_lists_open_period_for_every_plan_and_kind(cfg):
    result = runner.invoke(app, ["schedule", "--year", "2026"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for plan in cfg.plans.values():
        for kind in plan.kinds:
            assert f"open-{plan.code}-{kind.lower()}" in result.stdout
    assert "retry-unit" in result.stdout and "chase-daily" in result.stdout


def test_schedules_are_built_from_the_plans(cfg):
    from baocao.rules.periods import Period
    from baocao.rules.plans import open_at
    from flows.schedules import specs

    by_name = {s.name: s for s in specs(cfg, 2026)}
    hue_h1 = by_name["open-hue-h1"]
    # Opened before the effective deadlines: Huế's wards owe 05/6 under the national plan (issue 19.2).
    when = open_at(cfg.plan("hue"), Period(2026, "H1"), cfg.hierarchy, cfg.calendar, plans=cfg.plans.values())
    assert cfg.calendar.local_date(when).isoformat() == "2026-05-22"
    assert hue_h1.runs == ((when, {"period": "2026-H1"}),)  # one run, on that year's calendar, with its period
    assert hue_h1.parameters == {"plan": "hue"}
    assert cfg.calendar.is_working_day(when.date())
    assert by_name["chase-daily"].cron == "30 8 * * *"
    assert by_name["consolidate-daily"].cron == "0 17 * * *"


def test_openings_are_one_time_schedules_carrying_their_period(cfg):
    """A yearly cron on 2026's opening date fired in 2027 on 2026's date; each opening is now its own run."""
    import pendulum

    from flows.schedules import prefect_schedules, specs

    now = pendulum.datetime(2026, 12, 4, 9, tz="Asia/Ho_Chi_Minh")
    spec = {s.name: s for s in specs(cfg, now)}["open-national-h1"]
    [(at, params)] = spec.runs
    assert at.year == 2027 and params == {"period": "2027-H1"}
    [schedule] = prefect_schedules(spec, "Asia/Ho_Chi_Minh")
    assert schedule.rrule.startswith(f"DTSTART:{at:%Y%m%dT%H%M%S}") and "COUNT=1" in schedule.rrule
    assert schedule.parameters == {"period": "2027-H1"}


def test_the_cli_console_measures_the_width_at_each_print(monkeypatch: pytest.MonkeyPatch) -> None:
    """A console made while COLUMNS was 40 (the first CliRunner call of a test process) must not wrap the
    next call's output at 40: the bad-files test read its messages cut in two, depending on test order."""
    from flows.cli import _Console

    monkeypatch.setenv("COLUMNS", "40")
    console = _Console()
    assert console.width == 40
    monkeypatch.setenv("COLUMNS", "300")
    assert console.width == 300
