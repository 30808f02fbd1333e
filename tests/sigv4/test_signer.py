"""AWS4-HMAC-SHA256 signer: the aws-c-auth suite (both variants), edge cases checked against an
independent spec-level computation, a differential test against botocore, and the API's rules."""

from __future__ import annotations

import hashlib
import hmac
import string
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock
from urllib.parse import quote

import botocore.auth  # type: ignore[import-untyped]
import botocore.awsrequest  # type: ignore[import-untyped]
import botocore.credentials  # type: ignore[import-untyped]
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rolesanywhere.credentials import Credentials
from rolesanywhere.errors import InvalidParameterError, RolesAnywhereError
from rolesanywhere.sigv4 import signer
from tests.conformance import (
    SIGV4,
    load_sigv4,
    parse_request,
    request_url,
    require,
    sigv4_cases,
    sigv4_time,
)

AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = "FwoGZXIvYXdzEJr//////////wEaDO+token/with+base64=="
CREDS = Credentials(AKID, SECRET, TOKEN)
NO_TOKEN = Credentials(AKID, SECRET)
WHEN = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
AMZ = "20240102T030405Z"
OSIS_HOST = "my-pipeline-abc123.us-east-1.osis.amazonaws.com"


# --- an independent spec-level computation (hashlib/hmac only) --------------------------------


def ref_signature(secret: str, amz_date: str, region: str, service: str, canonical: str) -> str:
    """SigV4 from the specification: string to sign, key derivation, HMAC."""
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = hmac.new(("AWS4" + secret).encode(), amz_date[:8].encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


# --- 1. the aws-c-auth suite, header and query variants ---------------------------------------


def _case(case: str) -> tuple[dict[str, Any], Any, Any, Credentials, dict[str, Any]]:
    context, request, folder = load_sigv4(case)
    c = context["credentials"]
    creds = Credentials(c["access_key_id"], c["secret_access_key"], c.get("token"))
    options = {
        "credentials": creds,
        "service": context["service"],
        "region": context["region"],
        "when": sigv4_time(context),
        "signed_headers": "all",  # the suite signs every header of the request
        "sign_session_token": not context.get("omit_session_token", False),
        "normalize_path": context["normalize"],
    }
    return context, request, folder, creds, options


def _header_multiset(headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    return sorted((name.lower(), value) for name, value in headers)


@pytest.mark.parametrize("case", sigv4_cases())
def test_suite_header_variant(case: str) -> None:
    context, request, folder, _, options = _case(case)
    result = signer.sign(
        request.method,
        request_url(request),
        request.headers,
        request.body,
        content_sha256=context["sign_body"],
        **options,
    )
    assert result.canonical_request == (folder / "header-canonical-request.txt").read_text()
    assert result.string_to_sign == (folder / "header-string-to-sign.txt").read_text()
    assert result.signature == (folder / "header-signature.txt").read_text().strip()
    expected = parse_request((folder / "header-signed-request.txt").read_bytes())
    assert (expected.method, expected.target, expected.body) == (
        request.method,
        request.target,
        request.body,
    )
    assert _header_multiset(expected.headers) == _header_multiset(
        [*request.headers, *result.headers]
    )


@pytest.mark.parametrize("case", sigv4_cases())
def test_suite_query_variant(case: str) -> None:
    context, request, folder, _, options = _case(case)
    result = signer.presign(
        request.method,
        request_url(request),
        request.headers,
        request.body,
        expires=context["expiration_in_seconds"],
        **options,
    )
    assert result.canonical_request == (folder / "query-canonical-request.txt").read_text()
    assert result.string_to_sign == (folder / "query-string-to-sign.txt").read_text()
    assert result.signature == (folder / "query-signature.txt").read_text().strip()
    expected = parse_request((folder / "query-signed-request.txt").read_bytes())
    origin = request_url(request).removesuffix(request.target)
    assert expected.target == result.url.removeprefix(origin)
    assert expected.headers == request.headers
    assert expected.body == request.body


def test_suite_is_complete() -> None:
    require(SIGV4)
    assert len(sigv4_cases()) == 38


# --- 2. edge cases against the independent computation ----------------------------------------

OSIS_BODY = b'[{"date":1732039662.399,"log":"hello world"}]'
HTTPX_LIKE = [
    ("Host", OSIS_HOST),
    ("Accept", "*/*"),
    ("Accept-Encoding", "gzip, deflate"),
    ("Connection", "keep-alive"),
    ("User-Agent", "python-httpx/0.28.1"),
    ("Content-Length", str(len(OSIS_BODY))),
    ("Content-Type", "application/json"),
]
EMPTY = hashlib.sha256(b"").hexdigest()
H = "example.amazonaws.com"

# (id, method, url, headers, body, service, credentials, expected canonical request)
EDGE_CASES: list[tuple[str, str, str, list[tuple[str, str]], bytes, str, Credentials, str]] = [
    (
        "osis-push-with-token",
        "POST",
        f"https://{OSIS_HOST}/log/ingest",
        HTTPX_LIKE,
        OSIS_BODY,
        "osis",
        CREDS,
        "POST\n/log/ingest\n\n"
        "content-type:application/json\n"
        f"host:{OSIS_HOST}\n"
        f"x-amz-date:{AMZ}\n"
        f"x-amz-security-token:{TOKEN}\n\n"
        "content-type;host;x-amz-date;x-amz-security-token\n"
        f"{hashlib.sha256(OSIS_BODY).hexdigest()}",
    ),
    (
        "percent-20-in-path",
        "GET",
        f"https://{H}/my%20dir/a%2Fb",
        [],
        b"",
        "service",
        NO_TOKEN,
        f"GET\n/my%2520dir/a%252Fb\n\nhost:{H}\nx-amz-date:{AMZ}\n\nhost;x-amz-date\n{EMPTY}",
    ),
    (
        "percent-20-in-path-s3",
        "GET",
        "https://bucket.s3.amazonaws.com/my%20dir/a b",
        [],
        b"",
        "s3",
        NO_TOKEN,
        "GET\n/my%20dir/a%20b\n\nhost:bucket.s3.amazonaws.com\n"
        f"x-amz-content-sha256:{EMPTY}\nx-amz-date:{AMZ}\n\n"
        f"host;x-amz-content-sha256;x-amz-date\n{EMPTY}",
    ),
    (
        "dot-and-double-slash",
        "GET",
        f"https://{H}/a/./b//c/../d/",
        [],
        b"",
        "service",
        NO_TOKEN,
        f"GET\n/a/b/d/\n\nhost:{H}\nx-amz-date:{AMZ}\n\nhost;x-amz-date\n{EMPTY}",
    ),
    (
        "pre-encoded-query-key-prefix-order",
        "GET",
        f"https://{H}/?b=2&a=1&a-b=3&q=hello%20world&p=%2Fx%3Ay&t=~",
        [],
        b"",
        "service",
        NO_TOKEN,
        "GET\n/\na=1&a-b=3&b=2&p=%2Fx%3Ay&q=hello%20world&t=~\n"
        f"host:{H}\nx-amz-date:{AMZ}\n\nhost;x-amz-date\n{EMPTY}",
    ),
    (
        "header-inner-whitespace-runs",
        "GET",
        f"https://{H}/",
        [("X-Amz-Meta-Note", "  a   b \t c  ")],
        b"",
        "service",
        NO_TOKEN,
        f"GET\n/\n\nhost:{H}\nx-amz-date:{AMZ}\nx-amz-meta-note:a b c\n\n"
        f"host;x-amz-date;x-amz-meta-note\n{EMPTY}",
    ),
    (
        "raw-reserved-query",
        "GET",
        f"https://{H}/?q=a b&p=/x:y&s=*",
        [],
        b"",
        "service",
        NO_TOKEN,
        f"GET\n/\np=%2Fx%3Ay&q=a%20b&s=%2A\nhost:{H}\nx-amz-date:{AMZ}\n\nhost;x-amz-date\n{EMPTY}",
    ),
    (
        "repeated-header",
        "GET",
        f"https://{H}/",
        [("X-Amz-Meta-Tag", "one"), ("x-amz-meta-tag", "  two  "), ("X-AMZ-META-TAG", "three")],
        b"",
        "service",
        NO_TOKEN,
        f"GET\n/\n\nhost:{H}\nx-amz-date:{AMZ}\nx-amz-meta-tag:one,two,three\n\n"
        f"host;x-amz-date;x-amz-meta-tag\n{EMPTY}",
    ),
]


@pytest.mark.parametrize(
    ("method", "url", "headers", "body", "service", "creds", "canonical"),
    [case[1:] for case in EDGE_CASES],
    ids=[case[0] for case in EDGE_CASES],
)
def test_edge_case_matches_independent_computation(
    method: str,
    url: str,
    headers: list[tuple[str, str]],
    body: bytes,
    service: str,
    creds: Credentials,
    canonical: str,
) -> None:
    result = signer.sign(
        method,
        url,
        headers,
        body,
        credentials=creds,
        service=service,
        region="us-east-1",
        when=WHEN,
    )
    assert result.canonical_request == canonical
    expected = ref_signature(SECRET, AMZ, "us-east-1", service, canonical)
    assert result.signature == expected
    signed = canonical.split("\n")[-2]
    assert result.authorization == (
        f"AWS4-HMAC-SHA256 Credential={AKID}/20240102/us-east-1/{service}/aws4_request, "
        f"SignedHeaders={signed}, Signature={expected}"
    )


def test_osis_push_headers_to_add_in_order() -> None:
    result = signer.sign(
        "POST",
        f"https://{OSIS_HOST}/log/ingest",
        HTTPX_LIKE,
        OSIS_BODY,
        credentials=CREDS,
        service="osis",
        region="us-east-1",
        when=WHEN,
    )
    assert [name for name, _ in result.headers] == [
        "X-Amz-Date",
        "X-Amz-Security-Token",
        "Authorization",
    ]
    assert dict(result.headers)["X-Amz-Security-Token"] == TOKEN
    assert dict(result.headers)["X-Amz-Date"] == AMZ
    # Authorization keeps ", " between its parts (OpenSearch Serverless needs the space).
    assert result.authorization.count(", ") == 2


def test_httpx_wire_form_of_raw_query_signs_like_raw_and_pre_encoded() -> None:
    raw = f"https://{H}/?q=a b&p=/x:y&s=*"
    wire = str(httpx.Request("GET", raw).url)
    assert wire != raw  # httpx encodes the space, leaves / : * raw
    pre_encoded = f"https://{H}/?q=a%20b&p=%2Fx%3Ay&s=%2A"
    signatures = {
        signer.sign(
            "GET", u, credentials=NO_TOKEN, service="es", region="eu-west-1", when=WHEN
        ).signature
        for u in (raw, wire, pre_encoded)
    }
    assert len(signatures) == 1


# --- 3. differential test against botocore -----------------------------------------------------

BOTO_FROZEN = "get_current_datetime"
UNRESERVED = string.ascii_letters + string.digits + "-._~"
SUB_DELIMS = "!$&'()*+,;=:@"
HEADER_VALUE_CHARS = string.ascii_letters + string.digits + string.punctuation + " \t"
SERVICES = [
    ("osis", "us-east-1"),
    ("es", "eu-west-1"),
    ("aoss", "ap-southeast-2"),
    ("execute-api", "us-west-2"),
    ("sts", "us-gov-west-1"),
]
ORIGINS = [
    ("https", f"{OSIS_HOST}"),
    ("https", "example.amazonaws.com"),
    ("https", "Example.AmazonAWS.com:443"),
    ("https", "localhost:8443"),
    ("http", "localhost:80"),
    ("http", "127.0.0.1:8080"),
    ("https", "[::1]:9200"),
]

segments = st.one_of(
    st.text(alphabet=UNRESERVED + SUB_DELIMS, min_size=1, max_size=6).filter(
        lambda s: s not in (".", "..")
    ),
    st.sampled_from(["%20", "%2F", "%41", "%E2%82%AC", "%25", "a%3Ab", "%7e"]),
)
middle_segments = st.one_of(segments, st.sampled_from([".", "..", ""]))


@st.composite
def paths(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 20)) == 0:
        return ""
    middle = draw(st.lists(middle_segments, max_size=5))
    # botocore keeps no trailing slash after a final dot segment (RFC 3986 does): keep the last
    # segment an ordinary one or empty (a trailing slash).
    last = draw(st.one_of(segments, st.just("")))
    return "/" + "/".join([*middle, last])


query_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=6)


@st.composite
def queries(draw: st.DrawFn) -> str:
    """Canonically encoded queries (botocore sorts the wire form without re-encoding)."""
    pairs = draw(st.lists(st.tuples(query_text.filter(bool), query_text), max_size=5))
    parts = []
    for key, value in pairs:
        key = quote(key, safe="-_.~")
        if not value and draw(st.booleans()):
            parts.append(key)
        else:
            parts.append(f"{key}={quote(value, safe='-_.~')}")
    return "&".join(parts)


header_names = st.one_of(
    st.sampled_from(["content-type", "content-md5", "content-encoding", "x-amz-target"]),
    st.text(alphabet=string.ascii_lowercase + string.digits + "-", min_size=1, max_size=8).map(
        lambda s: f"x-amz-meta-{s}"
    ),
)


@st.composite
def header_sets(draw: st.DrawFn) -> dict[str, str]:
    names = draw(st.lists(header_names, unique=True, max_size=5))
    cases = (str.lower, str.upper, str.title)
    return {
        draw(st.sampled_from(cases))(name): draw(st.text(HEADER_VALUE_CHARS, max_size=16))
        for name in names
    }


tokens = st.one_of(st.none(), st.text(string.ascii_letters + string.digits + "+/=", min_size=1))
moments = st.datetimes(
    min_value=datetime(2015, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
)


def botocore_sign(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    token: str | None,
    service: str,
    region: str,
    when: datetime,
    auth_class: type[botocore.auth.SigV4Auth] = botocore.auth.SigV4Auth,
    **auth_args: Any,
) -> botocore.awsrequest.AWSRequest:
    request = botocore.awsrequest.AWSRequest(method=method, url=url, headers=headers, data=body)
    creds = botocore.credentials.Credentials(AKID, SECRET, token)
    naive = when.astimezone(UTC).replace(tzinfo=None)
    with mock.patch.object(botocore.auth, BOTO_FROZEN, return_value=naive):
        auth_class(creds, service, region, **auth_args).add_auth(request)
    return request


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]),
    origin=st.sampled_from(ORIGINS),
    path=paths(),
    query=queries(),
    headers=header_sets(),
    with_host=st.booleans(),
    body=st.binary(max_size=64),
    token=tokens,
    place=st.sampled_from(SERVICES),
    when=moments,
)
def test_matches_botocore(
    method: str,
    origin: tuple[str, str],
    path: str,
    query: str,
    headers: dict[str, str],
    with_host: bool,
    body: bytes,
    token: str | None,
    place: tuple[str, str],
    when: datetime,
) -> None:
    scheme, authority = origin
    url = f"{scheme}://{authority}{path}" + (f"?{query}" if query else "")
    if with_host:
        headers = {"Host": authority.lower().removesuffix(":443").removesuffix(":80"), **headers}
    service, region = place
    theirs = botocore_sign(method, url, dict(headers), body, token, service, region, when)
    ours = signer.sign(
        method,
        url,
        list(headers.items()),
        body,
        credentials=Credentials(AKID, SECRET, token),
        service=service,
        region=region,
        when=when,
    )
    assert ours.authorization == theirs.headers["Authorization"]
    assert dict(ours.headers)["X-Amz-Date"] == theirs.headers["X-Amz-Date"]
    assert dict(ours.headers).get("X-Amz-Security-Token") == theirs.headers.get(
        "X-Amz-Security-Token"
    )
    # Every generated header is in the default signed set, so both sign all of them.
    assert set(ours.signed_headers.split(";")) == {n.lower() for n in headers} | {
        "host",
        "x-amz-date",
        *(["x-amz-security-token"] if token else []),
    }


@settings(max_examples=300, deadline=None)
@given(
    segs=st.lists(st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=6)),
    query=queries(),
    body=st.binary(max_size=64),
    token=tokens,
    when=moments,
)
def test_matches_botocore_s3(
    segs: list[str], query: str, body: bytes, token: str | None, when: datetime
) -> None:
    # S3 signs the key encoded once; botocore uses the wire path as it is, so the wire path is
    # written the way botocore's own serializer writes keys (all but "/" and "~" escaped).
    path = "/" + "/".join(quote(s, safe="/~") for s in segs)
    url = f"https://bucket.s3.us-west-2.amazonaws.com{path}" + (f"?{query}" if query else "")
    theirs = botocore_sign(
        "PUT", url, {}, body, token, "s3", "us-west-2", when, botocore.auth.S3SigV4Auth
    )
    ours = signer.sign(
        "PUT",
        url,
        (),
        body,
        credentials=Credentials(AKID, SECRET, token),
        service="s3",
        region="us-west-2",
        when=when,
    )
    assert ours.authorization == theirs.headers["Authorization"]
    assert dict(ours.headers)["X-Amz-Content-Sha256"] == theirs.headers["X-Amz-Content-SHA256"]


@settings(max_examples=300, deadline=None)
@given(
    path=paths(),
    query=queries(),
    token=tokens,
    place=st.sampled_from(SERVICES),
    when=moments,
    expires=st.integers(1, signer.MAX_EXPIRES),
)
def test_presign_matches_botocore(
    path: str, query: str, token: str | None, place: tuple[str, str], when: datetime, expires: int
) -> None:
    # botocore rebuilds the query through a dict: keep keys unique for it.
    seen: set[str] = set()
    unique = []
    for part in query.split("&") if query else []:
        key = part.partition("=")[0]
        if key not in seen:
            seen.add(key)
            unique.append(part)
    query = "&".join(unique)
    url = f"https://{H}{path}" + (f"?{query}" if query else "")
    service, region = place
    theirs = botocore_sign(
        "GET",
        url,
        {},
        b"",
        token,
        service,
        region,
        when,
        botocore.auth.SigV4QueryAuth,
        expires=expires,
    )
    ours = signer.presign(
        "GET",
        url,
        credentials=Credentials(AKID, SECRET, token),
        service=service,
        region=region,
        when=when,
        expires=expires,
    )
    assert ours.signature == theirs.url.rpartition("&X-Amz-Signature=")[2]


def test_s3_path_is_the_key_encoded_once() -> None:
    # Decoded, then encoded once: a raw character and its escape are the same key, and so are
    # "%2F" and "/" (botocore never sends "%2F" for S3; it keeps the wire path as it is).
    paths = ["/a b/c:d/%7Ee/f%2Fg", "/a%20b/c%3Ad/~e/f/g"]
    canonical = {
        signer.sign(
            "GET", f"https://b.s3.amazonaws.com{p}", credentials=NO_TOKEN, service="s3", region="r"
        ).canonical_request.split("\n")[1]
        for p in paths
    }
    assert canonical == {"/a%20b/c%3Ad/~e/f/g"}
    # ... and neither normalised nor double-encoded.
    dots = signer.sign(
        "GET",
        "https://b.s3.amazonaws.com/a/./b//c%20",
        credentials=NO_TOKEN,
        service="s3",
        region="r",
    )
    assert dots.canonical_request.split("\n")[1] == "/a/./b//c%20"


def test_raw_reserved_query_botocore_differs_and_we_match_the_spec() -> None:
    url = f"https://{H}/?q=a b&p=/x:y&s=*"
    ours = signer.sign(
        "GET", url, credentials=NO_TOKEN, service="service", region="us-east-1", when=WHEN
    )
    spec = (
        f"GET\n/\np=%2Fx%3Ay&q=a%20b&s=%2A\nhost:{H}\nx-amz-date:{AMZ}\n\nhost;x-amz-date\n{EMPTY}"
    )
    assert ours.canonical_request == spec
    assert ours.signature == ref_signature(SECRET, AMZ, "us-east-1", "service", spec)
    theirs = botocore_sign("GET", url, {}, b"", None, "service", "us-east-1", WHEN)
    assert theirs.headers["Authorization"] != ours.authorization
    # botocore sorts the raw pairs without decoding and re-encoding them:
    auth = botocore.auth.SigV4Auth(botocore.credentials.Credentials(AKID, SECRET), "service", "x")
    assert auth.canonical_query_string(botocore.awsrequest.AWSRequest("GET", url)) == (
        "p=/x:y&q=a b&s=*"
    )


# --- the API's rules ---------------------------------------------------------------------------


def _sign(**kwargs: Any) -> signer.SigV4Signature:
    options: dict[str, Any] = {
        "method": "POST",
        "url": f"https://{OSIS_HOST}/log/ingest",
        "headers": HTTPX_LIKE,
        "body": OSIS_BODY,
        "credentials": CREDS,
        "service": "osis",
        "region": "us-east-1",
        "when": WHEN,
    }
    options.update(kwargs)
    return signer.sign(**options)


def test_default_policy_never_signs_hop_by_hop_headers() -> None:
    headers = [*HTTPX_LIKE, ("Content-Encoding", "gzip"), ("Content-MD5", "x"), ("Expect", "100")]
    headers += [("Transfer-Encoding", "chunked"), ("X-Amz-Target", "t"), ("X-Custom", "c")]
    result = _sign(headers=headers)
    assert result.signed_headers == (
        "content-encoding;content-md5;content-type;host;x-amz-date;x-amz-security-token;"
        "x-amz-target"
    )


def test_also_sign_adds_names_and_refuses_never_signed_ones() -> None:
    result = _sign(headers=[*HTTPX_LIKE, ("X-Custom", "c")], also_sign=["X-Custom"])
    assert "x-custom" in result.signed_headers.split(";")
    for name in ("User-Agent", "content-length", "Accept", "Connection", "Expect"):
        with pytest.raises(InvalidParameterError, match="never signed"):
            _sign(also_sign=[name])


def test_signed_headers_override_signs_exactly_what_is_named() -> None:
    result = _sign(signed_headers=["content-length"])
    assert result.signed_headers == "content-length;host;x-amz-date;x-amz-security-token"
    every = _sign(signed_headers="all")
    assert every.signed_headers == (
        "accept;accept-encoding;connection;content-length;content-type;host;user-agent;"
        "x-amz-date;x-amz-security-token"
    )
    with pytest.raises(InvalidParameterError):
        _sign(signed_headers=["content-type"], also_sign=["x-custom"])


def test_mapping_and_pairs_sign_alike() -> None:
    assert _sign(headers=dict(HTTPX_LIKE)).signature == _sign().signature


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://Example.COM/", "example.com"),
        ("https://example.com:443/", "example.com"),
        ("https://example.com:8443/x", "example.com:8443"),
        ("http://example.com:80/", "example.com"),
        ("http://example.com:443/", "example.com:443"),
        ("https://user:pw@example.com/", "example.com"),
        ("https://[::1]:443/", "[::1]"),
        ("https://[::1]:9200/", "[::1]:9200"),
        ("https://example.com", "example.com"),
        ("https://example.com?a=1#frag", "example.com"),
    ],
)
def test_host_from_url(url: str, host: str) -> None:
    result = signer.sign("GET", url, credentials=NO_TOKEN, service="es", region="us-east-1")
    assert f"\nhost:{host}\n" in result.canonical_request


def test_host_header_wins_over_url() -> None:
    result = _sign(headers=[("Host", "proxy.internal:8080")])
    assert "\nhost:proxy.internal:8080\n" in result.canonical_request


def test_payload_options() -> None:
    unsigned = _sign(payload_hash=signer.UNSIGNED_PAYLOAD)
    assert unsigned.canonical_request.endswith("\nUNSIGNED-PAYLOAD")
    given_hash = hashlib.sha256(b"elsewhere").hexdigest()
    precomputed = _sign(payload_hash=given_hash, body=b"")
    assert precomputed.payload_hash == given_hash
    assert precomputed.canonical_request.endswith(given_hash)
    for bad in ("ABC", "A" * 64, "g" * 64, ""):
        with pytest.raises(InvalidParameterError, match="payload_hash"):
            _sign(payload_hash=bad)
    # A caller's X-Amz-Content-Sha256 header is the payload hash (as in botocore).
    header = _sign(headers=[*HTTPX_LIKE, ("X-Amz-Content-Sha256", given_hash)])
    assert header.payload_hash == given_hash


def test_content_sha256_header() -> None:
    assert "X-Amz-Content-Sha256" not in dict(_sign().headers)
    on = _sign(content_sha256=True)
    assert [n for n, _ in on.headers] == [
        "X-Amz-Date",
        "X-Amz-Security-Token",
        "X-Amz-Content-Sha256",
        "Authorization",
    ]
    assert dict(on.headers)["X-Amz-Content-Sha256"] == hashlib.sha256(OSIS_BODY).hexdigest()
    assert "x-amz-content-sha256" in on.signed_headers
    s3 = signer.sign(
        "GET", "https://b.s3.amazonaws.com/k", credentials=NO_TOKEN, service="s3", region="x"
    )
    assert [n for n, _ in s3.headers] == ["X-Amz-Date", "X-Amz-Content-Sha256", "Authorization"]


def test_session_token_sent_but_not_signed() -> None:
    result = _sign(sign_session_token=False)
    assert dict(result.headers)["X-Amz-Security-Token"] == TOKEN
    assert "x-amz-security-token" not in result.signed_headers
    assert TOKEN not in result.canonical_request


def test_resigning_a_signed_request_replaces_the_signer_headers() -> None:
    first = _sign(content_sha256=True)
    again = _sign(headers=[*HTTPX_LIKE, *first.headers], content_sha256=True)
    assert again.canonical_request == first.canonical_request
    assert again.headers == first.headers


def test_default_time_is_now() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    result = _sign(when=None)
    after = datetime.now(UTC)
    stamped = datetime.strptime(result.x_amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert before <= stamped <= after


def test_naive_time_and_bad_inputs_are_refused() -> None:
    with pytest.raises(InvalidParameterError, match="timezone"):
        _sign(when=datetime(2024, 1, 1))
    with pytest.raises(InvalidParameterError, match="absolute"):
        _sign(url="/log/ingest")
    with pytest.raises(InvalidParameterError, match="no host"):
        _sign(url="https:///log/ingest")
    with pytest.raises(InvalidParameterError, match="empty"):
        _sign(region="")
    with pytest.raises(InvalidParameterError, match="secret"):
        _sign(credentials=Credentials(AKID, ""))


def test_secrets_never_in_repr_errors_or_debug_output() -> None:
    secret = "SECRET/never+shown"
    token = "TOKEN/never+shown=="
    creds = Credentials(AKID, secret, token)
    result = _sign(credentials=creds)
    presigned = signer.presign(
        "GET", f"https://{H}/?a=1", credentials=creds, service="s", region="r", when=WHEN
    )
    shown = [
        repr(result),
        str(result),
        result.debug_text(),
        repr(presigned),
        presigned.debug_text(),
    ]
    for text in shown:
        assert secret not in text
        assert token not in text
        assert quote(token, safe="") not in text
    assert "x-amz-security-token:<redacted>" in result.debug_text()
    assert "X-Amz-Security-Token=<redacted>&" in presigned.debug_text()
    assert result.signature in repr(result)
    # ... while the headers and the URL do carry the token, as they must.
    assert dict(result.headers)["X-Amz-Security-Token"] == token
    assert quote(token, safe="") in presigned.url
    bad_calls: list[dict[str, Any]] = [
        {"payload_hash": secret},
        {"url": secret},
        {"also_sign": ["user-agent"]},
        {"signed_headers": token},
        {"when": datetime(2024, 1, 1)},
    ]
    for bad in bad_calls:
        with pytest.raises(RolesAnywhereError) as caught:
            _sign(credentials=creds, **bad)
        assert secret not in str(caught.value) and token not in str(caught.value)
        assert "\n" not in str(caught.value)


def test_signing_key_cache_is_bounded_and_drops_old_dates() -> None:
    signer.clear_key_cache()
    for i in range(3 * signer.KEY_CACHE_SIZE):
        _sign(credentials=Credentials(AKID, f"secret-{i}"))
    assert len(signer._KEY_CACHE) == signer.KEY_CACHE_SIZE
    assert all(key[0] != "secret-0" for key in signer._KEY_CACHE)
    _sign(when=WHEN + timedelta(days=1))
    assert {key[1] for key in signer._KEY_CACHE} == {"20240103"}
    # A cached key signs exactly like a fresh one.
    cached = _sign(when=WHEN + timedelta(days=1))
    signer.clear_key_cache()
    assert not signer._KEY_CACHE
    assert _sign(when=WHEN + timedelta(days=1)).signature == cached.signature


def test_presign_url_and_params() -> None:
    result = signer.presign(
        "GET",
        f"https://{H}/path?b=2&a=1#frag",
        credentials=CREDS,
        service="service",
        region="us-east-1",
        when=WHEN,
        expires=60,
    )
    names = [name for name, _ in result.params]
    assert names == [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-SignedHeaders",
        "X-Amz-Expires",
        "X-Amz-Security-Token",
        "X-Amz-Signature",
    ]
    assert result.url == f"https://{H}/path?b=2&a=1&{result.query}"
    assert "&X-Amz-Expires=60&" in result.url
    assert f"X-Amz-Credential={AKID}%2F20240102%2Fus-east-1%2Fservice%2Faws4_request" in result.url
    canonical = (
        "GET\n/path\n"
        "X-Amz-Algorithm=AWS4-HMAC-SHA256"
        f"&X-Amz-Credential={AKID}%2F20240102%2Fus-east-1%2Fservice%2Faws4_request"
        f"&X-Amz-Date={AMZ}&X-Amz-Expires=60"
        f"&X-Amz-Security-Token={quote(TOKEN, safe='-_.~')}"
        "&X-Amz-SignedHeaders=host&a=1&b=2\n"
        f"host:{H}\n\nhost\n{EMPTY}"
    )
    assert result.canonical_request == canonical
    assert result.signature == ref_signature(SECRET, AMZ, "us-east-1", "service", canonical)
    bare = signer.presign("GET", f"https://{H}", credentials=NO_TOKEN, service="s", region="r")
    assert bare.url.startswith(f"https://{H}?X-Amz-Algorithm=")


def test_presign_rules() -> None:
    options: dict[str, Any] = {"credentials": CREDS, "service": "s", "region": "r"}
    for expires in (0, signer.MAX_EXPIRES + 1, True):
        with pytest.raises(InvalidParameterError, match="expires"):
            signer.presign("GET", f"https://{H}/", expires=expires, **options)
    signed = signer.presign("GET", f"https://{H}/", **options)
    with pytest.raises(InvalidParameterError, match="pre-signed"):
        signer.presign("GET", signed.url, **options)
    s3 = signer.presign(
        "GET", "https://b.s3.amazonaws.com/k", credentials=CREDS, service="s3", region="r"
    )
    assert s3.canonical_request.endswith("\nUNSIGNED-PAYLOAD")
