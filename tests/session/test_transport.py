"""StdlibTransport over real sockets on 127.0.0.1: the TLS emulator, stalls, refusals, bad peers."""

from __future__ import annotations

import contextlib
import pathlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from types import TracebackType

import pytest

from rolesanywhere.errors import TransportFailure
from rolesanywhere.session.http11 import Response
from rolesanywhere.session.protocol import HttpRequest
from rolesanywhere.session.transport import USER_AGENT, Answer, StdlibTransport
from rolesanywhere.testing.emulator import RolesAnywhereEmulator
from rolesanywhere.testing.pki import PKI
from rolesanywhere.x509.identity import Identity

Handler = Callable[[socket.socket], None]


class ScriptedServer:
    """A TCP server on a loopback address answering each connection with ``handler``."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1") -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        self._listener.bind((host, 0))
        self._listener.listen(8)
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self.host = f"[{host}]" if ":" in host else host
        self._handler = handler
        self._stop = threading.Event()
        self.received: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def url(self, path: str = "/sessions") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                self.received.append(read_request(conn))
                with contextlib.suppress(OSError):
                    self._handler(conn)

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()


def read_request(conn: socket.socket) -> bytes:
    """Read one request (head and ``Content-Length`` body) from ``conn``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(4096)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def request_to(url: str, body: bytes = b'{"a":1}') -> HttpRequest:
    return HttpRequest("POST", url, (("Content-Type", "application/json"),), body)


def send(transport: StdlibTransport, url: str, timeout: float = 5.0) -> Answer:
    return transport.send(request_to(url), timeout=timeout, connect_timeout=timeout)


@pytest.fixture
def identity(rolesanywhere_pki: PKI) -> Identity:
    return rolesanywhere_pki.leaf().identity()


# --- against the emulator -------------------------------------------------------------------------


def test_create_session_over_tls(
    rolesanywhere_tls_emulator: RolesAnywhereEmulator, identity: Identity
) -> None:
    emu = rolesanywhere_tls_emulator
    assert emu.ca_bundle is not None
    transport = StdlibTransport(verify=ssl.create_default_context(cafile=emu.ca_bundle))
    with emu.client(identity, transport=transport) as client:
        credentials = client.create_session()
        assert client.attempts == 1
    issued = emu.lookup(credentials.access_key_id)
    assert issued is not None
    assert issued.secret_access_key == credentials.secret_access_key
    (recorded,) = emu.requests
    assert recorded.header("User-Agent") == USER_AGENT
    assert recorded.header("Connection") == "close"
    assert recorded.header("Host") == emu.endpoint_host
    assert [name.lower() for name, _ in recorded.headers].count("host") == 1


def test_create_session_over_plain_http(
    rolesanywhere_emulator: RolesAnywhereEmulator, identity: Identity
) -> None:
    emu = rolesanywhere_emulator
    with emu.client(identity, transport=StdlibTransport()) as client:
        credentials = client.create_session()
    assert emu.lookup(credentials.access_key_id) is not None


def test_tls_answer_fields(rolesanywhere_tls_emulator: RolesAnywhereEmulator) -> None:
    emu = rolesanywhere_tls_emulator
    assert emu.ca_bundle is not None
    transport = StdlibTransport(verify=ssl.create_default_context(cafile=emu.ca_bundle))
    # By name too: the certificate names localhost, and the emulator listens on 127.0.0.1 only.
    for base in (emu.url, f"https://localhost:{emu.port}"):
        answer = send(transport, base + "/sessions")  # unsigned: the emulator refuses it
        assert answer.status == 403
        headers = {name.lower(): value for name, value in answer.headers}
        assert headers["x-amzn-errortype"] == "AccessDeniedException"
        assert headers["content-length"] == str(len(answer.body))
        assert answer.body == b'{"message":"Missing Authentication Token"}'
    assert emu.calls == 2


def test_tls_unknown_ca_is_a_failure(rolesanywhere_tls_emulator: RolesAnywhereEmulator) -> None:
    with pytest.raises(TransportFailure) as caught:
        send(StdlibTransport(), rolesanywhere_tls_emulator.url + "/sessions")
    assert caught.value.timed_out is False
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    assert rolesanywhere_tls_emulator.calls == 0


def test_tls_checks_the_host_name(tmp_path: pathlib.Path) -> None:
    # A certificate from a trusted CA, but for another name: refused (the host name is
    # handed to ssl as bytes, which must not skip the check).
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ca")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("other.test")]), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    client_context = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))

    def handshake(conn: socket.socket) -> None:
        with contextlib.suppress(OSError), server_context.wrap_socket(conn, server_side=True):
            pass

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        for host in ("localhost", "127.0.0.1"):
            worker = threading.Thread(target=lambda: handshake(listener.accept()[0]))
            worker.start()
            with pytest.raises(TransportFailure) as caught:
                send(StdlibTransport(verify=client_context), f"https://{host}:{port}/sessions")
            worker.join(5)
            assert caught.value.timed_out is False
            assert "mismatch" in str(caught.value), host


def test_tls_without_verification(rolesanywhere_tls_emulator: RolesAnywhereEmulator) -> None:
    answer = send(StdlibTransport(verify=False), rolesanywhere_tls_emulator.url + "/sessions")
    assert answer.status == 403


# --- failures -------------------------------------------------------------------------------------


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that listens but never accepts: the kernel completes the TCP handshake and
    nothing is ever read or written."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        yield listener.getsockname()[1]


@pytest.mark.parametrize(
    ("scheme", "timeout", "connect_timeout"),
    # Over TLS the connect timeout bounds the handshake, not the 30 s read timeout.
    [("http", 0.3, 0.3), ("https", 30, 0.3)],
)
def test_stalled_server_times_out(
    silent_port: int, scheme: str, timeout: float, connect_timeout: float
) -> None:
    started = time.monotonic()
    with pytest.raises(TransportFailure) as caught:
        StdlibTransport().send(
            request_to(f"{scheme}://127.0.0.1:{silent_port}/sessions"),
            timeout=timeout,
            connect_timeout=connect_timeout,
        )
    elapsed = time.monotonic() - started
    assert caught.value.timed_out is True
    assert 0.25 <= elapsed < 2.5


def test_stalled_after_partial_answer_times_out() -> None:
    stop = threading.Event()

    def partial(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        stop.wait(5)

    with ScriptedServer(partial) as server:
        with pytest.raises(TransportFailure) as caught:
            send(StdlibTransport(), server.url(), timeout=0.3)
        stop.set()
    assert caught.value.timed_out is True


def test_a_dripping_server_cannot_stretch_the_timeout() -> None:
    # One byte every 0.1 s: each read is quick, the whole answer would take seconds.
    stop = threading.Event()

    def drip(conn: socket.socket) -> None:
        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n" + b"x" * 40:
            if stop.wait(0.1):
                return
            conn.sendall(bytes([byte]))

    with ScriptedServer(drip) as server:
        started = time.monotonic()
        with pytest.raises(TransportFailure) as caught:
            send(StdlibTransport(), server.url(), timeout=0.5)
        elapsed = time.monotonic() - started
        stop.set()
    assert caught.value.timed_out is True
    assert elapsed < 1.5


def test_connection_refused() -> None:
    with socket.socket() as bound:  # bound, not listening: connections are refused
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        with pytest.raises(TransportFailure) as caught:
            send(StdlibTransport(), f"http://127.0.0.1:{port}/sessions")
    assert caught.value.timed_out is False
    assert "ConnectionRefusedError" in str(caught.value)


def test_chunked_answer_in_pieces() -> None:
    def chunked(conn: socket.socket) -> None:
        for piece in (
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 201 Created\r\nX-Amzn-RequestId: r-1\r\n",
            b"Transfer-Encoding: chunked\r\n\r\n",
            b"5;ext=1\r\nhello\r\n",
            b"6\r\n wor",
            b"ld\r\n0\r\nX-Trailer: t\r\n\r\n",
        ):
            conn.sendall(piece)
            time.sleep(0.01)

    with ScriptedServer(chunked) as server:
        answer = send(StdlibTransport(), server.url("/sessions?a=%2F"))
    assert answer == Answer(
        201, (("X-Amzn-RequestId", "r-1"), ("Transfer-Encoding", "chunked")), b"hello world"
    )
    (raw,) = server.received
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /sessions?a=%2F HTTP/1.1"
    assert lines[1:] == [
        f"Host: 127.0.0.1:{server.port}".encode(),
        b"Content-Type: application/json",
        f"User-Agent: {USER_AGENT}".encode(),
        b"Content-Length: 7",
        b"Connection: close",
    ]
    assert body == b'{"a":1}'


def test_body_until_close() -> None:
    def until_close(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.0 200 OK\r\n\r\nall of ")
        time.sleep(0.02)
        conn.sendall(b"this")

    with ScriptedServer(until_close) as server:
        answer = send(StdlibTransport(), server.url())
    assert answer == Answer(200, (), b"all of this")


@pytest.mark.parametrize(
    ("wire", "detail"),
    [
        (b"HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n", "malformed status line"),
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "malformed status line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "7 body bytes short"),
        (b"", "before any response"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "conflicting"),
    ],
    ids=["status", "not-http", "short-body", "silent-close", "conflicting-length"],
)
def test_bad_peer_is_a_failure(wire: bytes, detail: str) -> None:
    def answer(conn: socket.socket) -> None:
        conn.sendall(wire)

    with ScriptedServer(answer) as server, pytest.raises(TransportFailure) as caught:
        send(StdlibTransport(), server.url())
    assert caught.value.timed_out is False
    assert str(caught.value).startswith("ProtocolError: ")
    assert detail in str(caught.value)


def test_ipv6_literal() -> None:
    try:
        server = ScriptedServer(lambda conn: conn.sendall(b"HTTP/1.1 204 No\r\n\r\n"), host="::1")
    except OSError:
        pytest.skip("no IPv6 loopback")
    with server:
        answer = send(StdlibTransport(), server.url())
    assert answer.status == 204
    assert f"Host: [::1]:{server.port}\r\n".encode() in server.received[0]


def test_invalid_header_is_refused_before_connecting() -> None:
    request = HttpRequest("POST", "http://127.0.0.1:9/sessions", (("X-Amz-X509", "a\r\nb"),))
    with pytest.raises(ValueError, match="X-Amz-X509"):
        StdlibTransport().send(request, timeout=1, connect_timeout=1)


# --- Answer ---------------------------------------------------------------------------------------


def test_answer_is_the_http11_response_record() -> None:
    # Every transport answers with the record the HTTP/1.1 parser builds (a values.Value).
    answer = Answer(200, (("A", "1"),), b"x")
    assert type(answer) is Response
    assert (answer.status, answer.headers, answer.body) == (200, (("A", "1"),), b"x")
    assert answer == Answer(200, (("A", "1"),), b"x")
    assert answer != Answer(200, (("A", "1"),), b"y")
    assert repr(answer) == "Response(status=200, headers=(('A', '1'),), body=b'x')"
