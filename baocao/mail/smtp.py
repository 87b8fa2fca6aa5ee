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
import inspect
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import Literal

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

from baocao.mail import cleartext
from baocao.mail.mime import VN_TZ, Mail, build_message, flatten, flatten_mail

log = logging.getLogger("baocao.mail")


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
    plaintext_credentials: str = "warn"  # no TLS to a non-loopback host: "warn" or "refuse" (baocao.mail.cleartext)
    local: Callable[[str], bool] = field(default=cleartext.is_loopback, repr=False, compare=False)  # tests inject


@dataclass
class SendResult:
    key: str
    status: Status
    detail: str
    refused: dict[str, str] = field(default_factory=dict)
    attempts: int = 0


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
        # (baocao.mail.cleartext) is decided on the connection as it is, before a password goes over it.
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
