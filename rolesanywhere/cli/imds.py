"""An IMDSv2 look-alike on loopback that serves Roles Anywhere credentials (the ``serve`` command).

AWS SDKs pointed at it (``AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:9911/``) fetch
credentials as on EC2 (PROTOCOL.md §2):

- ``PUT /latest/api/token`` with ``X-aws-ec2-metadata-token-ttl-seconds: 1..21600`` → a session
  token (body), the TTL echoed in the same header. 400 when the TTL is missing or bad, or when the
  request carries ``X-Forwarded-For`` (it came through a proxy); any other method 405.
- ``GET /latest/meta-data/iam/security-credentials/`` → the role name;
  ``GET …/security-credentials/<role>`` → ``{"Code":"Success","Type":"AWS-HMAC",…}``. Both need
  ``X-aws-ec2-metadata-token`` with a live token, else 401.
- With a container token: ``GET /credentials`` with that token as ``Authorization`` →
  ``{"AccessKeyId":…,"SecretAccessKey":…,"Token":…,"Expiration":…}``, what AWS SDKs read from
  ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` (with ``AWS_CONTAINER_AUTHORIZATION_TOKEN``); a wrong or
  missing token gets a 401. The Go helper lacks this (its issue #40).

:class:`ImdsCore` answers requests as pure data; :func:`serve` runs it in a threaded HTTP server
bound to 127.0.0.1 only, with ``hop_limit`` as the IP TTL of its answers (1 keeps them on the
host). Credentials come from a callable, typically
:meth:`~rolesanywhere.session.refresh.RefreshingCredentials.get` (refreshed before expiry,
one refresh at
a time); when a refresh fails, credentials that have not expired yet are served on (the Go helper
serves empty ones with status 200), and only without any is the answer a 500.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rolesanywhere.credentials import Credentials, format_expiration
from rolesanywhere.session.http11 import Response

if TYPE_CHECKING:
    from http.server import ThreadingHTTPServer
    from typing import TextIO

    from rolesanywhere.session.refresh import RefreshingCredentials

__all__ = [
    "CONTAINER_PATH",
    "MAX_TOKEN_TTL",
    "ImdsCore",
    "first_credentials",
    "host_allowed",
    "make_server",
    "role_name_from_arn",
    "serve",
]

logger = logging.getLogger("rolesanywhere.cli.imds")

#: Longest token lifetime IMDSv2 grants (6 hours).
MAX_TOKEN_TTL = 21600
_TOKEN_PATH = "/latest/api/token"  # noqa: S105 - a path
_CREDENTIALS_PATH = "/latest/meta-data/iam/security-credentials/"
_TTL_HEADER = "x-aws-ec2-metadata-token-ttl-seconds"
_TOKEN_HEADER = "x-aws-ec2-metadata-token"  # noqa: S105 - a header name
_MAX_TOKENS = 10_000
_DIGITS = re.compile(r"[0-9]{1,9}")
#: Largest request body read (IMDS requests have none); a larger one gets 413.
MAX_BODY = 65536
#: Seconds a connection may stay silent (idle between requests, or mid-request) before it is
#: closed, so slow or abandoned connections do not hold threads.
IDLE_TIMEOUT = 5.0
#: Connections the kernel queues while all handlers are busy.
BACKLOG = 128
#: Where ``serve`` answers as a container credentials endpoint
#: (``AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:9911/credentials``).
CONTAINER_PATH = "/credentials"


def _text(status: int, text: str, *headers: tuple[str, str]) -> Response:
    return Response(status, (("Content-Type", "text/plain"), *headers), text.encode())


def host_allowed(host: str) -> bool:
    """Whether a ``Host`` header names this machine: ``localhost``, an address of
    127.0.0.0/8 or ``[::1]``, with or without a port.

    Anything else is refused: a web page that rebinds its own name to 127.0.0.1 (DNS rebinding)
    sends its name, and must not get a token or credentials.
    """
    host = host.strip().lower()
    if host.startswith("["):
        name, sep, rest = host[1:].partition("]")
        if not sep or (rest and not _port_ok(rest)):
            return False
        try:
            address6 = ipaddress.IPv6Address(name)
        except ValueError:
            return False
        mapped = address6.ipv4_mapped
        return address6.is_loopback or (mapped is not None and mapped.is_loopback)
    name, colon, port = host.partition(":")
    if colon and not _port_ok(":" + port):
        return False
    if name in ("localhost", "localhost."):
        return True
    try:
        address = ipaddress.IPv4Address(name)
    except ValueError:
        return False
    return address.is_loopback


def _port_ok(text: str) -> bool:
    return text[:1] == ":" and bool(re.fullmatch(r"[0-9]{1,5}", text[1:]))


def role_name_from_arn(role_arn: str) -> str:
    """The role's name: the last path segment of its ARN (``…:role/path/name`` → ``name``)."""
    return role_arn.rsplit("/", 1)[-1]


class ImdsCore:
    """The IMDSv2 subset SDKs use for credentials, as a function of requests (thread-safe)."""

    def __init__(
        self,
        role_name: str,
        credentials: Callable[[], Credentials],
        *,
        container_token: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.role_name = role_name
        #: With a token, ``GET /credentials`` answers as the ECS container endpoint does, to
        #: requests whose ``Authorization`` header is that token.
        self.container_token = container_token
        self._credentials = credentials
        self._monotonic = monotonic
        self._now = now
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}  # token -> monotonic expiry
        self._served: Credentials | None = None
        self._last_updated: datetime | None = None

    def handle(self, method: str, path: str, headers: Mapping[str, str]) -> Response:
        """The answer to one request; ``headers`` with lower-case names."""
        path = path.split("?", 1)[0]
        if path == _TOKEN_PATH:
            return self._token(method, headers)
        if path == CONTAINER_PATH and self.container_token is not None:
            return self._container(method, headers)
        if not path.startswith(_CREDENTIALS_PATH):
            return _text(404, "Not Found")
        if method != "GET":
            return _text(405, "Method Not Allowed", ("Allow", "GET"))
        if not self._token_ok(headers.get(_TOKEN_HEADER)):
            return _text(401, "Unauthorized")
        name = path[len(_CREDENTIALS_PATH) :]
        if not name:
            return _text(200, self.role_name)
        if name.rstrip("/") != self.role_name:
            return _text(404, "Not Found")
        return self._credentials_answer()

    def _token(self, method: str, headers: Mapping[str, str]) -> Response:
        if method != "PUT":
            return _text(405, "Method Not Allowed", ("Allow", "PUT"))
        if "x-forwarded-for" in headers:
            return _text(400, "Bad Request: forwarded requests are refused")
        raw = headers.get(_TTL_HEADER, "").strip()
        if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= MAX_TOKEN_TTL:
            return _text(400, f"Bad Request: {_TTL_HEADER} must be 1 to {MAX_TOKEN_TTL}")
        ttl = int(raw)
        token = secrets.token_urlsafe(32)
        now = self._monotonic()
        with self._lock:
            if len(self._tokens) >= _MAX_TOKENS:
                self._tokens = {t: end for t, end in self._tokens.items() if end > now}
                while len(self._tokens) >= _MAX_TOKENS:  # all live: drop the oldest
                    del self._tokens[next(iter(self._tokens))]
            self._tokens[token] = now + ttl
        return _text(200, token, ("X-aws-ec2-metadata-token-ttl-seconds", str(ttl)))

    def _token_ok(self, token: str | None) -> bool:
        if not token:
            return False
        with self._lock:
            end = self._tokens.get(token)
            if end is None:
                return False
            if end <= self._monotonic():
                del self._tokens[token]
                return False
            return True

    def _container(self, method: str, headers: Mapping[str, str]) -> Response:
        if method != "GET":
            return _text(405, "Method Not Allowed", ("Allow", "GET"))
        given = headers.get("authorization", "").encode()
        assert self.container_token is not None
        if not secrets.compare_digest(given, self.container_token.encode()):
            return _text(401, "Unauthorized")
        return self._credentials_answer(container=True)

    def _credentials_answer(self, *, container: bool = False) -> Response:
        try:
            credentials = self._credentials()
        except Exception as exc:  # keep serving what is still valid
            with self._lock:
                kept = self._served
            if kept is None or kept.seconds_left(self._now()) <= 0:
                logger.error("no credentials to serve: %s", exc)
                return _text(500, "Internal Server Error: no credentials")
            logger.warning("refresh failed, serving the current credentials: %s", exc)
            credentials = kept
        with self._lock:
            if self._served is None or self._served.access_key_id != credentials.access_key_id:
                self._served, self._last_updated = credentials, self._now()
            updated = self._last_updated or self._now()
        expiration = format_expiration(credentials.expiration) if credentials.expiration else ""
        body: dict[str, str] = {
            "AccessKeyId": credentials.access_key_id,
            "SecretAccessKey": credentials.secret_access_key,
            "Token": credentials.session_token or "",
            "Expiration": expiration,
        }
        if not container:
            body = {
                "Code": "Success",
                "LastUpdated": format_expiration(updated),
                "Type": "AWS-HMAC",
                **body,
            }
        return Response(
            200, (("Content-Type", "application/json"),), json.dumps(body, indent=2).encode()
        )


def _framing_problem(headers: Any) -> tuple[Response, int] | None:
    """The answer to a request whose body cannot be read safely, else ``None`` and the
    body length (in the second item)."""
    if headers.get_all("Transfer-Encoding"):
        return _text(501, "Not Implemented: Transfer-Encoding"), 0
    values = headers.get_all("Content-Length") or []
    if not values:
        return None
    if len(set(values)) != 1 or not _DIGITS.fullmatch(values[0].strip()):
        return _text(400, "Bad Request: malformed Content-Length"), 0
    length = int(values[0])
    if length > MAX_BODY:
        return _text(413, f"Content Too Large: at most {MAX_BODY} bytes"), 0
    return None


def _check_request(headers: Any, http_10: bool) -> tuple[Response | None, int]:
    """(An error answer or ``None``, the body length to read)."""
    hosts = headers.get_all("Host") or []
    if len(hosts) > 1 or (not hosts and not http_10):
        return _text(400, "Bad Request: one Host header needed"), 0
    if hosts and not host_allowed(hosts[0]):
        return _text(400, "Bad Request: Host must be 127.0.0.1, localhost or [::1]"), 0
    problem = _framing_problem(headers)
    if problem is not None:
        return problem
    return None, int((headers.get("Content-Length") or "0").strip())


def make_server(
    core: ImdsCore,
    *,
    port: int = 9911,
    hop_limit: int = 64,
    idle_timeout: float = IDLE_TIMEOUT,
) -> ThreadingHTTPServer:
    """A threaded HTTP server for ``core``, bound to 127.0.0.1:``port`` (0: any free port),
    whose accepted connections send with IP TTL ``hop_limit``. :func:`serve` runs it.

    Only requests whose ``Host`` names this machine (:func:`host_allowed`) are answered;
    others get 400. A connection silent for ``idle_timeout`` seconds is closed; a body larger
    than :data:`MAX_BODY` gets 413, a malformed ``Content-Length`` 400, and the connection is
    closed after either."""
    import socket
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "rolesanywhere-imds"
        sys_version = ""
        timeout = idle_timeout

        def _answer(self) -> None:
            answer, length = _check_request(self.headers, self.request_version == "HTTP/1.0")
            if answer is not None:
                self.close_connection = True
            else:
                if length:
                    self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    answer = core.handle(self.command, self.path, headers)
                except Exception:
                    logger.exception("cannot answer %s %s", self.command, self.path)
                    answer = _text(500, "Internal Server Error")
            self.send_response(answer.status)
            for name, value in answer.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(answer.body)

        do_GET = do_PUT = do_POST = do_DELETE = _answer

        def log_message(self, format: str, *args: object) -> None:
            logger.debug("%s %s", self.address_string(), format % args)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = BACKLOG

        def get_request(self) -> tuple[socket.socket, Any]:
            conn, address = super().get_request()
            conn.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, hop_limit)
            return conn, address

    return Server(("127.0.0.1", port), Handler)


def serve(
    core: ImdsCore,
    *,
    port: int = 9911,
    hop_limit: int = 64,
    ready: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
    idle_timeout: float = IDLE_TIMEOUT,
) -> None:
    """Serve ``core`` on 127.0.0.1:``port`` (0: any free port) until ``stop`` is set.

    ``ready(port)`` is called once the socket listens. Answers leave with IP TTL ``hop_limit``.
    Requests are checked as :func:`make_server` says (``Host``, body size, ``idle_timeout``).
    """
    server = make_server(core, port=port, hop_limit=hop_limit, idle_timeout=idle_timeout)
    try:
        if ready is not None:
            ready(server.server_address[1])
        if stop is None:
            server.serve_forever()
            return
        worker = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2})
        worker.start()
        stop.wait()
        server.shutdown()
        worker.join()
    finally:
        server.server_close()


def first_credentials(
    credentials: RefreshingCredentials,
    stop: threading.Event,
    stderr: TextIO,
    prog: str,
    clock: Callable[[], datetime] | None = None,
) -> bool:
    """Get ``serve``'s first credentials; while the account's quota throttles the call, say so
    and try again when the refresher's jittered backoff ends. ``False``: asked to stop."""
    from rolesanywhere.errors import ThrottlingError, safe_text

    now = clock or (lambda: datetime.now(UTC))
    while True:
        try:
            credentials.get()
            return True
        except ThrottlingError as exc:
            due = credentials.next_refresh
            wait = 1.0 if due is None else (due - now()).total_seconds()
            wait = max(0.1, wait)
            print(
                f"{prog}: throttled ({safe_text(exc.message)}); trying again in {wait:.3g} s",
                file=stderr,
                flush=True,
            )
            if stop.wait(wait):
                return False
