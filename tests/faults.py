"""Fault injection for tests: misbehaving servers on 127.0.0.1 and short writes.

Servers (each a context manager with ``.port`` and ``.url``, on a random loopback port):

- :class:`FaultServer` with a behaviour, chosen by name:
  - ``"drip"``: reads the request, sends a valid response head announcing a large body, then one
    body byte every ``interval`` seconds, for ever;
  - ``"stall"``: accepts and reads, then says nothing;
  - ``"huge"``: answers 200 with a body of ``size`` bytes (default 64 MiB), as fast as it can;
  - ``"canned"``: sends ``raw`` (a whole HTTP response, bytes) and closes;
  - ``"drip_head"``: like ``"drip"``, but the response head itself goes one byte per ``interval``.

``stall_first=n`` (any behaviour): the first ``n`` connections stall instead (a first attempt that
hangs, then a server that answers).

Every connection is served on its own daemon thread; ``close()`` ends them all.

Short writes: :func:`short_writes` patches ``os.write`` so that writes after the first
``allow`` bytes write only part of what they are given and then fail with ``ENOSPC``,
as a nearly full disk does.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any, Literal

Behaviour = Literal["drip", "stall", "huge", "canned", "drip_head"]


def http_response(
    status: int = 200,
    body: bytes = b"",
    *,
    reason: str = "OK",
    headers: dict[str, str] | None = None,
) -> bytes:
    """A whole HTTP/1.1 response (with ``Content-Length``) as bytes, for ``"canned"``."""
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def accepted(sock: socket.socket, stop: threading.Event) -> Iterator[socket.socket]:
    """The connections ``sock`` (a listener with a short timeout) accepts until ``stop`` is set
    or the listener is closed."""
    while not stop.is_set():
        try:
            conn, _ = sock.accept()
        except TimeoutError:
            continue
        except OSError:
            return
        yield conn


class FaultServer:
    def __init__(
        self,
        behaviour: Behaviour,
        *,
        interval: float = 0.5,
        size: int = 64 << 20,
        raw: bytes = b"",
        status: int = 200,
        stall_first: int = 0,
    ) -> None:
        self.behaviour = behaviour
        self.stall_first = stall_first
        self.interval = interval
        self.size = size
        self.raw = raw
        self.status = status
        self.connections = 0
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0), backlog=64)
        self._sock.settimeout(0.1)
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        for conn in accepted(self._sock, self._stop):
            self.connections += 1
            stall = self.connections <= self.stall_first
            worker = threading.Thread(target=self._serve, args=(conn, stall), daemon=True)
            self._threads.append(worker)
            worker.start()

    def _read_request(self, conn: socket.socket) -> None:
        conn.settimeout(0.1)
        data = b""
        while b"\r\n\r\n" not in data and not self._stop.is_set():
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                return
            data += chunk

    def _serve(self, conn: socket.socket, stall: bool = False) -> None:
        with contextlib.suppress(OSError), conn:
            self._read_request(conn)
            if self.behaviour == "stall" or stall:
                self._stop.wait()
                return
            if self.behaviour == "canned":
                conn.sendall(self.raw)
                return
            head = (
                f"HTTP/1.1 {self.status} OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {self.size}\r\n\r\n"
            ).encode()
            if self.behaviour == "drip_head":
                for byte in head:
                    if self._stop.wait(self.interval):
                        return
                    conn.sendall(bytes([byte]))
                return
            conn.sendall(head)
            if self.behaviour == "drip":
                while not self._stop.wait(self.interval):
                    conn.sendall(b" ")
                return
            block = b"x" * 65536
            sent = 0
            while sent < self.size and not self._stop.is_set():
                piece = block[: self.size - sent]
                conn.sendall(piece)
                sent += len(piece)

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._sock.close()
        self._acceptor.join(5)
        for worker in self._threads:
            worker.join(5)

    def __enter__(self) -> FaultServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def short_writes(allow: int = 0, *, target: Any = os) -> Iterator[list[int]]:
    """Patch ``target.write`` (``os.write``) so that once ``allow`` bytes have been written in
    all, each write writes at most half of what it is given (at least one byte) and the write
    after a short one fails with ``ENOSPC``: the pattern of a disk that fills up mid-file.

    Yields a list that collects the sizes actually written."""
    real = target.write
    written: list[int] = []
    state = {"total": 0, "short": False}

    def write(fd: int, data: Any) -> int:
        view = memoryview(data)
        if state["total"] + len(view) <= allow:
            n: int = real(fd, view)
        elif state["short"]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        else:
            room = max(allow - state["total"], 1)
            n = real(fd, view[: max(min(room, len(view) // 2), 1)])
            state["short"] = True
        state["total"] += n
        written.append(n)
        return n

    target.write = write
    try:
        yield written
    finally:
        target.write = real
