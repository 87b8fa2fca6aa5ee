"""The intake channels: the IMAP mailbox units reply to, and the drop folder.

Both feed :func:`baocao.intake.pipeline.take_in`. The mailbox is read from the last UID stored (per
UIDVALIDITY); each message is recorded as processed in the same transaction habit as its files,
and the cursor moves only after that, so a crash between fetch and store re-reads the message on
the next run and the `processed_messages` constraint keeps it from being taken in twice.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from baocao.consolidation import issuing
from baocao.intake import replies
from baocao.intake.dropfolder import (
    Changed,
    Entry,
    ParkedFile,
    is_link_error,
    parked_summary,
    read_entry,
    scan,
)
from baocao.intake.inbox import (
    FetchedMessage,
    ImapSettings,
    MailboxError,
    ReadMessage,
    fetch_since,
    read_message,
)
from baocao.intake.pipeline import Incoming, Outcome, UnitOutcome, take_in, take_in_batch
from baocao.intake.readpool import Job, ReadPool
from baocao.intake.results import make_problem
from baocao.machine import cores
from baocao.mail import outbox, threads
from baocao.mail.kinds import Kind
from baocao.mail.letters import system_letter
from baocao.mail.templating import render_mail
from baocao.rules.config import Config
from baocao.rules.formatting import number_vi
from baocao.safetext import clean_text
from baocao.store.db import Database, MailboxCursor, ProcessedMessage, utcnow
from baocao.store.queries import insert_ignore

log = logging.getLogger("baocao.collect")
FORM_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".csv", ".ods")
FOLDER_BATCH = 100  # drop-folder files per transaction: 100 forms hold about 1.6 MB in memory
PARALLEL_FROM = 300  # drop-folder files from which reader processes pay for their start (about 1 s)


@dataclass
class CollectReport:
    messages: int = 0
    files: int = 0
    outcomes: list[tuple[str, Outcome]] = field(default_factory=list)  # (source, outcome)
    errors: list[str] = field(default_factory=list)
    parked: list[ParkedFile] = field(default_factory=list)  # drop folder: moved to failed/ this run
    waiting: list[str] = field(default_factory=list)  # drop folder: still being written, left for the next run
    summary: str = ""  # drop folder: Markdown for the operator about failed/ (empty: nothing there)
    throttled: list[str] = field(default_factory=list)  # mailbox: replies kept unsent (per-address limit)


def imap_settings(cfg: Config) -> ImapSettings:
    i = cfg.settings.imap
    return ImapSettings(host=i.host, port=i.port, username=i.username, password=i.password.get_secret_value(),
                        mailbox=i.mailbox, use_ssl=i.use_ssl, timeout=i.timeout,
                        max_message_bytes=max(cfg.settings.max_attachment_bytes * 2, 1_000_000),
                        plaintext_credentials=cfg.settings.plaintext_credentials)


def _cursor(db: Database, mailbox: str) -> tuple[int | None, int]:
    with db.session() as s:
        row = s.get(MailboxCursor, mailbox)
        return (row.uidvalidity, row.last_uid) if row else (None, 0)


def _advance(db: Database, mailbox: str, uidvalidity: int, uid: int) -> None:
    with db.session() as s:
        row = s.get(MailboxCursor, mailbox)
        if row is None:
            insert_ignore(s, MailboxCursor.__table__, [{"mailbox": mailbox, "uidvalidity": uidvalidity,
                                                        "last_uid": uid}], ["mailbox"])
        elif row.uidvalidity != uidvalidity or row.last_uid < uid:
            s.execute(update(MailboxCursor).where(MailboxCursor.mailbox == mailbox)
                      .values(uidvalidity=uidvalidity, last_uid=uid))


def _claim(db: Database, mailbox: str, uidvalidity: int, uid: int, message_id: str | None, *,
           received_at: datetime | None = None, collected_at: datetime | None = None, sender: str | None = None,
           problem: str | None = None, raw: bytes | None = None, reply: dict[str, object] | None = None,
           files: Sequence[tuple[str, str]] = (), limit: int, throttled: list[str] | None = None,
           cfg: Config | None = None) -> bool:
    """Record the message as ours to process; False if another collector (or an earlier run) has it.

    The replies to the message are released in the same transaction (:func:`baocao.intake.replies.release`):
    `reply` (outbox keywords, the message's own answer) and the held replies to its `files`
    ((name, SHA-256 prefix)), merged into one per recipient and held back beyond `limit` replies
    per address per hour (noted in `throttled`). A message is so answered exactly once."""
    try:
        with db.session() as s:
            if s.scalar(select(ProcessedMessage.id).where(ProcessedMessage.mailbox == mailbox,
                                                          ProcessedMessage.uidvalidity == uidvalidity,
                                                          ProcessedMessage.uid == uid)) is not None:
                return False
            s.add(ProcessedMessage(mailbox=mailbox, uidvalidity=uidvalidity, uid=uid, message_id=message_id,
                                   processed_at=collected_at or utcnow(), received_at=received_at,
                                   sender=(sender or None) and sender[:300], problem=problem, raw=raw))
            released = replies.release(s, ref=_ref(mailbox, uidvalidity, uid), files=files, extra=reply,
                                       limit=limit, cfg=cfg)
            for key, address in released.throttled:
                (throttled if throttled is not None else []).append(
                    f"imap uid {uid}: reply {key} to {address} not sent (over {limit} replies per address per hour)")
        return True
    except IntegrityError:
        return False


def collect_mailbox(db: Database, cfg: Config, *, as_of: datetime | None = None) -> CollectReport:
    """Take in every new message of the intake mailbox.

    Files are stored (and deduplicated by checksum) before the message is claimed, so a crash
    anywhere leaves the message to be read again and nothing counted twice.
    """
    settings = imap_settings(cfg)
    key = f"{settings.username}@{settings.host}:{settings.port}/{settings.mailbox}"
    uidvalidity, last_uid = _cursor(db, key)
    report = CollectReport()
    try:
        _collect_messages(db, cfg, settings, key, uidvalidity, last_uid, report, as_of)
    except MailboxError as exc:
        log.error("mailbox %s cannot be read: %s (%d message(s) taken in before that; the next run goes on "
                  "from there)", key, exc, report.messages)
        raise
    return report


def arrival_time(internal_date: datetime | None, sent_at: datetime | None, collected_at: datetime) -> datetime:
    """When a message counts as received: the server's INTERNALDATE, bounded by the message's own Date.

    Deadlines judge the arrival, not the collection (a mail that came on time and was collected after
    an outage is on time). The Date header is the sender's word, so it can only move the time later
    (a message is not received before it was written), never earlier than the server saw it; and
    nothing counts as received after it was collected. No INTERNALDATE: the collection time.
    """
    if internal_date is None:
        return collected_at
    when = max(internal_date, sent_at) if sent_at is not None else internal_date
    return min(when, collected_at)


def _collect_messages(db: Database, cfg: Config, settings: ImapSettings, key: str, uidvalidity: int | None,
                      last_uid: int, report: CollectReport, as_of: datetime | None) -> None:
    for msg in fetch_since(settings, uidvalidity=uidvalidity, last_uid=last_uid):
        report.messages += 1
        source = f"imap uid {msg.uid}"
        collected = as_of or utcnow()
        if _already(db, key, msg.uidvalidity, msg.uid):
            _advance(db, key, msg.uidvalidity, msg.uid)
            continue
        if msg.skipped:
            head = read_message(msg.header)
            received = arrival_time(msg.internal_date, head.sent_at, collected)
            problem = f"message of {msg.size} bytes skipped (over the {settings.max_message_bytes}-byte limit)"
            report.errors.append(f"{source} from {head.sender or '?'}: {problem}")
            reason = (f"Thư có dung lượng {number_vi(msg.size)} byte, vượt giới hạn {number_vi(settings.max_message_bytes)} "
                      f"byte của hộp thư nên không được đọc. Mỗi tệp đính kèm không quá "
                      f"{number_vi(cfg.settings.max_attachment_bytes)} byte; đề nghị gửi lại biểu mẫu .xlsx, "
                      "mỗi thư một vài tệp.")
            _claim(db, key, msg.uidvalidity, msg.uid, head.message_id, received_at=received, collected_at=collected,
                   sender=head.sender, problem=problem,
                   reply=_message_reply(cfg, key, msg, head, [reason]) if head.sender else None,
                   cfg=cfg, limit=cfg.settings.max_replies_per_address_per_hour, throttled=report.throttled)
            _advance(db, key, msg.uidvalidity, msg.uid)
            continue
        got = read_message(msg.raw, limit=cfg.settings.max_attachments_per_message)
        sender = got.sender
        received = arrival_time(msg.internal_date, got.sent_at, collected)
        if got.problem is not None:
            log.warning("%s from %s (%d bytes) cannot be read: %s; kept as received and passed over",
                        source, sender or "?", msg.size, got.problem)
            report.errors.append(f"{source} from {sender or '?'}: {got.problem}")
            reason = ("Hệ thống không đọc được thư (cấu trúc thư bị lỗi hoặc không đúng chuẩn) nên chưa tiếp nhận "
                      "tệp nào trong thư. Đề nghị gửi lại thư mới, đính kèm biểu mẫu .xlsx đã điền.")
            _claim(db, key, msg.uidvalidity, msg.uid, got.message_id, received_at=received, collected_at=collected,
                   sender=sender, problem=got.problem, raw=msg.raw,
                   reply=_message_reply(cfg, key, msg, got, [reason]) if sender else None,
                   cfg=cfg, limit=cfg.settings.max_replies_per_address_per_hour, throttled=report.throttled)
            _advance(db, key, msg.uidvalidity, msg.uid)
            continue
        if issuing.names_a_draft(msg.raw):  # the signed version of a draft report, not a form
            subject, body = issuing.subject_and_body(msg.raw)
            issued, reply = issuing.issue_from_mail(
                db, cfg, subject=subject, body=body, sender=sender, received_at=received, message_id=got.message_id,
                files=[issuing.MailFile(p.filename, p.content) for p in got.parts])
            # Recorded, its files are the report's; refused, the mail is kept whole as received (the audit
            # trail every file that reached us has), with why, as an unreadable message is.
            _claim(db, key, msg.uidvalidity, msg.uid, got.message_id, received_at=received, collected_at=collected,
                   sender=sender, reply=reply, cfg=cfg, limit=cfg.settings.max_replies_per_address_per_hour,
                   throttled=report.throttled, raw=None if issued else msg.raw,
                   problem=None if issued else "signed report not recorded (see the problems reply)")
            _advance(db, key, msg.uidvalidity, msg.uid)
            continue
        for part in got.parts:
            report.files += 1
            outcome = take_in(db, cfg, Incoming(part.content, part.filename, "email", sender, received,
                                                f"{key} uid {msg.uid}", collected_at=collected, hold_replies=True,
                                                message_id=got.message_id, references=got.references))
            report.outcomes.append((f"{source} {part.filename} from {sender}", outcome))
        if not got.parts:
            log.info("%s from %s has no attachment; ignored", source, sender)
        reply = None
        problem = None
        if got.unread:
            problem = f"{len(got.unread)} file(s) beyond the first {len(got.parts)} not read"
            report.errors.append(f"{source} from {sender or '?'}: {problem}")
            names = ", ".join(f"“{clean_text(n)[:80]}”" for n in got.unread[:20]) + ("…" if len(got.unread) > 20 else "")
            reason = (f"Thư có {number_vi(len(got.parts) + len(got.unread))} tệp đính kèm; hệ thống chỉ đọc "
                      f"{number_vi(len(got.parts))} tệp đầu. {number_vi(len(got.unread))} tệp sau chưa được đọc: "
                      f"{names}. Đề nghị đơn vị gửi mỗi thư không quá {number_vi(len(got.parts))} tệp.")
            reply = _message_reply(cfg, key, msg, got, [reason]) if sender else None
        _claim(db, key, msg.uidvalidity, msg.uid, got.message_id, received_at=received, collected_at=collected,
               sender=sender, problem=problem, reply=reply, cfg=cfg, limit=cfg.settings.max_replies_per_address_per_hour,
               files=[(p.filename, hashlib.sha256(p.content).hexdigest()[:16]) for p in got.parts],
               throttled=report.throttled)
        _advance(db, key, msg.uidvalidity, msg.uid)


def _message_reply(cfg: Config, key: str, msg: FetchedMessage, got: ReadMessage,
                   reasons: list[str]) -> dict[str, object]:
    """The answer to a message taken in not (or not wholly) as files: one per message, keyed by it."""
    subject, text, html = render_mail("message_refused", reasons=reasons, reply_to=cfg.settings.reply_to,
                                      **system_letter(cfg))
    ref = _ref(key, msg.uidvalidity, msg.uid)
    return {"key": outbox.message_key("unknown", "", ref, Kind.PROBLEMS, "message"), "kind": Kind.PROBLEMS,
            "stage": ref, "to": [got.sender], "subject": subject, "text": text, "html": html,
            "headers": threads.reply_headers(got.message_id, got.references)}


def _ref(mailbox: str, uidvalidity: int, uid: int) -> str:
    """A stable reference of one mailbox message (the keys of its replies are built from it)."""
    return hashlib.sha256(f"{mailbox}/{uidvalidity}/{uid}".encode()).hexdigest()[:16]


def _already(db: Database, mailbox: str, uidvalidity: int, uid: int) -> bool:
    with db.session() as s:
        return s.scalar(select(ProcessedMessage.id).where(
            ProcessedMessage.mailbox == mailbox, ProcessedMessage.uidvalidity == uidvalidity,
            ProcessedMessage.uid == uid)) is not None


def collect_folder(db: Database, cfg: Config, folder: Path | None = None, *,
                   as_of: datetime | None = None, batch: int = FOLDER_BATCH) -> CollectReport:
    """Take in every file dropped in the folder, then move it to `done/` (or `failed/`) beside it.

    Files are taken in `batch` at a time (:func:`baocao.intake.pipeline.take_in_batch`: the common case of
    a whole batch in one transaction). A file is moved only after it is stored, so a crash leaves it
    to be taken in again, where the checksum recognises it. Two collectors may run at once
    (overlapping scheduled runs, two workers): a file the other one moved away meanwhile is left to
    it, since the database already recognises the same bytes (stored once, judged once).

    Only regular files are read, never through a link, and only once they have settled
    (:mod:`baocao.intake.dropfolder`); links, other entries and files over the size limit are moved to
    `failed/` unread. A file is judged by when it reached the folder, not when it is collected
    (`as_of`, default now, is the collection time; both are stored). What went to `failed/` is
    logged and summed up in `report.summary` for the operator.
    """
    folder = folder or cfg.settings.resolve(cfg.settings.drop_folder)
    folder.mkdir(parents=True, exist_ok=True)
    report = CollectReport()
    collected = as_of or utcnow()
    found = scan(folder, settle_seconds=cfg.settings.drop_settle_seconds,
                 max_bytes=cfg.settings.max_attachment_bytes)
    report.waiting = found.waiting
    if found.waiting:
        log.info("drop folder: %d file(s) still being written, left for the next run: %s",
                 len(found.waiting), ", ".join(found.waiting[:20]))
    for refusal in found.refused:
        _refuse(folder, report, refusal.path, refusal.rule, refusal.reason_vi, refusal.size)
    paths = found.ready
    batch = max(1, batch)
    batches = deque(paths[i:i + batch] for i in range(0, len(paths), batch))
    # Reader processes pay off from a few batches on: they read the next batches while this process
    # stores one. One per core: reading a form costs about twice what storing and answering it does,
    # so with one reader fewer than the cores this process idled half the time (national cycle on
    # two cores: 390-450 files/s with one reader, 470-620/s with two).
    processes = max(1, min(cores(), len(batches) - 1)) if len(paths) >= PARALLEL_FROM else 0
    with ReadPool(cfg.catalog, cfg.settings.max_attachment_bytes, processes) as pool:
        ahead: deque[tuple[list[tuple[Path, Incoming]], Job]] = deque()

        def read_ahead() -> None:
            if batches:
                files = _load(folder, batches.popleft(), report, collected)
                ahead.append((files, pool.submit([(inc.data, inc.filename) for _, inc in files])))

        for _ in range(max(1, processes)):
            read_ahead()
        while ahead:
            files, job = ahead.popleft()
            read_ahead()
            outcomes = take_in_batch(db, cfg, [inc for _, inc in files], reads=pool.result(job))
            for (path, _), outcome in zip(files, outcomes, strict=True):
                report.outcomes.append((path.name, outcome))
                if outcome.status in ("accepted", "duplicate"):
                    _move(folder, path, "done")
                else:
                    _park(folder, report, path, "; ".join(p.message_vi for u in outcome.units for p in u.problems
                                                           if p.severity == "error")[:500] or "không được tiếp nhận")
    report.summary = parked_summary(report.parked, folder)
    return report


def _load(folder: Path, entries: list[Entry], report: CollectReport,
          collected: datetime) -> list[tuple[Path, Incoming]]:
    files = []
    for entry in entries:
        path = entry.path
        try:
            data = read_entry(entry)
        except FileNotFoundError:
            continue  # taken in and moved by another collector since the listing
        except Changed:
            report.waiting.append(path.name)  # still being written: the next run takes it
            continue
        except OSError as exc:
            if is_link_error(exc):  # swapped for a link since the listing
                _refuse(folder, report, path, "symlink", "là liên kết (symlink) tới tệp khác; hệ thống không đọc "
                        "liên kết. Đề nghị chép chính tệp biểu mẫu vào thư mục.", None)
                continue
            report.files += 1
            report.errors.append(f"{path.name}: {exc}")
            continue
        report.files += 1
        # Judged by when it reached the folder; never later than it was collected (a simulated
        # collection `as_of` a past day judges as of that day, as before).
        received = min(entry.arrived, collected)
        files.append((path, Incoming(data, path.name, "folder", None, received, str(path), collected_at=collected)))
    return files


def _refuse(folder: Path, report: CollectReport, path: Path, rule: str, reason_vi: str, size: int | None) -> None:
    """A dropped entry refused unread: counted, logged as a rejected file, moved to `failed/`."""
    report.files += 1
    problem = make_problem("error", path.name, rule, reason_vi)
    report.outcomes.append((path.name, Outcome(None, False, [UnitOutcome(None, None, "rejected", problems=[problem])])))
    _park(folder, report, path, problem.message_vi, size)


def _park(folder: Path, report: CollectReport, path: Path, reason_vi: str, size: int | None = None) -> None:
    moved = _move(folder, path, "failed")
    if moved is not None:
        report.parked.append(ParkedFile(path.name, str(moved.relative_to(folder)), reason_vi, size))
        log.warning("drop folder: %s moved to %s: %s", path.name, moved.relative_to(folder), reason_vi)


def _move(folder: Path, path: Path, where: str) -> Path | None:
    """Move `path` (the entry itself, a link is not followed) into `where/`; None if it is gone."""
    dest = folder / where
    dest.mkdir(exist_ok=True)
    target = dest / f"{utcnow():%Y%m%dT%H%M%S%f}-{path.name}"
    try:
        shutil.move(str(path), target)
    except FileNotFoundError:
        log.info("%s was moved by another collector meanwhile", path.name)
        return None
    return target
