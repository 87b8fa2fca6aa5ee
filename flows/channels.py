"""The intake channels: the IMAP mailbox units reply to, and the drop folder.

Both feed :func:`flows.intake.take_in`. The mailbox is read from the last UID stored (per
UIDVALIDITY); each message is recorded as processed in the same transaction habit as its files,
and the cursor moves only after that, so a crash between fetch and store re-reads the message on
the next run and the `processed_messages` constraint keeps it from being taken in twice.
"""

from __future__ import annotations

import logging
import shutil
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from flows.config import Config
from flows.db import Database, MailboxCursor, ProcessedMessage, utcnow
from flows.inbox import ImapSettings, MailboxError, attachments, fetch_since, sender_address
from flows.intake import Incoming, Outcome, take_in, take_in_batch
from flows.readpool import Job, ReadPool, cores
from flows.store import insert_ignore

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


def imap_settings(cfg: Config) -> ImapSettings:
    i = cfg.settings.imap
    return ImapSettings(host=i.host, port=i.port, username=i.username, password=i.password.get_secret_value(),
                        mailbox=i.mailbox, use_ssl=i.use_ssl, timeout=i.timeout,
                        max_message_bytes=max(cfg.settings.max_attachment_bytes * 2, 1_000_000))


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


def _claim(db: Database, mailbox: str, uidvalidity: int, uid: int, message_id: str | None) -> bool:
    """Record the message as ours to process; False if another collector (or an earlier run) has it."""
    try:
        with db.session() as s:
            if s.scalar(select(ProcessedMessage.id).where(ProcessedMessage.mailbox == mailbox,
                                                          ProcessedMessage.uidvalidity == uidvalidity,
                                                          ProcessedMessage.uid == uid)) is not None:
                return False
            s.add(ProcessedMessage(mailbox=mailbox, uidvalidity=uidvalidity, uid=uid, message_id=message_id))
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


def _collect_messages(db: Database, cfg: Config, settings: ImapSettings, key: str, uidvalidity: int | None,
                      last_uid: int, report: CollectReport, as_of: datetime | None) -> None:
    for msg in fetch_since(settings, uidvalidity=uidvalidity, last_uid=last_uid):
        report.messages += 1
        source = f"imap uid {msg.uid}"
        if msg.skipped:
            report.errors.append(f"{source}: message of {msg.size} bytes skipped (over the size limit)")
            _claim(db, key, msg.uidvalidity, msg.uid, None)
            _advance(db, key, msg.uidvalidity, msg.uid)
            continue
        parsed, parts = attachments(msg.raw)
        sender = sender_address(parsed)
        message_id = str(parsed.get("Message-ID", "") or "")[:300] or None
        already = _already(db, key, msg.uidvalidity, msg.uid)
        if not already:
            for part in parts:
                report.files += 1
                received = as_of or utcnow()
                outcome = take_in(db, cfg, Incoming(part.content, part.filename, "email", sender, received,
                                                    f"{key} uid {msg.uid}"))
                report.outcomes.append((f"{source} {part.filename} from {sender}", outcome))
            if not parts:
                log.info("%s from %s has no attachment; ignored", source, sender)
            _claim(db, key, msg.uidvalidity, msg.uid, message_id)
        _advance(db, key, msg.uidvalidity, msg.uid)


def _already(db: Database, mailbox: str, uidvalidity: int, uid: int) -> bool:
    with db.session() as s:
        return s.scalar(select(ProcessedMessage.id).where(
            ProcessedMessage.mailbox == mailbox, ProcessedMessage.uidvalidity == uidvalidity,
            ProcessedMessage.uid == uid)) is not None


def collect_folder(db: Database, cfg: Config, folder: Path | None = None, *,
                   as_of: datetime | None = None, batch: int = FOLDER_BATCH) -> CollectReport:
    """Take in every file dropped in the folder, then move it to `done/` (or `failed/`) beside it.

    Files are taken in `batch` at a time (:func:`flows.intake.take_in_batch`: the common case of
    a whole batch in one transaction). A file is moved only after it is stored, so a crash leaves it
    to be taken in again, where the checksum recognises it. Two collectors may run at once
    (overlapping scheduled runs, two workers): a file the other one moved away meanwhile is left to
    it, since the database already recognises the same bytes (stored once, judged once).
    """
    folder = folder or cfg.settings.resolve(cfg.settings.drop_folder)
    folder.mkdir(parents=True, exist_ok=True)
    report = CollectReport()
    paths = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
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
                files = _load(batches.popleft(), report, as_of)
                ahead.append((files, pool.submit([(inc.data, inc.filename) for _, inc in files])))

        for _ in range(max(1, processes)):
            read_ahead()
        while ahead:
            files, job = ahead.popleft()
            read_ahead()
            outcomes = take_in_batch(db, cfg, [inc for _, inc in files], reads=pool.result(job))
            for (path, _), outcome in zip(files, outcomes, strict=True):
                report.outcomes.append((path.name, outcome))
                _move(folder, path, "done" if outcome.status in ("accepted", "duplicate") else "failed")
    return report


def _load(paths: list[Path], report: CollectReport, as_of: datetime | None) -> list[tuple[Path, Incoming]]:
    files = []
    for path in paths:
        try:
            mtime = path.stat().st_mtime
            data = path.read_bytes()
        except FileNotFoundError:
            continue  # taken in and moved by another collector since the listing
        except OSError as exc:
            report.files += 1
            report.errors.append(f"{path.name}: {exc}")
            continue
        report.files += 1
        received = as_of or datetime.fromtimestamp(mtime).astimezone()
        files.append((path, Incoming(data, path.name, "folder", None, received, str(path))))
    return files


def _move(folder: Path, path: Path, where: str) -> None:
    dest = folder / where
    dest.mkdir(exist_ok=True)
    try:
        shutil.move(str(path), dest / f"{utcnow():%Y%m%dT%H%M%S%f}-{path.name}")
    except FileNotFoundError:
        log.info("%s was moved by another collector meanwhile", path.name)
