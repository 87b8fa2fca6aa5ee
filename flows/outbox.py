"""The outbox: every message is written before it is sent and marked after.

The key of a message names the unit, the period, the kind and the stage
(`2026-H1/national/X10714/form/open`). Writing a key that exists already does nothing, so a
flow that is re-run or retried writes each message once; `deliver` sends what is still pending
(or failed) and marks each one the moment the SMTP server accepts it. A crash between the
server's acceptance and that mark is the only way a message can go twice; its Message-ID is
derived from the key, so the copy is recognisable as the same message. Runs that send at the same
time (overlapping scheduled runs, several workers) each claim the rows they send first
(:class:`_Claim`), so no message goes out from two of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from flows.config import Settings
from flows.db import Blob, Database, OutboxMessage, utcnow
from flows.mailer import Attachment, Mail, SendResult, SmtpSettings, send_all_sync
from flows.store import insert_ignore

try:
    import fcntl
except ImportError:  # not POSIX: claims then hold within this process only
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("baocao.outbox")


@dataclass(frozen=True)
class FileAttachment:
    filename: str
    content: bytes
    mimetype: str
    cid: str | None = None


def message_key(period: str, plan: str, unit: str, kind: str, stage: str = "") -> str:
    return "/".join(p for p in (period, plan, unit, kind, stage) if p)


def store_blob(session: Session, content: bytes) -> int:
    digest = hashlib.sha256(content).hexdigest()
    existing = session.scalar(select(Blob.id).where(Blob.sha256 == digest).limit(1))
    if existing is not None:
        return existing
    blob = Blob(sha256=digest, content=content)
    session.add(blob)
    session.flush()
    return blob.id


def exists(session: Session, key: str) -> bool:
    return session.scalar(select(OutboxMessage.id).where(OutboxMessage.key == key)) is not None


def enqueue(
    session: Session, *, key: str, kind: str, to: Sequence[str], subject: str, text: str, html: str | None = None,
    cc: Sequence[str] = (), stage: str = "", unit: str | None = None, period: str | None = None,
    cycle_id: int | None = None, attachments: Sequence[FileAttachment] = (),
) -> bool:
    """Write a message unless its key is there already. True when it was new."""
    if exists(session, key):
        return False
    refs = [{"filename": a.filename, "mimetype": a.mimetype, "blob_id": store_blob(session, a.content), "cid": a.cid}
            for a in attachments]
    insert_ignore(session, OutboxMessage.__table__, [{
        "key": key, "kind": kind, "stage": stage, "unit_code": unit, "period": period, "cycle_id": cycle_id,
        "recipients": list(dict.fromkeys(to)), "cc": [c for c in dict.fromkeys(cc) if c not in to],
        "subject": subject, "body_text": text, "body_html": html, "attachments": refs,
        "status": "pending", "attempts": 0, "created_at": utcnow(),
    }], ["key"])
    return True


def smtp_settings(settings: Settings) -> SmtpSettings:
    s = settings.smtp
    return SmtpSettings(
        host=s.host, port=s.port, username=s.username or None, password=s.password.get_secret_value() or None,
        use_tls=s.use_tls, start_tls=s.start_tls, timeout=s.timeout, concurrency=s.concurrency,
        max_attempts=s.max_attempts, backoff_base=s.backoff_base,
    )


@dataclass
class Delivery:
    """What one call of :func:`deliver` did, per message and per unit."""

    sent: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # key -> reason
    units_failed: dict[str, str] = field(default_factory=dict)  # unit code -> reason
    refused: dict[str, dict[str, str]] = field(default_factory=dict)  # key -> {address: reply}
    busy: list[str] = field(default_factory=list)  # keys another run was sending: left to it

    @property
    def ok(self) -> bool:
        return not self.failed


def deliver(
    db: Database, settings: Settings, *, cycle_id: int | None = None, units: Iterable[str] | None = None,
    kinds: Iterable[str] | None = None, keys: Iterable[str] | None = None, include_failed: bool = True,
    order_by_depth: dict[str, int] | None = None,
) -> Delivery:
    """Send the pending (and, on a retry, the failed) messages that match; mark each as it goes.

    `order_by_depth` (unit -> depth) sends higher levels first: the ministry's request to the
    provinces leaves before the provinces' requests to their communes.
    """
    statuses = ["pending", "failed"] if include_failed else ["pending"]
    with db.session() as s:
        q = select(OutboxMessage).where(OutboxMessage.status.in_(statuses))
        if cycle_id is not None:
            q = q.where(OutboxMessage.cycle_id == cycle_id)
        if units is not None:
            q = q.where(OutboxMessage.unit_code.in_(list(units)))
        if kinds is not None:
            q = q.where(OutboxMessage.kind.in_(list(kinds)))
        if keys is not None:
            q = q.where(OutboxMessage.key.in_(list(keys)))
        rows = list(s.scalars(q.order_by(OutboxMessage.id)))
    result = Delivery()
    if not rows:
        return result
    # Another run may be sending some of these right now (overlapping collect runs, two workers):
    # claim them first, then keep only what is still unsent once claimed.
    claim = _Claim(db, [r.id for r in rows])
    try:
        with db.session() as s:
            unsent = set(s.scalars(select(OutboxMessage.id).where(OutboxMessage.id.in_(claim.ids),
                                                                   OutboxMessage.status.in_(statuses))))
            result.busy = [r.key for r in rows if r.id not in claim.ids]
            rows = [r for r in rows if r.id in unsent]
            if order_by_depth:
                rows.sort(key=lambda r: order_by_depth.get(r.unit_code or "", 0))
            blob_ids = {a["blob_id"] for r in rows for a in r.attachments}
            blobs = {b.id: b.content for b in s.scalars(select(Blob).where(Blob.id.in_(blob_ids)))} if blob_ids else {}
    except BaseException:
        claim.release()
        raise
    if result.busy:
        log.info("%d message(s) are being sent by another run; left to it", len(result.busy))
    if not rows:
        claim.release()
        return result
    by_key = {r.key: r for r in rows}
    mails = [_mail(r, blobs, settings) for r in rows]

    def record(res: SendResult) -> None:
        row = by_key[res.key]
        detail = res.detail
        if res.refused:
            detail += " (" + "; ".join(f"{a}: {r}" for a, r in res.refused.items()) + ")"
        res = SendResult(res.key, res.status, detail, res.refused, res.attempts)
        with db.session() as s:
            values: dict[str, Any] = {"attempts": OutboxMessage.attempts + res.attempts, "last_error": None}
            if res.status == "sent":
                values.update(status="sent", sent_at=utcnow())
                if res.refused:
                    values["last_error"] = "; ".join(f"{a}: {r}" for a, r in res.refused.items())
            elif res.status == "permanent":
                values.update(status="failed", last_error=res.detail)
            else:
                values.update(last_error=res.detail)  # stays pending: the next run tries again
            s.execute(update(OutboxMessage).where(OutboxMessage.id == row.id).values(**values))
        if res.status == "sent":
            result.sent.append(res.key)
            if res.refused:
                result.refused[res.key] = dict(res.refused)
        else:
            reason = f"{res.status}: {res.detail}"
            result.failed[res.key] = reason
            if row.unit_code:
                result.units_failed[row.unit_code] = reason
            log.error("message %s to unit %s not sent: %s", res.key, row.unit_code, reason)

    async def on_result(res: SendResult) -> None:
        # The mark is written off the event loop: the connection that sent this message waits for it
        # before taking its next message, while the other connections keep sending.
        await asyncio.to_thread(record, res)

    try:
        send_all_sync(mails, smtp_settings(settings), on_result=on_result)
    finally:
        claim.release()
    return result


class _Claim:
    """The outbox rows this run is sending: no other run, thread or process, sends them meanwhile.

    What holds a claim dies with its holder, so a crashed run leaves nothing to clean up and the
    next run sends what it left: on PostgreSQL a session-level advisory lock per row (on a
    connection kept for the duration of the sending), on SQLite a POSIX lock on byte `id` of a
    file beside the database (plus this process's own list, since POSIX locks do not exclude the
    threads of one process). Rows another run holds are left to it, not waited for (on
    PostgreSQL after a second look: a killed run's locks go when the server notices it is gone).
    """

    def __init__(self, db: Database, ids: Sequence[int]) -> None:
        self.ids: set[int] = set()
        self._conn: Any = None
        self._path: str | None = None
        if db.engine.dialect.name == "postgresql":
            self._conn = db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            claim = text("SELECT i FROM unnest(CAST(:ids AS integer[])) AS t(i) WHERE pg_try_advisory_lock(:ns, i)")
            try:
                left = list(ids)
                for pause in (0.1, 0.3, 0.6, 0):
                    self.ids |= set(self._conn.execute(claim, {"ids": left, "ns": _CLAIM_NS}).scalars())
                    left = [i for i in left if i not in self.ids]
                    if not left or not pause:
                        break
                    time.sleep(pause)
            except BaseException:
                self.release()
                raise
        else:
            self._path = _lock_path(db)
            with _claims_lock:
                mine = _process_claims(self._path)
                fd = _lock_fd(self._path)
                for i in ids:
                    if i in mine:
                        continue
                    if fd is not None:
                        try:
                            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, i)
                        except OSError:
                            continue
                    mine.add(i)
                    self.ids.add(i)

    def release(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.execute(text("SELECT pg_advisory_unlock_all()"))
                conn.close()
            except Exception:
                conn.invalidate()  # a broken connection: the server dropped its locks with it
        elif self._path is not None:
            with _claims_lock:
                mine = _process_claims(self._path)
                fd = _lock_fd(self._path)
                for i in self.ids:
                    mine.discard(i)
                    if fd is not None:
                        with contextlib.suppress(OSError):
                            fcntl.lockf(fd, fcntl.LOCK_UN, 1, i)
            self._path = None
        self.ids = set()


_CLAIM_NS = 0x62616F  # "bao": the advisory-lock space of outbox rows
_claims_lock = threading.Lock()
_claims: dict[str, set[int]] = {}
_lock_fds: dict[str, int] = {}
_claims_pid = os.getpid()


def _lock_path(db: Database) -> str:
    name = db.engine.url.database or ""
    return f"{name}-outbox.lock" if name and name != ":memory:" else f":memory:{id(db)}"


def _process_claims(path: str) -> set[int]:
    global _claims_pid
    if os.getpid() != _claims_pid:  # a forked child holds none of its parent's claims
        _claims.clear()
        _lock_fds.clear()
        _claims_pid = os.getpid()
    return _claims.setdefault(path, set())


def _lock_fd(path: str) -> int | None:
    """One descriptor per lock file for the life of the process (closing any descriptor of a file
    drops every POSIX lock the process holds on it)."""
    if fcntl is None or path.startswith(":memory:"):
        return None
    if path not in _lock_fds:
        try:
            _lock_fds[path] = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            log.warning("cannot open %s (%s): outbox claims hold within this process only", path, exc)
            _lock_fds[path] = -1
    return _lock_fds[path] if _lock_fds[path] >= 0 else None


def _mail(row: OutboxMessage, blobs: dict[int, bytes], settings: Settings) -> Mail:
    return Mail(
        key=row.key, sender=settings.sender, to=tuple(row.recipients), cc=tuple(row.cc), reply_to=settings.reply_to,
        subject=row.subject, text=row.body_text, html=row.body_html,
        attachments=tuple(Attachment(a["filename"], blobs[a["blob_id"]], a["mimetype"], a.get("cid"))
                          for a in row.attachments),
        headers={"X-Baocao-Unit": row.unit_code or "", "X-Baocao-Kind": row.kind, "X-Baocao-Period": row.period or ""},
        group=row.unit_code or None,  # a unit's messages reach it in the order they were written
    )


def messages(db: Database, **filters: Any) -> list[OutboxMessage]:
    """Outbox rows matching equality filters (unit_code=..., kind=..., status=...)."""
    with db.session() as s:
        q = select(OutboxMessage)
        for name, value in filters.items():
            q = q.where(getattr(OutboxMessage, name) == value)
        return list(s.scalars(q.order_by(OutboxMessage.id)))
