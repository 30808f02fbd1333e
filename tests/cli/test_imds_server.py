"""serve on real sockets: the Host check (DNS rebinding), request framing, idle connections."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from rolesanywhere.cli.imds import BACKLOG, MAX_BODY, ImdsCore, host_allowed, make_server
from rolesanywhere.credentials import Credentials
from tests.cli.test_imds import serving

CREDS = Credentials("ASIAIMDS", "imds-secret", "imds-token", datetime.now(UTC) + timedelta(hours=1))
IDLE = 0.5


@pytest.fixture
def port() -> Iterator[int]:
    with serving(ImdsCore("onprem", lambda: CREDS), idle_timeout=IDLE) as port:
        yield port


def exchange(port: int, raw: bytes, *, timeout: float = 5.0) -> bytes:
    """Send ``raw``; everything the server sends until it closes (or ``timeout``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(raw)
        data = b""
        try:
            while chunk := conn.recv(65536):
                data += chunk
        except TimeoutError:
            pass
        return data


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split(b" ", 2)[1])


def token_request(host: str | None, ttl: str = "60", extra: str = "") -> bytes:
    head = "PUT /latest/api/token HTTP/1.1\r\n"
    if host is not None:
        head += f"Host: {host}\r\n"
    head += f"X-aws-ec2-metadata-token-ttl-seconds: {ttl}\r\n{extra}Connection: close\r\n\r\n"
    return head.encode("latin-1")  # how http.server reads header bytes


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.0.0.1:9911", "127.1.2.3:80", "localhost", "LOCALHOST:9911", "[::1]",
     "[::1]:9911", "localhost."],
)  # fmt: skip
def test_loopback_hosts_are_accepted(host: str, port: int) -> None:
    assert host_allowed(host)
    assert status_of(exchange(port, token_request(host))) == 200


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:9911", "127.0.0.1.evil.example", "10.0.0.1", "[::2]",
     "localhost:abc", "[::1", "", "0.0.0.0", "127.0.0.1:"],
)  # fmt: skip
def test_other_hosts_get_400(host: str, port: int) -> None:
    """DNS rebinding: a page at evil.example resolved to 127.0.0.1 sends Host: evil.example."""
    assert not host_allowed(host)
    answer = exchange(port, token_request(host))
    assert status_of(answer) == 400
    assert b"Host" in answer


def test_a_rebound_page_gets_neither_token_nor_credentials(port: int) -> None:
    get = (
        "GET /latest/meta-data/iam/security-credentials/onprem HTTP/1.1\r\n"
        "Host: evil.example:{port}\r\nX-aws-ec2-metadata-token: x\r\nConnection: close\r\n\r\n"
    )
    answer = exchange(port, get.format(port=port).encode())
    assert status_of(answer) == 400
    assert b"imds-secret" not in answer


def test_http11_without_host_or_with_two_is_refused(port: int) -> None:
    assert status_of(exchange(port, token_request(None))) == 400
    two = token_request("127.0.0.1", extra="Host: evil.example\r\n")
    assert status_of(exchange(port, two)) == 400


@pytest.mark.parametrize("ttl", ["²", "¹", "1" * 5000, "-1", "+5", "0x10", " 60x"])
def test_strange_ttl_values_get_400_not_a_crash(ttl: str, port: int) -> None:
    assert status_of(exchange(port, token_request("127.0.0.1", ttl))) == 400


@pytest.mark.parametrize("length", ["abc", "-1", "1.5", "99999999999999999999"])
def test_malformed_content_length_gets_400_and_close(length: str, port: int) -> None:
    start = time.monotonic()
    answer = exchange(port, token_request("127.0.0.1", extra=f"Content-Length: {length}\r\n"))
    assert time.monotonic() - start < IDLE * 4  # answered, not held until the idle timeout
    assert status_of(answer) in (400, 413)
    assert b"Connection: close" in answer


def test_a_body_over_the_limit_gets_413_and_is_not_read_as_a_request(port: int) -> None:
    smuggled = b"PUT /latest/api/token HTTP/1.1\r\nHost: 127.0.0.1\r\n" + (
        b"X-aws-ec2-metadata-token-ttl-seconds: 60\r\n\r\n"
    )
    body = smuggled + b"x" * (MAX_BODY + 1 - len(smuggled))
    head = (
        "PUT /latest/api/token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"X-aws-ec2-metadata-token-ttl-seconds: 60\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    answer = exchange(port, head.encode() + body)
    assert status_of(answer) == 413
    assert answer.count(b"HTTP/1.1 ") == 1  # the body was not taken for a second request


def test_a_small_body_is_read_and_the_connection_kept(port: int) -> None:
    one = (
        b"PUT /latest/api/token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"X-aws-ec2-metadata-token-ttl-seconds: 60\r\nContent-Length: 5\r\n\r\nhello"
    )
    answer = exchange(port, one + token_request("127.0.0.1"))
    assert answer.count(b"HTTP/1.1 200 ") == 2


def test_transfer_encoding_is_refused_and_closed(port: int) -> None:
    extra = "Transfer-Encoding: chunked\r\n"
    answer = exchange(port, token_request("127.0.0.1", extra=extra) + b"0\r\n\r\n")
    assert status_of(answer) == 501 and answer.count(b"HTTP/1.1 ") == 1


def test_silent_connections_are_closed_after_the_idle_timeout(port: int) -> None:
    conns = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(50)]
    conns[0].sendall(b"PUT /latest/api/token HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # half a head
    start = time.monotonic()
    try:
        for conn in conns:
            assert conn.recv(1) == b""  # closed by the server
        elapsed = time.monotonic() - start
    finally:
        for conn in conns:
            conn.close()
    assert elapsed < IDLE + 5
    # the server still answers
    assert status_of(exchange(port, token_request("127.0.0.1"))) == 200


def test_backlog_is_raised() -> None:
    server = make_server(ImdsCore("onprem", lambda: CREDS), port=0)
    try:
        assert server.request_queue_size == BACKLOG >= 128
    finally:
        server.server_close()
