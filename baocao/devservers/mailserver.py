"""The demo's built-in mail server: receives everything baocao sends and files it on disk.

A demo (or a workstation without a mail relay) still needs somewhere for forms, reminders and
overdue notices to go, and someone has to be able to open "what unit X received". So every message
is written once per recipient, as a plain ``.eml`` file any mail client opens::

    <root>/<recipient address>/<NNNN>-<subject-slug>.eml
    <root>/index.csv        one row per stored file (time, recipient, sender, subject, Message-ID, path)

The files carry ``Return-Path`` and ``Delivered-To`` lines on top, like a real mailbox, so a copy
still says who it was for when it was a Cc. An optional hook receives every stored copy, e.g. to
APPEND it into the demo's IMAP intake mailbox.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import email
import email.policy
import logging
import re
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

log = logging.getLogger("baocao.mail")

INDEX_NAME = "index.csv"
INDEX_FIELDS = ("received_at", "recipient", "sender", "subject", "message_id", "path")


class LoopbackController(Controller):
    """aiosmtpd's threaded Controller, but able to listen on port 0 (an ephemeral port).

    The stock Controller connects to ``self.port`` to check that the server is up, which fails for 0;
    here the real port is read from the bound socket first, and exposed as ``.port``.
    """

    def _trigger_server(self) -> None:
        if self.port == 0 and self.server is not None and self.server.sockets:
            self.port = int(self.server.sockets[0].getsockname()[1])
        super()._trigger_server()


@dataclass(frozen=True)
class StoredMessage:
    """One stored copy: what ``index.csv`` says about a file under the mail directory."""

    received_at: str
    recipient: str
    sender: str
    subject: str
    message_id: str
    path: Path


DeliveryHook = Callable[[StoredMessage, bytes], None]


def mailbox_dirname(address: str) -> str:
    """Folder name of a recipient's mailbox: the lower-cased address, with anything unsafe replaced."""
    cleaned = re.sub(r"[^a-z0-9@._+-]", "_", address.strip().lower()).strip(".")
    return cleaned or "_"


def slugify(text: str, max_len: int = 60) -> str:
    """ASCII file-name slug of a (Vietnamese) subject: 'Báo cáo 6 tháng' -> 'bao-cao-6-thang'."""
    text = text.replace("đ", "d").replace("Đ", "D")
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:max_len].rstrip("-") or "no-subject"


class MailStore:
    """Writes received messages under a directory and keeps ``index.csv`` in step.

    Thread-safe: the SMTP server writes from its own thread while the demo reads.
    Numbering continues after a restart by looking at what is already in each mailbox folder.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()
        self._next: dict[str, int] = {}

    def _next_number(self, folder: Path) -> int:
        key = folder.name
        if key not in self._next:
            numbers = [int(m.group(1)) for p in folder.glob("*.eml") if (m := re.match(r"(\d+)-", p.name))]
            self._next[key] = max(numbers, default=0) + 1
        number = self._next[key]
        self._next[key] = number + 1
        return number

    def store(self, sender: str, recipients: list[str], content: bytes) -> list[StoredMessage]:
        """Store one copy of ``content`` per recipient; return what was written."""
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        subject = str(parsed.get("Subject", "") or "")
        message_id = str(parsed.get("Message-ID", "") or "").strip()
        received_at = datetime.now(UTC).isoformat(timespec="seconds")
        stored: list[StoredMessage] = []
        with self._lock:
            self.root.mkdir(parents=True, exist_ok=True)
            index = self.root / INDEX_NAME
            new_index = not index.exists()
            with index.open("a", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                if new_index:
                    writer.writerow(INDEX_FIELDS)
                for rcpt in recipients:
                    folder = self.root / mailbox_dirname(rcpt)
                    folder.mkdir(parents=True, exist_ok=True)
                    path = folder / f"{self._next_number(folder):04d}-{slugify(subject)}.eml"
                    trace = f"Return-Path: <{sender}>\r\nDelivered-To: {rcpt}\r\n".encode(
                        "utf-8", "surrogateescape"
                    )
                    path.write_bytes(trace + content)
                    rel = path.relative_to(self.root)
                    writer.writerow((received_at, rcpt.lower(), sender, subject, message_id, rel.as_posix()))
                    stored.append(StoredMessage(received_at, rcpt.lower(), sender, subject, message_id, path))
        return stored

    def messages(self, recipient: str | None = None) -> list[StoredMessage]:
        """Everything in ``index.csv`` (oldest first), optionally only one recipient's mailbox."""
        index = self.root / INDEX_NAME
        with self._lock:
            if not index.exists():
                return []
            with index.open(newline="", encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh))
        wanted = recipient.strip().lower() if recipient else None
        return [
            StoredMessage(
                r["received_at"], r["recipient"], r["sender"], r["subject"], r["message_id"],
                self.root / r["path"],
            )
            for r in rows
            if wanted is None or r["recipient"] == wanted
        ]


class _StoreHandler:
    """aiosmtpd handler: accept every recipient, store on DATA, then call the delivery hook."""

    def __init__(self, store: MailStore, on_message: DeliveryHook | None) -> None:
        self.store = store
        self.on_message = on_message

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        content = envelope.original_content or b""
        sender = envelope.mail_from or ""
        recipients = list(envelope.rcpt_tos)
        # File I/O off the event loop so a slow disk does not stall other SMTP sessions.
        stored = await asyncio.to_thread(self.store.store, sender, recipients, content)
        for item in stored:
            log.info("demo mail server stored %s for %s at %s", item.message_id, item.recipient, item.path)
            if self.on_message is not None:
                try:
                    await asyncio.to_thread(self.on_message, item, content)
                except Exception:
                    # The message is already on disk; a failing hook must not make the sender retry.
                    log.exception("demo mail server: delivery hook failed for %s", item.recipient)
        return "250 2.0.0 OK stored"


class DemoMailServer:
    """The demo's SMTP server on 127.0.0.1, storing every message under ``directory``.

    Use as a context manager (or ``start()`` / ``stop()``); ``port`` is the real port once started
    (pass ``port=0`` for an ephemeral one). ``on_message(stored, raw)`` is called for each stored copy.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        on_message: DeliveryHook | None = None,
        server_hostname: str = "baocao-demo",
    ) -> None:
        self.store = MailStore(Path(directory))
        self.host = host
        self._requested_port = port
        self._handler = _StoreHandler(self.store, on_message)
        self._server_hostname = server_hostname
        self._controller: LoopbackController | None = None

    @property
    def directory(self) -> Path:
        return self.store.root

    @property
    def port(self) -> int:
        if self._controller is None:
            raise RuntimeError("DemoMailServer is not running")
        return int(self._controller.port)

    def start(self) -> DemoMailServer:
        if self._controller is not None:
            raise RuntimeError("DemoMailServer is already running")
        controller = LoopbackController(
            self._handler,
            hostname=self.host,
            port=self._requested_port,
            server_hostname=self._server_hostname,
            data_size_limit=50 * 1024 * 1024,
        )
        controller.start()
        self._controller = controller
        log.info("demo mail server listening on %s:%d, storing under %s", self.host, self.port, self.directory)
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def messages(self, recipient: str | None = None) -> list[StoredMessage]:
        """What was stored (read from ``index.csv``, so it includes earlier runs)."""
        return self.store.messages(recipient)

    def __enter__(self) -> DemoMailServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"port={self._controller.port}" if self._controller else "stopped"
        return f"DemoMailServer({str(self.directory)!r}, {state})"


def main(argv: list[str] | None = None) -> None:
    """Run the built-in mail server in the foreground: ``python -m baocao.devservers.mailserver``.

    Host, port and folder default to the settings (`smtp.host`, `smtp.port`, `mail_dir`), so that the
    flows, `baocao up` and this command agree without glue.
    """
    from baocao.rules.config import load_config

    settings = load_config().settings
    parser = argparse.ArgumentParser(description="baocao built-in SMTP server (stores mail as .eml files)")
    parser.add_argument("--dir", default=str(settings.resolve(settings.mail_dir)), help="where to store received mail")
    parser.add_argument("--host", default=settings.smtp.host)
    parser.add_argument("--port", type=int, default=settings.smtp.port)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    with DemoMailServer(args.dir, host=args.host, port=args.port) as server:
        print(f"Demo mail server on {server.host}:{server.port}, storing under {server.directory}")
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
