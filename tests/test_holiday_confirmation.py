"""Holidays computed by the `holidays` package vs the Government's decided schedule (issue 19, point 6).

Tết 2027 (04–10/02/2027) is the package's computation, not yet a decision; 24/11 rests on a Party
resolution. `baocao calendar` and `baocao config check` mark computed days "dự kiến (chưa được xác
nhận)", and the operator confirms or corrects a year in config/calendar.toml (``[years.<year>]``).
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from baocao.rules.config import PROJECT_DIR, ConfigError, load_config
from baocao.rules.periods import Period
from baocao.rules.plans import unit_deadlines
from flows.cli import app

runner = CliRunner()
COMPUTED, CONFIRMED = "dự kiến (chưa được xác nhận)", "đã xác nhận"

# Quốc khánh 2027: the package takes 02/9 and the day after (03/9); the Labour Code lets the
# Government pick the adjacent day before or after (2026 took the day before). A decision that
# takes 01/9 instead is the correction an operator records.
QUOC_KHANH_2027 = """
[years.2027]
confirmed = true
holidays = [{ date = "2027-09-01", name = "Quốc khánh (ngày liền kề trước)" }]
removed = ["2027-09-03"]
"""


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):  # noqa: ANN001, ANN201 - one table row per line, whatever ran before
    import flows.cli

    monkeypatch.setattr(flows.cli.console, "width", 400)


def _config_dir(tmp_path: Path, extra: str = "") -> Path:
    d = tmp_path / "config"
    shutil.copytree(PROJECT_DIR / "config", d)
    if extra:
        with (d / "calendar.toml").open("a", encoding="utf-8") as f:
            f.write(extra)
    return d


def _rows(output: str) -> dict[str, str]:
    """Rows of the holiday table of `baocao calendar`, by their date cell."""
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) > 5 and cells[1][:2].isdigit():
            rows[cells[1]] = line
    return rows


def _calendar(period: str, plan: str = "national") -> str:
    result = runner.invoke(app, ["calendar", "--period", period, "--plan", plan], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return result.stdout


def _check(year: int) -> list[str]:
    result = runner.invoke(app, ["config", "check", "--year", str(year)], env={"COLUMNS": "1000"})
    assert result.exit_code == 0, result.output
    return [line for line in result.stdout.splitlines() if "calendar.toml: years." in line]


def test_tet_2027_is_shown_as_computed_and_config_check_asks_for_the_decision(monkeypatch):
    monkeypatch.delenv("BAOCAO_CONFIG_DIR", raising=False)
    rows = _rows(_calendar("2027-Q1"))
    for day in ("04/02/2027", "05/02/2027", "06/02/2027", "10/02/2027"):
        assert COMPUTED in rows[day], rows
    assert "Giao thừa Tết Nguyên Đán" in rows["05/02/2027"] and "Thứ Sáu" in rows["05/02/2027"]
    assert "ngày mở kỳ 02/02/2027" in rows["05/02/2027"]  # the opening counts back over Tết
    assert "ngày mở kỳ" not in rows["06/02/2027"]  # Tết on a Saturday moves nothing
    warnings = _check(2027)
    tet = [w for w in warnings if "05/02/2027 (Giao thừa Tết Nguyên Đán)" in w]
    assert len(tet) == 1 and f"ngày nghỉ {COMPUTED}" in tet[0] and "national 2027-Q1 (ngày mở kỳ)" in tet[0]
    assert "[years.2027]" in tet[0]
    assert any("24/11/2027 (Ngày Văn hóa Việt Nam)" in w for w in warnings)


def test_the_shipped_2026_schedule_is_confirmed_except_24_november(monkeypatch):
    """2026's decisions are in config/calendar.toml; Ngày Văn hóa Việt Nam stays pending (Nghị quyết 80-NQ/TW)."""
    monkeypatch.delenv("BAOCAO_CONFIG_DIR", raising=False)
    rows = _rows(_calendar("2026-Y"))
    assert CONFIRMED in rows["17/02/2026"] and CONFIRMED in rows["02/9/2026"]
    assert CONFIRMED in rows["02/01/2026"] and "Tết Dương lịch" in rows["02/01/2026"]
    assert "Ngày làm việc bù" in rows["10/01/2026"] and CONFIRMED in rows["10/01/2026"]
    assert COMPUTED in rows["24/11/2026"]
    warnings = [w for w in _check(2026) if "years.2026" in w]
    assert len(warnings) == 1 and "24/11/2026 (Ngày Văn hóa Việt Nam)" in warnings[0]


def test_confirming_and_correcting_2027_changes_the_marking_and_the_deadlines(tmp_path, monkeypatch):
    before = load_config(_config_dir(tmp_path / "before"), env={})
    period = Period(2027, "9M")
    assert unit_deadlines(before.plan("national"), period, before.hierarchy, before.calendar)["X00004"].deadline \
        == date(2027, 9, 1)  # 05/9 is a Sunday; 03/9 and 02/9 computed holidays: back to Wednesday 01/9

    d = _config_dir(tmp_path / "after", QUOC_KHANH_2027)
    after = load_config(d, env={})
    schedules = unit_deadlines(after.plan("national"), period, after.hierarchy, after.calendar)
    assert schedules["X00004"].deadline == date(2027, 9, 3)  # Friday 03/9 is a working day again
    assert not after.calendar.is_working_day(date(2027, 9, 1))

    monkeypatch.delenv("BAOCAO_CONFIG_DIR", raising=False)
    rows = _rows(_calendar("2027-9M"))
    assert COMPUTED in rows["03/9/2027"] and "hạn nộp cấp xã 01/9/2027" in rows["03/9/2027"]
    monkeypatch.setenv("BAOCAO_CONFIG_DIR", str(d))
    rows = _rows(_calendar("2027-9M"))
    assert CONFIRMED in rows["01/9/2027"] and "Quốc khánh (ngày liền kề trước)" in rows["01/9/2027"]
    assert CONFIRMED in rows["02/9/2027"] and "03/9/2027" not in rows
    assert not any("hạn nộp cấp xã" in row for row in rows.values())  # the commune deadline is a plain Friday now
    assert CONFIRMED in _rows(_calendar("2027-Q1"))["05/02/2027"]  # the whole year is confirmed: Tết too
    assert _check(2027) == []


def test_a_pending_day_stays_computed_in_a_confirmed_year(tmp_path, monkeypatch):
    d = _config_dir(tmp_path, QUOC_KHANH_2027 + 'pending = ["2027-11-24"]\n')
    monkeypatch.setenv("BAOCAO_CONFIG_DIR", str(d))
    warnings = _check(2027)
    assert len(warnings) == 1 and "24/11/2027 (Ngày Văn hóa Việt Nam)" in warnings[0] and COMPUTED in warnings[0]


def test_a_compensating_working_saturday_counts_as_a_working_day(tmp_path, cfg):
    # Shipped 2026: Friday 02/01 off, worked back on Saturday 10/01 (Văn bản 12729/VPCP-KGVX).
    cal = cfg.calendar
    assert cal.is_working_day(date(2026, 1, 10)) and not cal.is_working_day(date(2026, 1, 2))
    assert cal.working_days_between(date(2026, 1, 9), date(2026, 1, 12)) == 2  # Saturday 10 and Monday 12
    assert cal.add_working_days(date(2026, 1, 1), 1) == date(2026, 1, 5)
    assert cal.add_working_days(date(2026, 1, 9), 1) == date(2026, 1, 10)

    # A deadline on a Saturday worked stays there: national H1 2027, communes on day 5 (a Saturday).
    period = Period(2027, "H1")
    plain = unit_deadlines(cfg.plan("national"), period, cfg.hierarchy, cal)
    assert plain["X00004"].deadline == date(2027, 6, 4)
    swapped = load_config(_config_dir(tmp_path, '\n[years.2027]\nworking_days = ["2027-06-05"]\n'), env={})
    schedules = unit_deadlines(swapped.plan("national"), period, swapped.hierarchy, swapped.calendar)
    assert schedules["X00004"].deadline == date(2027, 6, 5)
    special = {s.day: s for s in swapped.calendar.special_days(date(2027, 6, 1), date(2027, 6, 30))}
    assert special[date(2027, 6, 5)].working and special[date(2027, 6, 5)].status_vi == CONFIRMED


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ('[years.2027]\nholidays = ["2026-02-03"]\n', "years.2027.holidays: 2026-02-03 not in 2027"),
        ('[years.2027]\nremoved = ["3/9/2027"]\n', "years.2027.removed: '3/9/2027' is not a date"),
        ('[years.2027]\nconfirmed = "yes"\n', "years.2027.confirmed: expected true or false"),
        ('[years.2027]\nworking = ["2027-06-05"]\n', "years.2027.working: unknown key"),
        ('[years.2027]\nholidays = ["2027-06-05"]\nworking_days = ["2027-06-05"]\n',
         "years.2027.working_days: 2027-06-05 also listed in holidays"),
    ],
)
def test_a_wrong_year_table_names_the_key(tmp_path, extra, expected):
    with pytest.raises(ConfigError) as exc:
        load_config(_config_dir(tmp_path, "\n" + extra), env={})
    assert expected in str(exc.value) and "calendar.toml" in str(exc.value)
