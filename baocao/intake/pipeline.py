"""One intake pipeline for every channel: identify, validate, store, reply.

A file reaches us by e-mail (the collect flow), from the drop folder, or from an operator's
`baocao submit`. Whatever the channel, :func:`take_in` keeps the file whole (audit trail), reads
it, identifies the unit and period from the form and checks its token, validates the figures,
stores an accepted version (superseding, never deleting, the previous one) and writes the reply
to the outbox. All of it happens in one transaction per unit, so a crash leaves either nothing
or everything, and the reply is keyed by the file so it is never sent twice.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, contains_eager

from baocao.intake.reader import read_submission
from baocao.intake.results import Problem, Submitted, location_vi
from baocao.intake.safety import size_problem, too_large
from baocao.intake.validation import token_problems
from baocao.intake.verdict import RequestView, Verdict, accepted_row, judge
from baocao.intake.verdict import problem_row as _p
from baocao.mail import outbox, threads
from baocao.mail.kinds import Kind
from baocao.mail.letters import letter, system_letter
from baocao.mail.templating import render_mail
from baocao.opening.forms import CONTACT_LABELS
from baocao.rules.config import Config
from baocao.rules.periods import Period, PeriodError
from baocao.safetext import clean_text
from baocao.store.db import (
    Cycle,
    Database,
    ReceivedFile,
    Request,
    Submission,
    Task,
    TaskAssignment,
    TaskReport,
    Value,
    utcnow,
)
from baocao.store.queries import StaleState, audit, set_state, set_states

log = logging.getLogger("baocao.intake")
Read = tuple[list[Submitted], list[Problem]]  # what read_submission gives for one file
MAX_STALE_RETRIES = 5
# Refusals that depend on the request's state or on who sent the file, not on the file's bytes:
# the same file sent again (after a reopening, from the registered address) is judged again.
RECONSIDERED_RULES = frozenset({"locked", "sender", "request"})


@dataclass(frozen=True)
class Incoming:
    data: bytes
    filename: str
    channel: str  # email | folder | cli
    sender: str | None = None
    received_at: datetime | None = None  # when it reached us (deadlines judge this)
    source_ref: str | None = None
    collected_at: datetime | None = None  # when a collector took it in (default: now)
    # The mailbox collector holds the replies to a file and merges those of one mail into one
    # (baocao.intake.replies): a mail with 200 attachments gets one answer, not 200.
    hold_replies: bool = False
    # The mail's Message-ID and References as received (by e-mail only): every reply to this file
    # threads under the unit's mail (baocao.mail.threads drops what is not a well-formed id).
    message_id: str | None = None
    references: tuple[str, ...] = ()

    @property
    def thread(self) -> dict[str, Any]:
        """The outbox ``headers`` of a reply to this file: In-Reply-To and References, or none."""
        return threads.reply_headers(self.message_id, self.references)


@dataclass
class UnitOutcome:
    unit: str | None
    period: str | None
    status: str  # accepted | rejected | refused | duplicate
    late: bool = False
    problems: list[Problem] = field(default_factory=list)
    submission_id: int | None = None
    flagged: str | None = None


@dataclass
class Outcome:
    file_id: int | None
    duplicate: bool
    units: list[UnitOutcome] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.duplicate:
            return "duplicate"
        statuses = {u.status for u in self.units}
        return "accepted" if statuses == {"accepted"} else ("rejected" if statuses else "rejected")


@dataclass(frozen=True)
class Override:
    """An operator vouching for a file the checks would refuse; recorded with who and why."""

    actor: str
    reason: str
    unit: str | None = None


def _problem(file: str, rule: str, message_vi: str, *, sheet: str | None = None, cell: str | None = None,
             code: str | None = None, value: str | None = None, severity: str = "error") -> Problem:
    return Problem(severity=severity, file=file, sheet=sheet, cell=cell, code=code, value=value, rule=rule,
                   message_vi=message_vi)


def store_file(db: Database, inc: Incoming, *, keep_content: bool = True) -> tuple[int, bool]:
    """Keep the file; the same bytes again are recognised (and counted as seen, not stored twice).

    An over-size file is recorded (name, size, checksum, sender) without its content.
    """
    digest = hashlib.sha256(inc.data).hexdigest()
    received_at = inc.received_at or utcnow()
    for _ in range(2):
        try:
            with db.session() as s:
                found = s.execute(select(ReceivedFile.id, func.length(ReceivedFile.content))
                                  .where(ReceivedFile.sha256 == digest)).first()
                if found is not None:
                    existing, stored = found
                    values: dict[str, Any] = {"times_seen": ReceivedFile.times_seen + 1}
                    if keep_content and inc.data and not stored:  # recorded before without it (over the limit then)
                        values["content"] = inc.data
                    s.execute(update(ReceivedFile).where(ReceivedFile.id == existing).values(**values))
                    return existing, True
                row = ReceivedFile(sha256=digest, filename=inc.filename[:300], size=len(inc.data),
                                   content=inc.data if keep_content else b"",
                                   channel=inc.channel, sender=inc.sender, source_ref=inc.source_ref,
                                   received_at=received_at, collected_at=inc.collected_at or utcnow())
                s.add(row)
                s.flush()
                return row.id, False
        except IntegrityError:  # another collector stored the same bytes a moment ago
            continue
    raise RuntimeError(f"could not store {inc.filename}")


def take_in(db: Database, cfg: Config, inc: Incoming, *, override: Override | None = None,
            unit_hint: str | None = None, read: Read | None = None) -> Outcome:
    """Take one received file through the whole pipeline; see the module docstring.

    `read`: what :func:`baocao.intake.reader.read_submission` gave for this file, if it was read already.
    """
    received_at = inc.received_at or utcnow()
    inc = replace(inc, received_at=received_at)
    problem = size_problem(inc.filename, len(inc.data), cfg.settings.max_attachment_bytes)
    if problem is not None:
        file_id, duplicate = store_file(db, inc, keep_content=False)
        if duplicate:
            return Outcome(file_id, True, [UnitOutcome(None, None, "duplicate")])
        outcome = Outcome(file_id, False, [UnitOutcome(None, None, "rejected", problems=[problem])])
        _reply_unidentified(db, cfg, inc, hashlib.sha256(inc.data).hexdigest(), outcome.units[0].problems)
        return outcome
    file_id, duplicate = store_file(db, inc)
    digest = hashlib.sha256(inc.data).hexdigest()
    if duplicate and _settled(db, file_id, override):
        _reply_older_version(db, cfg, inc, file_id, digest)
        return Outcome(file_id, True, [UnitOutcome(None, None, "duplicate")])
    submitted, file_problems = read or read_submission(inc.data, inc.filename, cfg.catalog,
                                                       max_bytes=cfg.settings.max_attachment_bytes)
    if not submitted:
        with db.session() as s:
            _lock_file(s, file_id)
            if _judged_unidentified(s, file_id, file_problems):  # another collector, at the same moment
                return Outcome(file_id, True, [UnitOutcome(None, None, "duplicate")])
            s.add(Submission(file_id=file_id, status="rejected", errors=[_p(p) for p in file_problems],
                             received_at=received_at))
        _reply_unidentified(db, cfg, inc, digest, file_problems)
        return Outcome(file_id, False, [UnitOutcome(None, None, "rejected", problems=list(file_problems))])
    outcome = Outcome(file_id, False)
    for sub in submitted:
        for _attempt in range(MAX_STALE_RETRIES):
            try:
                outcome.units.append(_take_unit(db, cfg, inc, file_id, digest, sub, file_problems,
                                                override=override, unit_hint=unit_hint))
                break
            except StaleState:
                log.warning("unit %s changed while taking in %s; reading it again", sub.unit_code, inc.filename)
        else:
            raise RuntimeError(f"unit {sub.unit_code}: state kept changing while taking in {inc.filename}")
    outcome.duplicate = bool(outcome.units) and all(u.status == "duplicate" for u in outcome.units)
    return outcome


# ----------------------------------------------------------------------------- many files at once
@dataclass
class _Ready:
    """A file of a batch that takes the batch's path: what its rows need."""

    index: int
    inc: Incoming
    digest: str
    sub: Submitted
    req: Request
    verdict: Verdict
    version: int
    outcome: Outcome | None = None


def take_in_batch(db: Database, cfg: Config, incs: Sequence[Incoming], *,
                  reads: Sequence[Read] | None = None) -> list[Outcome]:
    """Take in many files (a drop folder's): what :func:`take_in` on each in turn would do, in far
    fewer statements. Outcomes come in the order of `incs`.

    The common case is a new file holding one unit's form, for a request that is open and has no
    accepted report yet, with a genuine token and figures that pass every check. All such files of
    the batch are written in one transaction: files, submissions, values, task statuses, the units'
    states (under the same optimistic lock) and the receipts. Every other file (seen before,
    unreadable, refused, rejected, a correction, a second file for the same unit in the batch) goes
    through :func:`take_in` afterwards, one at a time, reusing what was read. If the batch meets a
    concurrent change (another collector stored the same bytes, or changed a unit's state), it is
    rolled back whole and every file goes through :func:`take_in`: nothing is lost or stored twice,
    and a crash leaves the whole batch to be taken in again (its files are still in the folder).
    `reads`: what :func:`baocao.intake.reader.read_submission` gave for each file, if they were read already
    (by :class:`baocao.intake.readpool.ReadPool`); by default they are read here.
    """
    got = _read_all(cfg, incs, reads)
    ready: list[_Ready] = []
    try:
        with db.session() as s:
            ready = _batch_ready(s, cfg, incs, got)
            if ready:
                _write_batch(s, cfg, ready)
    except (StaleState, IntegrityError) as exc:
        log.info("batch of %d files met a concurrent change (%s); taking them in one by one", len(incs), exc)
        ready = []
    outcomes: list[Outcome | None] = [None] * len(incs)
    for r in ready:
        outcomes[r.index] = r.outcome
    for i in [i for i in range(len(incs)) if outcomes[i] is None]:
        outcomes[i] = take_in(db, cfg, incs[i], read=got[i])
    return [o for o in outcomes if o is not None]


def _read_all(cfg: Config, incs: Sequence[Incoming], reads: Sequence[Read] | None) -> list[Read | None]:
    """What each file holds; None for a file over the size limit (take_in records it unread)."""
    limit = cfg.settings.max_attachment_bytes
    if reads is not None and len(reads) != len(incs):
        raise ValueError(f"{len(reads)} reads for {len(incs)} files")
    return [None if too_large(len(inc.data), limit)
            else (list(reads[i][0]), list(reads[i][1])) if reads is not None
            else read_submission(inc.data, inc.filename, cfg.catalog, max_bytes=limit)
            for i, inc in enumerate(incs)]


def _batch_ready(s: Session, cfg: Config, incs: Sequence[Incoming],
                 reads: Sequence[Read | None]) -> list[_Ready]:
    """The files of the batch that take its path, checked as :func:`_take_unit` checks them."""
    digests = [hashlib.sha256(inc.data).hexdigest() for inc in incs]
    seen = set(s.scalars(select(ReceivedFile.sha256).where(ReceivedFile.sha256.in_(set(digests)))))
    candidates: list[tuple[int, Submitted, str, Period]] = []
    # unit -> its first file left to take_in: the unit's later files wait for it (its replies in order)
    later: dict[str, int] = {}

    def leave(unit: str, i: int) -> None:
        later[unit] = min(later.get(unit, i), i)

    for i, (inc, digest, got) in enumerate(zip(incs, digests, reads, strict=True)):
        if got is None or digest in seen or len(got[0]) != 1:
            for sub in got[0] if got else []:
                leave((sub.unit_code or "").strip().upper(), i)
            continue
        seen.add(digest)  # the same bytes twice in the batch: the second copy is a duplicate, later
        sub = got[0][0]
        unit, period, problems = form_identity(cfg, sub, filename=inc.filename)
        if problems or unit is None or period is None:
            continue
        candidates.append((i, sub, unit, period))
    if not candidates:
        return []
    requests: dict[tuple[str, str], Request] = {}
    for req in s.scalars(_requests_query(sorted({c[2] for c in candidates}), sorted({c[3].code for c in candidates}))):
        requests.setdefault((req.unit_code, req.cycle.period), req)
    versions: dict[int, int] = {}  # request -> its latest version number
    accepted_before: set[int] = set()  # requests with an accepted report: a correction supersedes it (take_in)
    for req_id, version, accepted in s.execute(
            select(Submission.request_id, func.max(Submission.version),
                   func.count().filter(Submission.status == "accepted"))
            .where(Submission.request_id.in_([r.id for r in requests.values()])).group_by(Submission.request_id)):
        versions[req_id] = version or 0
        if accepted:
            accepted_before.add(req_id)
    histories: dict[str, dict[str, tuple[dict[str, int | None], dict[str, int | None]]]] = {}
    ready: list[_Ready] = []
    taken: set[int] = set()
    for i, sub, unit, period in candidates:
        inc, received_at = incs[i], incs[i].received_at or utcnow()
        req, problems, flag = _check_request(cfg, inc, sub, unit, period, requests.get((unit, period.code)), None)
        if (later.get(unit, i) < i or req is None or problems or flag or req.id in taken
                or req.id in accepted_before):
            leave(unit, i)
            continue
        if period.code not in histories:
            histories[period.code] = _histories(s, sorted({c[2] for c in candidates if c[3] == period}), period)
        earlier, last_year = histories[period.code][unit]
        verdict = judge(cfg, RequestView.of(req), sub, reads[i][1], filename=inc.filename,  # type: ignore[index]
                        received_at=received_at, earlier=earlier, last_year=last_year)
        if verdict.status != "accepted":  # locked or rejected: take_in answers it
            leave(unit, i)
            continue
        taken.add(req.id)
        ready.append(_Ready(i, replace(inc, received_at=received_at),
                            digests[i], sub, req, verdict, (versions.get(req.id) or 0) + 1))
    return ready


def _write_batch(s: Session, cfg: Config, ready: list[_Ready]) -> None:
    """Write every ready file of a batch (one statement per table), then its receipt."""
    file_ids = s.scalars(insert(ReceivedFile).returning(ReceivedFile.id, sort_by_parameter_order=True), [
        {"sha256": r.digest, "filename": r.inc.filename[:300], "size": len(r.inc.data), "content": r.inc.data,
         "channel": r.inc.channel, "sender": r.inc.sender, "source_ref": r.inc.source_ref,
         "received_at": r.inc.received_at, "collected_at": r.inc.collected_at or utcnow(), "times_seen": 1}
        for r in ready]).all()
    sub_ids = s.scalars(insert(Submission).returning(Submission.id, sort_by_parameter_order=True), [
        accepted_row(f, r.req.id, RequestView.of(r.req), r.sub, r.version, r.verdict, r.inc.received_at, None)
        for f, r in zip(file_ids, ready, strict=True)]).all()
    values = [row for sub_id, r in zip(sub_ids, ready, strict=True) for row in _value_rows(sub_id, r.sub)]
    for i in range(0, len(values), 2000):
        s.execute(Value.__table__.insert(), values[i:i + 2000])
    with_tasks = [r for r in ready if r.sub.tasks]
    if with_tasks:
        tasks = _task_ids(s, sorted({r.req.unit_code for r in with_tasks}))
        rows = [row for sub_id, r in zip(sub_ids, ready, strict=True) if r.sub.tasks
                for row in _task_rows(tasks[r.req.unit_code], sub_id, r.sub)]
        if rows:
            s.execute(TaskReport.__table__.insert(), rows)
    replies, states = [], []
    for file_id, sub_id, r in zip(file_ids, sub_ids, ready, strict=True):
        unit_outcome = UnitOutcome(r.req.unit_code, r.sub.period, "accepted", late=r.verdict.late,
                                   problems=r.verdict.problems, submission_id=sub_id)
        r.outcome = Outcome(file_id, False, [unit_outcome])
        replies.append(_reply_message(cfg, r.inc, r.digest, r.req, unit_outcome, sub=r.sub, version=r.version))
        states.append((r.req, r.verdict.new_state, r.inc.received_at,
                       r.verdict.accepted_fields(sub_id, r.inc.received_at)))
    set_states(s, states)
    outbox.enqueue_many(s, replies)


def _final(status: str, errors: Sequence[dict[str, Any]] | None, override: Override | None = None) -> bool:
    """Whether a verdict on a file stands for the same bytes sent again.

    An operator's override is what a refused file needs: it is judged again (an accepted one is not)."""
    if override is not None and status == "rejected":
        return False
    return status != "rejected" or not errors or any(e.get("rule") not in RECONSIDERED_RULES for e in errors)


def _settled(db: Database, file_id: int, override: Override | None = None) -> bool:
    """Whether a stored file was judged for good, so that the same bytes again are only a duplicate.

    Not when it has no verdict at all (a collector died between storing and judging it) or only
    refusals that may no longer hold (the lock, the sender, no open request).
    """
    with db.session() as s:
        verdicts = s.execute(select(Submission.status, Submission.errors).where(Submission.file_id == file_id)).all()
    return any(_final(status, errors, override) for status, errors in verdicts)


def _lock_file(s: Session, file_id: int) -> None:
    """Judge a file in one transaction at a time.

    Two collectors that received the same bytes (overlapping runs, the same file by mail and by the
    drop folder) both get here; on PostgreSQL the second waits on this row lock until the first has
    committed its verdict, and then finds it. (SQLite's BEGIN IMMEDIATE serialises them already.)
    """
    s.execute(select(ReceivedFile.id).where(ReceivedFile.id == file_id).with_for_update())


def _judged_unidentified(s: Session, file_id: int, problems: Sequence[Problem]) -> bool:
    """Whether this file already has this very verdict for no request (a file, or one unit of a CSV,
    that could not be tied to a request: the verdict depends on the bytes alone)."""
    errors = [_p(p) for p in problems]
    return any(e == errors for e in s.scalars(select(Submission.errors).where(
        Submission.file_id == file_id, Submission.request_id.is_(None), Submission.status == "rejected")))


def _identify(s: Session, cfg: Config, inc: Incoming, sub: Submitted, *, override: Override | None,
              unit_hint: str | None) -> tuple[Request | None, list[Problem], str | None]:
    """Find the request this form answers and check it is genuine. Returns (request, problems, flag)."""
    unit_code, period, problems = form_identity(cfg, sub, filename=inc.filename, unit_hint=unit_hint)
    if problems:
        return None, problems, None
    assert unit_code is not None and period is not None
    req = s.scalars(_requests_query([unit_code], [period.code])).first()
    return _check_request(cfg, inc, sub, unit_code, period, req, override)


def _unit_vi(cfg: Config, code: str | None) -> str:
    """A unit by its name ("Phường Nhị Chiểu"); a code not in the tree as the clerk wrote it."""
    return cfg.hierarchy[code].name if code and code in cfg.hierarchy else f"đơn vị ghi mã “{code or ''}”"


def form_identity(cfg: Config, sub: Submitted, *, filename: str,
                  unit_hint: str | None = None) -> tuple[str | None, Period | None, list[Problem]]:
    """The unit and period a form names, or why they cannot be used (no database needed).

    The token is checked against this identity, by the intake and by ``baocao validate`` alike.
    """
    f = filename
    sheet = "Thông tin" if sub.fmt == "xlsx" else None  # a CSV names unit and period on each line
    at = location_vi(f, sheet)
    unit_code = (sub.unit_code or "").strip().upper() or None
    if unit_hint and unit_code and unit_hint != unit_code:
        return None, None, [_problem(f, "unit", f"{at}: tệp là biểu mẫu của {_unit_vi(cfg, unit_code)}, không "
                                     f"phải của {_unit_vi(cfg, unit_hint)}.", sheet=sheet, value=unit_code)]
    unit_code = unit_code or unit_hint
    if not unit_code or unit_code not in cfg.hierarchy:
        what = (f"mã đơn vị “{unit_code}” ghi trong tệp không có trong danh sách" if unit_code
                else "tệp không ghi mã đơn vị")
        return None, None, [_problem(f, "unit", f"{at}: không xác định được đơn vị ({what}). Đề nghị đơn vị "
                                     "dùng đúng biểu mẫu đã được gửi cho đơn vị.", sheet=sheet, value=unit_code)]
    try:
        period = Period.parse(sub.period or "")
    except PeriodError:
        what = (f"kỳ báo cáo “{sub.period}” ghi trong tệp không hợp lệ" if sub.period
                else "tệp không ghi kỳ báo cáo hoặc ghi không hợp lệ")
        return None, None, [_problem(f, "period", f"{at}: {what}.", sheet=sheet, value=sub.period)]
    return unit_code, period, []


def _requests_query(units: Sequence[str], periods: Sequence[str]) -> Any:
    """The form requests of these units for these periods, the one a form answers first for each:
    an open cycle before a closed one, then the newest (the reply needs the cycle: loaded with it)."""
    return (select(Request).join(Cycle)
            .where(Request.unit_code.in_(list(units)), Cycle.period.in_(list(periods)), Request.role == "form")
            .order_by((Cycle.status == "open").desc(), Cycle.id.desc())
            .options(contains_eager(Request.cycle)))


def _check_request(cfg: Config, inc: Incoming, sub: Submitted, unit_code: str, period: Period,
                   req: Request | None, override: Override | None) -> tuple[Request | None, list[Problem], str | None]:
    """Whether the form may answer `req`: there is one, the token is genuine, the sender is registered."""
    f = inc.filename
    problems: list[Problem] = []
    unit = cfg.hierarchy[unit_code]
    if req is None:
        problems.append(_problem(f, "request", f"Tệp “{f}”: {unit.name} không có yêu cầu báo cáo kỳ "
                                 f"{period.label_vi} đang mở.", sheet="Thông tin", value=period.code))
        return None, problems, None
    flag = None
    token = token_problems(sub, cfg.settings.token_secret.get_secret_value(), filename=f,
                           form_version=cfg.settings.form_version, unit_code=unit_code, period=period.code,
                           unit_name=unit.name)
    if token:
        if override is not None:
            flag = f"override by {override.actor}: {override.reason}"
        else:
            return req, token, None
    if inc.channel == "email":
        # No usable From (absent, unparseable, an empty group) is no registered sender either.
        registered = {a.lower() for a in unit.all_emails}
        if not inc.sender or inc.sender.lower() not in registered:
            if cfg.settings.sender_check == "reject" and override is None:
                message = (f"Thư gửi từ địa chỉ {inc.sender} chưa được đăng ký cho {unit.name}." if inc.sender else
                           f"Thư gửi biểu mẫu của {unit.name} không ghi địa chỉ người gửi hợp lệ (trường “From”).")
                problems.append(_problem(f, "sender", message + " Đề nghị gửi từ địa chỉ đầu mối đã đăng ký."))
                return req, problems, None
            flag = (flag + "; " if flag else "") + (f"unregistered sender {inc.sender}" if inc.sender
                                                    else "no sender address")
    return req, problems, flag


def _take_unit(db: Database, cfg: Config, inc: Incoming, file_id: int, digest: str, sub: Submitted,
               file_problems: Sequence[Problem], *, override: Override | None, unit_hint: str | None,
               again: bool = False) -> UnitOutcome:
    received_at = inc.received_at or utcnow()
    with db.session() as s:
        _lock_file(s, file_id)
        req, problems, flag = _identify(s, cfg, inc, sub, override=override, unit_hint=unit_hint)
        if req is None or problems:  # refused: the unit's own CSV rows' problems say more than "no such period"
            problems += [p for p in file_problems if p.unit is not None and p.unit == sub.unit_code]
        period = sub.period
        if req is not None and not again and any(_final(status, errors, override) for status, errors in s.execute(
                select(Submission.status, Submission.errors).where(Submission.file_id == file_id,
                                                                   Submission.request_id == req.id))):
            return UnitOutcome(req.unit_code, period, "duplicate")  # judged already (another collector, a rerun)
        if req is None and not again and _judged_unidentified(s, file_id, problems):
            return UnitOutcome(sub.unit_code, period, "duplicate")
        if req is None or problems:
            s.add(Submission(file_id=file_id, request_id=req.id if req else None, unit_code=req.unit_code if req else None,
                             period=period, status="rejected", errors=[_p(p) for p in problems],
                             received_at=received_at))
            audit(s, inc.sender or inc.channel, "refused", unit=req.unit_code if req else sub.unit_code,
                  period=period, file=inc.filename, reasons=[p.rule for p in problems])
            outcome = UnitOutcome(req.unit_code if req else sub.unit_code, period, "refused", problems=problems)
            if req is not None:
                _reply(s, cfg, inc, digest, req, outcome)
            else:
                _reply_unidentified_in(s, cfg, inc, digest, problems)
            return outcome
        assert period is not None
        if override is not None:
            audit(s, override.actor, "override", unit=req.unit_code, period=period, reason=override.reason,
                  file=inc.filename)
        earlier, last_year = _history(s, req.unit_code, Period.parse(period))
        view = RequestView.of(req)
        verdict = judge(cfg, view, sub, file_problems, filename=inc.filename, received_at=received_at,
                        earlier=earlier, last_year=last_year)
        problems = verdict.problems
        if verdict.status == "locked":
            s.add(Submission(file_id=file_id, request_id=req.id, unit_code=req.unit_code, period=period,
                             status="rejected", errors=[_p(p) for p in problems], received_at=received_at,
                             contact=dict(sub.contact)))
            outcome = UnitOutcome(req.unit_code, period, "refused", problems=problems)
            _reply(s, cfg, inc, digest, req, outcome)
            return outcome
        if verdict.status == "rejected":
            s.add(Submission(file_id=file_id, request_id=req.id, unit_code=req.unit_code, period=period,
                             status="rejected", errors=[_p(p) for p in verdict.errors],
                             warnings=[_p(p) for p in verdict.warnings], received_at=received_at, flagged=flag,
                             contact=dict(sub.contact)))
            if verdict.new_state is not None:
                set_state(s, req, verdict.new_state, reason=verdict.reason, at=received_at)
            outcome = UnitOutcome(req.unit_code, period, "rejected", problems=problems, flagged=flag)
            _reply(s, cfg, inc, digest, req, outcome)
            return outcome
        late = verdict.late
        version = (s.scalar(select(func.max(Submission.version)).where(Submission.request_id == req.id)) or 0) + 1
        new = Submission(**accepted_row(file_id, req.id, view, sub, version, verdict, received_at, flag))
        s.add(new)
        s.flush()
        s.execute(update(Submission).where(Submission.request_id == req.id, Submission.status == "accepted",
                                           Submission.id != new.id)
                  .values(status="superseded", superseded_by=new.id))
        rows = _value_rows(new.id, sub)  # one multi-row INSERT (the rows the ORM would write one by one)
        if rows:
            s.execute(Value.__table__.insert(), rows)
        _store_tasks(s, cfg, req, new.id, sub)
        assert verdict.new_state is not None
        set_state(s, req, verdict.new_state, at=received_at, **verdict.accepted_fields(new.id, received_at))
        outcome = UnitOutcome(req.unit_code, period, "accepted", late=late, problems=problems,
                              submission_id=new.id, flagged=flag)
        _reply(s, cfg, inc, digest, req, outcome, sub=sub, version=version)
        return outcome


def _history(s: Session, unit: str, period: Period) -> tuple[dict[str, int | None], dict[str, int | None]]:
    """The unit's accepted counts of the latest earlier period this year, and of the same period last year."""
    return _histories(s, [unit], period)[unit]


def _histories(s: Session, units: Sequence[str],
               period: Period) -> dict[str, tuple[dict[str, int | None], dict[str, int | None]]]:
    """:func:`_history` of many units in two queries (a batch of files of one period)."""
    earlier_codes = [p.code for p in reversed(period.earlier_in_year())]  # the latest earlier period first
    last_code = period.same_period_last_year().code
    latest: dict[tuple[str, str], int] = {}  # (unit, period) -> its latest accepted submission
    for sub_id, unit, code in s.execute(
            select(Submission.id, Submission.unit_code, Submission.period)
            .where(Submission.unit_code.in_(list(units)), Submission.period.in_([*earlier_codes, last_code]),
                   Submission.status == "accepted").order_by(Submission.id.desc())):
        latest.setdefault((unit, code), sub_id)
    values: dict[int, dict[str, int | None]] = {i: {} for i in latest.values()}
    if values:
        for sub_id, indicator, number in s.execute(
                select(Value.submission_id, Value.indicator, Value.number)
                .where(Value.submission_id.in_(list(values)), Value.text.is_(None))):
            values[sub_id][indicator] = int(number) if number is not None else None

    def of(unit: str, code: str) -> dict[str, int | None]:
        sub_id = latest.get((unit, code))
        return values[sub_id] if sub_id is not None else {}

    out = {}
    for unit in units:
        earlier: dict[str, int | None] = {}
        for code in earlier_codes:
            earlier = of(unit, code)
            if earlier:
                break
        out[unit] = (earlier, of(unit, last_code))
    return out


def _value_rows(submission_id: int, sub: Submitted) -> list[dict[str, Any]]:
    rows = [{"submission_id": submission_id, "indicator": code, "number": value,
             "previous_year": sub.previous_year.get(code), "text": None} for code, value in sub.values.items()]
    # Text goes into the consolidated docx/xlsx: bidi controls and zero-width characters stay out.
    rows += [{"submission_id": submission_id, "indicator": code, "number": None, "previous_year": None,
              "text": clean_text(text).strip()} for code, text in sub.texts.items() if text and clean_text(text).strip()]
    return rows


def _task_ids(s: Session, units: Sequence[str]) -> dict[str, dict[int, int]]:
    """unit -> {task number on its form: task id} (a number given twice: the newest task)."""
    out: dict[str, dict[int, int]] = {u: {} for u in units}
    for unit, number, task_id in s.execute(
            select(TaskAssignment.unit_code, Task.number, Task.id).join(Task, TaskAssignment.task_id == Task.id)
            .where(TaskAssignment.unit_code.in_(list(units))).order_by(Task.id)):
        out[unit][number] = task_id
    return out


def _task_rows(tasks: dict[int, int], submission_id: int, sub: Submitted) -> list[dict[str, Any]]:
    return [{"submission_id": submission_id, "task_id": tasks[t.number], "status": t.status,
             "product": clean_text(t.product or "") or None, "note": clean_text(t.note or "") or None}
            for t in sub.tasks if t.number in tasks and t.status]


def _store_tasks(s: Session, cfg: Config, req: Request, submission_id: int, sub: Submitted) -> None:
    if not sub.tasks:
        return
    rows = _task_rows(_task_ids(s, [req.unit_code])[req.unit_code], submission_id, sub)
    if rows:
        s.execute(TaskReport.__table__.insert(), rows)


# ----------------------------------------------------------------------------- replies
def _reply(s: Session, cfg: Config, inc: Incoming, digest: str, req: Request, outcome: UnitOutcome, *,
           sub: Submitted | None = None, version: int | None = None) -> None:
    outbox.enqueue(s, **_reply_message(cfg, inc, digest, req, outcome, sub=sub, version=version))


class ReceiptFigure(NamedTuple):
    """One figure read from a unit's form, as its receipt lists it. Attributes, not a dict: Jinja
    looks a name up as an attribute first, and a dict's miss raises (half a receipt's rendering)."""

    code: str
    label: str
    unit: str
    value: Any
    cell: str


def _reply_message(cfg: Config, inc: Incoming, digest: str, req: Request, outcome: UnitOutcome, *,
                   sub: Submitted | None = None, version: int | None = None) -> dict[str, Any]:
    """The receipt (or the list of problems) answering one unit's form, as outbox keywords."""
    unit = cfg.hierarchy[req.unit_code]
    to = [inc.sender] if inc.sender else list(unit.coordinator_emails)
    figures = []
    if sub is not None:
        for ind in cfg.catalog_for(req.cycle.plan).counts:  # the receipt words figures as the unit's form did
            if ind.code in sub.values:
                figures.append(ReceiptFigure(ind.code, ind.label, ind.unit, sub.values[ind.code],
                                             sub.cells.get(ind.code, "")))
    name = Kind.RECEIPT if outcome.status == "accepted" else Kind.PROBLEMS
    subject, text, html = render_mail(
        name, unit=unit, period=Period.parse(outcome.period or req.cycle.period), filename=inc.filename,
        outcome=outcome, figures=figures, version=version, deadline=req.deadline,
        contact=({k: sub.contact.get(k, "") for k in CONTACT_LABELS} if sub is not None and sub.fmt == "xlsx"
                 else None),  # who prepared the form, read back (CSV files have no such place)
        errors=[p for p in outcome.problems if p.severity == "error"],
        warnings=[p for p in outcome.problems if p.severity != "error"],
        **letter(cfg, req.cycle.plan, req.unit_code, req.cycle.period), reply_to=cfg.settings.reply_to,
    )
    return {"key": outbox.message_key(req.cycle.period, req.cycle.plan, req.unit_code, name, digest[:16]),
            "kind": name, "stage": digest[:16], "unit": req.unit_code, "period": req.cycle.period,
            "cycle_id": req.cycle_id, "to": to, "subject": subject, "text": text, "html": html,
            "status": "held" if inc.hold_replies else "pending", "headers": inc.thread}


def _reply_unidentified(db: Database, cfg: Config, inc: Incoming, digest: str, problems: Sequence[Problem]) -> None:
    with db.session() as s:
        _reply_unidentified_in(s, cfg, inc, digest, problems)


def _reply_unidentified_in(s: Session, cfg: Config, inc: Incoming, digest: str, problems: Sequence[Problem]) -> None:
    """A file we could not tie to a unit gets its answer too, if it came by e-mail."""
    if not inc.sender:
        return
    subject, text, html = render_mail("unidentified", filename=inc.filename, errors=list(problems),
                                      **system_letter(cfg), reply_to=cfg.settings.reply_to)
    outbox.enqueue(s, key=outbox.message_key("unknown", "", digest[:16], Kind.PROBLEMS, "file"), kind=Kind.PROBLEMS,
                   stage=digest[:16], to=[inc.sender], subject=subject, text=text, html=html,
                   status="held" if inc.hold_replies else "pending", headers=inc.thread)


def _reply_older_version(db: Database, cfg: Config, inc: Incoming, file_id: int, digest: str) -> None:
    """A unit mailing again a version that a later one replaced is told which version is current.

    The same bytes are judged once (a duplicate changes nothing), so without this the unit would
    believe the old version counts again. One answer per incoming mail and unit (keyed by the
    mail's reference), and only by e-mail: the drop folder has no sender to answer.
    """
    if inc.channel != "email" or not inc.sender:
        return
    with db.session() as s:
        old = s.scalars(select(Submission).where(Submission.file_id == file_id, Submission.status == "superseded")
                        .order_by(Submission.id)).all()
        for sub in old:
            current = s.scalars(select(Submission).where(Submission.request_id == sub.request_id,
                                                         Submission.status == "accepted")).first()
            req = s.get(Request, sub.request_id)
            if current is None or req is None:
                continue
            unit = cfg.hierarchy[req.unit_code]
            subject, text, html = render_mail(
                "older_version", unit=unit, period=Period.parse(req.cycle.period), filename=inc.filename,
                old_version=sub.version, old_received=sub.received_at, version=current.version,
                received=current.received_at, **letter(cfg, req.cycle.plan, req.unit_code, req.cycle.period),
                reply_to=cfg.settings.reply_to)
            ref = hashlib.sha256((inc.source_ref or "").encode()).hexdigest()[:8]
            outbox.enqueue(s, key=outbox.message_key(req.cycle.period, req.cycle.plan, req.unit_code, "older",
                                                     f"{digest[:16]}-{ref}"),
                           kind=Kind.PROBLEMS, stage=digest[:16], unit=req.unit_code, period=req.cycle.period,
                           cycle_id=req.cycle_id, to=[inc.sender], subject=subject, text=text, html=html,
                           status="held" if inc.hold_replies else "pending", headers=inc.thread)


def reprocess_latest(db: Database, cfg: Config, unit: str, period: str) -> list[Outcome]:
    """Read again the latest file received for a unit and period (after a fix, or from `retry-unit`)."""
    with db.session() as s:
        row = s.execute(select(ReceivedFile).join(Submission, Submission.file_id == ReceivedFile.id)
                        .where(Submission.unit_code == unit, Submission.period == period)
                        .order_by(ReceivedFile.id.desc())).scalars().first()
    if row is None:
        return []
    inc = Incoming(row.content, row.filename, row.channel, row.sender, row.received_at, row.source_ref)
    submitted, problems = read_submission(inc.data, inc.filename, cfg.catalog, max_bytes=cfg.settings.max_attachment_bytes)
    digest = row.sha256
    return [Outcome(row.id, False, [_take_unit(db, cfg, inc, row.id, digest, sub, problems, override=None,
                                               unit_hint=None, again=True) for sub in submitted])]
