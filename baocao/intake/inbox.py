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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from typing import Any

from baocao.errors import MailboxError, MailboxLoginError
from baocao.mail import cleartext, threads
from baocao.safetext import clean_text, short_name

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
    plaintext_credentials: str = "warn"  # no TLS to a non-loopback host: "warn" or "refuse" (baocao.mail.cleartext)
    local: Callable[[str], bool] = field(default=cleartext.is_loopback, repr=False, compare=False)  # tests inject


@dataclass(frozen=True)
class FetchedMessage:
    """One message of the intake mailbox. ``raw == b""`` means: skipped because larger than allowed
    (``header`` then holds its header block, so the sender can still be told)."""

    uidvalidity: int
    uid: int
    raw: bytes
    size: int
    internal_date: datetime | None = None  # when the server received it (IMAP INTERNALDATE)
    header: bytes = b""

    @property
    def skipped(self) -> bool:
        return not self.raw


@dataclass(frozen=True)
class Part:
    """A file found in a message (attachment, or an inline part that carries a file name)."""

    filename: str
    content: bytes
    mimetype: str


@dataclass(frozen=True)
class ReadMessage:
    """What :func:`read_message` made of a message's bytes; it never raises.

    ``problem`` (English, for the operator's record) says why the message could not be parsed; then
    ``parts`` is empty and ``sender`` is whatever address the raw From line gives, if any.
    ``unread`` names the files beyond the per-message cap, listed but not decoded.
    """

    parts: list[Part]
    sender: str
    message_id: str | None
    sent_at: datetime | None  # the message's own Date header
    problem: str | None = None
    unread: list[str] = field(default_factory=list)
    # The mail's References, well-formed msg-ids only (baocao.mail.threads): a reply threads under it.
    references: tuple[str, ...] = ()


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
        # STARTTLS whenever the server offers it; then LOGIN, after the clear-text rule (baocao.mail.cleartext).
        encrypted = settings.use_ssl
        if not encrypted and "STARTTLS" in conn.capabilities:
            conn.starttls(ssl_context=ssl.create_default_context())
            encrypted = True
        try:
            cleartext.check("IMAP", settings.host, settings.port, encrypted=encrypted,
                            credentials=bool(settings.password), policy=settings.plaintext_credentials,
                            local=settings.local)
        except cleartext.CleartextRefused as exc:
            raise MailboxError(str(exc)) from None
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
    arrived: dict[int, datetime] = {}
    for uid, (text, _) in _fetch(conn, batch, "(RFC822.SIZE INTERNALDATE)").items():
        match = re.search(rb"RFC822\.SIZE (\d+)", text)
        if match:
            sizes[uid] = int(match.group(1))
        when = _internal_date(text)
        if when is not None:
            arrived[uid] = when
    # The header of a message too big to download: enough to tell its sender why it was not read.
    big = [uid for uid in batch if sizes.get(uid, 0) > settings.max_message_bytes]
    headers = ({uid: lit for uid, (_, lit) in _fetch(conn, big, "(BODY.PEEK[HEADER])").items() if lit is not None}
               if big else {})
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
            yield from _one(settings, uidvalidity, pending.pop(0), sizes, bodies, arrived, headers)
    for uid in pending:
        yield from _one(settings, uidvalidity, uid, sizes, {}, arrived, headers)


def _internal_date(text: bytes) -> datetime | None:
    """INTERNALDATE of a FETCH response, aware; None when absent or malformed."""
    match = re.search(rb'INTERNALDATE "([^"]+)"', text)
    if match is None:
        return None
    try:
        return email.utils.parsedate_to_datetime(_imap_date_to_rfc2822(match.group(1).decode("ascii")))
    except (ValueError, TypeError, IndexError, UnicodeError):
        return None


def _imap_date_to_rfc2822(value: str) -> str:
    """'17-Jul-1996 02:44:25 -0700' (RFC 3501 date-time) -> '17 Jul 1996 02:44:25 -0700'."""
    return value.strip().replace("-", " ", 2)


def _one(
    settings: ImapSettings, uidvalidity: int, uid: int, sizes: dict[int, int], bodies: dict[int, bytes],
    arrived: dict[int, datetime], headers: dict[int, bytes],
) -> Iterator[FetchedMessage]:
    size = sizes.get(uid)
    if size is None:
        log.warning("mailbox %s: message UID %d was deleted before it could be fetched; skipped",
                    settings.mailbox, uid)
    elif size > settings.max_message_bytes:
        log.warning("mailbox %s: message UID %d is %d bytes, above the %d-byte limit; not downloaded",
                    settings.mailbox, uid, size, settings.max_message_bytes)
        yield FetchedMessage(uidvalidity, uid, b"", size, arrived.get(uid), headers.get(uid, b""))
    elif uid not in bodies:
        log.warning("mailbox %s: message UID %d was deleted before its body was fetched; skipped",
                    settings.mailbox, uid)
    else:
        yield FetchedMessage(uidvalidity, uid, bodies[uid], len(bodies[uid]), arrived.get(uid))


def _clean_filename(name: str) -> str:
    """Decode a leftover RFC 2047 word, drop any directory part and control characters."""
    if "=?" in name:
        try:
            name = str(email.header.make_header(email.header.decode_header(name)))
        except (ValueError, LookupError):
            pass
    name = re.split(r"[\\/]", name)[-1]
    name = short_name(clean_text(_printable(name)).strip(), 255)  # 20,000 characters made a 20,039-character subject
    return name if name not in ("", ".", "..") else ""


def attachments(raw: bytes, *, limit: int | None = None,
                unread: list[str] | None = None) -> tuple[EmailMessage, list[Part]]:
    """Parse ``raw``; return the message and every file in it, in document order.

    A file is any leaf part with a file name (RFC 2231 and RFC 2047 names decoded, directory parts
    removed), or a spreadsheet/CSV part sent without one (it gets ``attachment-N.<ext>``). Files inside
    forwarded messages (message/rfc822) count too: units often forward the form they filled in.
    Beyond ``limit`` files, the names of the others go to ``unread`` and their content is not decoded.
    May raise on a malformed message: :func:`read_message` is the caller's safe entry.
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
        if limit is not None and len(parts) >= limit:
            if unread is not None:
                unread.append(filename)
            continue
        content = part.get_payload(decode=True)
        if not isinstance(content, bytes):
            continue
        if mimetype == "application/octet-stream":
            mimetype = mimetypes.guess_type(filename)[0] or mimetype
        parts.append(Part(filename=filename, content=content, mimetype=mimetype))
    return msg, parts


# Multipart and forwarded-message parts a message may hold. Each can nest in the last, and the email
# package recurses once per level (1,000 levels: RecursionError after a second), so a message with
# more is refused before it is parsed. Real replies hold two or three.
MAX_CONTAINERS = 50


def read_message(raw: bytes, *, limit: int | None = None) -> ReadMessage:
    """Everything intake needs from a message's bytes, without ever raising.

    Python's email package raises on some malformed headers (AttributeError, IndexError, TypeError,
    HeaderParseError...) and on deep nesting (RecursionError). One such message must not stop the
    mailbox: it comes back with the reason in ``problem`` and the sender read from the raw From
    line when that is possible at all, so it can be recorded, answered and passed over.
    """
    fallback = _raw_sender(raw)
    containers = _containers(raw)
    if containers > MAX_CONTAINERS:
        return ReadMessage([], fallback, None, None,
                           f"{containers} multipart/message parts (at most {MAX_CONTAINERS}): nested too deep to parse")
    unread: list[str] = []
    try:
        msg, parts = attachments(raw, limit=limit, unread=unread)
    except Exception as exc:  # noqa: BLE001 - any parser failure makes the message unreadable, not the run
        return ReadMessage([], fallback, None, None, f"cannot be parsed: {type(exc).__name__}: {exc}"[:500])
    return ReadMessage(parts, _printable(_safe(lambda: sender_address(msg), "")) or fallback,
                       _safe(lambda: _printable(str(msg.get("Message-ID", "") or ""))[:300] or None, None),
                       _safe(lambda: _sent_at(msg), None), None, unread,
                       _safe(lambda: threads.parse_references(_printable(str(msg.get("References", "") or ""))), ()))


def _printable(text: str) -> str:
    """`text` without control characters and lone surrogates (undecodable bytes the parser kept): what
    neither the database (PostgreSQL refuses NUL) nor a reply's header can carry."""
    return "".join(ch for ch in text if ch >= " " and ch != "\x7f" and not "\ud800" <= ch <= "\udfff")


def _safe(get: Any, default: Any) -> Any:
    try:
        return get()
    except Exception:  # noqa: BLE001 - a header the parser chokes on counts as absent
        return default


def _sent_at(msg: Message) -> datetime | None:
    value = msg.get("Date")
    if value is None:
        return None
    when = getattr(value, "datetime", None) or email.utils.parsedate_to_datetime(str(value))
    if when is None:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


_ADDRESS = re.compile(rb"[A-Za-z0-9._%+'=-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


def _raw_sender(raw: bytes) -> str:
    """The first address on the raw From line(s) of the header block, '' when there is none."""
    head = re.split(rb"\r?\n\r?\n", raw[:65536], maxsplit=1)[0]
    match = re.search(rb"^From:[ \t]*((?:.*)(?:\r?\n[ \t].*)*)", head, re.IGNORECASE | re.MULTILINE)
    if match is None:
        return ""
    found = _ADDRESS.search(match.group(1))
    return found.group(0).decode("ascii", "replace").lower() if found else ""


def _containers(raw: bytes) -> int:
    """How many multipart or message/rfc822 parts the message declares (counted without parsing)."""
    return len(re.findall(rb"(?im)^content-type:[ \t]*(?:multipart/|message/rfc822)", raw))


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
