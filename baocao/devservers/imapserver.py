"""The built-in IMAP mailbox of the demo (and of the tests): a real pymap server on loopback.

The demo's SMTP server drops every reply addressed to the intake mailbox into this server with a
real IMAP APPEND, and the collect flow reads it with its ordinary IMAP client: the units' replies
travel the same path as in production. pymap's in-memory "dict" backend keeps nothing on disk.
"""

from __future__ import annotations

import asyncio
import base64
import imaplib
import re
import ssl
import threading
from argparse import Namespace
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from types import TracebackType
from typing import Any

__all__ = ["DemoImapServer"]


class DemoImapServer:
    """A real pymap IMAP server (in-memory "dict" backend) on 127.0.0.1, in a thread.

    pymap is normally started as ``pymap --no-tls --host H --port P dict --demo-user U --demo-password W``
    (no ``--demo-data``: the mailbox starts empty). Here the same pieces are assembled in-process so
    the server can listen on port 0 (tests: an ephemeral port) or on the configured port (`baocao up`)
    and start in milliseconds. One login with an empty INBOX.
    """

    def __init__(self, username: str = "intake@baocao.example", password: str = "imap-secret-42", *,
                 host: str = "127.0.0.1", port: int = 0, cert: str | None = None, key: str | None = None) -> None:
        self.host = host
        # With a certificate (PEM files) the server offers STARTTLS (pymap still accepts LOGIN in clear
        # from localhost, so a test proves the upgrade by the certificate check, not by a refused LOGIN).
        self.cert = cert
        self.key = key
        self.username = username
        self.password = password
        self._requested_port = port
        self._port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        return self._port

    def start(self) -> DemoImapServer:
        ready = threading.Event()
        loop = asyncio.new_event_loop()
        self._loop = loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._setup())
            except BaseException as exc:  # reported to the starting thread
                self._error = exc
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._teardown())
            loop.close()

        self._thread = threading.Thread(target=run, name="pymap-server", daemon=True)
        self._thread.start()
        if not ready.wait(30):
            raise TimeoutError("pymap did not start")
        if self._error is not None:
            raise RuntimeError("pymap failed to start") from self._error
        return self

    async def _setup(self) -> None:
        from proxyprotocol.reader import ProxyProtocolReader
        from pymap.backend.dict import DictBackend
        from pymap.imap import IMAPServer
        from pysasl.hashing import BuiltinHash

        args = Namespace(
            host=self.host, port=0, debug=False, cert=self.cert, key=self.key, tls=self.cert is not None, passlib_cfg=None,
            proxy_protocol=None, inherited_sockets=None, skip_services=[],
            demo_data=False, demo_user=self.username, demo_password=self.password,
        )
        # pbkdf2 at 500,000 rounds costs ~0.1 s per login; a loopback demo needs a real check, not a slow one.
        backend, config = await DictBackend.init(
            args, invalid_user_sleep=0.0, hash_context=BuiltinHash(rounds=1000)
        )
        config.apply_context()
        imap_server = IMAPServer(backend.login, config)
        callback = ProxyProtocolReader(config.proxy_protocol).get_callback(imap_server)

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            config.apply_context()  # pymap reads its subsystem from a context variable
            await callback(reader, writer)

        self._server = await asyncio.start_server(on_connect, host=self.host, port=self._requested_port)
        self._port = int(self._server.sockets[0].getsockname()[1])

    async def _teardown(self) -> None:
        if self._server is not None:
            self._server.close()
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)
        self._loop = None
        self._thread = None

    def __enter__(self) -> DemoImapServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---- a real client's view, for arranging test data
    @contextmanager
    def client(self, mailbox: str | None = "INBOX") -> Iterator[imaplib.IMAP4]:
        conn = imaplib.IMAP4(self.host, self._port, timeout=10)
        try:
            if self.cert is not None:
                conn.starttls(ssl.create_default_context(cafile=self.cert))
            conn.login(self.username, self.password)
            if mailbox is not None:
                _ok(conn.select(_quote(mailbox)))
            yield conn
        finally:
            try:
                conn.logout()
            except (imaplib.IMAP4.error, OSError):
                pass

    def append(self, raw: bytes, mailbox: str = "INBOX", internal_date: datetime | None = None) -> int:
        """IMAP APPEND ``raw`` into ``mailbox`` (with that INTERNALDATE, else now); returns the new UID."""
        with self.client(None) as conn:
            when = imaplib.Time2Internaldate(internal_date) if internal_date is not None else None
            typ, data = conn.append(_quote(mailbox), None, when, raw)
            _ok((typ, data))
        match = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
        if match is None:
            raise RuntimeError(f"APPEND gave no APPENDUID: {data!r}")
        return int(match.group(1))

    def delete(self, uid: int, mailbox: str = "INBOX") -> None:
        """Flag the message \\Deleted and expunge it (UID EXPUNGE, so nothing else goes)."""
        with self.client(mailbox) as conn:
            _ok(conn.uid("STORE", str(uid), "+FLAGS.SILENT", r"(\Deleted)"))
            _ok(conn.uid("EXPUNGE", str(uid)))

    def uidvalidity(self, mailbox: str = "INBOX") -> int:
        with self.client(None) as conn:
            typ, data = conn.status(_quote(mailbox), "(UIDVALIDITY)")
            _ok((typ, data))
        match = re.search(rb"UIDVALIDITY (\d+)", data[0] or b"")
        assert match is not None, data
        return int(match.group(1))

    def create_mailbox(self, name: str) -> None:
        with self.client(None) as conn:
            _ok(conn.create(_quote(name)))

    def delete_mailbox(self, name: str) -> None:
        with self.client(None) as conn:
            _ok(conn.delete(_quote(name)))


def _quote(name: str) -> str:
    """Quoted mailbox name in IMAP's modified UTF-7 (RFC 3501 5.1.3), as any IMAP client sends it."""
    encoded = []
    for chunk in re.split(r"([^\x20-\x7e]+)", name):
        if chunk and not chunk.isascii():
            b64 = base64.b64encode(chunk.encode("utf-16-be")).rstrip(b"=").replace(b"/", b",")
            encoded.append("&" + b64.decode("ascii") + "-")
        else:
            encoded.append(chunk.replace("&", "&-"))
    text = "".join(encoded)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ok(result: tuple[str, Any]) -> None:
    typ, data = result
    if typ != "OK":
        raise RuntimeError(f"IMAP command failed: {typ} {data!r}")
