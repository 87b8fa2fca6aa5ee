"""Real mail servers on loopback for tests: an SMTP server with fault injection and a pymap IMAP server.

Tests talk to these over real sockets so that what is tested is what production does (SMTP dialogue,
reconnects, IMAP UIDs); faults are injected at the protocol level, the way a real relay misbehaves.

    with SmtpServer() as smtp:
        smtp.fail_next_data(1)                 # next DATA gets 451, the one after 250
        smtp.reject_rcpt("ghost@x.vn")         # 550 5.1.1 for that recipient
        ... smtp.port, smtp.messages, smtp.connections_opened

    with ImapServer() as imap:
        uid = imap.append(raw_bytes)           # a real IMAP APPEND; returns the UID
        imap.delete(uid)
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import threading
import warnings
from dataclasses import dataclass
from email.message import EmailMessage
from types import TracebackType
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from baocao.devservers.imapserver import DemoImapServer
from baocao.devservers.mailserver import LoopbackController

__all__ = ["ImapServer", "ReceivedMail", "SmtpServer", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (bind to 0, read it, close): for "server down" tests."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------------------------- SMTP


@dataclass(frozen=True)
class ReceivedMail:
    """One message the SmtpServer accepted (250 after DATA)."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    message: EmailMessage

    @property
    def message_id(self) -> str:
        return str(self.message.get("Message-ID", "")).strip()


class _CountingSMTP(SMTP):
    """aiosmtpd's SMTP protocol, reporting each connection's start and end to the owning SmtpServer."""

    def __init__(self, owner: SmtpServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._owner = owner

    _counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None  # STARTTLS calls this again on the same connection
        super().connection_made(transport)
        if first and not self._owner._probing:
            self._counted = True
            self._owner._connection_opened()

    def connection_lost(self, error: Exception | None) -> None:
        if self._counted:
            self._owner._connection_closed()
        super().connection_lost(error)


class _SmtpController(LoopbackController):
    def __init__(self, owner: SmtpServer, handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._owner = owner

    def factory(self) -> SMTP:
        with warnings.catch_warnings():
            # "AUTH without TLS" is deliberate here: loopback test server only.
            warnings.simplefilter("ignore", UserWarning)
            return _CountingSMTP(self._owner, self.handler, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        # aiosmtpd connects once to check the server is up; that probe is not a client connection.
        self._owner._probing = True
        try:
            super()._trigger_server()
        finally:
            self._owner._probing = False


class _FaultHandler:
    """aiosmtpd hooks; every decision is delegated to SmtpServer so faults can change at runtime."""

    def __init__(self, owner: SmtpServer) -> None:
        self.owner = owner

    async def handle_MAIL(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        await self.owner._maybe_break("MAIL", server)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        await self.owner._maybe_break("RCPT", server)
        reply = self.owner._rcpt_reply(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        delay = self.owner._next_data_delay()
        if delay > 0:
            await asyncio.sleep(delay)
        await self.owner._maybe_break("DATA", server)
        content = bytes(envelope.original_content or b"")
        reply = self.owner._data_reply(len(content))
        if reply is not None:
            return reply
        self.owner._store(envelope.mail_from or "", tuple(envelope.rcpt_tos), content)
        return "250 2.0.0 OK queued"


class SmtpServer:
    """aiosmtpd on 127.0.0.1:<ephemeral port> in a thread, recording what it accepts.

    Faults (all thread-safe, changeable while the server runs):
      - ``reject_rcpt(addr, reply)``: a fixed reply (default 550 5.1.1) to RCPT TO for that address;
      - ``fail_next_data(n, reply)``: the next n DATA commands get 451 (then 250 again);
      - ``close_with_421(n, at)``: reply 421 and close the connection at MAIL/RCPT/DATA, n times;
      - ``drop_connection(n, at)``: cut the connection without a reply at MAIL/RCPT/DATA, n times
        (at DATA: after the whole message was received, before it is stored or acknowledged);
      - ``data_delay``: seconds to wait before answering every DATA; ``delay_next_data(n, s)`` only n of them;
      - ``max_message_size``: DATA above this many bytes gets 552 5.3.4.
    ``down()`` stops listening (connections are refused) and ``up()`` listens again on the same port.
    With ``username``/``password`` set the server offers AUTH (PLAIN/LOGIN, no TLS needed) and requires it.
    """

    def __init__(self, *, username: str | None = None, password: str | None = None,
                 tls_context: Any = None) -> None:
        self._tls_context = tls_context  # an ssl.SSLContext: STARTTLS offered and required (AUTH too)
        self._lock = threading.Lock()
        self._messages: list[ReceivedMail] = []
        self._rcpt_replies: dict[str, str] = {}
        self._data_failures: list[str] = []
        self._data_delays: list[float] = []
        self._breaks: dict[str, list[str]] = {"MAIL": [], "RCPT": [], "DATA": []}
        self.data_delay: float = 0.0
        self.max_message_size: int | None = None
        self._opened = 0
        self._probing = False
        self._active = 0
        self._max_active = 0
        self.auth_attempts: list[tuple[str, bool]] = []
        self._username = username
        self._password = password
        self._handler = _FaultHandler(self)
        self._controller: _SmtpController | None = None
        self._port = 0
        self.host = "127.0.0.1"

    # ---- lifecycle
    def start(self) -> SmtpServer:
        kwargs: dict[str, Any] = {}
        if self._username is not None:
            kwargs.update(authenticator=self._authenticate, auth_require_tls=False, auth_required=True)
        if self._tls_context is not None:
            kwargs.update(tls_context=self._tls_context, require_starttls=True, auth_require_tls=True)
        controller = _SmtpController(
            self, self._handler, hostname=self.host, port=self._port, server_hostname="test-smtp", **kwargs
        )
        controller.start()
        self._controller = controller
        self._port = int(controller.port)
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def down(self) -> None:
        """Stop listening; the port stays reserved in this object for ``up()``."""
        self.stop()

    def up(self) -> None:
        if self._controller is None:
            self.start()

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    # ---- what happened
    @property
    def messages(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self._messages)

    def copies_of(self, message_id: str) -> int:
        return sum(1 for m in self.messages if m.message_id == message_id)

    @property
    def connections_opened(self) -> int:
        with self._lock:
            return self._opened

    @property
    def max_concurrent_connections(self) -> int:
        with self._lock:
            return self._max_active

    def reset_counters(self) -> None:
        with self._lock:
            self._opened = 0
            self._max_active = self._active

    # ---- faults
    def reject_rcpt(self, address: str, reply: str = "550 5.1.1 No such user") -> None:
        with self._lock:
            self._rcpt_replies[address.lower()] = reply

    def fail_next_data(self, n: int = 1, reply: str = "451 4.3.0 Temporary failure, try again later") -> None:
        with self._lock:
            self._data_failures.extend([reply] * n)

    def delay_next_data(self, n: int, seconds: float) -> None:
        """The next n DATA replies come after ``seconds`` (longer than the client's timeout, say); a client
        that gives up and disconnects meanwhile cancels the session, so nothing is stored for it."""
        with self._lock:
            self._data_delays.extend([seconds] * n)

    def close_with_421(self, n: int = 1, at: str = "MAIL") -> None:
        with self._lock:
            self._breaks[at.upper()].extend(["421"] * n)

    def drop_connection(self, n: int = 1, at: str = "DATA") -> None:
        with self._lock:
            self._breaks[at.upper()].extend(["drop"] * n)

    def reset_faults(self) -> None:
        with self._lock:
            self._rcpt_replies.clear()
            self._data_failures.clear()
            self._data_delays.clear()
            for pending in self._breaks.values():
                pending.clear()
            self.data_delay = 0.0
            self.max_message_size = None

    # ---- called from the server thread
    def _connection_opened(self) -> None:
        with self._lock:
            self._opened += 1
            self._active += 1
            self._max_active = max(self._max_active, self._active)

    def _connection_closed(self) -> None:
        with self._lock:
            self._active -= 1

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode("utf-8", "replace") == self._username
            and auth_data.password.decode("utf-8", "replace") == self._password
        )
        login = auth_data.login.decode("utf-8", "replace") if isinstance(auth_data, LoginPassword) else ""
        with self._lock:
            self.auth_attempts.append((login, ok))
        return AuthResult(success=ok, handled=False)

    async def _maybe_break(self, command: str, server: SMTP) -> None:
        with self._lock:
            pending = self._breaks[command]
            action = pending.pop(0) if pending else None
        if action is None:
            return
        transport = server.transport
        assert transport is not None
        if action == "421":
            # Written straight to the socket, then closed: the client reads the 421 and sees EOF.
            transport.write(b"421 4.3.2 Service shutting down, closing transmission channel\r\n")
            transport.close()
        else:
            transport.abort()
        # connection_lost() cancels this session's task; never return a reply on a closed channel.
        await asyncio.sleep(3600)

    def _next_data_delay(self) -> float:
        with self._lock:
            return self._data_delays.pop(0) if self._data_delays else self.data_delay

    def _rcpt_reply(self, address: str) -> str | None:
        with self._lock:
            return self._rcpt_replies.get(address.lower())

    def _data_reply(self, size: int) -> str | None:
        with self._lock:
            if self.max_message_size is not None and size > self.max_message_size:
                return "552 5.3.4 Message size exceeds fixed maximum message size"
            if self._data_failures:
                return self._data_failures.pop(0)
        return None

    def _store(self, mail_from: str, rcpt_tos: tuple[str, ...], raw: bytes) -> None:
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        with self._lock:
            self._messages.append(ReceivedMail(mail_from, rcpt_tos, raw, parsed))


# --------------------------------------------------------------------------------------------- IMAP
# The IMAP server lives in the package (the demo uses it too); tests import it from here.
ImapServer = DemoImapServer
