"""The sans-I/O HTTP/1.1 client: request bytes, the incremental response parser, URL splitting."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rolesanywhere.errors import ProtocolError
from rolesanywhere.session import http11
from rolesanywhere.session.http11 import Response, ResponseParser, Url

# --- test-side reference encoder and decoder -----------------------------------------------------

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
FRAMING_NAMES = {"content-length", "transfer-encoding"}
# Field values: visible latin-1 (obs-text included), inner spaces and tabs, no controls.
VALUE_CHARS = "".join(chr(c) for c in range(0x20, 0x100) if c != 0x7F) + "\t"

header_names = st.text(TOKEN_CHARS, min_size=1, max_size=20).filter(
    lambda n: n.lower() not in FRAMING_NAMES
)
header_values = st.text(VALUE_CHARS, max_size=40).map(lambda v: v.strip(" \t"))
headers_strategy = st.lists(st.tuples(header_names, header_values), max_size=8)
reasons = st.text("".join(chr(c) for c in range(0x20, 0x7F)) + "\t", max_size=20)
body_statuses = st.integers(200, 599).filter(lambda s: s not in (204, 304))


def reference_response(
    status: int,
    reason: str,
    headers: list[tuple[str, str]],
    body: bytes,
    *,
    framing: str,
    chunk_sizes: list[int] | None = None,
) -> tuple[bytes, tuple[tuple[str, str], ...]]:
    """The bytes of a response and the headers a parser should report, written independently."""
    fields = list(headers)
    if framing == "length":
        fields.append(("Content-Length", str(len(body))))
    elif framing == "chunked":
        fields.append(("Transfer-Encoding", "chunked"))
    head = f"HTTP/1.1 {status} {reason}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in fields)
    wire = head.encode("latin-1") + b"\r\n"
    if framing != "chunked":
        return wire + body, tuple(fields)
    pieces = []
    rest = body
    for size in chunk_sizes or []:
        piece, rest = rest[:size], rest[size:]
        if piece:
            pieces.append(piece)
    if rest:
        pieces.append(rest)
    for piece in pieces:
        wire += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    return wire + b"0\r\n\r\n", tuple(fields)


def feed_in_pieces(parser: ResponseParser, wire: bytes, cuts: list[int]) -> Response | None:
    """Feed ``wire`` cut at ``cuts``; return what the parser reports after the last piece."""
    result = None
    previous = 0
    for cut in [*sorted(set(cuts)), len(wire)]:
        result = parser.feed(wire[previous:cut])
        previous = cut
    return result


def parse_request(data: bytes) -> tuple[str, str, list[tuple[str, str]], bytes]:
    """A deliberately plain request parser for the round-trip test."""
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, "no end of head"
    first, *lines = head.decode("latin-1").split("\r\n")
    method, target, version = first.split(" ")
    assert version == "HTTP/1.1"
    fields = []
    for line in lines:
        name, _, value = line.partition(":")
        fields.append((name, value.strip(" \t")))
    return method, target, fields, body


def parse_all(wire: bytes, method: str = "POST", **limits: int) -> Response:
    parser = ResponseParser(method, **limits)
    parser.feed(wire)
    return parser.feed_eof()


# --- hypothesis: parser ---------------------------------------------------------------------------


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    status=body_statuses,
    reason=reasons,
    headers=headers_strategy,
    body=st.binary(max_size=600),
    framing=st.sampled_from(["length", "chunked", "close"]),
    chunk_sizes=st.lists(st.integers(1, 80), max_size=20),
    data=st.data(),
)
def test_any_split_parses_like_the_whole(
    status: int,
    reason: str,
    headers: list[tuple[str, str]],
    body: bytes,
    framing: str,
    chunk_sizes: list[int],
    data: st.DataObject,
) -> None:
    wire, fields = reference_response(
        status, reason, headers, body, framing=framing, chunk_sizes=chunk_sizes
    )
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=30), label="cuts")
    parser = ResponseParser()
    result = feed_in_pieces(parser, wire, cuts)
    if framing == "close":
        assert result is None  # only the end of the stream ends this body
        result = parser.feed_eof()
    assert result == Response(status, fields, body)
    assert parser.response == result


@settings(max_examples=60)
@given(
    headers=headers_strategy,
    body=st.binary(max_size=200),
    framing=st.sampled_from(["length", "chunked", "close"]),
    chunk_sizes=st.lists(st.integers(1, 9), max_size=30),
)
def test_one_byte_feeds(
    headers: list[tuple[str, str]], body: bytes, framing: str, chunk_sizes: list[int]
) -> None:
    wire, fields = reference_response(
        200, "OK", headers, body, framing=framing, chunk_sizes=chunk_sizes
    )
    parser = ResponseParser()
    results = [parser.feed(wire[i : i + 1]) for i in range(len(wire))]
    final: Response | None
    if framing == "close":
        assert results[-1] is None
        final = parser.feed_eof()
    else:
        assert all(r is None for r in results[:-1])  # not complete before the last byte
        final = results[-1]
    assert final == Response(200, fields, body)


@settings(max_examples=150)
@given(
    body=st.binary(max_size=3000),
    chunk_sizes=st.lists(st.integers(1, 700), min_size=1, max_size=40),
    extensions=st.booleans(),
    trailers=st.lists(st.tuples(header_names, header_values), max_size=3),
    uppercase=st.booleans(),
)
def test_chunked_random_chunks(
    body: bytes,
    chunk_sizes: list[int],
    extensions: bool,
    trailers: list[tuple[str, str]],
    uppercase: bool,
) -> None:
    wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    rest = body
    for size in chunk_sizes:
        piece, rest = rest[:size], rest[size:]
        if not piece:
            break
        size_text = f"{len(piece):X}" if uppercase else f"{len(piece):x}"
        ext = ';name="v;x"; flag' if extensions else ""
        wire += f"{size_text}{ext}\r\n".encode() + piece + b"\r\n"
    if rest:
        wire += f"{len(rest):x}\r\n".encode() + rest + b"\r\n"
    wire += b"0" + (b";last" if extensions else b"") + b"\r\n"
    wire += "".join(f"{n}: {v}\r\n" for n, v in trailers).encode("latin-1") + b"\r\n"
    response = ResponseParser().feed(wire)
    assert response is not None
    assert response.body == body
    assert response.headers == (("Transfer-Encoding", "chunked"),)  # trailers are not headers


def _outcome_is_clean(wire: bytes, cuts: list[int], method: str) -> None:
    parser = ResponseParser(method, max_body=4096, max_head=2048, max_framing=4096)
    try:
        feed_in_pieces(parser, wire, cuts)
        response = parser.feed_eof()
    except ProtocolError:
        return
    assert isinstance(response, Response)
    assert 200 <= response.status <= 599
    assert all(isinstance(n, str) and isinstance(v, str) for n, v in response.headers)


@settings(max_examples=400)
@given(
    wire=st.binary(max_size=300),
    data=st.data(),
    method=st.sampled_from(["POST", "HEAD", "GET"]),
)
@example(
    wire=b"HTTP/1.1 200 OK\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n",
    data=None,
    method="POST",
)
def test_garbage_raises_only_protocol_error(
    wire: bytes, data: st.DataObject | None, method: str
) -> None:
    cuts = [] if data is None else data.draw(st.lists(st.integers(0, len(wire)), max_size=5))
    _outcome_is_clean(wire, cuts, method)


@settings(max_examples=400)
@given(
    body=st.binary(max_size=100),
    framing=st.sampled_from(["length", "chunked", "close"]),
    edits=st.lists(
        st.tuples(
            st.sampled_from(["replace", "insert", "delete"]),
            st.integers(0, 10_000),
            st.sampled_from(
                [b"\r", b"\n", b"\r\n", b":", b" ", b"\x00", b"0", b"9", b"f", b"-", b";", b"\xff"]
            ),
        ),
        min_size=1,
        max_size=4,
    ),
    data=st.data(),
)
def test_mutations_raise_only_protocol_error(
    body: bytes,
    framing: str,
    edits: list[tuple[str, int, bytes]],
    data: st.DataObject,
) -> None:
    wire, _ = reference_response(
        200, "OK", [("X-A", "1")], body, framing=framing, chunk_sizes=[3, 5]
    )
    mutated = bytearray(wire)
    for kind, position, byte in edits:
        at = position % (len(mutated) + 1)
        if kind == "insert":
            mutated[at:at] = byte
        elif kind == "replace":
            mutated[at : at + 1] = byte
        else:
            del mutated[at : at + 1]
    cuts = data.draw(st.lists(st.integers(0, len(mutated)), max_size=5))
    _outcome_is_clean(bytes(mutated), cuts, "POST")


# --- hypothesis: requests -------------------------------------------------------------------------


@settings(max_examples=200)
@given(
    method=st.sampled_from(["POST", "GET", "PUT", "DELETE"]),
    scheme=st.sampled_from(["http", "https"]),
    host=st.sampled_from(["example.com", "127.0.0.1", "[::1]", "rolesanywhere.us-east-1.aws"]),
    port=st.one_of(st.none(), st.integers(1, 65535)),
    path=st.text("abcXYZ019-._~/%", max_size=20),
    query=st.text("abcXYZ019-._~=&%", max_size=20),
    headers=st.lists(
        st.tuples(
            header_names.filter(lambda n: n.lower() not in {"connection", "host", "user-agent"}),
            header_values,
        ),
        max_size=6,
    ),
    body=st.binary(max_size=200),
)
def test_request_round_trip(
    method: str,
    scheme: str,
    host: str,
    port: int | None,
    path: str,
    query: str,
    headers: list[tuple[str, str]],
    body: bytes,
) -> None:
    url = f"{scheme}://{host}" + (f":{port}" if port else "") + "/" + path
    if query:
        url += "?" + query
    data = http11.serialize_request(method, url, headers, body, user_agent="agent/1")
    got_method, target, fields, got_body = parse_request(data)
    assert got_method == method
    assert target == "/" + path + ("?" + query if query else "")
    default = 443 if scheme == "https" else 80
    expected_host = host if port in (None, default) else f"{host}:{port}"
    assert fields == [
        ("Host", expected_host),
        *headers,
        ("User-Agent", "agent/1"),
        ("Content-Length", str(len(body))),
        ("Connection", "close"),
    ]
    assert got_body == body


# --- specific responses ---------------------------------------------------------------------------


def test_content_length_body_without_eof() -> None:
    parser = ResponseParser()
    wire = b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    response = parser.feed(wire)
    assert response == Response(
        201, (("Content-Type", "application/json"), ("Content-Length", "2")), b"{}"
    )
    assert parser.feed(b"junk after the response") == response  # ignored


def test_body_until_close() -> None:
    parser = ResponseParser()
    assert parser.feed(b"HTTP/1.0 200 OK\r\nServer: old\r\n\r\nhello ") is None
    assert parser.feed(b"world") is None
    assert parser.feed_eof() == Response(200, (("Server", "old"),), b"hello world")


def test_interim_responses_are_skipped() -> None:
    wire = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
    )
    assert ResponseParser().feed(wire) == Response(200, (("Content-Length", "3"),), b"abc")


@pytest.mark.parametrize(
    ("method", "status"), [("HEAD", 200), ("POST", 204), ("POST", 304), ("GET", 304)]
)
def test_no_body_answers(method: str, status: int) -> None:
    parser = ResponseParser(method)
    wire = f"HTTP/1.1 {status} X\r\nContent-Length: 10\r\n\r\n".encode()
    response = parser.feed(wire)  # complete without waiting for 10 bytes or the end
    assert response == Response(status, (("Content-Length", "10"),), b"")


def test_chunked_with_extensions_and_trailers() -> None:
    wire = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n"
        b"4;a=b\r\nWiki\r\n5 ; c\r\npedia\r\n000\r\nExpires: never\r\nX: y\r\n\r\n"
    )
    response = ResponseParser().feed(wire)
    assert response is not None
    assert response.body == b"Wikipedia"


def test_repeated_equal_content_lengths_are_accepted() -> None:
    wire = b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\nContent-Length: 003\r\n\r\nabc"
    response = ResponseParser().feed(wire)
    assert response is not None
    assert response.body == b"abc"


def test_obsolete_line_folding_is_joined() -> None:
    wire = b"HTTP/1.1 200 OK\r\nX-Long: first\r\n \t second\r\nContent-Length: 0\r\n\r\n"
    response = ResponseParser().feed(wire)
    assert response is not None
    assert response.headers[0] == ("X-Long", "first second")


def test_header_values_are_latin1_and_trimmed() -> None:
    wire = b"HTTP/1.1 200 OK\r\nX-Name:  caf\xe9 \t\r\nEmpty:\r\nContent-Length: 0\r\n\r\n"
    response = ResponseParser().feed(wire)
    assert response is not None
    assert response.headers[:2] == (("X-Name", "café"), ("Empty", ""))


def test_status_line_without_reason() -> None:
    for line in (b"HTTP/1.1 200", b"HTTP/1.1 200 "):
        response = ResponseParser().feed(line + b"\r\nContent-Length: 0\r\n\r\n")
        assert response is not None
        assert response.status == 200


MALFORMED = {
    # status lines
    "short code": b"HTTP/1.1 20 OK\r\n\r\n",
    "long code": b"HTTP/1.1 2000 OK\r\n\r\n",
    "letters in code": b"HTTP/1.1 2x0 OK\r\n\r\n",
    "code glued to reason": b"HTTP/1.1 200OK\r\n\r\n",
    "code too high": b"HTTP/1.1 600 X\r\n\r\n",
    "code too low": b"HTTP/1.1 099 X\r\n\r\n",
    "http/2": b"HTTP/2 200 OK\r\n\r\n",
    "http/2.0": b"HTTP/2.0 200 OK\r\n\r\n",
    "lowercase version": b"http/1.1 200 OK\r\n\r\n",
    "not http": b"ICY 200 OK\r\n\r\n",
    "no space": b"HTTP/1.1\r\n\r\n",
    "control in reason": b"HTTP/1.1 200 O\x00K\r\n\r\n",
    "empty status line": b"\r\n\r\n",
    "switching protocols": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
    # header lines
    "no colon": b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
    "space in name": b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
    "space before colon": b"HTTP/1.1 200 OK\r\nName : x\r\n\r\n",
    "empty name": b"HTTP/1.1 200 OK\r\n: x\r\n\r\n",
    "non-token name": b"HTTP/1.1 200 OK\r\nX(y): x\r\n\r\n",
    "leading continuation": b"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n",
    "nul in value": b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n",
    "del in value": b"HTTP/1.1 200 OK\r\nX: a\x7fb\r\n\r\n",
    "bare lf": b"HTTP/1.1 200 OK\r\nX: a\nY: b\r\n\r\n",
    "bare cr": b"HTTP/1.1 200 OK\r\nX: a\rY: b\r\n\r\n",
    "lf only": b"HTTP/1.1 200 OK\n\n",
    # content length
    "conflicting lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    "conflicting list": b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\nab",
    "negative length": b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    "plus length": b"HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\na",
    "hex length": b"HTTP/1.1 200 OK\r\nContent-Length: 0x1\r\n\r\na",
    "empty length": b"HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
    "spaced digits": b"HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\n",
    "superscript digit": b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\nab",
    "huge length": b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
    "over 16 MiB": b"HTTP/1.1 200 OK\r\nContent-Length: 16777217\r\n\r\n",
    # transfer encoding
    "te and cl": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
    "gzip": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
    "gzip then chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "chunked twice": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    # chunks
    "chunk size not hex": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n",
    "chunk size empty": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
    "chunk size negative": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
    "chunk size 0x": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nabcde\r\n",
    "chunk only ext": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n;a\r\n",
    "chunk too big": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFF\r\n",
    "chunk over 16 MiB": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000001\r\n",
    "chunk without crlf": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY",
    "chunk with lf only": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n",
}


@pytest.mark.parametrize("wire", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_responses(wire: bytes) -> None:
    parser = ResponseParser()
    with pytest.raises(ProtocolError):
        parser.feed(wire)  # detected without waiting for more input
    with pytest.raises(ProtocolError, match="already failed"):
        parser.feed(b"more")


TRUNCATED = {
    "nothing": b"",
    "partial status line": b"HTTP/1.1 20",
    "head without end": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n",
    "only interim": b"HTTP/1.1 100 Continue\r\n\r\n",
    "short length body": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc",
    "length body missing": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
    "mid chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
    "mid chunk size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5",
    "no chunk crlf": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab",
    "no last chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n",
    "no final crlf": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
    "mid trailer": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: y\r\n",
}


@pytest.mark.parametrize("wire", TRUNCATED.values(), ids=TRUNCATED.keys())
def test_premature_eof(wire: bytes) -> None:
    parser = ResponseParser()
    assert parser.feed(wire) is None
    with pytest.raises(ProtocolError, match="closed"):
        parser.feed_eof()


def test_eof_message_counts_missing_bytes() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabcd")
    with pytest.raises(ProtocolError, match="6 body bytes short"):
        parser.feed_eof()


def test_eof_twice_and_data_after_a_complete_response() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\n\r\nabc")
    assert parser.feed_eof().body == b"abc"
    assert parser.feed_eof().body == b"abc"  # asking again gives the same response
    after = parser.feed(b"more")  # ignored: the response is complete
    assert after is not None
    assert after.body == b"abc"


def test_head_limit() -> None:
    big = b"HTTP/1.1 200 OK\r\nX: " + b"a" * http11.MAX_HEAD + b"\r\n\r\n"
    with pytest.raises(ProtocolError, match="head larger"):
        ResponseParser().feed(big)
    # Refused as soon as the limit is passed, without waiting for the end of the head.
    parser = ResponseParser()
    assert parser.feed(b"HTTP/1.1 200 OK\r\nX: " + b"a" * (http11.MAX_HEAD - 100)) is None
    with pytest.raises(ProtocolError, match="head larger"):
        parser.feed(b"a" * 200)
    # Just under the limit is fine.
    header = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX: "
    fits = header + b"a" * (http11.MAX_HEAD - len(header) - 4) + b"\r\n\r\n"
    assert len(fits) == http11.MAX_HEAD
    assert ResponseParser().feed(fits) is not None


def test_head_limit_counts_interim_answers() -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\n"
    parser = ResponseParser(max_head=len(interim) * 3)
    parser.feed(interim * 3)
    with pytest.raises(ProtocolError, match="head larger"):
        parser.feed(interim)


def test_body_limit_until_close() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\n\r\n")
    parser.feed(b"x" * http11.MAX_BODY)
    with pytest.raises(ProtocolError, match="body larger"):
        parser.feed(b"x")


def test_body_limit_exact_length_accepted() -> None:
    parser = ResponseParser(max_body=10)
    assert parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789") is not None
    with pytest.raises(ProtocolError, match="body larger"):
        ResponseParser(max_body=10).feed(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n")


def test_body_limit_chunked_sum() -> None:
    parser = ResponseParser(max_body=10)
    parser.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n")
    with pytest.raises(ProtocolError, match="body larger"):
        parser.feed(b"5\r\n")


def test_framing_limit() -> None:
    parser = ResponseParser(max_framing=100)
    parser.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"1;" + b"e" * 10 + b"\r\nx\r\n"  # 16 bytes of framing around 1 of data
    assert parser.feed(chunk * 6) is None
    with pytest.raises(ProtocolError, match="framing larger"):
        parser.feed(chunk)


# --- requests -------------------------------------------------------------------------------------


def test_request_bytes_exactly() -> None:
    data = http11.serialize_request(
        "POST",
        "https://rolesanywhere.us-east-1.amazonaws.com/sessions?profileArn=a%3Ab",
        [("Content-Type", "application/json"), ("X-Amz-Date", "20240101T000000Z")],
        b"{}",
        user_agent="ua/1",
    )
    assert data == (
        b"POST /sessions?profileArn=a%3Ab HTTP/1.1\r\n"
        b"Host: rolesanywhere.us-east-1.amazonaws.com\r\n"
        b"Content-Type: application/json\r\n"
        b"X-Amz-Date: 20240101T000000Z\r\n"
        b"User-Agent: ua/1\r\n"
        b"Content-Length: 2\r\n"
        b"Connection: close\r\n"
        b"\r\n{}"
    )


def test_given_host_and_user_agent_are_not_repeated() -> None:
    data = http11.serialize_request(
        "GET", "http://127.0.0.1:8080/", [("host", "other:1"), ("User-Agent", "mine")], b""
    )
    _, _, fields, _ = parse_request(data)
    names = [name.lower() for name, _ in fields]
    assert names.count("host") == 1
    assert names.count("user-agent") == 1
    assert ("host", "other:1") in fields


SECRET = "AKIAsecretvalue"


@pytest.mark.parametrize(
    "value", [f"{SECRET}\r\nX-Injected: 1", f"{SECRET}\nx", f"{SECRET}\rx", f"{SECRET}\x00"]
)
def test_header_value_injection_refused(value: str) -> None:
    with pytest.raises(ValueError, match="Authorization") as caught:
        http11.serialize_request("POST", "https://h/", [("Authorization", value)])
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize("name", ["X\r\nY", "X Y", "X:", "", "Ä", "X\x00"])
def test_bad_header_name_refused(name: str) -> None:
    with pytest.raises(ValueError, match="header name"):
        http11.serialize_request("POST", "https://h/", [(name, "v")])


def test_non_latin1_value_refused() -> None:
    with pytest.raises(ValueError, match="X-Name"):
        http11.serialize_request("POST", "https://h/", [("X-Name", "€")])


@pytest.mark.parametrize("name", ["Content-Length", "transfer-encoding", "Connection"])
def test_framing_headers_refused(name: str) -> None:
    with pytest.raises(ValueError, match="set by the HTTP client"):
        http11.serialize_request("POST", "https://h/", [(name, "1")])


@pytest.mark.parametrize(
    "url", ["https://h/a\r\nX: y", "https://h/a b", "https://h/\x00", "https://h/é", "http://h/\t"]
)
def test_target_injection_refused(url: str) -> None:
    with pytest.raises(ValueError, match="request target"):
        http11.serialize_request("GET", url)


@pytest.mark.parametrize("method", ["", "GE T", "GET\r\n", "GÉT"])
def test_bad_method_refused(method: str) -> None:
    with pytest.raises(ValueError, match="method"):
        http11.serialize_request(method, "https://h/")


def test_bad_user_agent_refused() -> None:
    with pytest.raises(ValueError, match="User-Agent"):
        http11.serialize_request("GET", "https://h/", user_agent="a\r\nb")


# --- URLs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected", "host_header"),
    [
        (
            "https://example.com/sessions?a=b",
            Url("https", "example.com", 443, "/sessions?a=b"),
            "example.com",
        ),
        ("HTTP://example.com", Url("http", "example.com", 80, "/"), "example.com"),
        ("http://example.com?q", Url("http", "example.com", 80, "/?q"), "example.com"),
        ("http://h:8080/x#frag", Url("http", "h", 8080, "/x"), "h:8080"),
        ("https://h:443/", Url("https", "h", 443, "/"), "h"),
        ("http://h:443/", Url("http", "h", 443, "/"), "h:443"),
        ("https://h:/", Url("https", "h", 443, "/"), "h"),
        ("https://[::1]:8443/s", Url("https", "::1", 8443, "/s"), "[::1]:8443"),
        ("https://[::1]/s", Url("https", "::1", 443, "/s"), "[::1]"),
        ("http://[fe80::1%25eth0]:80", Url("http", "fe80::1%25eth0", 80, "/"), "[fe80::1%25eth0]"),
    ],
)
def test_split_url(url: str, expected: Url, host_header: str) -> None:
    parts = http11.split_url(url)
    assert parts == expected
    assert parts.host_header == host_header


@pytest.mark.parametrize(
    "url",
    [
        "ftp://h/",
        "h/path",
        "https:/h/",
        "https://",
        "https:///path",
        "https://[::1/",
        "https://[::1]x/",
        "https://[host]/",
        "https://::1/",
        "https://u:p@h/",
        "https://user@h/",
        "https://h:0/",
        "https://h:65536/",
        "https://h:x/",
        "https://h:-1/",
        "https://h:١/",
        "https://h\r\n/",
        "https://ex ample/",
        "https://exämple/",
    ],
)
def test_split_url_refuses(url: str) -> None:
    with pytest.raises(ValueError, match="URL"):
        http11.split_url(url)


def test_no_heavy_imports() -> None:
    import subprocess
    import sys

    heavy = ("http", "http.client", "email", "urllib.parse", "dataclasses", "inspect")
    code = (
        "import sys; before = set(sys.modules); "
        "import rolesanywhere.session.http11, rolesanywhere.session.transport; "
        f"print(sorted(m for m in {heavy!r} if m in set(sys.modules) - before))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
