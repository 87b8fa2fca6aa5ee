"""Outgoing mail as bytes: :class:`Mail` values (from the outbox) serialised to
MIME, headers encoded and folded safely, attachments named so every client
shows them. The Message-ID is derived from the outbox key, so a re-send after
a crash is recognisable as the same message by any mail client.
"""

from __future__ import annotations

import base64
import binascii
import email.generator
import email.policy
import email.utils
import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email import quoprimime
from email.header import Header
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from functools import lru_cache
from io import BytesIO
from typing import Any

# Vietnam has had no daylight saving time since 1975: a fixed offset is exact and needs no tzdata.
VN_TZ = timezone(timedelta(hours=7), "ICT")


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
    # Threading (RFC 5322 3.6.4): a reply names the unit's own message, so a mail client shows it
    # under what the unit sent. Message-IDs with their angle brackets.
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
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
        for name in ("to", "cc", "attachments", "references"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            object.__setattr__(self, name, tuple(value))


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


_MSG_ID = re.compile(r"<[^<>\s]{1,250}@[^<>\s]{1,250}>")


def _message_ids(ids: Iterable[str], header: str) -> str:
    """`<a@b> <c@d>` for In-Reply-To / References; an id that is not one (a forged or broken header of
    the unit's mail) is left out rather than copied into ours."""
    good = [i.strip() for i in ids if _MSG_ID.fullmatch(i.strip())]
    if not good:
        return ""
    return "\n ".join(good[-20:])  # folded one id per line; the last 20 are enough to thread


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
    for name, ids in (("In-Reply-To", [mail.in_reply_to] if mail.in_reply_to else []), ("References", mail.references)):
        if value := _message_ids(ids, name):
            headers.append((name, value))
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
