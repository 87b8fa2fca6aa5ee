"""The one accept / late / reject / locked rule (baocao.intake.verdict), without a database."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from baocao.intake.results import Submitted, make_problem
from baocao.intake.verdict import RequestView, accepted_row, judge, locked, on_time_after
from baocao.rules.config import Config

FILE = "BaoCao_2026-H1_X10714.xlsx"
DUE = datetime(2026, 6, 2, 17, tzinfo=UTC)
LOCK = datetime(2026, 6, 30, 17, tzinfo=UTC)
BEFORE, AFTER_DUE, AFTER_LOCK = DUE - timedelta(days=1), DUE + timedelta(days=1), LOCK + timedelta(days=1)


def sent(**changes: object) -> RequestView:
    return replace(RequestView("X10714", "sent", None, DUE, LOCK), **changes)  # type: ignore[arg-type]


def good(cfg: Config) -> Submitted:
    values = {i.code: 40 for i in cfg.catalog.counts}
    for rel in cfg.catalog.relations:
        values[rel.left] = 30
    return Submitted("X10714", "2026-H1", None, 1, "xlsx", values=values, sheet="Chỉ tiêu")


def judged(cfg: Config, req: RequestView, at: datetime, sub: Submitted | None = None, **kw: object):  # type: ignore[no-untyped-def]
    args: dict[str, object] = {"earlier": {}, "last_year": {}, **kw}
    return judge(cfg, req, sub or good(cfg), [], filename=FILE, received_at=at, **args)  # type: ignore[arg-type]


def test_on_time_file_is_accepted_on_time(cfg: Config) -> None:
    v = judged(cfg, sent(), BEFORE)
    assert (v.status, v.late, v.new_state, v.on_time, v.problems) == ("accepted", False, "accepted", True, [])
    at = BEFORE
    assert v.accepted_fields(7, at) == {"accepted_submission_id": 7, "accepted_at": at, "on_time": True}


def test_late_file_is_accepted_late(cfg: Config) -> None:
    v = judged(cfg, sent(), AFTER_DUE)
    assert (v.status, v.late, v.new_state, v.on_time) == ("accepted", True, "late", False)
    row = accepted_row(3, 9, sent(), good(cfg), 2, v, AFTER_DUE, "override by an: lost form")
    assert row["late"] is True and row["status"] == "accepted" and row["version"] == 2
    assert (row["unit_code"], row["period"], row["errors"], row["flagged"]) == \
        ("X10714", "2026-H1", [], "override by an: lost form")


def test_after_the_lock_is_locked_unless_reopened(cfg: Config) -> None:
    v = judged(cfg, sent(), AFTER_LOCK)
    assert v.status == "locked" and [p.rule for p in v.problems] == ["locked"] and v.new_state is None
    assert "khóa sổ" in v.problems[0].message_vi and cfg.hierarchy["X10714"].name in v.problems[0].message_vi
    reopened = sent(reopened_until=AFTER_LOCK + timedelta(days=1))
    assert not locked(reopened, AFTER_LOCK) and locked(reopened, AFTER_LOCK + timedelta(days=2))
    v = judged(cfg, reopened, AFTER_LOCK)
    assert (v.status, v.late, v.new_state) == ("accepted", True, "late")


def test_a_late_correction_of_an_on_time_report_keeps_the_unit_on_time(cfg: Config) -> None:
    answered = sent(state="accepted", on_time=True)
    v = judged(cfg, answered, AFTER_DUE)
    assert (v.status, v.late, v.new_state, v.on_time) == ("accepted", True, "accepted", True)
    assert on_time_after(sent(state="late", on_time=False), late=False) is True
    assert on_time_after(sent(state="rejected", on_time=True), late=True) is False  # no accepted report stands


def test_last_year_falls_back_to_the_figures_typed_in_the_form(cfg: Config) -> None:
    sub = good(cfg)
    code = cfg.catalog.counts[0].code
    sub.previous_year = {code: 40 * 1000}
    v = judged(cfg, sent(), BEFORE, sub)
    assert v.status == "accepted" and [(p.rule, p.code) for p in v.problems] == [("jump", code)]
    v = judged(cfg, sent(), BEFORE, sub, last_year={code: 40})  # the system's own figure wins
    assert v.problems == []


def test_a_rejection_leaves_an_accepted_or_exempt_state_alone(cfg: Config) -> None:
    sub = good(cfg)
    code = next(i.code for i in cfg.catalog.counts if i.required)
    sub.values[code] = None
    v = judged(cfg, sent(), BEFORE, sub)
    assert (v.status, v.new_state, [p.rule for p in v.errors]) == ("rejected", "rejected", ["required"])
    assert v.reason == v.errors[0].message_vi
    for state in ("accepted", "late", "exempt"):
        assert judged(cfg, sent(state=state, on_time=True), BEFORE, sub).new_state is None, state


def test_only_this_units_problems_of_a_multi_unit_file_count(cfg: Config) -> None:
    other = make_problem("error", FILE, "number", "giá trị không hợp lệ.", unit="X11074", period="2026-H1")
    mine = make_problem("warning", FILE, "note", "lưu ý.", unit="X10714", period="2026-H1")
    v = judge(cfg, sent(), good(cfg), [other, mine], filename=FILE, received_at=BEFORE, earlier={}, last_year={})
    assert v.status == "accepted" and v.problems == [mine]
