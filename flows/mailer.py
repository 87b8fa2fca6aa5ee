"""Outgoing mail transport: turns outbox rows into MIME messages and delivers them over SMTP.

There is no database here. The outbox (elsewhere) hands over ``Mail`` values and is told, through
``on_result``, the moment each one is finished, so it can mark that row sent before the next message
goes out: a crash mid-run then re-sends only what was not confirmed. The Message-ID is derived from the
outbox key, so a re-send after such a crash is recognisable as the same message by any mail client.

Delivery policy, per message:
  * 2xx -> "sent" (recipients refused individually are listed in ``refused``; they are not retried,
    since retrying would duplicate the copy the others already got);
  * 4xx, a dropped connection or a timeout -> reconnect and retry with exponential backoff and jitter,
    up to ``max_attempts``, then "temporary" (the outbox tries again on its next run);
  * 5xx for the whole message (552 too large, all recipients 550, bad sender) -> "permanent" at once.
Messages are spread over at most ``concurrency`` SMTP connections, each reused for many messages;
messages of one ``group`` (one unit, for the outbox) go out one after another, in the order given.
If the server cannot be reached at all, the messages not yet tried are returned "temporary" right away
instead of each waiting through its own backoff. The password is never logged nor put in a detail.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.generator
import email.policy
import email.utils
import hashlib
import inspect
import logging
import random
import re
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email import quoprimime
from email.header import Header
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from functools import lru_cache
from io import BytesIO
from typing import Any, Literal

import aiosmtplib
from aiosmtplib import (
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPException,
    SMTPNotSupported,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)

from flows import cleartext

log = logging.getLogger("baocao.mail")

# Vietnam has had no daylight saving time since 1975: a fixed offset is exact and needs no tzdata.
VN_TZ = timezone(timedelta(hours=7), "ICT")

Status = Literal["sent", "temporary", "permanent"]


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "127.0.0.1"
    port: int = 25
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never logged or put in exceptions
    use_tls: bool = False
    start_tls: bool | None = None  # None: STARTTLS when the server offers it
    timeout: float = 30.0
    concurrency: int = 4  # connections used in parallel, each reused for many messages
    max_attempts: int = 5  # for temporary failures
    backoff_base: float = 1.0
    backoff_max: float = 30.0
    plaintext_credentials: str = "warn"  # no TLS to a non-loopback host: "warn" or "refuse" (flows.cleartext)
    local: Callable[[str], bool] = field(default=cleartext.is_loopback, repr=False, compare=False)  # tests inject


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes = field(repr=False)
    mimetype: str
    inline_cid: str | None = None  # shown inside the HTML body as <img src="cid:...">


@dataclass(frozen=True, kw_only=True)
class Mail:
    key: str  # idempotency key of the outbox row; also makes the Message-ID
    sender: str
    to: tuple[str, ...]
    cc: tuple[str, ...] = ()
    reply_to: str | None = None
    subject: str
    text: str
    html: str | None = None
    attachments: tuple[Attachment, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)  # extra X- headers, e.g. X-Baocao-Unit
    # Messages of one group (the outbox: one unit) go out one after another, in the order given, so a
    # unit gets its receipt before the problems of the file it sent next; different groups in parallel.
    group: str | None = None

    def __post_init__(self) -> None:
        # Accept lists from callers; keep the value immutable like the rest of the dataclass.
        for name in ("to", "cc", "attachments"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            object.__setattr__(self, name, tuple(value))


@dataclass
class SendResult:
    key: str
    status: Status
    detail: str
    refused: dict[str, str] = field(default_factory=dict)
    attempts: int = 0


# ---------------------------------------------------------------------------------------- building

_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")  # what str.splitlines() and the email package split on
_ENCODED_WORD = "=?"  # starts an RFC 2047 encoded word, which the email package decodes when a header is set
_HEADER_NAME = re.compile(r"X-[A-Za-z0-9][A-Za-z0-9-]*")
_MIMETYPE = re.compile(r"[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*")
_CID = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.@]+")
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_PLAIN_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})+")
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")


def _refuse_breaks(value: str, what: str) -> str:
    """Addresses, keys and header values: a line break there is an injection attempt or corrupt data,
    also one hidden in an encoded word ("=?utf-8?q?=0D=0ABcc:...?=" is decoded when the header is set)."""
    if _CONTROL.search(value.replace("\t", " ")) or (
            _ENCODED_WORD in value and _CONTROL.search(str(email.policy.SMTP.header_factory("X", value)))):
        raise ValueError(f"{what} contains a line break or control character: {value!r}")
    return value


def _fold_away(value: str) -> str:
    """Subjects and file names: line breaks and other control characters become a single space, and
    "=?" gets a zero-width space so that no RFC 2047 encoded word (which could hide a CR/LF that the
    email package would write out as is) is decoded: such text is shown as it was written."""
    return _CONTROL.sub(" ", value).strip().replace(_ENCODED_WORD, "=\u200b?")


def _safe_filename(name: str) -> str:
    name = _fold_away(name)
    name = re.split(r"[\\/]", name)[-1].strip()
    return name or "attachment"


def _split_mimetype(mimetype: str) -> tuple[str, str]:
    if not _MIMETYPE.fullmatch(mimetype.strip()):
        raise ValueError(f"invalid MIME type: {mimetype!r}")
    maintype, subtype = mimetype.strip().lower().split("/", 1)
    return maintype, subtype


def _plain(values: Iterable[str]) -> list[str] | None:
    """The values if every one is a bare ASCII addr-spec (``daumoi.x10714@donvi.example``), else None."""
    out = [v.strip() for v in values]
    return out if out and all(_PLAIN_ADDRESS.fullmatch(v) for v in out) else None


def _specs(value: Any) -> list[str]:
    """addr-specs of an address header's stored value (a header object, or a bare list set raw)."""
    if not hasattr(value, "addresses"):  # header objects are str too
        plain = _plain(str(value).split(","))
        if plain is not None:
            return plain
        value = _POLICY.header_factory("To", str(value))
    return [a.addr_spec for a in value.addresses]


def _address_value(header: str, values: Iterable[str], *, single: bool = False) -> Any:
    """What an address header stores, refusing line breaks and anything that does not parse as addresses.

    Bare ASCII addr-specs, what units' addresses are, are kept as they are (written raw): the email
    package's address parser and folder cost about a millisecond per message for them, and their
    grammar (a dot-atom, ``@``, a host name) leaves nothing to parse or to fold within one line.
    Anything else becomes the email package's header object (parsed once per distinct value).
    """
    values = [_refuse_breaks(v, header) for v in values]
    joined = ", ".join(values)
    plain = _plain(values)
    if plain is not None and (not single or len(plain) == 1) and len(header) + 2 + len(joined) <= 78:
        return ", ".join(plain)
    try:
        value = _POLICY.header_store_parse(header, joined)[1]
        parsed = list(getattr(value, "addresses", ()))
    except Exception as exc:  # the stdlib parser raises IndexError, HeaderParseError, ...
        raise ValueError(f"invalid e-mail address in {header}: {joined!r}") from exc
    if not parsed or (single and len(parsed) != 1):
        raise ValueError(f"invalid e-mail address in {header}: {joined!r}")
    for addr in parsed:
        if not isinstance(addr, Address) or not addr.username or not addr.domain or " " in addr.addr_spec:
            raise ValueError(f"invalid e-mail address in {header}: {joined!r}")
    return value


class _FoldedOnce(BaseHeader):
    """Base of the headers of built messages: the folded form is computed once per folding policy.

    Folding depends only on the header's name, its parse tree and the policy's ``linesep``,
    ``max_line_length`` and ``utf8``; the stdlib recomputes it for every message it flattens, which
    costs milliseconds for a non-ASCII display name (our From: "Hệ thống báo cáo ..."). Same bytes.
    """

    def fold(self, *, policy: email.policy.Policy) -> str:
        key = (policy.linesep, policy.max_line_length, getattr(policy, "utf8", False))
        folded = self.__dict__.setdefault("_folded", {})
        if key not in folded:
            folded[key] = super().fold(policy=policy)
        return folded[key]


class _HeaderCache(HeaderRegistry):
    """Header factory of built messages: a header given the same name and text is parsed once.

    Header objects are immutable, so messages can share them; a national cycle sends thousands of
    messages with the same From, Reply-To, MIME-Version and Content-* headers.
    """

    def __init__(self) -> None:
        super().__init__(base_class=_FoldedOnce)
        self._classes: dict[str, type] = {}
        self._parse = lru_cache(maxsize=1024)(self._make)

    def __getitem__(self, name: str) -> type:
        key = name.lower()
        cls = self._classes.get(key)
        if cls is None:
            cls = self._classes[key] = super().__getitem__(name)
        return cls

    def _make(self, name: str, value: str) -> BaseHeader:
        return self[name](name, value)

    def __call__(self, name: str, value: str) -> BaseHeader:
        if type(value) is str:
            return self._parse(name, value)
        return self[name](name, value)


_POLICY = email.policy.SMTP.clone(header_factory=_HeaderCache())


def message_id_for(key: str, domain: str = "baocao.example") -> str:
    """Stable Message-ID of an outbox key: a re-send after a crash carries the same id."""
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    return f"<{digest}@{domain}>"


_Q_SAFE = b"-!*+/ " + bytes(range(ord("a"), ord("z") + 1)) + bytes(range(ord("A"), ord("Z") + 1)) + b"0123456789"
_WORD_CHROME = len("=?utf-8?b??=")


def encoded_words(text: str, header_name: str) -> str:
    """``Header(text, "utf-8", header_name=header_name).encode(linesep="\\n")``, in linear time.

    The email package picks the shorter of B and Q encoding for the whole text, then fills each
    line character by character, re-encoding the line so far at every character (quadratic: 0.12 ms
    for a unit's subject here, 0.03 ms this way). B words of UTF-8 have a length known from the byte count, so the
    same greedy split is done here in one pass. Q (mostly ASCII text) is left to the email package.
    A test compares both over generated subjects.
    """
    data = text.encode("utf-8")
    b_len = 4 * -(-len(data) // 3)
    q_len = len(data) + 2 * len(data.translate(None, _Q_SAFE))
    first = 78 - (len(header_name) + 2) - _WORD_CHROME  # Header's default line length, less the name
    if not data or b_len >= q_len or first < 8 or text.splitlines() != [text]:  # Header splits lines first
        return Header(text, "utf-8", header_name=header_name).encode(linesep="\n")
    limit, words, start, size = first, [], 0, 0
    for i, ch in enumerate(text):
        n = len(ch.encode("utf-8"))
        if 4 * -(-(size + n) // 3) > limit and i > start:
            words.append(text[start:i])
            start, size, limit = i, 0, 78 - 1 - _WORD_CHROME
        size += n
    words.append(text[start:])
    return "\n ".join(f"=?utf-8?b?{base64.b64encode(w.encode('utf-8')).decode('ascii')}?=" for w in words)


def _top_headers(mail: Mail, domain: str, date: datetime | None) -> list[tuple[str, Any]]:
    """The message's own headers, in order, as the email package stores them: a header object, or
    text written as it is. Raises ``ValueError`` for what :func:`build_message` refuses."""
    _refuse_breaks(mail.key, "key")
    if not _DOMAIN.fullmatch(domain):
        raise ValueError(f"invalid Message-ID domain: {domain!r}")
    if not mail.to:
        raise ValueError(f"mail {mail.key!r} has no recipient")
    headers: list[tuple[str, Any]] = [("From", _address_value("From", [mail.sender], single=True)),
                                      ("To", _address_value("To", mail.to))]
    if mail.cc:
        headers.append(("Cc", _address_value("Cc", mail.cc)))
    if mail.reply_to:
        headers.append(("Reply-To", _address_value("Reply-To", [mail.reply_to])))
    subject = _fold_away(mail.subject)
    if subject.isascii():
        headers.append(("Subject", _POLICY.header_factory("Subject", subject)))
    else:  # RFC 2047 words, folded once here: the email package's own folding costs ms per subject
        headers.append(("Subject", encoded_words(subject, "Subject")))
    # Values made here (ASCII, one short line) are set as they are: parsing them into header objects
    # only to write them out again the same cost a millisecond per message (the Message-ID's parser).
    headers.append(("Date", email.utils.format_datetime(date or datetime.now(VN_TZ))))
    headers.append(("Message-ID", message_id_for(mail.key, domain)))
    # RFC 3834: keeps vacation auto-replies away from the intake mailbox.
    headers.append(("Auto-Submitted", _POLICY.header_factory("Auto-Submitted", "auto-generated")))
    seen = {name.lower() for name, _ in headers}
    for name, value in mail.headers.items():
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"only X- headers may be added, got {name!r}")
        if name.lower() in seen:
            raise ValueError(f"header {name!r} given twice")
        seen.add(name.lower())
        value = _refuse_breaks(str(value), f"header {name}")
        if value.isascii() and _ENCODED_WORD not in value and len(name) + len(value) < 76:
            headers.append((name, value))
        else:
            headers.append((name, _POLICY.header_store_parse(name, value)[1]))
    return headers


def build_message(mail: Mail, *, domain: str = "baocao.example", date: datetime | None = None) -> EmailMessage:
    """The MIME message for ``mail``.

    Layout: text/plain, or multipart/alternative text+html (the html inside multipart/related when
    attachments carry an ``inline_cid``), inside multipart/mixed when there are file attachments.
    UTF-8 throughout; non-ASCII subjects and names use RFC 2047, file names RFC 2231.
    Header injection: CR/LF (and other control characters) in addresses, key, extra headers or
    content IDs raise ``ValueError``; in the subject and file names they are folded into a space.
    """
    msg = EmailMessage(policy=_POLICY)  # email.policy.SMTP, with headers parsed and folded once
    for name, value in _top_headers(mail, domain, date):
        msg.set_raw(name, value)
    msg.set_content(mail.text)
    inline = [a for a in mail.attachments if a.inline_cid and mail.html is not None]
    files = [a for a in mail.attachments if a not in inline]
    if mail.html is not None:
        msg.add_alternative(mail.html, subtype="html")
        if inline:
            html_part = msg.get_payload()[1]
            assert isinstance(html_part, EmailMessage)
            for att in inline:
                cid = _refuse_breaks(att.inline_cid or "", "content id").strip("<>")
                if not _CID.fullmatch(cid):
                    raise ValueError(f"invalid content id: {att.inline_cid!r}")
                maintype, subtype = _split_mimetype(att.mimetype)
                html_part.add_related(
                    att.content, maintype, subtype, cid=f"<{cid}>",
                    filename=_safe_filename(att.filename), disposition="inline",
                )
    for att in files:
        maintype, subtype = _split_mimetype(att.mimetype)
        msg.add_attachment(att.content, maintype, subtype, filename=_safe_filename(att.filename))
    return msg


class _Generator(email.generator.BytesGenerator):
    """``BytesGenerator`` writing the same bytes with less Python per message.

    Two costs of the stdlib's generator dominate a request's 37 KB: it writes the body line by line
    (~900 ``write`` calls for a form's base64), and it draws a random boundary per multipart, whose
    collision check compiles a new regular expression and whose ``Content-Type`` is parsed anew.
    Here a body is written in one call, and the boundary is one of this process's few boundaries
    (``…_0``, ``…_1``, …: the first whose delimiter does not occur in the part's text), so its
    header is parsed once per process. The check is stricter than the stdlib's (any occurrence of
    ``--boundary``, not only at a line start), so a boundary never occurs inside a part.
    """

    _BASE = "=_baocao_" + secrets.token_hex(6) + "_"

    def _write_lines(self, lines: str) -> None:
        if lines:
            self.write(self._NL.join(email.generator.NLCRE.split(lines)))

    @classmethod
    def _make_boundary(cls, text: bytes | str | None = None) -> str:
        if text is None:
            return cls._BASE + "0"
        for n in range(100):
            candidate = f"{cls._BASE}{n}"
            delimiter = "--" + candidate
            if (delimiter.encode("ascii") if isinstance(text, bytes) else delimiter) not in text:
                return candidate
        return super()._make_boundary(text)


def flatten(msg: EmailMessage, *, utf8: bool = False, cte_type: str = "8bit") -> bytes:
    """The bytes of ``msg`` as ``aiosmtplib`` would send them (policy SMTP or SMTPUTF8, CRLF)."""
    policy = email.policy.SMTPUTF8 if utf8 else email.policy.SMTP
    if cte_type != "8bit":
        policy = policy.clone(cte_type=cte_type)
    out = BytesIO()
    _Generator(out, policy=policy).flatten(msg)
    return out.getvalue()


def _envelope(headers: Iterable[tuple[str, Any]]) -> tuple[str, list[str]]:
    """MAIL FROM and the RCPT TO list (To then Cc, duplicates removed case-insensitively) of a
    message's headers (``msg.raw_items()``, or :func:`_top_headers`)."""
    stored: dict[str, Any] = {}
    for name, value in headers:
        stored.setdefault(name.lower(), value)
    sender = _specs(stored["from"])[0]
    seen: set[str] = set()
    rcpts: list[str] = []
    for header in ("to", "cc"):
        if header in stored:
            for spec in _specs(stored[header]):
                if spec.lower() not in seen:
                    seen.add(spec.lower())
                    rcpts.append(spec)
    return sender, rcpts


# ---------------------------------------------------------------------------------------- written directly
# The outbox sends thousands of messages of one shape (text, html, files); through the email
# package each costs over a millisecond of CPU to build and flatten, most of it the sending
# process's GIL at national scale. :func:`flatten_mail` writes the same bytes directly, using the
# email package only for what it must decide (the folded headers, cached per value; RFC 2047 words;
# quoted-printable). It is a copy of the package's rules, so a test compares the two byte for byte
# over generated mails; mails of another shape (inline images: the reports) take the email package.

_SMTP = email.policy.SMTP  # what flatten() writes for an 8BITMIME server and ASCII addresses
_CRLF = b"\r\n"
_MAX_LINE = _SMTP.max_line_length
_B64_LINE = _MAX_LINE // 4 * 4  # 76 characters: 57 bytes, as email.contentmanager._encode_base64
_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@lru_cache(maxsize=256)
def _header_line(name: str, value: str) -> bytes:
    """A header the email package parses from `value`, folded as flatten() writes it (constant ones)."""
    return _SMTP.fold_binary(name, _POLICY.header_store_parse(name, value)[1])


def _base64_body(data: bytes) -> bytes:
    """email.contentmanager's base64 body (lines of 76), CRLF line ends, in one C call and slices."""
    if not data:
        return b""
    encoded = binascii.b2a_base64(data, newline=False)
    return _CRLF.join([encoded[i:i + _B64_LINE] for i in range(0, len(encoded), _B64_LINE)]) + _CRLF


def _text_body(text: str) -> tuple[str, bytes]:
    """(Content-Transfer-Encoding, body) of a UTF-8 text part: email.contentmanager's heuristics."""
    lines = text.encode("utf-8").splitlines()
    if max(map(len, lines), default=0) <= _MAX_LINE:
        body = b"\r\n".join(lines) + _CRLF
        return ("7bit" if body.isascii() else "8bit"), body
    sniff = _CRLF.join(lines[:10]) + _CRLF
    sniff_qp = quoprimime.body_encode(sniff.decode("latin-1"), _MAX_LINE)
    if len(sniff_qp) > len(binascii.b2a_base64(sniff)):
        return "base64", _base64_body(_CRLF.join(lines) + _CRLF)
    if len(lines) > 10:
        sniff_qp = quoprimime.body_encode((b"\n".join(lines) + b"\n").decode("latin-1"), _MAX_LINE)
    return "quoted-printable", "\r\n".join(email.generator.NLCRE.split(sniff_qp)).encode("ascii")


def _text_part(text: str, subtype: str, *, mime_version: bool) -> bytes:
    cte, body = _text_body(text)
    head = (_header_line("Content-Type", f'text/{subtype}; charset="utf-8"')
            + _header_line("Content-Transfer-Encoding", cte))
    if mime_version:
        head += _header_line("MIME-Version", "1.0")
    return head + _CRLF + body


def _file_part(att: Attachment) -> bytes:
    maintype, subtype = _split_mimetype(att.mimetype)
    name = _safe_filename(att.filename)
    disposition = f'attachment; filename="{name}"'
    if _FILENAME.fullmatch(name) and len("Content-Disposition: ") + len(disposition) <= _MAX_LINE:
        disposition_line = f"Content-Disposition: {disposition}".encode("ascii") + _CRLF
    else:  # a non-ASCII name (RFC 2231) or a long one (folded): as the email package writes it
        part = EmailMessage(policy=_POLICY)
        part["Content-Disposition"] = "attachment"
        part.set_param("filename", name, header="Content-Disposition", replace=True)
        disposition_line = _SMTP.fold_binary("Content-Disposition", dict(part.raw_items())["Content-Disposition"])
    return (_header_line("Content-Type", f"{maintype}/{subtype}") + _header_line("Content-Transfer-Encoding", "base64")
            + disposition_line + _header_line("MIME-Version", "1.0") + _CRLF + _base64_body(att.content))


def _multipart(subtype: str, parts: list[bytes]) -> tuple[bytes, bytes]:
    """(Content-Type line, body) of a multipart of flattened `parts`, the boundary chosen as flatten()'s."""
    boundary = _Generator._make_boundary(_CRLF.join(parts))
    delimiter = b"--" + boundary.encode("ascii")
    body = delimiter + _CRLF + (_CRLF + delimiter + _CRLF).join(parts) + _CRLF + delimiter + b"--" + _CRLF
    return _header_line("Content-Type", f'multipart/{subtype}; boundary="{boundary}"'), body


def flatten_mail(mail: Mail, *, domain: str = "baocao.example",
                 date: datetime | None = None) -> tuple[str, list[str], bytes | None]:
    """MAIL FROM, RCPT TO and the bytes of ``mail`` for an 8BITMIME server and ASCII addresses:
    ``flatten(build_message(mail))``, written directly. The bytes are None for a mail with inline
    images (build it with :func:`build_message`). Raises ``ValueError`` as :func:`build_message` does.
    """
    headers = _top_headers(mail, domain, date)
    sender, rcpts = _envelope(headers)
    inline = [a for a in mail.attachments if a.inline_cid and mail.html is not None]
    if inline:
        return sender, rcpts, None
    top = b"".join(_SMTP.fold_binary(name, value) for name, value in headers)
    if mail.html is None and not mail.attachments:  # one text part: its headers are the message's
        return sender, rcpts, top + _text_part(mail.text, "plain", mime_version=True)
    ctype, body = _multipart("alternative", [_text_part(mail.text, "plain", mime_version=False),
                                             _text_part(mail.html, "html", mime_version=True)]) \
        if mail.html is not None else (b"", _text_part(mail.text, "plain", mime_version=False))
    if mail.attachments:
        ctype, body = _multipart("mixed", [ctype + (_CRLF if ctype else b"") + body]
                                 + [_file_part(a) for a in mail.attachments])
    return sender, rcpts, top + _header_line("MIME-Version", "1.0") + ctype + _CRLF + body


# ---------------------------------------------------------------------------------------- sending


class _Shared:
    """State the workers share: once the server is known to be unreachable, stop knocking."""

    def __init__(self) -> None:
        self.unreachable: str | None = None


class _Connection:
    """One reusable SMTP connection, reopened on demand after a failure."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self.smtp: aiosmtplib.SMTP | None = None

    async def ensure(self) -> aiosmtplib.SMTP:
        if self.smtp is not None and self.smtp.is_connected:
            return self.smtp
        self.drop()
        s = self.settings
        # Connect (and STARTTLS when offered, start_tls None) first, log in after: the clear-text rule
        # (flows.cleartext) is decided on the connection as it is, before a password goes over it.
        smtp = aiosmtplib.SMTP(hostname=s.host, port=s.port, use_tls=s.use_tls, start_tls=s.start_tls,
                               timeout=s.timeout)
        try:
            await smtp.connect()
            if s.username:
                cleartext.check("SMTP", s.host, s.port, encrypted=smtp.get_transport_info("sslcontext") is not None,
                                credentials=bool(s.password), policy=s.plaintext_credentials, local=s.local)
                await smtp.login(s.username, s.password or "")
        except BaseException:
            smtp.close()
            raise
        self.smtp = smtp
        return smtp

    def drop(self) -> None:
        if self.smtp is not None:
            self.smtp.close()
            self.smtp = None

    async def quit(self) -> None:
        if self.smtp is not None and self.smtp.is_connected:
            try:
                await self.smtp.quit()
            except (SMTPException, OSError):
                pass
        self.drop()


async def _mail_options(smtp: aiosmtplib.SMTP, sender: str, rcpts: list[str]) -> tuple[list[str], bool, str]:
    """MAIL FROM options and how to flatten, as ``aiosmtplib``'s ``send_message`` decides them:
    SMTPUTF8 for a non-ASCII address (refused if the server lacks it), 8BITMIME when offered."""
    if smtp.is_ehlo_or_helo_needed:
        try:
            await smtp.ehlo()
        except aiosmtplib.SMTPHeloError:
            if not smtp.is_connected:
                raise
            await smtp.helo()
    options: list[str] = []
    utf8 = not (sender.isascii() and all(r.isascii() for r in rcpts))
    if utf8:
        if not smtp.supports_extension("smtputf8"):
            raise SMTPNotSupported("An address containing non-ASCII characters was provided, but "
                                   "SMTPUTF8 is not supported by this server")
        options.append("SMTPUTF8")
    if smtp.supports_extension("8BITMIME"):
        options.append("BODY=8BITMIME")
        return options, utf8, "8bit"
    return options, utf8, "7bit"


def _backoff(settings: SmtpSettings, attempt: int) -> float:
    delay = min(settings.backoff_max, settings.backoff_base * (2 ** (attempt - 1)))
    return max(0.0, delay * random.uniform(0.5, 1.0))  # jitter: workers do not retry in lockstep


class _Sender:
    def __init__(self, settings: SmtpSettings, shared: _Shared) -> None:
        self.settings = settings
        self.shared = shared

    def _clean(self, text: str) -> str:
        pw = self.settings.password
        return text.replace(pw, "***") if pw else text

    def _stop_all(self, reason: str) -> str:
        """Record that the server cannot take mail now: messages not yet tried are returned at once."""
        self.shared.unreachable = reason
        return reason

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, SMTPResponseException):
            return self._clean(f"{exc.code} {exc.message}")
        return self._clean(f"{type(exc).__name__}: {exc}")

    async def send(self, conn: _Connection, mail: Mail, domain: str) -> SendResult:
        date = datetime.now(VN_TZ)
        msg: EmailMessage | None = None
        try:
            # Written directly for the usual server (8BITMIME, ASCII addresses); built with the email
            # package for another, or for a mail with inline images.
            sender, rcpts, direct = flatten_mail(mail, domain=domain, date=date)
            if direct is None:
                msg = build_message(mail, domain=domain, date=date)
        except (ValueError, TypeError) as exc:
            detail = self._clean(f"message refused before sending: {exc}")
            # repr(): these values were just found unsafe, keep them from forging log lines too.
            log.error("mail %r to %r not sent: %s", mail.key, ", ".join(mail.to), detail)
            return SendResult(mail.key, "permanent", detail, {}, 0)

        who = ", ".join(rcpts)
        flats: dict[tuple[bool, str], bytes] = {} if direct is None else {(False, "8bit"): direct}
        max_attempts = max(1, self.settings.max_attempts)
        attempts = 0
        detail = ""
        while attempts < max_attempts:
            if self.shared.unreachable is not None:
                return SendResult(mail.key, "temporary", f"not sent: {self.shared.unreachable}", {}, attempts)
            if attempts:
                await asyncio.sleep(_backoff(self.settings, attempts))
            attempts += 1
            connected = False
            try:
                smtp = await conn.ensure()
                connected = True
                options, utf8, cte_type = await _mail_options(smtp, sender, rcpts)
                flat = flats.get((utf8, cte_type))
                if flat is None:  # flattened once per message, not again on a retry
                    msg = msg or build_message(mail, domain=domain, date=date)
                    flat = flats[utf8, cte_type] = flatten(msg, utf8=utf8, cte_type=cte_type)
                refused_raw, reply = await smtp.sendmail(sender, rcpts, flat, mail_options=options)
            except SMTPAuthenticationError as exc:
                conn.drop()
                detail = f"SMTP login as {self.settings.username!r} refused: {self._describe(exc)}"
                log.error("mail %s to %s not sent: %s", mail.key, who, detail)
                # Retrying cannot fix credentials; every other message would fail the same way.
                return SendResult(mail.key, "temporary", self._stop_all(detail), {}, attempts)
            except cleartext.CleartextRefused as exc:
                conn.drop()
                log.error("mail %s to %s not sent: %s", mail.key, who, exc)
                return SendResult(mail.key, "temporary", self._stop_all(str(exc)), {}, attempts)
            except SMTPRecipientsRefused as exc:
                refused = {r.recipient: self._clean(f"{r.code} {r.message}") for r in exc.recipients}
                for rcpt, why in refused.items():
                    log.warning("mail %s to %s refused: %s", mail.key, rcpt, why)
                if all(500 <= r.code < 600 for r in exc.recipients):
                    return SendResult(mail.key, "permanent", "all recipients refused", refused, attempts)
                detail = "recipients refused temporarily: " + "; ".join(f"{k} {v}" for k, v in refused.items())
                conn.drop()
                continue
            except SMTPResponseException as exc:
                detail = self._describe(exc)
                if exc.code == 530 or (500 <= exc.code < 600 and not connected):
                    # "Authentication required", or a 5xx greeting/EHLO: the server will not take mail
                    # from this client at all. A configuration problem, not a property of the message.
                    conn.drop()
                    log.error("mail %s to %s not sent: %s", mail.key, who, detail)
                    reason = f"SMTP server {self.settings.host}:{self.settings.port} refused us: {detail}"
                    return SendResult(mail.key, "temporary", self._stop_all(reason), {}, attempts)
                if 500 <= exc.code < 600:
                    log.error("mail %s to %s failed permanently: %s", mail.key, who, detail)
                    return SendResult(mail.key, "permanent", detail, {}, attempts)
                log.warning("mail %s to %s failed (attempt %d/%d): %s", mail.key, who, attempts, max_attempts,
                            detail)
                conn.drop()
                continue
            except SMTPNotSupported as exc:
                # e.g. a non-ASCII address and no SMTPUTF8: this message can never go through this server.
                detail = self._describe(exc)
                log.error("mail %s to %s failed permanently: %s", mail.key, who, detail)
                return SendResult(mail.key, "permanent", detail, {}, attempts)
            except (SMTPServerDisconnected, SMTPTimeoutError, SMTPConnectError, SMTPException, OSError,
                    TimeoutError) as exc:
                detail = self._describe(exc)
                log.warning("mail %s to %s failed (attempt %d/%d): %s", mail.key, who, attempts, max_attempts,
                            detail)
                conn.drop()
                if not connected and attempts >= max_attempts:
                    self._stop_all(f"SMTP server {self.settings.host}:{self.settings.port} unreachable: {detail}")
                continue
            refused = {r: self._clean(f"{resp.code} {resp.message}") for r, resp in refused_raw.items()}
            for rcpt, why in refused.items():
                log.warning("mail %s to %s refused: %s", mail.key, rcpt, why)
            return SendResult(mail.key, "sent", self._clean(reply), refused, attempts)

        log.error("mail %s to %s still failing after %d attempts: %s", mail.key, who, attempts, detail)
        return SendResult(mail.key, "temporary", detail, {}, attempts)


ResultCallback = Callable[[SendResult], Awaitable[None] | None]


async def send_all(
    mails: Iterable[Mail],
    settings: SmtpSettings,
    *,
    on_result: ResultCallback | None = None,
    domain: str = "baocao.example",
) -> list[SendResult]:
    """Send every mail; results in input order. ``on_result`` runs as each message finishes.

    A failing message (or a failing ``on_result``, which is logged) never stops the others.
    """
    items = list(mails)
    results: list[SendResult | None] = [None] * len(items)
    if not items:
        return []
    pending: deque[int] = deque(range(len(items)))
    in_flight: set[str] = set()  # groups with a message being sent
    changed = asyncio.Condition()
    shared = _Shared()
    sender = _Sender(settings, shared)

    async def report(result: SendResult) -> None:
        if on_result is None:
            return
        try:
            outcome = on_result(result)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception:
            log.exception("mail %s: on_result callback failed", result.key)

    def take() -> int | None:
        """The first pending message not waiting behind one of its group (None: all of them wait)."""
        for position, index in enumerate(pending):
            group = items[index].group
            if group is None or group not in in_flight:
                del pending[position]
                if group is not None:
                    in_flight.add(group)
                return index
        return None

    async def worker() -> None:
        conn = _Connection(settings)
        try:
            while True:
                async with changed:
                    while (index := take()) is None:
                        if not pending:
                            return
                        await changed.wait()
                mail = items[index]
                try:
                    result = await sender.send(conn, mail, domain)
                except Exception as exc:  # a bug for one message must not strand the rest
                    log.exception("mail %s: unexpected error", mail.key)
                    conn.drop()
                    result = SendResult(mail.key, "temporary", sender._describe(exc), {}, 0)
                results[index] = result
                if mail.group is not None:
                    async with changed:
                        in_flight.discard(mail.group)
                        changed.notify_all()
                await report(result)
        finally:
            await conn.quit()

    workers = max(1, min(settings.concurrency, len(items)))
    async with asyncio.TaskGroup() as group:
        for _ in range(workers):
            group.create_task(worker())
    return [r for r in results if r is not None]


def send_all_sync(
    mails: Iterable[Mail],
    settings: SmtpSettings,
    *,
    on_result: ResultCallback | None = None,
    domain: str = "baocao.example",
) -> list[SendResult]:
    """``send_all`` for synchronous callers. Inside a thread that already runs an event loop the
    sending runs on a fresh loop in a helper thread (and ``on_result`` is called from there)."""
    items = list(mails)

    def run() -> list[SendResult]:
        return asyncio.run(send_all(items, settings, on_result=on_result, domain=domain))

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="baocao-mail") as pool:
        return pool.submit(run).result()
