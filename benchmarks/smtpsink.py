"""A loopback SMTP sink in its own process, for the benchmarks.

The tests' :class:`tests.support.servers.SmtpServer` parses and keeps every message in the test process;
at national scale that would put the server's work (and 100+ MB of messages) on the benchmark's
own GIL and RSS. This sink runs aiosmtpd in a child process, answers DATA after an optional delay
and only counts what it accepted. Control commands on the SMTP connection itself:

    XDELAY <seconds>   answer every DATA that many seconds late from now on (the 50 ms of item 2)
    XSTAT              "250 messages=<n> bytes=<b> rcpts=<r> max_conn=<c>" (c: most client connections
                       open at once since the last XRESET, control connections not counted)
    XRESET             zero the counters

Run: ``python -m benchmarks.smtpsink`` prints ``PORT <n>`` on stdout and serves until stdin closes.
"""

from __future__ import annotations

import asyncio
import smtplib
import subprocess
import sys
import threading
from typing import Any

__all__ = ["SinkClient", "start_sink"]


def _serve() -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP, Envelope, Session

    state: dict[str, Any] = {"delay": 0.0, "messages": 0, "bytes": 0, "rcpts": 0, "max_conn": 0}

    class Handler:
        async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
            if state["delay"] > 0:
                await asyncio.sleep(state["delay"])
            state["messages"] += 1
            state["bytes"] += len(envelope.original_content or b"")
            state["rcpts"] += len(envelope.rcpt_tos)
            return "250 2.0.0 OK queued"

    live: set[SMTP] = set()  # open client connections (the control ones leave it at their first X command)

    class SinkSMTP(SMTP):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            live.add(self)
            state["max_conn"] = max(state["max_conn"], len(live))

        def connection_lost(self, error: Exception | None) -> None:
            live.discard(self)
            super().connection_lost(error)

        async def smtp_DATA(self, arg: str) -> None:  # noqa: N802
            """aiosmtpd's DATA, reading the message in a few reads instead of one await per line.

            aiosmtpd reads DATA line by line: about 1.7 ms of CPU for a 38 KB request, on the same
            two cores as the cycle it measures (a production server is on another machine). This
            reads up to the terminating ``CRLF . CRLF`` in one ``readuntil`` (in chunks past the
            reader's limit), undoes dot-stuffing, and answers through the handler as aiosmtpd does.
            """
            if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
                return
            assert self.envelope is not None
            if not self.envelope.rcpt_tos:
                await self.push("503 Error: need RCPT command")
                return
            if arg:
                await self.push("501 Syntax: DATA")
                return
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            first = await self._reader.readuntil(b"\r\n")
            chunks = [first]
            if first != b".\r\n":
                while True:
                    try:
                        chunks.append(await self._reader.readuntil(b"\r\n.\r\n"))
                        break
                    except asyncio.LimitOverrunError as exc:  # longer than the reader's buffer limit
                        chunks.append(await self._reader.read(exc.consumed))
            raw = b"".join(chunks)[:-3]  # without the final ".\r\n"
            content = (raw[1:] if raw.startswith(b".") else raw).replace(b"\r\n.", b"\r\n")
            self.envelope.content = self.envelope.original_content = content
            status = await self._call_handler_hook("DATA")
            self._set_post_data_state()
            await self.push(status)

        async def smtp_XDELAY(self, arg: str) -> None:  # noqa: N802
            live.discard(self)
            state["delay"] = float(arg or 0)
            await self.push(f"250 delay {state['delay']}")

        async def smtp_XSTAT(self, arg: str) -> None:  # noqa: N802
            live.discard(self)
            await self.push("250 " + " ".join(f"{k}={state[k]}" for k in ("messages", "bytes", "rcpts", "max_conn")))

        async def smtp_XRESET(self, arg: str) -> None:  # noqa: N802
            live.discard(self)
            state.update(messages=0, bytes=0, rcpts=0, max_conn=len(live))
            await self.push("250 reset")

    class SinkController(Controller):
        def factory(self) -> SMTP:
            return SinkSMTP(self.handler, **self.SMTP_kwargs)

        def _trigger_server(self) -> None:
            if self.port == 0 and self.server is not None and self.server.sockets:
                self.port = int(self.server.sockets[0].getsockname()[1])
            super()._trigger_server()

    controller = SinkController(Handler(), hostname="127.0.0.1", port=0, server_hostname="bench-sink",
                                data_size_limit=0)
    controller.start()
    print(f"PORT {controller.port}", flush=True)
    try:
        sys.stdin.read()  # the parent closes our stdin (or dies): stop
    finally:
        controller.stop()


class SinkClient:
    """The benchmark's handle on a running sink process."""

    def __init__(self, proc: subprocess.Popen[str], port: int) -> None:
        self.proc = proc
        self.port = port
        self.pid = proc.pid

    def _cmd(self, command: str) -> str:
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as smtp:
            code, reply = smtp.docmd(command)
            if code != 250:
                raise RuntimeError(f"sink: {command} -> {code} {reply!r}")
            return reply.decode()

    def set_delay(self, seconds: float) -> None:
        self._cmd(f"XDELAY {seconds}")

    def reset(self) -> None:
        self._cmd("XRESET")

    def stats(self) -> dict[str, int]:
        reply = self._cmd("XSTAT")
        return {k: int(v) for k, v in (part.split("=") for part in reply.split())}

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_sink() -> SinkClient:
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.smtpsink"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = ""
    got: list[str] = []

    def read() -> None:
        got.append(proc.stdout.readline())  # type: ignore[union-attr]

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(60)
    line = got[0] if got else ""
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"SMTP sink did not start (said {line!r})")
    return SinkClient(proc, int(line.split()[1]))


if __name__ == "__main__":
    _serve()
