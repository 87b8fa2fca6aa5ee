"""The operator's commands through `baocao` (typer's CliRunner, configured by the app fixture's env):
return, reopen, exempt, submit, status --format json and validate, against real SMTP/IMAP servers."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from baocao.chasing.reminders import chase_cycle
from baocao.opening.forms import INFO_LABELS
from flows.cli import app as cli
from tests.support.tuky import ON_TIME, VN, TuKy, open_tu_ky, set_info, text_of, value_cell

pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.slow]
BEFORE_DEADLINE = datetime(2026, 5, 29, 9, 0, tzinfo=VN)  # 3 working days before 02/6: the "before-3" reminder


@pytest.fixture
def tu_ky(app: Any) -> TuKy:
    """The Tứ Kỳ cycle 2026-H1, opened and mailed (see tests/support/tuky.py)."""
    return open_tu_ky(app)


def baocao(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def flat(text: str) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(text.split())


def chased(tu_ky: TuKy) -> dict[str, str]:
    """Unit -> reason of every reminder the chase would send on BEFORE_DEADLINE (dry run: nothing sent)."""
    return {a.unit: a.reason for a in chase_cycle(tu_ky.app.db, tu_ky.cfg, tu_ky.info, BEFORE_DEADLINE, dry_run=True)
            if a.kind == "reminder"}


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


# ----------------------------------------------------------------------------------------- return
def test_return_tells_the_unit_expects_it_again_and_a_new_version_is_accepted(tu_ky: TuKy) -> None:
    unit = "X11074-VHXH"
    v1, _ = tu_ky.fill(unit, seed=1)
    tu_ky.mail(unit, v1)
    tu_ky.collect(ON_TIME)
    tu_ky.replies()
    (first,) = tu_ky.submissions(unit)
    assert unit not in chased(tu_ky)  # accepted: not chased
    reason = "Số hội nghị trực tuyến chưa khớp với sổ theo dõi của Văn phòng; đề nghị rà soát lại."

    result = baocao("return", "--unit", unit, "--period", "2026-H1", "--plan", "tu-ky", "--reason", reason,
                    "--actor", "chuyenvien.tonghop")

    assert result.exit_code == 0, result.output
    assert f"{unit}: returned for correction" in result.output
    req = tu_ky.request(unit)
    assert (req.state, req.state_reason, req.accepted_submission_id, req.on_time) == ("returned", reason, None, None)
    (sub,) = tu_ky.submissions(unit)
    assert sub.id == first.id and sub.status == "returned"  # kept, no longer used
    (event,) = tu_ky.audit("return")
    assert (event.actor, event.unit_code, event.detail["reason"]) == ("chuyenvien.tonghop", unit, reason)
    (mail,) = tu_ky.replies()
    h = tu_ky.cfg.hierarchy
    assert set(mail.rcpt_tos) == {h[unit].coordinator_emails[0], h[unit].head_emails[0]}
    assert mail.message["X-Baocao-Kind"] == "returned" and "được trả lại để chỉnh sửa" in mail.message["Subject"]
    # Phòng Văn hóa - Xã hội collects the departments' reports (config/plans/tu-ky.toml [collector.root]) and is one
    # of them: its own report is returned by the commune it collects for, not by itself (as its form is requested)
    assert reason in text_of(mail) and "Ủy ban nhân dân xã Tứ Kỳ trả lại báo cáo" in text_of(mail)
    assert "Phòng Văn hóa - Xã hội xã Tứ Kỳ trả lại" not in text_of(mail)
    st = tu_ky.unit_status(unit)
    assert st["state"] == "returned" and st["accepted_at"] is None
    (total,) = tu_ky.status()["totals"]
    assert (total["received"], total["accepted"]) == (1, 0)
    assert chased(tu_ky)[unit] == reason  # expected again: the chase repeats the reason

    v2, fig2 = tu_ky.fill(unit, seed=2)
    tu_ky.mail(unit, v2)
    result = tu_ky.collect(ON_TIME)

    assert result["mailbox"]["by_status"] == {"accepted": 1}
    old, new = tu_ky.submissions(unit)
    assert (old.status, new.status, new.version) == ("returned", "accepted", 2)
    assert tu_ky.values(new.id) == fig2.values
    st = tu_ky.unit_status(unit)
    assert st["state"] == "accepted" and st["on_time"] is True
    (receipt,) = tu_ky.replies()
    assert receipt.message["X-Baocao-Kind"] == "receipt" and "lần gửi thứ 2" in text_of(receipt)
    assert unit not in chased(tu_ky)


def test_return_without_an_accepted_submission_fails_and_changes_nothing(tu_ky: TuKy) -> None:
    result = baocao("return", "--unit", "X11074-KT", "--period", "2026-H1", "--reason", "Sai số liệu")
    assert result.exit_code == 2
    assert "X11074-KT has no accepted submission for 2026-H1 (state: sent)" in flat(result.output)
    result = baocao("return", "--unit", "X99999", "--period", "2026-H1", "--reason", "Sai số liệu")
    assert result.exit_code == 2 and "no unit with code 'X99999'" in flat(result.output)
    assert tu_ky.request("X11074-KT").state == "sent"
    assert tu_ky.audit("return") == [] and tu_ky.replies() == []


# ----------------------------------------------------------------------------------------- reopen, submit
def test_reopen_lets_a_refused_file_in_after_the_lock(tu_ky: TuKy, tmp_path: Path) -> None:
    unit = "X11074-KT"
    path = write(tmp_path, tu_ky.forms[unit][0], tu_ky.fill(unit)[0])

    result = baocao("submit", path, "--unit", unit, "--as-of", "2026-06-20T10:00")

    assert result.exit_code == 0, result.output
    assert f"refused {unit} 2026-H1" in flat(result.output) and "đã khóa sổ" in flat(result.output)
    assert tu_ky.request(unit).state == "sent"
    (mail,) = tu_ky.replies()  # `submit` answers like the mailbox: to the coordinator (no sender)
    assert mail.rcpt_tos == (tu_ky.coordinator(unit),) and "đã khóa sổ" in text_of(mail)

    result = baocao("reopen", "--unit", unit, "--period", "2026-H1", "--until", "2026-06-30T17:00",
                    "--reason", "Phòng Kinh tế mất điện ngày 12/6", "--plan", "tu-ky", "--actor", "chuyenvien")
    assert result.exit_code == 0, result.output
    req = tu_ky.request(unit)
    assert req.reopened_until == datetime(2026, 6, 30, 17, 0, tzinfo=VN) and req.state == "sent"
    (event,) = tu_ky.audit("reopen")
    assert (event.actor, event.detail["reason"]) == ("chuyenvien", "Phòng Kinh tế mất điện ngày 12/6")

    result = baocao("submit", path, "--unit", unit, "--as-of", "2026-06-22T10:00")
    assert result.exit_code == 0, result.output
    assert f"accepted {unit} 2026-H1 (late)" in flat(result.output)
    assert tu_ky.unit_status(unit)["state"] == "late"
    (mail,) = tu_ky.replies()
    assert mail.message["X-Baocao-Kind"] == "receipt" and "nộp muộn" in text_of(mail)

    correction = write(tmp_path, "kt-sua.xlsx", tu_ky.fill(unit, seed=2)[0])
    result = baocao("submit", correction, "--unit", unit, "--as-of", "2026-07-01T10:00")  # after `until`
    assert f"refused {unit} 2026-H1" in flat(result.output) and "đã khóa sổ" in flat(result.output)
    assert tu_ky.counts()["receipts"] == 1 and tu_ky.unit_status(unit)["state"] == "late"


# ----------------------------------------------------------------------------------------- status
def test_status_json_gives_each_units_state_and_times_and_the_parent_totals(tu_ky: TuKy, tmp_path: Path) -> None:
    good, _ = tu_ky.fill("X11074-VHXH")
    bad, _ = tu_ky.fill("X11074-KT", mistake="decimal")
    tu_ky.mail("X11074-VHXH", good)
    tu_ky.mail("X11074-KT", bad)
    tu_ky.collect(ON_TIME)
    late = write(tmp_path, "vp.xlsx", tu_ky.fill("X11074-VP")[0])
    assert baocao("submit", late, "--as-of", "2026-06-05T10:00").exit_code == 0

    result = baocao("status", "--period", "2026-H1", "--plan", "tu-ky", "--format", "json")

    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["cycle"] == {"id": tu_ky.info.id, "period": "2026-H1", "plan": "tu-ky", "root": "X11074"}
    units: dict[str, dict[str, Any]] = {u["unit"]: u for u in doc["units"]}
    assert set(units) == {"X11074", "X11074-VHXH", "X11074-VP", "X11074-KT", "X11074-TTHCC"}
    assert units["X11074"]["role"] == "consolidate" and units["X11074"]["deadline"] == "2026-06-05"
    vhxh, vp, kt, tthcc = (units[u] for u in ("X11074-VHXH", "X11074-VP", "X11074-KT", "X11074-TTHCC"))
    assert (vhxh["state"], vhxh["on_time"], vhxh["files"]) == ("accepted", True, 1)
    assert datetime.fromisoformat(vhxh["accepted_at"]) == ON_TIME
    assert (vp["state"], vp["on_time"], vp["files"]) == ("late", False, 1)
    assert datetime.fromisoformat(vp["accepted_at"]) == datetime(2026, 6, 5, 10, 0, tzinfo=VN)
    assert (kt["state"], kt["on_time"], kt["accepted_at"], kt["files"]) == ("rejected", None, None, 1)
    assert "12,5" in kt["reason"]
    assert (tthcc["state"], tthcc["files"], tthcc["accepted_at"]) == ("sent", 0, None)
    assert all(u["deadline"] == "2026-06-02" and u["sent_at"] for u in (vhxh, vp, kt, tthcc))
    assert doc["totals"] == [{"unit": "X11074", "expected": 4, "received": 3, "accepted": 2, "on_time": 1,
                              "exempt": 0, "completeness": 0.5, "timeliness": 0.25}]

    result = baocao("exempt", "--unit", "X11074-TTHCC", "--period", "2026-H1", "--plan", "tu-ky",
                    "--reason", "Trung tâm mới thành lập, chưa phát sinh số liệu")
    assert result.exit_code == 0, result.output
    doc = json.loads(baocao("status", "--period", "2026-H1", "--plan", "tu-ky", "--format", "json").stdout)
    assert {u["unit"]: u["state"] for u in doc["units"]}["X11074-TTHCC"] == "exempt"
    (total,) = doc["totals"]
    assert (total["expected"], total["exempt"], total["accepted"], total["completeness"]) == (3, 1, 2, 2 / 3)


# ----------------------------------------------------------------------------------------- validate
def test_validate_prints_every_problem_exits_1_for_a_bad_file_0_for_a_good_one_and_stores_nothing(
        tu_ky: TuKy, tmp_path: Path) -> None:
    unit = "X11074-VP"
    good = write(tmp_path, "tot.xlsx", tu_ky.fill(unit)[0])
    bad_data, _ = tu_ky.fill(unit, mistake="decimal",
                             set_values={"KIEM_TRA": "abc", "VI_PHAM_XU_LY": 99, "VI_PHAM_PHAT_HIEN": 10})
    bad = write(tmp_path, "loi.xlsx", bad_data)
    first = tu_ky.cfg.catalog.counts[0].code

    result = baocao("validate", bad)

    assert result.exit_code == 1
    out = flat(result.output)
    assert f"({unit} 2026-H1): 3 error(s)" in out
    assert f"ô {value_cell(bad_data, first)}: giá trị không hợp lệ: “12,5” có phần thập phân" in out
    assert f"ô {value_cell(bad_data, 'KIEM_TRA')}: giá trị không hợp lệ: “abc” không phải số nguyên" in out
    (rel,) = [r for r in tu_ky.cfg.catalog.relations if (r.part, r.whole) == ("VI_PHAM_XU_LY", "VI_PHAM_PHAT_HIEN")]
    assert (f"{rel.part_name} (ô {value_cell(bad_data, 'VI_PHAM_XU_LY')}: 99) lớn hơn {rel.whole_name} "
            f"(ô {value_cell(bad_data, 'VI_PHAM_PHAT_HIEN')}: 10)") in out
    assert out.count("error Tệp “loi.xlsx”, trang “Chỉ tiêu”") == 3

    result = baocao("validate", good)
    assert result.exit_code == 0, result.output
    assert f"({unit} 2026-H1): 0 error(s)" in flat(result.output)

    assert baocao("validate", good, bad).exit_code == 1

    # Another unit's form with this unit's code typed in: the token gives it away, as in the intake.
    forged = write(tmp_path, "gia.xlsx", set_info(tu_ky.fill("X11074-KT")[0], INFO_LABELS["unit_code"], unit))
    result = baocao("validate", forged)
    assert result.exit_code == 1
    assert "mã xác thực không đúng" in flat(result.output)
    assert tu_ky.counts() == {"files": 0, "submissions": 0, "receipts": 0, "problems": 0}
    assert tu_ky.request(unit).state == "sent" and tu_ky.replies() == []


def test_validate_and_the_intake_answer_an_outdated_form_and_a_lower_case_unit_code_alike(
        tu_ky: TuKy, tmp_path: Path) -> None:
    from baocao.intake.pipeline import Incoming, take_in
    from baocao.opening.tokens import make_token

    unit, cfg = "X11074-VP", tu_ky.cfg
    secret = cfg.settings.token_secret.get_secret_value()
    good, _ = tu_ky.fill(unit)
    old = set_info(good, INFO_LABELS["token"], make_token(secret, unit, "2026-H1", cfg.settings.form_version - 1))
    lower = set_info(good, INFO_LABELS["unit_code"], unit.lower())  # as typed by hand: the intake takes it

    result = baocao("validate", write(tmp_path, "cu.xlsx", old))
    assert result.exit_code == 1
    outcome = take_in(tu_ky.app.db, cfg, Incoming(old, "cu.xlsx", "email", tu_ky.coordinator(unit), ON_TIME))
    (refused,) = outcome.units
    assert refused.status == "refused" and [p.rule for p in refused.problems] == ["form_version"]
    assert refused.problems[0].message_vi in flat(result.output)  # word for word what the unit is told

    result = baocao("validate", write(tmp_path, "thuong.xlsx", lower))
    assert result.exit_code == 0, result.output
    outcome = take_in(tu_ky.app.db, cfg, Incoming(lower, "thuong.xlsx", "email", tu_ky.coordinator(unit), ON_TIME))
    assert outcome.units[0].status == "accepted"
