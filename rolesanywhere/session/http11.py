"""A small HTTP/1.1 client for one request per connection, built sans-I/O.

The ``credential-process`` command sends a single HTTPS request per run; ``http.client`` would
import ``email``, ``http`` and more on every cold start. This module imports only ``socket``
and ``ssl`` (which the caller has already imported).

- :func:`split_url` takes ``http(s)://host[:port]/path?query`` apart (IPv6 hosts in brackets).
- :func:`serialize_request` turns a request into bytes; it refuses CR, LF and NUL in the method,
  the target and the headers (:class:`ValueError` naming the bad header, never its value).
- :class:`ResponseParser` is fed the bytes that arrive and gives back a :class:`Response` once
  one is complete: ``Content-Length``, ``chunked`` or body-until-close framing, 1xx interim
  answers skipped, no body after ``HEAD``/204/304. Anything malformed, oversized or cut short
  raises :class:`ProtocolError`.
- :func:`fetch` is the blocking shell: connect, (TLS), send, read until the parser is done,
  close.
"""

from __future__ import annotations

import socket
import ssl
import time
from typing import TYPE_CHECKING

from rolesanywhere.errors import ProtocolError
from rolesanywhere.values import Value

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "MAX_BODY",
    "MAX_FRAMING",
    "MAX_HEAD",
    "Response",
    "ResponseParser",
    "Url",
    "fetch",
    "serialize_request",
    "split_url",
]

#: Most bytes of status lines and headers (1xx interim answers included).
MAX_HEAD = 64 * 1024
#: Most bytes of a body.
MAX_BODY = 16 * 1024 * 1024
#: Most bytes of chunked framing (size lines, extensions, trailers) around a body.
MAX_FRAMING = 1024 * 1024

_DEFAULT_PORTS = {"http": 80, "https": 443}
_TOKEN = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_HEX = b"0123456789abcdefABCDEF"
# Control characters that may not appear in a field value or reason phrase (HTAB may).
_CTL = bytes(range(9)) + bytes(range(10, 32)) + b"\x7f"
# What may not appear in a request target or host: controls, space, DEL.
_TARGET_BAD = bytes(range(33)) + b"\x7f"
_READ_SIZE = 65536


class Url(Value):
    """A split ``http``/``https`` URL: ``host`` without brackets, ``target`` path and query."""

    __slots__ = ("scheme", "host", "port", "target")

    scheme: str
    host: str
    port: int
    target: str

    def __init__(self, scheme: str, host: str, port: int, target: str) -> None:
        super().__init__(scheme, host, port, target)

    @property
    def host_header(self) -> str:
        """The ``Host`` value: brackets around IPv6, the port only when not the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port != _DEFAULT_PORTS[self.scheme]:
            host = f"{host}:{self.port}"
        return host


class Response(Value):
    """A complete response: status, headers (in order, may repeat, latin-1) and body."""

    __slots__ = ("status", "headers", "body")

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def __init__(self, status: int, headers: tuple[tuple[str, str], ...], body: bytes) -> None:
        super().__init__(status, headers, body)


# --- requests ------------------------------------------------------------------------------------


def split_url(url: str) -> Url:
    """Split ``scheme://host[:port][/path][?query]`` (a ``#fragment`` is dropped).

    Raises :class:`ValueError` for another scheme, user info, a bad port or a malformed host.
    """
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in _DEFAULT_PORTS:
        raise ValueError(f"not an http or https URL: {url!r}")
    rest = rest.partition("#")[0]
    cut = len(rest)
    for mark in "/?":
        at = rest.find(mark)
        if 0 <= at < cut:
            cut = at
    authority, target = rest[:cut], rest[cut:]
    if not target.startswith("/"):
        target = "/" + target
    if "@" in authority:
        raise ValueError("URLs with user info are not supported")
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise ValueError(f"unclosed '[' in URL host: {url!r}")
        host, port_text = authority[1:end], authority[end + 1 :]
        if ":" not in host:
            raise ValueError(f"only IPv6 addresses go in brackets in a URL: {url!r}")
        if port_text and not port_text.startswith(":"):
            raise ValueError(f"unexpected text after ']' in URL: {url!r}")
        port_text = port_text[1:]
    else:
        host, _, port_text = authority.partition(":")
        if ":" in port_text:
            raise ValueError(f"IPv6 hosts need brackets in a URL: {url!r}")
    if not host or not host.isascii() or _has_any(host, _TARGET_BAD + b"/[]"):
        raise ValueError(f"malformed host in URL: {url!r}")
    port = _DEFAULT_PORTS[scheme]
    if port_text:
        if not (_ascii_digits(port_text) and len(port_text) <= 5 and 0 < int(port_text) < 65536):
            raise ValueError(f"malformed port in URL: {url!r}")
        port = int(port_text)
    return Url(scheme, host, port, target)


def serialize_request(
    method: str,
    url: Url | str,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    *,
    user_agent: str | None = None,
) -> bytes:
    """The bytes of a request that asks the server to close the connection after answering.

    In order: the request line, ``Host`` (unless ``headers`` has one), ``headers``,
    ``User-Agent`` (when given and ``headers`` has none), ``Content-Length``,
    ``Connection: close``, a blank line, ``body``. ``headers`` may not set the framing
    (``Content-Length``, ``Transfer-Encoding``, ``Connection``). Raises :class:`ValueError`
    for CR, LF, NUL or another illegal character in the method, the target or a header.
    """
    if isinstance(url, str):
        url = split_url(url)
    if not _is_token(method.encode("ascii", "replace")):
        raise ValueError(f"invalid HTTP method {method!r}")
    target = url.target
    if not target.isascii() or _has_any(target, _TARGET_BAD):
        raise ValueError("invalid character (control, space or non-ASCII) in the request target")
    lines = [f"{method} {target} HTTP/1.1"]
    given = [(name, value) for name, value in headers]
    names = set()
    for name, value in given:
        _check_header(name, value)
        lname = name.lower()
        if lname in ("content-length", "transfer-encoding", "connection"):
            raise ValueError(f"header {name!r} is set by the HTTP client, not by the request")
        names.add(lname)
    if "host" not in names:
        lines.append(f"Host: {url.host_header}")
    lines.extend(f"{name}: {value}" for name, value in given)
    if user_agent is not None and "user-agent" not in names:
        _check_header("User-Agent", user_agent)
        lines.append(f"User-Agent: {user_agent}")
    lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1") + body


def _check_header(name: str, value: str) -> None:
    if not name or not name.isascii() or not _is_token(name.encode("ascii")):
        # Names are not secret, but keep the message short and printable.
        raise ValueError(f"invalid HTTP header name {name[:64]!r}")
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"header {name!r}: value is not latin-1 text") from None
    if _has_any(raw, _CTL):
        raise ValueError(f"header {name!r}: value holds CR, LF, NUL or another control character")


def _is_token(raw: bytes) -> bool:
    return bool(raw) and not raw.translate(None, _TOKEN)


def _has_any(text: str | bytes, chars: bytes) -> bool:
    """Whether ``text`` holds any of ``chars`` (``str``: its latin-1 characters only)."""
    raw = text.encode("latin-1", "replace") if isinstance(text, str) else text
    return len(raw.translate(None, chars)) != len(raw)


def _ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


# --- responses -----------------------------------------------------------------------------------

_HEAD, _LENGTH, _CLOSE, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER, _DONE = range(8)


class ResponseParser:
    """Incremental parser of one HTTP/1.x response (no I/O: feed it what arrives).

    ``method`` is the request's (a ``HEAD`` answer has no body). :meth:`feed` returns the
    :class:`Response` once complete (also in :attr:`response`); bytes after it are ignored.
    Call :meth:`feed_eof` when the peer hangs up: it completes a body-until-close response and
    raises :class:`ProtocolError` when the response is incomplete. After a
    :class:`ProtocolError` the parser refuses further input.
    """

    def __init__(
        self,
        method: str = "POST",
        *,
        max_head: int = MAX_HEAD,
        max_body: int = MAX_BODY,
        max_framing: int = MAX_FRAMING,
    ) -> None:
        self._method = method.upper()
        self._max_head = max_head
        self._max_body = max_body
        self._max_framing = max_framing
        self._buf = bytearray()
        self._scanned = 0  # bytes of _buf already searched for a line end
        self._state = _HEAD
        self._head_bytes = 0
        self._framing = 0
        self._remaining = 0
        self._status = 0
        self._headers: tuple[tuple[str, str], ...] = ()
        self._body = bytearray()
        self._failed: ProtocolError | None = None
        self.response: Response | None = None
        """The complete response, once there is one."""

    def feed(self, data: bytes) -> Response | None:
        """Take more bytes; return the response once it is complete, else ``None``."""
        self._check_usable()
        if self.response is not None:
            return self.response
        self._buf += data
        try:
            self._advance()
        except ProtocolError as exc:
            self._failed = exc
            raise
        return self.response

    def feed_eof(self) -> Response:
        """The peer closed the connection: return the response or raise :class:`ProtocolError`."""
        self._check_usable()
        if self.response is not None:
            return self.response
        if self._state == _CLOSE:
            self._finish()
            assert self.response is not None
            return self.response
        if self._state == _HEAD:
            if not self._buf and not self._head_bytes:
                raise self._fail("connection closed before any response")
            raise self._fail("connection closed in the middle of the response head")
        if self._state in (_LENGTH, _CHUNK_DATA):
            raise self._fail(
                f"connection closed {self._remaining} body bytes short of the announced length"
            )
        raise self._fail("connection closed in the middle of the chunked body")

    def _check_usable(self) -> None:
        if self._failed is not None:
            raise ProtocolError(f"parser already failed: {self._failed}")

    def _fail(self, message: str) -> ProtocolError:
        self._failed = ProtocolError(message)
        return self._failed

    def _finish(self) -> None:
        self.response = Response(self._status, self._headers, bytes(self._body))
        self._state = _DONE
        self._buf.clear()

    def _advance(self) -> None:
        buf = self._buf
        while self.response is None:
            state = self._state
            if state == _HEAD:
                if not self._read_head():
                    return
            elif state in (_LENGTH, _CHUNK_DATA):
                take = min(len(buf), self._remaining)
                self._body += buf[:take]
                del buf[:take]
                self._remaining -= take
                if self._remaining:
                    return
                if state == _LENGTH:
                    self._finish()
                else:
                    self._state = _CHUNK_END
            elif state == _CLOSE:
                if len(self._body) + len(buf) > self._max_body:
                    raise ProtocolError(f"response body larger than {self._max_body} bytes")
                self._body += buf
                buf.clear()
                return
            elif state == _CHUNK_END:
                if len(buf) < 2:
                    if buf and buf[0] != 0x0D:
                        raise ProtocolError("chunk data not followed by CRLF")
                    return
                if buf[:2] != b"\r\n":
                    raise ProtocolError("chunk data not followed by CRLF")
                del buf[:2]
                self._count_framing(2)
                self._state = _CHUNK_SIZE
            elif state == _CHUNK_SIZE:
                line = self._line()
                if line is None:
                    return
                self._chunk_size(line)
            else:  # _TRAILER: trailer fields are read and ignored
                line = self._line()
                if line is None:
                    return
                if not line:
                    self._finish()

    # head

    def _read_head(self) -> bool:
        buf = self._buf
        start = max(0, self._scanned - 3)
        end = buf.find(b"\r\n\r\n", start)
        if end < 0:
            _no_bare_line_end(buf, start, len(buf))
            self._scanned = len(buf)
            if self._head_bytes + len(buf) > self._max_head:
                raise ProtocolError(f"response head larger than {self._max_head} bytes")
            return False
        size = end + 4  # a bare CR or LF inside the head fails the line checks below
        self._head_bytes += size
        if self._head_bytes > self._max_head:
            raise ProtocolError(f"response head larger than {self._max_head} bytes")
        lines = bytes(buf[:end]).split(b"\r\n")
        del buf[:size]
        self._scanned = 0
        status = _status_line(lines[0])
        headers = _header_fields(lines[1:])
        if status < 200:
            if status == 101:
                raise ProtocolError("unexpected 101 Switching Protocols")
            return True  # interim answer (100 Continue, 103 Early Hints…): the real one follows
        self._status, self._headers = status, headers
        self._framing_from_headers()
        return True

    def _framing_from_headers(self) -> None:
        status = self._status
        if (
            self._method == "HEAD"
            or status in (204, 304)
            or (self._method == "CONNECT" and status < 300)
        ):
            self._finish()
            return
        codings: list[str] = []
        lengths: list[str] = []
        for name, value in self._headers:
            lname = name.lower()
            if lname == "transfer-encoding":
                codings.extend(c.strip(" \t").lower() for c in value.split(","))
            elif lname == "content-length":
                lengths.extend(v.strip(" \t") for v in value.split(","))
        codings = [c for c in codings if c]
        if codings:
            if lengths:
                raise ProtocolError("response has both Transfer-Encoding and Content-Length")
            if codings != ["chunked"]:
                raise ProtocolError("unsupported Transfer-Encoding (only chunked is supported)")
            self._state = _CHUNK_SIZE
        elif lengths:
            values: set[int] = set()
            for text in lengths:
                if not _ascii_digits(text):
                    raise ProtocolError(f"invalid Content-Length {text[:32]!r}")
                digits = text.lstrip("0") or "0"
                if len(digits) > 12 or int(digits) > self._max_body:
                    raise ProtocolError(f"response body larger than {self._max_body} bytes")
                values.add(int(digits))
            if len(values) != 1:
                raise ProtocolError("conflicting Content-Length values")
            self._remaining = values.pop()
            self._state = _LENGTH
            if not self._remaining:
                self._finish()
        else:
            self._state = _CLOSE

    # chunked body

    def _count_framing(self, n: int) -> None:
        self._framing += n
        if self._framing > self._max_framing:
            raise ProtocolError(f"chunked framing larger than {self._max_framing} bytes")

    def _line(self) -> bytes | None:
        buf = self._buf
        start = max(0, self._scanned - 1)
        end = buf.find(b"\r\n", start)
        if end < 0:
            _no_bare_line_end(buf, start, len(buf))
            self._scanned = len(buf)
            if self._framing + len(buf) > self._max_framing:
                raise ProtocolError(f"chunked framing larger than {self._max_framing} bytes")
            return None
        _no_bare_line_end(buf, start, end)
        line = bytes(buf[:end])
        del buf[: end + 2]
        self._scanned = 0
        self._count_framing(end + 2)
        return line

    def _chunk_size(self, line: bytes) -> None:
        size_text = line.partition(b";")[0].strip(b" \t")
        if not size_text or size_text.translate(None, _HEX):
            raise ProtocolError(f"invalid chunk size line {line[:32]!r}")
        digits = size_text.lstrip(b"0") or b"0"
        if len(digits) > 8 or len(self._body) + int(digits, 16) > self._max_body:
            raise ProtocolError(f"response body larger than {self._max_body} bytes")
        size = int(digits, 16)
        if size:
            self._remaining = size
            self._state = _CHUNK_DATA
        else:
            self._state = _TRAILER


def _no_bare_line_end(buf: bytearray, start: int, end: int) -> None:
    """Refuse a CR or LF between ``start`` and ``end`` that is not part of a CRLF."""
    at = buf.find(b"\n", start, end)
    while at >= 0:
        if at == 0 or buf[at - 1] != 0x0D:
            raise ProtocolError("bare LF in the response head or chunk framing")
        at = buf.find(b"\n", at + 1, end)
    at = buf.find(b"\r", start, end)
    while at >= 0:
        # A CR at the very end may be the start of a CRLF still to come.
        if at + 1 < len(buf) and buf[at + 1] != 0x0A:
            raise ProtocolError("bare CR in the response head or chunk framing")
        at = buf.find(b"\r", at + 1, end)


def _status_line(line: bytes) -> int:
    version, sp, rest = line.partition(b" ")
    code, _, reason = rest.partition(b" ")
    if (
        not sp
        or len(version) != 8
        or not version.startswith(b"HTTP/1.")
        or not version[7:].isdigit()
        or len(code) != 3
        or not code.isdigit()
        or not 100 <= int(code) <= 599
        or _has_any(reason, _CTL)
    ):
        raise ProtocolError(f"malformed status line {line[:80]!r}")
    return int(code)


def _header_fields(lines: list[bytes]) -> tuple[tuple[str, str], ...]:
    fields: list[tuple[str, str]] = []
    for raw in lines:
        if raw[:1] in (b" ", b"\t"):
            # Obsolete line folding: a user agent joins the lines with a space (RFC 9112 §5.2).
            if not fields:
                raise ProtocolError("header section starts with a continuation line")
            more = raw.strip(b" \t")
            if _has_any(more, _CTL):
                raise ProtocolError(f"invalid character in the value of header {fields[-1][0]!r}")
            previous, before = fields[-1]
            fields[-1] = (previous, f"{before} {more.decode('latin-1')}".strip(" "))
            continue
        name, colon, value = raw.partition(b":")
        if not colon:
            raise ProtocolError(f"header line without a colon {raw[:40]!r}")
        if not _is_token(name):
            raise ProtocolError(f"invalid header name {name[:40]!r}")
        text = name.decode("ascii")
        value = value.strip(b" \t")
        if _has_any(value, _CTL):
            raise ProtocolError(f"invalid character in the value of header {text!r}")
        fields.append((text, value.decode("latin-1")))
    return tuple(fields)


# --- blocking shell ------------------------------------------------------------------------------


def fetch(
    method: str,
    url: str,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    *,
    context: ssl.SSLContext | None = None,
    connect_timeout: float,
    timeout: float,
    user_agent: str | None = None,
) -> Response:
    """Send one request on a new connection and read the whole response, then close.

    ``connect_timeout`` bounds connecting and the TLS handshake; ``timeout`` bounds sending the
    request and reading the whole response after that (a server that drips bytes cannot stretch
    it). ``context`` is required for ``https``. Raises :class:`TimeoutError`,
    another :class:`OSError` (``ssl.SSLError`` included) or :class:`ProtocolError`;
    :class:`ValueError` for a request that cannot be sent (bad URL or header).
    """
    parts = split_url(url)
    data = serialize_request(method, parts, headers, body, user_agent=user_agent)
    if parts.scheme == "https" and context is None:
        raise ValueError("an https URL needs an SSL context")
    parser = ResponseParser(method)
    # The host (ASCII: split_url sees to it) goes as bytes: socket and ssl would otherwise run
    # it through the "idna" codec, whose import (stringprep, unicodedata) costs milliseconds,
    # to get the same name.
    host = parts.host.encode("ascii")
    sock = socket.create_connection((host, parts.port), timeout=connect_timeout)  # type: ignore[arg-type]
    try:
        if parts.scheme == "https":
            assert context is not None
            sock = context.wrap_socket(sock, server_hostname=host)
        deadline = time.monotonic() + timeout
        sock.settimeout(timeout)
        sock.sendall(data)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no complete response within {timeout:g} s")
            sock.settimeout(left)
            chunk = sock.recv(_READ_SIZE)
            response = parser.feed(chunk) if chunk else parser.feed_eof()
            if response is not None:
                return response
    finally:
        sock.close()
