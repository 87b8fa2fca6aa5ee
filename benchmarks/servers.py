"""The loopback servers of the benchmark, each in its own process.

The tests run their SMTP and IMAP servers in a thread of the test process, which is right for
tests and wrong for a benchmark: the server's parsing would run on the measured process's GIL and
its stored messages would count in its memory. Here both run as child processes:

* :func:`start_sink` — an aiosmtpd server that answers every DATA after an optional delay and only
  counts (see :mod:`benchmarks.smtpsink`);
* :func:`start_imap` — the project's real pymap IMAP server (:class:`baocao.devservers.imapserver.DemoImapServer`,
  which ``tests.support.servers.ImapServer`` is), loaded by the benchmark with real IMAP APPENDs.

Each prints ``PORT <n>`` when it listens and stops when its stdin closes.
"""

from __future__ import annotations

import imaplib
import re
import subprocess
import sys
import threading
from collections.abc import Iterable

from benchmarks.smtpsink import SinkClient, start_sink

__all__ = ["ImapProcess", "SinkClient", "start_imap", "start_sink"]


def _spawn(args: list[str]) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(60)
    line = got[0] if got else ""
    if not line.startswith("PORT "):
        proc.kill()
        proc.wait()
        raise RuntimeError(f"{' '.join(args)} did not start (said {line!r})")
    return proc, int(line.split()[1])


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class ImapProcess:
    """The pymap server in a child process, and the client side the benchmark needs."""

    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username, password
        self.proc, self.port = _spawn(["-m", "benchmarks.servers", "imap", username, password])
        self.pid = self.proc.pid

    def append_all(self, messages: Iterable[bytes], mailbox: str = "INBOX") -> int:
        """Real IMAP APPENDs over one connection; how many were stored."""
        n = 0
        conn = imaplib.IMAP4("127.0.0.1", self.port, timeout=30)
        try:
            conn.login(self.username, self.password)
            for raw in messages:
                typ, data = conn.append(f'"{mailbox}"', None, None, raw)
                if typ != "OK" or not re.search(rb"APPENDUID", data[0] or b""):
                    raise RuntimeError(f"IMAP APPEND failed: {typ} {data!r}")
                n += 1
        finally:
            try:
                conn.logout()
            except (imaplib.IMAP4.error, OSError):
                pass
        return n

    def stop(self) -> None:
        _stop(self.proc)


def start_imap(username: str, password: str) -> ImapProcess:
    return ImapProcess(username, password)


def _serve_imap(username: str, password: str) -> None:
    from baocao.devservers.imapserver import DemoImapServer

    server = DemoImapServer(username, password).start()
    print(f"PORT {server.port}", flush=True)
    try:
        sys.stdin.read()
    finally:
        server.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["imap"]:
        _serve_imap(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit("usage: python -m benchmarks.servers imap USER PASSWORD")
