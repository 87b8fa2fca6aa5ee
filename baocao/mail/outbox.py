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
import queue
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.orm import Session

from baocao.mail.mime import Attachment, Mail
from baocao.mail.smtp import SendResult, SmtpSettings, send_all_sync
from baocao.rules.config import Settings
from baocao.store.db import Blob, Database, OutboxMessage, utcnow
from baocao.store.queries import insert_ignore

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
    cycle_id: int | None = None, attachments: Sequence[FileAttachment] = (), status: str = "pending",
    headers: Mapping[str, Any] | None = None,
) -> bool:
    """Write a message unless its key is there already. True when it was new.

    `status="held"`: written but not sent until released (the replies to one incoming mail, merged
    into one by :mod:`baocao.intake.replies` once the whole mail is taken in).
    `headers`: this message's own Reply-To (an issued report: the unit's coordinator answers, not the
    robot), In-Reply-To and References (a reply threads under the unit's mail); see :data:`MESSAGE_HEADERS`."""
    if exists(session, key):
        return False
    enqueue_all(session, [dict(key=key, kind=kind, to=to, subject=subject, text=text, html=html, cc=cc, stage=stage,
                               unit=unit, period=period, cycle_id=cycle_id, attachments=attachments, status=status,
                               headers=headers)])
    return True


def enqueue_all(session: Session, messages: Sequence[dict[str, Any]]) -> None:
    """Write many messages, attachments included, with a few statements (a batch of requests).

    Each item takes :func:`enqueue`'s keywords. A key already there is left as it is; attachments
    already stored (same SHA-256) are referenced, not stored again.
    """
    contents = {hashlib.sha256(a.content).hexdigest(): a.content for m in messages for a in m.get("attachments", ())}
    blob_ids: dict[str, int] = {}
    if contents:
        blob_ids = {sha: id_ for sha, id_ in session.execute(select(Blob.sha256, Blob.id)
                                                             .where(Blob.sha256.in_(list(contents))))}
        new = [sha for sha in contents if sha not in blob_ids]
        if new:
            ids = session.scalars(insert(Blob).returning(Blob.id, sort_by_parameter_order=True),
                                  [{"sha256": sha, "content": contents[sha]} for sha in new]).all()
            blob_ids.update(zip(new, ids, strict=True))
    rows = []
    for m in messages:
        m = dict(m)
        refs = [{"filename": a.filename, "mimetype": a.mimetype, "cid": a.cid,
                 "blob_id": blob_ids[hashlib.sha256(a.content).hexdigest()]} for a in m.pop("attachments", ())]
        rows.append(_row(**m, refs=refs))
    insert_ignore(session, OutboxMessage.__table__, rows, ["key"])


def enqueue_many(session: Session, messages: Sequence[dict[str, Any]]) -> None:
    """Write many messages without attachments in one statement (the receipts of a batch of files).

    Each item takes :func:`enqueue`'s keywords but ``attachments``; a key already there is left as it is.
    """
    insert_ignore(session, OutboxMessage.__table__, [_row(**m) for m in messages], ["key"])


def _row(*, key: str, kind: str, to: Sequence[str], subject: str, text: str, html: str | None = None,
         cc: Sequence[str] = (), stage: str = "", unit: str | None = None, period: str | None = None,
         cycle_id: int | None = None, refs: Sequence[dict[str, Any]] = (), status: str = "pending",
         headers: Mapping[str, Any] | None = None) -> dict[str, Any]:
    unknown = set(headers or ()) - set(MESSAGE_HEADERS)
    if unknown:
        raise ValueError(f"outbox headers {sorted(unknown)} are not among {MESSAGE_HEADERS}")
    return {
        "headers": dict(headers or {}),
        "key": key, "kind": kind, "stage": stage, "unit_code": unit, "period": period, "cycle_id": cycle_id,
        "recipients": list(dict.fromkeys(to)), "cc": [c for c in dict.fromkeys(cc) if c not in to],
        "subject": subject, "body_text": text, "body_html": html, "attachments": list(refs),
        "status": status, "attempts": 0, "created_at": utcnow(),
    }


def smtp_settings(settings: Settings) -> SmtpSettings:
    s = settings.smtp
    return SmtpSettings(
        host=s.host, port=s.port, username=s.username or None, password=s.password.get_secret_value() or None,
        use_tls=s.use_tls, start_tls=s.start_tls, timeout=s.timeout, concurrency=s.concurrency,
        max_attempts=s.max_attempts, backoff_base=s.backoff_base, plaintext_credentials=settings.plaintext_credentials,
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
    by_key = {r.key: (r.id, r.unit_code) for r in rows}
    mails = [_mail(r, blobs, settings) for r in rows]
    marks = _Marks(db, by_key, result)
    try:
        send_all_sync(mails, smtp_settings(settings), on_result=marks.mark)
    finally:
        marks.close()
        claim.release()
    return result


class _Marks:
    """Writes what became of each message, the moment the SMTP server has answered it.

    One thread writes the marks; the marks that arrive while it writes (one per SMTP connection at
    most, since a connection waits for its mark before taking its next message) go together in
    its next transaction: a group commit. So at a crash no more messages are accepted and unmarked
    than there are connections, and a national send does not pay a transaction per message.
    """

    def __init__(self, db: Database, rows: dict[str, tuple[int, str | None]], result: Delivery) -> None:
        self.db, self.rows, self.result = db, rows, result
        self._queue: queue.SimpleQueue[tuple[SendResult, asyncio.AbstractEventLoop, asyncio.Future[None]] | None] = \
            queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="baocao-outbox-marks", daemon=True)
        self._thread.start()

    async def mark(self, res: SendResult) -> None:
        """Record `res`; returns once it is committed (raises what writing it raised)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._queue.put((res, loop, done))
        await done

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        stop = False
        while not stop:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while True:  # whatever else is waiting goes in the same transaction
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            error: BaseException | None = None
            try:
                self._write([res for res, _, _ in batch])
            except BaseException as exc:  # noqa: BLE001 - handed to each waiting connection
                error = exc
            for _, loop, done in batch:
                loop.call_soon_threadsafe(_settle, done, error)

    def _write(self, results: list[SendResult]) -> None:
        table = OutboxMessage.__table__
        now = utcnow()
        with self.db.engine.begin() as conn:
            plain = [{"row": self.rows[r.key][0], "n": r.attempts} for r in results if r.status == "sent" and not r.refused]
            if plain:  # the usual mark, for all of them in one executemany
                conn.execute(update(table).where(table.c.id == bindparam("row"))
                             .values(attempts=table.c.attempts + bindparam("n"), last_error=None, status="sent",
                                     sent_at=now), plain)
            for res in results:
                if res.status == "sent" and not res.refused:
                    continue
                values: dict[str, Any] = {"attempts": table.c.attempts + res.attempts, "last_error": None}
                if res.status == "sent":
                    values.update(status="sent", sent_at=now)
                    if res.refused:
                        values["last_error"] = _refusals(res)
                elif res.status == "permanent":
                    values.update(status="failed", last_error=_detail(res))
                else:
                    values.update(last_error=_detail(res))  # stays pending: the next run tries again
                conn.execute(update(table).where(table.c.id == self.rows[res.key][0]).values(**values))
        for res in results:
            unit = self.rows[res.key][1]
            if res.status == "sent":
                self.result.sent.append(res.key)
                if res.refused:
                    self.result.refused[res.key] = dict(res.refused)
            else:
                reason = f"{res.status}: {_detail(res)}"
                self.result.failed[res.key] = reason
                if unit:
                    self.result.units_failed[unit] = reason
                log.error("message %s to unit %s not sent: %s", res.key, unit, reason)


def _refusals(res: SendResult) -> str:
    return "; ".join(f"{a}: {r}" for a, r in res.refused.items())


def _detail(res: SendResult) -> str:
    return f"{res.detail} ({_refusals(res)})" if res.refused else res.detail


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.cancelled():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)


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


MESSAGE_HEADERS = ("Reply-To", "In-Reply-To", "References")
"""What a message may set of its own headers (the outbox row's `headers`): Reply-To (one address),
In-Reply-To (one Message-ID), References (a list of Message-IDs). Others come from the settings."""


def _mail(row: OutboxMessage, blobs: dict[int, bytes], settings: Settings) -> Mail:
    own = row.headers or {}
    return Mail(
        key=row.key, sender=settings.sender, to=tuple(row.recipients), cc=tuple(row.cc),
        reply_to=own.get("Reply-To") or settings.reply_to,
        in_reply_to=own.get("In-Reply-To"), references=tuple(own.get("References") or ()),
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
