"""IMAP intake: fetch the messages units send back (filled-in workbooks) from the intake mailbox.

The caller keeps, in its database, the last UID it processed for each UIDVALIDITY, and records it only
AFTER a message is safely stored. So this module only has to be deterministic: the same mailbox state
and the same (uidvalidity, last_uid) always give the same messages, in UID order. A crash between
fetch and store simply re-fetches. Nothing here changes the mailbox (EXAMINE + BODY.PEEK) except the
explicit, optional ``mark_seen``.

Blocking (stdlib imaplib): call it from async code through ``asyncio.to_thread``.
"""

from __future__ import annotations

import base64
import email
import email.header
import email.policy
import email.utils
import imaplib
import logging
import mimetypes
import re
import ssl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from typing import Any

log = logging.getLogger("baocao.mail")

# Bodies are fetched in round trips of at most this many bytes (a single larger message goes alone),
# so a batch of 50 big workbooks never sits in memory at once.
FETCH_BYTES_PER_ROUNDTRIP = 32 * 1024 * 1024

SPREADSHEET_TYPES = {
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
    "application/vnd.ms-excel.sheet.macroenabled.12": ".xlsm",
    "application/vnd.ms-excel": ".xls",
    "text/csv": ".csv",
}


class MailboxError(Exception):
    """The intake mailbox cannot be read (connection, protocol, missing folder). Never holds the password."""


class MailboxLoginError(MailboxError):
    """The IMAP server refused the configured credentials."""


@dataclass(frozen=True)
class ImapSettings:
    host: str = "127.0.0.1"
    port: int = 143
    username: str = ""
    password: str = field(default="", repr=False)
    mailbox: str = "INBOX"
    use_ssl: bool = False
    timeout: float = 30.0
    batch_size: int = 50
    max_message_bytes: int = 25_000_000


@dataclass(frozen=True)
class FetchedMessage:
    """One message of the intake mailbox. ``raw == b""`` means: skipped because larger than allowed."""

    uidvalidity: int
    uid: int
    raw: bytes
    size: int

    @property
    def skipped(self) -> bool:
        return not self.raw


@dataclass(frozen=True)
class Part:
    """A file found in a message (attachment, or an inline part that carries a file name)."""

    filename: str
    content: bytes
    mimetype: str


# ------------------------------------------------------------------------------------------ connection


def _encode_mailbox(name: str) -> str:
    """Quote a mailbox name for imaplib, in IMAP's modified UTF-7 (RFC 3501 5.1.3) when not ASCII."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            data = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(data).decode("ascii").rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    encoded = "".join(out)
    return '"' + encoded.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _where(settings: ImapSettings) -> str:
    return f"{settings.host}:{settings.port}"


def _scrub(text: str, settings: ImapSettings) -> str:
    """Belt and braces: whatever a server or library echoes back, the password does not get through."""
    if settings.password:
        text = text.replace(settings.password, "***")
    return text


def _login(conn: imaplib.IMAP4, settings: ImapSettings) -> None:
    try:
        if settings.username.isascii() and settings.password.isascii():
            conn.login(settings.username, settings.password)
        else:
            # imaplib's LOGIN only speaks ASCII; SASL PLAIN carries UTF-8 credentials.
            token = b"\0" + settings.username.encode() + b"\0" + settings.password.encode()
            conn.authenticate("PLAIN", lambda _challenge: token)
    except (imaplib.IMAP4.error, UnicodeError) as exc:
        detail = _scrub(str(exc), settings)
        raise MailboxLoginError(
            f"IMAP login refused for user {settings.username!r} at {_where(settings)}: {detail}"
        ) from None


@contextmanager
def _session(settings: ImapSettings, *, readonly: bool) -> Iterator[tuple[imaplib.IMAP4, int]]:
    """A logged-in connection with ``settings.mailbox`` selected; yields (connection, UIDVALIDITY)."""
    try:
        if settings.use_ssl:
            conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                settings.host, settings.port, ssl_context=ssl.create_default_context(), timeout=settings.timeout
            )
        else:
            conn = imaplib.IMAP4(settings.host, settings.port, timeout=settings.timeout)
    except (OSError, imaplib.IMAP4.error) as exc:
        raise MailboxError(f"cannot connect to IMAP server {_where(settings)}: {exc}") from None
    try:
        _login(conn, settings)
        typ, data = conn.select(_encode_mailbox(settings.mailbox), readonly=readonly)
        if typ != "OK":
            raise MailboxError(f"cannot open mailbox {settings.mailbox!r} at {_where(settings)}: {_text(data)}")
        yield conn, _uidvalidity(conn, settings)
    except (imaplib.IMAP4.error, OSError) as exc:  # .abort (connection lost) is an IMAP4.error too
        raise MailboxError(f"IMAP session with {_where(settings)} failed: {_scrub(str(exc), settings)}") from None
    finally:
        try:
            conn.logout()
        except (imaplib.IMAP4.error, OSError):
            pass


def _uidvalidity(conn: imaplib.IMAP4, settings: ImapSettings) -> int:
    _, data = conn.response("UIDVALIDITY")
    if data and data[-1]:
        return int(data[-1])
    typ, status = conn.status(_encode_mailbox(settings.mailbox), "(UIDVALIDITY)")
    match = re.search(rb"UIDVALIDITY (\d+)", status[0] or b"") if typ == "OK" and status else None
    if match is None:
        raise MailboxError(f"IMAP server {_where(settings)} reports no UIDVALIDITY for {settings.mailbox!r}")
    return int(match.group(1))


def _text(data: Any) -> str:
    if isinstance(data, list | tuple):
        return " ".join(_text(d) for d in data if d is not None)
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return str(data)


def _check(result: tuple[str, Any], what: str) -> list[Any]:
    typ, data = result
    if typ != "OK":
        raise MailboxError(f"IMAP {what} failed: {typ} {_text(data)}")
    return list(data or [])


def _fetch(conn: imaplib.IMAP4, uids: Sequence[int], items: str) -> dict[int, tuple[bytes, bytes | None]]:
    """UID FETCH; returns uid -> (response text, literal or None). Unsolicited responses without a UID
    (flag updates from other sessions) are ignored; UIDs no longer in the mailbox are simply absent."""
    data = _check(conn.uid("FETCH", ",".join(map(str, uids)), items), "UID FETCH")
    records: list[list[Any]] = []  # [text, literal]
    for item in data:
        if isinstance(item, tuple):
            records.append([bytes(item[0]), bytes(item[1])])
        elif isinstance(item, bytes):
            if re.match(rb"\d+ \(", item) or not records:
                records.append([item, None])
            else:
                records[-1][0] += b" " + item  # tail after a literal, e.g. b" UID 101)"
    out: dict[int, tuple[bytes, bytes | None]] = {}
    wanted = set(uids)
    for text, literal in records:
        match = re.search(rb"\bUID (\d+)", text)
        if match and int(match.group(1)) in wanted:
            out[int(match.group(1))] = (text, literal)
    return out


def _chunks(seq: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for i in range(0, len(seq), max(1, size)):
        yield seq[i : i + max(1, size)]


# ------------------------------------------------------------------------------------------ public API


def fetch_since(settings: ImapSettings, *, uidvalidity: int | None, last_uid: int) -> Iterator[FetchedMessage]:
    """Messages with UID > ``last_uid`` in UID order; all of them when the mailbox's UIDVALIDITY is not
    ``uidvalidity`` (UIDs were renumbered, or first run).

    Lazy: bodies are fetched ``batch_size`` messages at a time as the caller iterates, over one
    connection that stays open until the iterator is exhausted or closed. Messages above
    ``max_message_bytes`` are not downloaded: they come back with ``raw == b""`` and their size (and a
    warning is logged), so the caller can record them and tell the sender. A message deleted between
    the SEARCH and its FETCH is skipped with a warning.
    """
    with _session(settings, readonly=True) as (conn, server_uv):
        start = last_uid
        if uidvalidity != server_uv:
            if uidvalidity is not None:
                log.warning(
                    "mailbox %s UIDVALIDITY changed %s -> %s: fetching all messages again",
                    settings.mailbox, uidvalidity, server_uv,
                )
            start = 0
        found = _check(conn.uid("SEARCH", None, f"UID {start + 1}:*"), "UID SEARCH")
        # "n:*" always matches the highest UID, even when it is below n: filter here.
        uids = sorted({int(tok) for line in found if line for tok in line.split() if int(tok) > start})
        log.info("mailbox %s: %d message(s) after UID %d", settings.mailbox, len(uids), start)
        for batch in _chunks(uids, settings.batch_size):
            yield from _fetch_batch(conn, settings, server_uv, batch)


def _fetch_batch(
    conn: imaplib.IMAP4, settings: ImapSettings, uidvalidity: int, batch: Sequence[int]
) -> Iterator[FetchedMessage]:
    sizes: dict[int, int] = {}
    for uid, (text, _) in _fetch(conn, batch, "(RFC822.SIZE)").items():
        match = re.search(rb"RFC822\.SIZE (\d+)", text)
        if match:
            sizes[uid] = int(match.group(1))
    # Group the messages to download so one round trip stays under FETCH_BYTES_PER_ROUNDTRIP.
    groups: list[list[int]] = [[]]
    group_bytes = 0
    for uid in batch:
        size = sizes.get(uid)
        if size is None or size > settings.max_message_bytes:
            continue
        if groups[-1] and group_bytes + size > FETCH_BYTES_PER_ROUNDTRIP:
            groups.append([])
            group_bytes = 0
        groups[-1].append(uid)
        group_bytes += size
    # Emit in UID order as each group arrives, so at most one group of bodies is held at a time.
    pending = list(batch)
    for group in groups:
        if not group:
            continue
        bodies = {uid: lit for uid, (_, lit) in _fetch(conn, group, "(BODY.PEEK[])").items() if lit is not None}
        while pending and pending[0] <= group[-1]:
            yield from _one(settings, uidvalidity, pending.pop(0), sizes, bodies)
    for uid in pending:
        yield from _one(settings, uidvalidity, uid, sizes, {})


def _one(
    settings: ImapSettings, uidvalidity: int, uid: int, sizes: dict[int, int], bodies: dict[int, bytes]
) -> Iterator[FetchedMessage]:
    size = sizes.get(uid)
    if size is None:
        log.warning("mailbox %s: message UID %d was deleted before it could be fetched; skipped",
                    settings.mailbox, uid)
    elif size > settings.max_message_bytes:
        log.warning("mailbox %s: message UID %d is %d bytes, above the %d-byte limit; not downloaded",
                    settings.mailbox, uid, size, settings.max_message_bytes)
        yield FetchedMessage(uidvalidity, uid, b"", size)
    elif uid not in bodies:
        log.warning("mailbox %s: message UID %d was deleted before its body was fetched; skipped",
                    settings.mailbox, uid)
    else:
        yield FetchedMessage(uidvalidity, uid, bodies[uid], len(bodies[uid]))


def _clean_filename(name: str) -> str:
    """Decode a leftover RFC 2047 word, drop any directory part and control characters."""
    if "=?" in name:
        try:
            name = str(email.header.make_header(email.header.decode_header(name)))
        except (ValueError, LookupError):
            pass
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(ch for ch in name if ch >= " " and ch != "\x7f").strip()
    return name if name not in ("", ".", "..") else ""


def attachments(raw: bytes) -> tuple[EmailMessage, list[Part]]:
    """Parse ``raw``; return the message and every file in it, in document order.

    A file is any leaf part with a file name (RFC 2231 and RFC 2047 names decoded, directory parts
    removed), or a spreadsheet/CSV part sent without one (it gets ``attachment-N.<ext>``). Files inside
    forwarded messages (message/rfc822) count too: units often forward the form they filled in.
    """
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    parts: list[Part] = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        mimetype = part.get_content_type()
        try:
            filename = _clean_filename(part.get_filename() or "")
        except (ValueError, LookupError):
            filename = ""
        if not filename:
            if mimetype not in SPREADSHEET_TYPES:
                continue
            filename = f"attachment-{len(parts) + 1}{SPREADSHEET_TYPES[mimetype]}"
        content = part.get_payload(decode=True)
        if not isinstance(content, bytes):
            continue
        if mimetype == "application/octet-stream":
            mimetype = mimetypes.guess_type(filename)[0] or mimetype
        parts.append(Part(filename=filename, content=content, mimetype=mimetype))
    return msg, parts


def sender_address(msg: Message) -> str:
    """Lower-cased addr-spec of From ('' when absent or unparseable): who the submission claims to be from."""
    value = msg.get("From")
    if value is None:
        return ""
    addresses = getattr(value, "addresses", None)
    if addresses:
        spec = addresses[0].addr_spec
    else:
        spec = email.utils.parseaddr(str(value))[1]
    spec = (spec or "").strip().lower()
    return spec if "@" in spec else ""


def mark_seen(settings: ImapSettings, uids: Sequence[int]) -> None:
    """Set \\Seen on ``uids`` (optional: lets people watching the intake mailbox see what was processed)."""
    if not uids:
        return
    with _session(settings, readonly=False) as (conn, _):
        for chunk in _chunks(sorted(set(uids)), 500):
            _check(conn.uid("STORE", ",".join(map(str, chunk)), "+FLAGS.SILENT", r"(\Seen)"), "UID STORE")
