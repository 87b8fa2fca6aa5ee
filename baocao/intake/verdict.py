"""The verdict on one unit's form once it is tied to its request: locked, rejected or accepted (on
time or late), and what the request's state becomes.

The single-file intake (:func:`baocao.intake.pipeline.take_in`) and the batch intake
(:func:`baocao.intake.pipeline.take_in_batch`) both judge here, so the rule is written once: a
file the batch takes is a file :func:`judge` accepts, with the same lateness, state and timeliness
as the one-by-one path would give it. Pure: no session, no clock; the callers load the history.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from baocao.intake.results import Problem, Submitted, problems_for
from baocao.intake.validation import has_errors, validate
from baocao.rules.config import Config
from baocao.rules.periods import Period
from baocao.store.states import ANSWERED, DONE, RequestState

if TYPE_CHECKING:
    from baocao.store.db import Request

__all__ = ["RequestView", "Verdict", "accepted_row", "judge", "locked", "on_time_after", "problem_row"]

# Request states the verdict writes; ANSWERED and DONE (what it reads) are in baocao/store/states.py.
ACCEPTED, LATE, REJECTED = RequestState.ACCEPTED, RequestState.LATE, RequestState.REJECTED


@dataclass(frozen=True)
class RequestView:
    """What the verdict needs of a request, as it stood when the file was judged."""

    unit_code: str
    state: str
    on_time: bool | None
    due_at: datetime
    lock_at: datetime
    reopened_until: datetime | None = None
    plan: str | None = None  # the cycle's plan: its wording of the indicators names them in the problems

    @classmethod
    def of(cls, req: Request) -> RequestView:
        return cls(req.unit_code, req.state, req.on_time, req.due_at, req.lock_at, req.reopened_until,
                   req.cycle.plan)


@dataclass(frozen=True)
class Verdict:
    """``status``: locked (refused, the period is closed), rejected (errors) or accepted.

    ``problems``: every problem found (for a locked file, the lock alone). ``late``: the file came in
    after the deadline. ``new_state``: the request's state after this file, None to leave it.
    ``on_time``: the unit's timeliness once the file is accepted (None otherwise).
    """

    status: Literal["locked", "rejected", "accepted"]
    problems: list[Problem]
    late: bool
    new_state: str | None
    on_time: bool | None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity != "error"]

    @property
    def reason(self) -> str:
        """Why a rejected request is in that state (its first errors), for the state's history."""
        return "; ".join(p.message_vi for p in self.errors[:3])

    def accepted_fields(self, submission_id: int, at: datetime) -> dict[str, Any]:
        """The request's fields besides its state once this file is accepted (for set_state(s))."""
        return {"accepted_submission_id": submission_id, "accepted_at": at, "on_time": self.on_time}


def locked(req: RequestView, at: datetime) -> bool:
    """Whether the request's period is locked at `at` (past its lock date and not reopened)."""
    return at > req.lock_at and not (req.reopened_until and at <= req.reopened_until)


def on_time_after(req: RequestView, late: bool) -> bool:
    """The unit's timeliness once this form is accepted.

    A late correction of a report that came in on time leaves the unit on time (as DHIS2 counts
    it); the correction itself is still marked late.
    """
    return not late if req.on_time is None or req.state not in ANSWERED else (req.on_time or not late)


def _period_vi(code: str | None) -> str:
    """ "6 tháng đầu năm 2026" for "2026-H1": a unit reads the period's name, not its code."""
    try:
        return Period.parse(code or "").label_vi
    except ValueError:
        return "kỳ này"


def judge(cfg: Config, req: RequestView, sub: Submitted, file_problems: Sequence[Problem], *, filename: str,
          received_at: datetime, earlier: Mapping[str, int | None],
          last_year: Mapping[str, int | None]) -> Verdict:
    """The verdict on `sub` (one unit's form, already identified and its token checked) for `req`.

    `file_problems`: what the reader found in the whole file; only this unit's and the file's own
    count (a multi-unit CSV is judged per unit). `earlier`/`last_year`: the unit's accepted figures
    of the latest earlier period this year and of the same period last year; with none for last
    year, the figures the unit typed in the form stand in.
    """
    if locked(req, received_at):
        name = cfg.hierarchy[req.unit_code].name
        lock = Problem("error", filename, None, None, None, None, "locked",
                       f"Báo cáo {_period_vi(sub.period)} của {name} đã khóa sổ; báo cáo không được tiếp nhận. "
                       "Nếu cần, đề nghị liên hệ đầu mối để mở lại.")
        return Verdict("locked", [lock], False, None, None)
    if not any(v is not None for v in last_year.values()):
        last_year = dict(sub.previous_year)
    problems = problems_for(file_problems, sub.unit_code, sub.period) + validate(
        sub, cfg.catalog_for(req.plan) if req.plan else cfg.catalog, filename=filename, earlier_same_year=earlier, last_year=last_year)
    late = received_at > req.due_at
    if has_errors(problems):
        return Verdict("rejected", problems, late, None if req.state in DONE else REJECTED, None)
    on_time = on_time_after(req, late)
    return Verdict("accepted", problems, late, ACCEPTED if on_time else LATE, on_time)


def problem_row(p: Problem) -> dict[str, Any]:
    """A problem as stored in a submission's errors or warnings."""
    return {"severity": p.severity, "file": p.file, "sheet": p.sheet, "cell": p.cell, "code": p.code,
            "value": p.value, "rule": p.rule, "message": p.message_vi}


def accepted_row(file_id: int, request_id: int, req: RequestView, sub: Submitted, version: int, verdict: Verdict,
                 received_at: datetime, flagged: str | None) -> dict[str, Any]:
    """The accepted submission's row: the same for the ORM (``Submission(**row)``) and a bulk insert."""
    return {"file_id": file_id, "request_id": request_id, "unit_code": req.unit_code, "period": sub.period,
            "version": version, "status": "accepted", "late": verdict.late, "flagged": flagged, "errors": [],
            "warnings": [problem_row(p) for p in verdict.warnings], "received_at": received_at,
            "superseded_by": None, "contact": dict(sub.contact)}
