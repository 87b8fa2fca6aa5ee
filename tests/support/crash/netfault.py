"""A TCP forwarder on loopback that misbehaves on request, like a flaky network or a restarting server.

The IMAP test server keeps its mailbox in memory, so stopping it for real would lose the mail a
restarted production server still has. Put this between the client and the server instead:
``down()`` refuses connections and cuts the open ones (the server is gone), ``up()`` listens again
on the same port with the same mailbox behind it (the server is back), ``cut_after(n)`` cuts every
connection once n more bytes went from the server to the client (a disconnect in the middle of a
FETCH), and ``before_client(pattern, callback)`` runs ``callback`` once, the moment the client
sends a command containing ``pattern``, before the server sees it (e.g. another client deletes
the message being fetched).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable
from types import TracebackType


class TcpProxy:
    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.target = (host, target_port)
        self.port = 0
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._conns: list[tuple[socket.socket, socket.socket]] = []
        self._cut_budget: int | None = None
        self._hooks: list[tuple[bytes, Callable[[], None]]] = []
        self.connections = 0
        self.cuts = 0

    # ---- lifecycle
    def start(self) -> TcpProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), name="tcp-proxy", daemon=True).start()
        return self

    def down(self) -> None:
        """Refuse new connections and cut the open ones."""
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        self.cut_all()

    def up(self) -> None:
        if self._listener is None:
            self.start()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.down()

    # ---- faults
    def cut_after(self, n_bytes: int) -> None:
        with self._lock:
            self._cut_budget = n_bytes

    def before_client(self, pattern: bytes, callback: Callable[[], None]) -> None:
        with self._lock:
            self._hooks.append((pattern, callback))

    def cut_all(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for pair in conns:
            for sock in pair:
                _reset(sock)

    # ---- forwarding
    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._conns.append((client, server))
                self.connections += 1
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_server: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if from_server:
                    with self._lock:
                        budget = self._cut_budget
                        if budget is not None and len(data) >= budget:
                            self._cut_budget = None
                    if budget is not None and len(data) >= budget:
                        dst.sendall(data[:budget])
                        self.cuts += 1
                        _reset(src)
                        _reset(dst)
                        return
                    if budget is not None:
                        with self._lock:
                            if self._cut_budget is not None:
                                self._cut_budget -= len(data)
                else:
                    with self._lock:
                        due = [h for h in self._hooks if h[0] in data]
                        self._hooks = [h for h in self._hooks if h not in due]
                    for _, callback in due:
                        callback()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)


def _reset(sock: socket.socket) -> None:
    """Close with RST, as a crashed peer or a dropped link would."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
