"""The configuration loader: the national tree, the catalogue, the plans, and its error messages."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from baocao.rules.config import PROJECT_DIR, ConfigError, check, load_config, load_settings
from baocao.rules.periods import Period
from baocao.rules.plans import unit_deadlines


def test_national_tree_has_official_units_and_departments(cfg):
    h = cfg.hierarchy
    levels = [u.level for u in h.units.values()]
    assert levels.count("ministry") == 1
    assert levels.count("province") == 34
    assert levels.count("commune") == 3321
    assert h.root.code == "BNV" and h.root.name == "Bộ Nội vụ"
    assert h["T31"].name == "Thành phố Hải Phòng"
    assert len([u for u in h.children("T31") if u.level == "commune"]) == 114
    assert len([u for u in h.children("T46") if u.level == "commune"]) == 40
    assert h["X10714"].name == "Phường Nhị Chiểu" and h["X10714"].parent == "T31"
    assert h["X11074"].name == "Xã Tứ Kỳ"
    assert h["X06421"].name == "Xã Thiện Tân" and h["X06421"].parent == "T20"
    # departments from the seeds, at any depth
    assert h["X10714-VHXH"].parent == "X10714"
    assert [a.code for a in h.ancestors("T12-VPUB-HCQT")] == ["T12-VPUB", "T12", "BNV"]
    assert h.depth("T12-VPUB-HCQT") == 3


def test_every_unit_has_reserved_domain_contacts(cfg):
    for u in cfg.hierarchy.units.values():
        assert u.coordinator_emails and u.head_emails
        for addr in u.all_emails:
            assert addr.endswith(".example"), addr  # RFC 2606


def test_catalog_derived_and_relations_reference_counts(cfg):
    cat = cfg.catalog
    counts = {i.code for i in cat.counts}
    assert len(cat.groups) == 6
    targets = {d.code: (d.op, d.target) for d in cat.derived}
    assert (">=", 60.0) in targets.values() and (">=", 95.0) in targets.values()
    assert (">=", 10.0) in targets.values() and (">=", 15.0) in targets.values()
    assert ("<=", 0.0) in targets.values() and (">=", 100.0) in targets.values()
    for r in cat.relations:
        assert r.left in counts and r.right in counts


def test_plans_from_the_seeds(cfg):
    assert set(cfg.plans) == {"national", "tu-ky", "nhi-chieu", "lai-chau-vp", "hue", "thien-tan"}
    h1 = Period(2026, "H1")
    hue = unit_deadlines(cfg.plan("hue"), h1, cfg.hierarchy, cfg.calendar)
    communes = [u.code for u in cfg.hierarchy.children("T46") if u.level == "commune"]
    assert {hue[c].deadline.isoformat() for c in communes} == {"2026-06-10"}
    assert hue["T46-SNV"].deadline.isoformat() == "2026-06-10"
    tuky = unit_deadlines(cfg.plan("tu-ky"), h1, cfg.hierarchy, cfg.calendar)
    assert tuky["X11074"].deadline.isoformat() == "2026-06-05"
    # departments count back 3 working days from the commune's deadline (Fri 5/6 -> Tue 2/6)
    assert tuky["X11074-VHXH"].deadline.isoformat() == "2026-06-02"
    nhi = unit_deadlines(cfg.plan("nhi-chieu"), Period(2026, "Y"), cfg.hierarchy, cfg.calendar)
    assert nhi["X10714"].deadline.isoformat() == "2026-12-10"
    assert cfg.plan("hue").kinds == ("Q1", "H1", "9M", "Y")
    assert cfg.plan("tu-ky").kinds == ("H1", "Y")


def test_national_deadline_on_saturday_moves_to_friday(cfg):
    sch = unit_deadlines(cfg.plan("national"), Period(2026, "H1"), cfg.hierarchy, cfg.calendar)
    assert sch["BNV"].deadline.isoformat() == "2026-06-19"  # 20/6/2026 is a Saturday


def test_check_warns_about_suspicious_things(cfg):
    warnings = check(cfg, 2026)
    assert any("falls before the cut-off ends" in w and "hue.toml" in w for w in warnings)
    assert any("is not a working day" in w for w in warnings)


def _copy_config(tmp_path: Path) -> Path:
    dest = tmp_path / "config"
    shutil.copytree(PROJECT_DIR / "config", dest)
    return dest


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        ("plans/hue.toml", 'root = "T46"', 'root = "T99"', "plans/hue.toml: root: 'T99' is not a unit"),
        ("plans/hue.toml", "commune = { day = 10 }", "commune = { day = 40 }", "deadlines.commune.day: 40 is not a day"),
        ("plans/hue.toml", 'kinds = ["Q1", "H1", "9M", "Y"]', 'kinds = ["Q5"]', "kinds: 'Q5' is not a period kind"),
        ("plans/hue.toml", 'nonworking = "previous"', 'nonworking = "sideways"', "nonworking: 'sideways'"),
        ("plans/hue.toml", 'time = "08:00"', 'time = "8h"', "open.time: '8h' is not a time"),
        ("indicators.toml", 'numerator = "HN_TRUC_TUYEN"', 'numerator = "NOPE"', "numerator: 'NOPE' is not a count"),
        ("indicators.toml", 'kind = "ratio"', 'kind = "average"', "kind: 'average' is not one of"),
        ("hierarchy.toml", 'parent = "X10714"\ncode = "X10714-VHXH"', 'parent = "X99999"\ncode = "X10714-VHXH"',
         "parent: 'X99999' is not a unit"),
        ("hierarchy.toml", 'code = "T46-SNV"', 'code = "T46-VPUB"', "'T46-VPUB' is already a unit"),
        ("calendar.toml", 'extra_holidays = []', 'extra_holidays = ["30/4"]', "extra_holidays: dates must be"),
        ("plans/national.toml", "[deadlines]", "[deadlinez]", "plans/national.toml: deadlines: missing"),
    ],
)
def test_loader_errors_name_file_key_and_problem(tmp_path, file, old, new, expected):
    d = _copy_config(tmp_path)
    path = d / file
    text = path.read_text(encoding="utf-8")
    assert old in text, f"fixture text not found in {file}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_config(d, env={})
    assert expected in str(exc.value)
    assert str(d) in str(exc.value)


def test_invalid_toml_is_reported_with_file(tmp_path):
    d = _copy_config(tmp_path)
    (d / "plans" / "hue.toml").write_text("code = \n", encoding="utf-8")
    with pytest.raises(ConfigError, match="hue.toml: not valid TOML"):
        load_config(d, env={})


def test_config_check_validates_task_bodies(tmp_path, monkeypatch):
    """An alias to a unit that does not exist is listed by `config check`, not found at the first import."""
    from typer.testing import CliRunner

    from flows.cli import app

    d = _copy_config(tmp_path)
    path = d / "task_bodies.toml"
    text = path.read_text(encoding="utf-8")
    old = '"Phòng VHXXH" = "X10714-VHXH"'
    assert old in text
    path.write_text(text.replace(old, '"Phòng VHXXH" = "X10714-VHXXH"'), encoding="utf-8")
    monkeypatch.setenv("BAOCAO_CONFIG_DIR", str(d))
    result = CliRunner().invoke(app, ["config", "check", "--year", "2026"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    out = "".join(result.stdout.split())  # the console wraps long lines at its own width: compare without spaces
    assert "".join("nhi-chieu.aliases.'Phòng VHXXH': 'X10714-VHXXH' is not a unit".split()) in out
    assert "".join(str(path).split()) in out


def test_a_malformed_task_bodies_file_stops_loading(tmp_path):
    d = _copy_config(tmp_path)
    with (d / "task_bodies.toml").open("a", encoding="utf-8") as f:
        f.write('\n[quang-tri.groups]\n"Các sở" = "sở of T46"\n')
    with pytest.raises(ConfigError, match=r"task_bodies.toml: quang-tri.groups.'Các sở': 'sở of T46': use"):
        load_config(d, env={})


def test_settings_environment_overrides_and_secrets(tmp_path):
    d = _copy_config(tmp_path)
    s = load_settings(d / "settings.toml", env={
        "BAOCAO_SMTP__HOST": "smtp.tinh.example", "BAOCAO_SMTP__PORT": "2525",
        "BAOCAO_SMTP__PASSWORD": "hunter2-secret", "BAOCAO_TOKEN_SECRET": "tok-secret-xyz",
        "BAOCAO_DATABASE_URL": "postgresql://u@db.example/baocao",
    })
    assert s.smtp.host == "smtp.tinh.example" and s.smtp.port == 2525
    assert s.database_url.startswith("postgresql://")
    assert set(s.secrets()) == {"hunter2-secret", "tok-secret-xyz"}
    assert "hunter2-secret" not in repr(s) and "tok-secret-xyz" not in str(s.model_dump())
    with pytest.raises(ConfigError, match=r"smtp\.port"):
        load_settings(d / "settings.toml", env={"BAOCAO_SMTP__PORT": "not-a-port"})
    with pytest.raises(ConfigError, match="unknown_key"):
        load_settings(d / "settings.toml", env={"BAOCAO_UNKNOWN_KEY": "1"})
