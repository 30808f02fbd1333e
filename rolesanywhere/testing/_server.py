"""HTTP plumbing shared by the local emulators (:mod:`.emulator` and :mod:`.osis`).

- :class:`ServedEmulator`, the base of both emulators: ``start``/``stop``, ``port``, ``url``,
  ``endpoint_host``, ``write_ca_bundle`` and the ``with`` block. Subclasses answer requests in
  :meth:`ServedEmulator._respond`.
- :class:`Server`, a threading HTTP/1.1 server that remembers its open connections, so that
  ``stop`` returns at once even with kept-alive clients or delayed requests, and that runs the TLS
  handshake (a context from :func:`server_context`) in each connection's own thread.
- :class:`Handler`, which hands every request to the emulator and gives it :meth:`Handler.read_body`
  (``Content-Length`` or chunked, with a cap) and :meth:`Handler.write`; it logs nothing.
- Checks both emulators make the same way: :func:`origin_form`, :func:`authorization_parameters`,
  :func:`clock_skew_error`; answers: :func:`json_answer`, :func:`text_answer`.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization

from rolesanywhere.sigv4 import canonical as sigv4
from rolesanywhere.testing.pki import IssuedCert

__all__ = [
    "Answer",
    "Handler",
    "ServedEmulator",
    "Server",
    "authorization_parameters",
    "clock_skew_error",
    "json_answer",
    "origin_form",
    "server_context",
    "text_answer",
]

_READ_BLOCK = 1 << 16


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer; ``close`` hangs up after it."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    close: bool = False


def json_answer(status: int, payload: object, headers: Iterable[tuple[str, str]]) -> Answer:
    """``payload`` as compact JSON, with ``headers`` (the ``Content-Type`` among them)."""
    return Answer(status, tuple(headers), json.dumps(payload, separators=(",", ":")).encode())


def text_answer(
    status: int, text: str, *, close: bool = False, extra: Iterable[tuple[str, str]] = ()
) -> Answer:
    """A ``text/plain; charset=utf-8`` answer."""
    headers = (("Content-Type", "text/plain; charset=utf-8"), *extra)
    return Answer(status, headers, text.encode(), close)


# --- checks both emulators make ------------------------------------------------------------------


def origin_form(target: str) -> str:
    """The path and query of a request target, also when sent in absolute form (via a proxy)."""
    if target.startswith(("http://", "https://")):
        parts = urlsplit(target)
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return target


def authorization_parameters(rest: str, denied: Callable[[str], Exception]) -> dict[str, str]:
    """The ``key=value`` pairs of an ``Authorization`` value after its algorithm.

    Raises ``denied(message)``, the service's message, when ``Credential``, ``SignedHeaders`` or
    ``Signature`` is missing or empty.
    """
    parts: dict[str, str] = {}
    for item in rest.split(","):
        key, sep, value = item.strip().partition("=")
        if sep:
            parts[key] = value.strip()
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if not parts.get(k)]
    if missing:
        raise denied(" ".join(f"Authorization header requires '{k}' parameter." for k in missing))
    return parts


def clock_skew_error(x_amz_date: str, now: datetime, skew: timedelta) -> str | None:
    """Why a well-formed ``X-Amz-Date`` is more than ``skew`` away from ``now``; else ``None``."""
    sent = datetime.strptime(x_amz_date, sigv4.AMZ_DATE_FORMAT).replace(tzinfo=UTC)
    if sent < now - skew:
        return (
            f"Signature expired: {x_amz_date} is now earlier than "
            f"{sigv4.amz_date(now - skew)} ({sigv4.amz_date(now)} - 5 min.)"
        )
    if sent > now + skew:
        return (
            f"Signature not yet current: {x_amz_date} is still later than "
            f"{sigv4.amz_date(now + skew)} ({sigv4.amz_date(now)} + 5 min.)"
        )
    return None


# --- server and handler --------------------------------------------------------------------------


def server_context(cert: IssuedCert) -> ssl.SSLContext:
    """A TLS 1.2+ server context for ``cert`` and its chain."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    pem = serialization.Encoding.PEM
    key_pem = cert.private_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    chain_pem = cert.cert_pem() + b"".join(c.public_bytes(pem) for c in cert.chain)
    # load_cert_chain only reads files: write them to a private directory, load, delete.
    with tempfile.TemporaryDirectory(prefix="rolesanywhere-emulator-") as tmp:
        cert_path, key_path = Path(tmp) / "server.crt", Path(tmp) / "server.key"
        cert_path.write_bytes(chain_pem)
        key_path.touch(mode=0o600)
        key_path.write_bytes(key_pem)
        context.load_cert_chain(cert_path, key_path)
    return context


class Server(ThreadingHTTPServer):
    """Serves ``emulator`` on ``address``; :meth:`close_connections` unblocks every connection."""

    daemon_threads = True
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        emulator: ServedEmulator,
        context: ssl.SSLContext | None,
        backlog: int,
    ) -> None:
        self.emulator = emulator
        self.ssl_context = context
        self.request_queue_size = backlog
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        if self.ssl_context is not None:
            # The handshake runs later, in the connection's own thread (see Handler.setup).
            sock = self.ssl_context.wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False
            )
        with self._connections_lock:
            self._connections.add(sock)
        return sock, address

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Unblock every connection thread (kept-alive clients and delayed requests)."""
        with self._connections_lock:
            connections = list(self._connections)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Connection errors (TLS refused, client gone) are the client's business: stay quiet."""


class Handler(BaseHTTPRequestHandler):
    """Hands each request to :meth:`ServedEmulator._respond`, unless the emulator is stopping."""

    protocol_version = "HTTP/1.1"
    server: Server
    timeout = 60  # idle keep-alive connections
    disable_nagle_algorithm = True
    wbufsize = 1 << 16  # status line, headers and body leave in one write (see write)
    _HANDSHAKE_TIMEOUT = 10.0

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(self._HANDSHAKE_TIMEOUT)
            self.request.do_handshake()
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging."""

    def _dispatch(self) -> None:
        emulator = self.server.emulator
        if emulator._stopping.is_set():
            self.close_connection = True
            return
        emulator._respond(self)

    do_POST = _dispatch
    do_GET = _dispatch
    do_PUT = _dispatch
    do_DELETE = _dispatch
    do_PATCH = _dispatch

    def _discard(self, size: int) -> None:
        while size > 0:
            block = self.rfile.read(min(size, _READ_BLOCK))
            if not block:
                raise ValueError("the body ended early")
            size -= len(block)

    def _read(self, size: int) -> bytes:
        block = self.rfile.read(size) if size else b""
        if len(block) != size:
            raise ValueError("the body ended early")
        return block

    def read_body(self, limit: int, drain_cap: int | None = None) -> tuple[bytes | None, int, bool]:
        """``(body, size, complete)``: the body sent with ``Content-Length`` or chunked.

        ``body`` is ``None`` when ``size`` is over ``limit``: the bytes are read and dropped.
        Past ``drain_cap`` (``None``: no cap) reading stops, ``complete`` is false and the
        connection must close. ``ValueError`` (``OSError`` from the socket) for broken framing.
        """
        encoding = self.headers.get("Transfer-Encoding")
        if encoding is not None and "chunked" in encoding.lower():
            keep: list[bytes] = []
            total = 0
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";", 1)[0].strip() or b"x", 16)
                if size < 0:
                    raise ValueError("negative chunk size")
                if size == 0:
                    while self.rfile.readline(1024).strip():
                        pass  # trailers
                    break
                if drain_cap is not None and total + size > drain_cap:
                    return None, total + size, False
                if total + size <= limit:
                    keep.append(self._read(size))
                else:
                    self._discard(size)
                total += size
                self.rfile.readline(1024)
            return (b"".join(keep) if total <= limit else None), total, True
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        if drain_cap is not None and length > drain_cap:
            return None, length, False
        if length > limit:
            self._discard(length)
            return None, length, True
        return self._read(length), length, True

    def write(self, answer: Answer) -> None:
        """Send ``answer`` (no body for ``HEAD``); ``Connection: close`` when hanging up."""
        self.send_response(answer.status)
        for name, value in answer.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        if answer.close or self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)
        self.wfile.flush()


# --- lifecycle -----------------------------------------------------------------------------------


class ServedEmulator:
    """An emulator served on ``host`` (a random port), plain HTTP or TLS, from a daemon thread."""

    #: Names the emulator in errors ("the … is not running").
    _LABEL: ClassVar[str] = "emulator"
    #: The serving thread is ``<name>:PORT``.
    _THREAD_NAME: ClassVar[str] = "emulator"
    #: The file :meth:`write_ca_bundle` writes.
    _CA_FILE: ClassVar[str] = "emulator-ca.pem"
    #: The listen backlog.
    _BACKLOG: ClassVar[int] = 5

    def __init__(self, host: str, tls: IssuedCert | None) -> None:
        self.host = host
        #: A PEM file that verifies the TLS certificate (set it, or use :meth:`write_ca_bundle`).
        self.ca_bundle: str | None = None
        #: PEM of the CA that issued the TLS certificate, when known.
        self.tls_ca_pem: bytes | None = None
        self._tls = tls
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def _client_verify(self) -> str | ssl.SSLContext | None:
        """What a client's ``verify=`` should be to trust this emulator's TLS certificate:
        :attr:`ca_bundle`, else a context trusting :attr:`tls_ca_pem`; ``None`` for plain HTTP
        or when no CA is known."""
        if self._tls is None:
            return None
        if self.ca_bundle is not None:
            return self.ca_bundle
        if self.tls_ca_pem is not None:
            return ssl.create_default_context(cadata=self.tls_ca_pem.decode("ascii"))
        return None

    def _respond(self, handler: Handler) -> None:
        """Read the request from ``handler`` and write the answer (the subclass's part)."""
        raise NotImplementedError

    def _leave(self) -> None:
        """What leaving the ``with`` block does."""
        self.stop()

    def start(self) -> Self:
        """Bind a random port and serve in a daemon thread."""
        if self._server is not None:
            raise RuntimeError(f"the {self._LABEL} is already running")
        self._stopping.clear()
        context = server_context(self._tls) if self._tls is not None else None
        server = Server((self.host, 0), self, context, self._BACKLOG)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"{self._THREAD_NAME}:{server.server_address[1]}",
            daemon=True,
        )
        self._server, self._thread = server, thread
        thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: close open connections and cut delayed requests short."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"the {self._LABEL} is not running: call start()")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (``https`` with TLS), no trailing slash."""
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def endpoint_host(self) -> str:
        """``127.0.0.1:PORT``: the ``endpoint=`` of clients that add ``https://`` themselves."""
        return f"{self.host}:{self.port}"

    def write_ca_bundle(self, directory: str | Path) -> str:
        """Write :attr:`tls_ca_pem` to a PEM file in ``directory``; set :attr:`ca_bundle`."""
        if self.tls_ca_pem is None:
            raise RuntimeError("no CA known for the TLS certificate: set tls_ca_pem first")
        path = Path(directory) / self._CA_FILE
        path.write_bytes(self.tls_ca_pem)
        self.ca_bundle = str(path)
        return self.ca_bundle

    def __enter__(self) -> Self:
        if self._server is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._leave()
