"""AWS Signature Version 4 (``AWS4-HMAC-SHA256``) for any request, sans-I/O.

Pure functions over ``str``/``bytes``: give the method, the URL, the headers and the body (or its
hash), get back the headers to set (:func:`sign`) or the query parameters and URL of a
pre-signed request (:func:`presign`). Nothing here does I/O or imports an HTTP client.

With httpx::

    signed = sign(request.method, str(request.url), request.headers.multi_items(),
                  request.content, credentials=creds, service="osis", region="us-east-1")
    request.headers.update(signed.headers)

Canonicalisation follows the SigV4 specification (see :mod:`rolesanywhere.sigv4.canonical`, checked
against the aws-c-auth suite): path normalised and encoded on top of its wire form for every
service but ``s3`` (decoded and encoded once, not normalised); query keys and values decoded and
re-encoded, sorted; header names lower-cased and sorted, values trimmed and inner whitespace runs
collapsed, repeated names joined with ``,``.

Headers signed by default: ``host``, ``content-type``, ``content-md5``, ``content-encoding``,
every ``x-amz-*`` header, and those named in ``also_sign``. Hop-by-hop and proxy-rewritten
headers (:data:`NEVER_SIGNED`: ``connection``, ``user-agent``, ``accept``, ``accept-encoding``,
``content-length``, ``expect``, ``transfer-encoding``, …) are refused in ``also_sign`` with an
error, because a proxy or the HTTP client may change them and OpenSearch Serverless rejects a
request that signs them. ``signed_headers=`` is the expert override: it signs exactly the names
given (or ``"all"`` of the request's headers), blocked ones included; the test suite needs it.

``host`` comes from the ``Host`` header when there is one, else from the URL's authority
(lower-cased, without user info, with the port only when not the scheme's default); the HTTP
client must send that same ``Host``. Headers the signer sets (``Authorization``,
``X-Amz-Date``, ``X-Amz-Security-Token``, ``X-Amz-Content-Sha256`` when it adds it) replace any
already in ``headers`` (so re-signing a retried request is safe): set them, do not append them.

The derived signing key is cached per (secret, date, region, service) in a small bounded cache
(:data:`KEY_CACHE_SIZE` entries; deriving a key drops those of other dates);
:func:`clear_key_cache` empties it. Secrets never appear in a ``repr``, an error message or
:meth:`SigV4Signature.debug_text`; the session token does appear in the headers, the query and
the exact :attr:`SigV4Signature.canonical_request`, which is what gets signed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Literal, TypeAlias

from rolesanywhere.credentials import Credentials
from rolesanywhere.errors import InvalidParameterError
from rolesanywhere.sigv4 import canonical as sigv4

__all__ = [
    "ALGORITHM",
    "DEFAULT_SIGNED",
    "KEY_CACHE_SIZE",
    "MAX_EXPIRES",
    "NEVER_SIGNED",
    "STREAMING_UNSIGNED_PAYLOAD_TRAILER",
    "UNSIGNED_PAYLOAD",
    "HeadersInput",
    "PresignedRequest",
    "SigV4Signature",
    "clear_key_cache",
    "presign",
    "sign",
]

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = sigv4.UNSIGNED_PAYLOAD
STREAMING_UNSIGNED_PAYLOAD_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
#: Header names signed by default, on top of every ``x-amz-*`` header.
DEFAULT_SIGNED = frozenset({"host", "content-type", "content-md5", "content-encoding"})
#: Names ``also_sign`` refuses: hop-by-hop, rewritten by proxies or clients, or set by the signer.
NEVER_SIGNED = frozenset(
    {
        "accept",
        "accept-encoding",
        "authorization",
        "connection",
        "content-length",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
    }
)
#: The longest pre-signed URL validity SigV4 allows (7 days).
MAX_EXPIRES = 604800
KEY_CACHE_SIZE = 8

#: Request headers: a mapping, or ``(name, value)`` pairs where a name may repeat.
HeadersInput: TypeAlias = Mapping[str, str] | Iterable[tuple[str, str]]
Body: TypeAlias = bytes | bytearray | memoryview

_SET_BY_SIGNER = frozenset({"authorization", "x-amz-date", "x-amz-security-token"})
_DEFAULT_PORTS = {"http": "80", "https": "443"}
_HEX_DIGITS = frozenset("0123456789abcdef")
_SPECIAL_PAYLOADS = frozenset({UNSIGNED_PAYLOAD, STREAMING_UNSIGNED_PAYLOAD_TRAILER})
_EMPTY_SHA256 = sigv4.EMPTY_SHA256
_sha256 = hashlib.sha256
_hmac_digest = hmac.digest
_Hash: TypeAlias = "hashlib._Hash"
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))

#: (secret, date, region, service) → (kSigning's HMAC inner and outer states, credential scope)
_KEY_CACHE: dict[tuple[str, str, str, str], tuple[_Hash, _Hash, str]] = {}
#: The last session token seen and its canonical header value (tokens are long; do it once).
_TOKEN_SLOT: list[tuple[str, str]] = [("", "")]


# --- results ----------------------------------------------------------------------------------


def _redact_token(text: str) -> str:
    """``text`` with the session token (header line or query parameter) shown as ``<redacted>``."""
    for marker, stops in (("\nx-amz-security-token:", "\n"), ("X-Amz-Security-Token=", "&\n")):
        start = text.find(marker)
        while start >= 0:
            start += len(marker)
            end = start
            while end < len(text) and text[end] not in stops:
                end += 1
            text = f"{text[:start]}<redacted>{text[end:]}"
            start = text.find(marker, start)
    return text


@dataclass(slots=True, repr=False)
class SigV4Signature:
    """The result of :func:`sign`: the signature, the headers that carry it, and how they were
    computed (not a request: :class:`rolesanywhere.session.protocol.SignedRequest` is one).

    ``headers`` holds, in this order, ``X-Amz-Date``, ``X-Amz-Security-Token`` (with a session
    token), ``X-Amz-Content-Sha256`` (when asked, or for ``s3``) and ``Authorization``.
    Read-only by convention (not frozen: a frozen dataclass costs 1 µs more per signature).
    """

    headers: tuple[tuple[str, str], ...]
    #: The exact canonical request (it holds the session token when that is signed).
    canonical_request: str
    string_to_sign: str
    signature: str
    signed_headers: str
    x_amz_date: str
    payload_hash: str

    @property
    def authorization(self) -> str:
        """The ``Authorization`` value."""
        return self.headers[-1][1]

    def debug_text(self) -> str:
        """Canonical request and string to sign for logs, the session token redacted."""
        return (
            f"CanonicalRequest:\n{_redact_token(self.canonical_request)}\n"
            f"StringToSign:\n{self.string_to_sign}"
        )

    def __repr__(self) -> str:
        return (
            f"SigV4Signature(x_amz_date={self.x_amz_date!r}, "
            f"signed_headers={self.signed_headers!r}, signature={self.signature!r})"
        )


@dataclass(slots=True, repr=False)
class PresignedRequest:
    """The result of :func:`presign`.

    ``params`` are the decoded query parameters added, in the order they are appended:
    ``X-Amz-Algorithm``, ``X-Amz-Credential``, ``X-Amz-Date``, ``X-Amz-SignedHeaders``,
    ``X-Amz-Expires``, ``X-Amz-Security-Token`` (with a session token), ``X-Amz-Signature``;
    ``query`` is their encoded form and ``url`` the request URL with them appended (fragment
    dropped). The request must still carry the signed headers (at least ``Host``).
    """

    url: str
    params: tuple[tuple[str, str], ...]
    query: str
    canonical_request: str
    string_to_sign: str
    signature: str
    signed_headers: str
    x_amz_date: str
    payload_hash: str

    def debug_text(self) -> str:
        """Canonical request and string to sign for logs, the session token redacted."""
        return (
            f"CanonicalRequest:\n{_redact_token(self.canonical_request)}\n"
            f"StringToSign:\n{self.string_to_sign}"
        )

    def __repr__(self) -> str:
        return (
            f"PresignedRequest(x_amz_date={self.x_amz_date!r}, "
            f"signed_headers={self.signed_headers!r}, signature={self.signature!r})"
        )


# --- the signing key --------------------------------------------------------------------------


def clear_key_cache() -> None:
    """Forget every cached signing key and the last session token (the secrets they hold)."""
    _KEY_CACHE.clear()
    _TOKEN_SLOT[0] = ("", "")


def _signing_key(secret: str, date: str, region: str, service: str) -> tuple[_Hash, _Hash, str]:
    """``(inner, outer, credential scope)``, from the bounded cache when possible.

    ``inner`` and ``outer`` are SHA-256 states that have absorbed kSigning XOR ipad and opad:
    HMAC(kSigning, m) is ``outer.copy() + inner.copy().update(m).digest()``, which spares
    OpenSSL's per-call HMAC set-up (about 2 µs of the 3 µs a one-shot HMAC costs here).
    """
    cache_key = (secret, date, region, service)
    found = _KEY_CACHE.get(cache_key)
    if found is not None:
        return found
    key = _hmac_digest(f"AWS4{secret}".encode(), date.encode(), "sha256")
    key = _hmac_digest(key, region.encode(), "sha256")
    key = _hmac_digest(key, service.encode(), "sha256")
    key = _hmac_digest(key, b"aws4_request", "sha256").ljust(64, b"\0")
    entry = (
        _sha256(key.translate(_IPAD)),
        _sha256(key.translate(_OPAD)),
        sigv4.credential_scope(date, region, service),
    )
    # Keys of other dates are no longer useful: drop them, then bound what is left.
    for old in [k for k in list(_KEY_CACHE) if k[1] != date]:
        _KEY_CACHE.pop(old, None)
    while len(_KEY_CACHE) >= KEY_CACHE_SIZE:
        try:
            _KEY_CACHE.pop(next(iter(_KEY_CACHE)), None)
        except (StopIteration, RuntimeError):  # emptied or changed by another thread
            break
    _KEY_CACHE[cache_key] = entry
    return entry


# --- canonicalisation -------------------------------------------------------------------------


def _split_url(url: str) -> tuple[str, str, str]:
    """``(canonical host, path, query)`` of an absolute URL; the fragment is dropped."""
    scheme_end = url.find("://")
    if scheme_end <= 0:
        raise InvalidParameterError("the URL to sign must be absolute (scheme://host/path)")
    scheme = url[:scheme_end].lower()
    rest = url[scheme_end + 3 :]
    fragment = rest.find("#")
    if fragment >= 0:
        rest = rest[:fragment]
    query = ""
    mark = rest.find("?")
    if mark >= 0:
        rest, query = rest[:mark], rest[mark + 1 :]
    slash = rest.find("/")
    if slash >= 0:
        authority, path = rest[:slash], rest[slash:]
    else:
        authority, path = rest, "/"
    host = authority.rpartition("@")[2].lower()
    colon = host.rfind(":")
    if colon >= 0 and colon > host.rfind("]"):
        port = host[colon + 1 :]
        if not port or port == _DEFAULT_PORTS.get(scheme):
            host = host[:colon]
    if not host:
        raise InvalidParameterError("the URL to sign has no host")
    return host, path, query


def _canonical_uri(path: str, normalize: bool, double_encode: bool) -> str:
    if double_encode:
        return sigv4.canonical_path(path, normalize=normalize)
    if normalize:
        path = sigv4.normalize_path(path)
    return sigv4.encode_path_once(path)


def _path_options(
    s3: bool, normalize_path: bool | None, double_encode: bool | None
) -> tuple[bool, bool]:
    """``(normalize, double_encode)`` for the canonical URI: both on by default except for s3."""
    return (
        not s3 if normalize_path is None else normalize_path,
        not s3 if double_encode is None else double_encode,
    )


@lru_cache(maxsize=256)
def _url_view(url: str, normalize: bool, double_encode: bool) -> tuple[str, str, str]:
    """``(host, canonical URI, canonical query)``; cached, as a shipper sends to few URLs."""
    host, path, query = _split_url(url)
    return host, _canonical_uri(path, normalize, double_encode), sigv4.canonical_query(query)


def _payload_hash(payload_hash: str | None, body: Body) -> str:
    if payload_hash is None:
        return _sha256(body).hexdigest() if body else _EMPTY_SHA256
    if (len(payload_hash) == 64 and not payload_hash.strip("0123456789abcdef")) or (
        payload_hash in _SPECIAL_PAYLOADS
    ):
        return payload_hash
    raise InvalidParameterError(
        "payload_hash must be 64 lower-case hex digits, UNSIGNED-PAYLOAD or "
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    )


class _Selection:
    """Which request headers to sign: the default policy plus ``names``, exactly ``names``
    (and ``host``), or all of them. Remembers its answer per header name as written."""

    __slots__ = ("decisions", "every", "exact", "names")

    def __init__(self, names: frozenset[str], *, exact: bool = False, every: bool = False):
        self.names = names
        self.exact = exact
        self.every = every
        #: header name as given → its lower-case form if signed, else "".
        self.decisions: dict[str, str] = {}

    def decide(self, name: str) -> str:
        lname = name.lower()
        if lname in _SET_BY_SIGNER:
            signed = False
        elif self.exact:
            signed = self.every or lname in self.names or lname == "host"
        else:
            signed = lname in DEFAULT_SIGNED or lname.startswith("x-amz-") or lname in self.names
        if len(self.decisions) >= 256:
            self.decisions.clear()
        self.decisions[name] = decision = lname if signed else ""
        return decision


_DEFAULT_SELECTION = _Selection(frozenset())
_EVERY_HEADER = _Selection(frozenset(), exact=True, every=True)


def _header_filter(
    also_sign: Iterable[str], signed_headers: Iterable[str] | Literal["all"] | None
) -> _Selection:
    if signed_headers is not None:
        if also_sign:
            raise InvalidParameterError("give either also_sign or signed_headers, not both")
        if signed_headers == "all":
            return _EVERY_HEADER
        if isinstance(signed_headers, str):
            raise InvalidParameterError('signed_headers must be "all" or a collection of names')
        return _Selection(frozenset(name.lower() for name in signed_headers), exact=True)
    if not also_sign:
        return _DEFAULT_SELECTION
    if isinstance(also_sign, str):
        raise InvalidParameterError("also_sign must be a collection of header names")
    extra = frozenset(name.lower() for name in also_sign)
    refused = extra & NEVER_SIGNED
    if refused:
        raise InvalidParameterError(
            f"never signed: {', '.join(sorted(refused))} (a proxy or the HTTP client may "
            "change them); pass signed_headers= to override"
        )
    return _Selection(extra)


def _collect_headers(
    headers: HeadersInput, selection: _Selection
) -> tuple[dict[str, str], str | None]:
    """``(lower-case name → canonical value, caller's x-amz-content-sha256)`` of the headers to
    sign, leaving out those the signer sets."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    merged: dict[str, str] = {}
    caller_sha: str | None = None
    decisions = selection.decisions
    for name, value in items:
        lname = decisions.get(name)
        if lname is None:
            lname = selection.decide(name)
        if not lname:
            continue
        # sigv4.canonical_header_value, inlined: this loop is the hot path.
        value = value.strip()
        if "  " in value or not value.isprintable():
            value = " ".join(value.split())
        if lname == "x-amz-content-sha256":
            caller_sha = value
        previous = merged.get(lname)
        merged[lname] = value if previous is None else f"{previous},{value}"
    return merged, caller_sha


def _canonical_token(token: str) -> str:
    slot = _TOKEN_SLOT[0]
    if slot[0] is token or slot[0] == token:
        return slot[1]
    canonical = sigv4.canonical_header_value(token)
    _TOKEN_SLOT[0] = (token, canonical)
    return canonical


def _checked_selection(
    credentials: Credentials,
    service: str,
    region: str,
    when: datetime | None,
    also_sign: Iterable[str],
    signed_headers: Iterable[str] | Literal["all"] | None,
    expires: int | None = None,
) -> _Selection:
    """Check the arguments :func:`sign` and :func:`presign` share (and ``expires``, given);
    return the headers to sign."""
    if not credentials.access_key_id or not credentials.secret_access_key:
        raise InvalidParameterError("credentials need an access key id and a secret access key")
    if not service or not region:
        raise InvalidParameterError("service and region must not be empty")
    if when is not None and when.utcoffset() is None:
        raise InvalidParameterError("when must be a timezone-aware datetime")
    if expires is not None and (
        isinstance(expires, bool)
        or not isinstance(expires, int)
        or not (1 <= expires <= MAX_EXPIRES)
    ):
        raise InvalidParameterError(f"expires must be 1..{MAX_EXPIRES} seconds")
    return _header_filter(also_sign, signed_headers)


# --- signing ----------------------------------------------------------------------------------


def _hmac_hex(inner: _Hash, outer: _Hash, message: bytes) -> str:
    inner = inner.copy()
    inner.update(message)
    outer = outer.copy()
    outer.update(inner.digest())
    return outer.hexdigest()


def _key_and_headers(
    credentials: Credentials,
    service: str,
    region: str,
    when: datetime | None,
    headers: HeadersInput,
    selection: _Selection,
    host: str,
) -> tuple[str, tuple[_Hash, _Hash, str], dict[str, str], str | None]:
    """``(X-Amz-Date, signing key, headers to sign with host, caller's x-amz-content-sha256)``."""
    x_amz_date = sigv4.amz_date(when)
    key = _signing_key(credentials.secret_access_key, x_amz_date[:8], region, service)
    merged, caller_sha = _collect_headers(headers, selection)
    if "host" not in merged:
        merged["host"] = host
    return x_amz_date, key, merged, caller_sha


def _signature(
    key: tuple[_Hash, _Hash, str],
    x_amz_date: str,
    method: str,
    canonical_uri: str,
    canonical_query: str,
    merged: Mapping[str, str],
    names: list[str],
    signed: str,
    payload: str,
) -> tuple[str, str, str]:
    """``(canonical request, string to sign, signature)``."""
    inner, outer, scope = key
    canonical = sigv4.canonical_request(
        method,
        canonical_uri,
        canonical_query,
        "".join([f"{name}:{merged[name]}\n" for name in names]),
        signed,
        payload,
    )
    to_sign = sigv4.string_to_sign(ALGORITHM, x_amz_date, scope, canonical)
    return canonical, to_sign, _hmac_hex(inner, outer, to_sign.encode())


def sign(
    method: str,
    url: str,
    headers: HeadersInput = (),
    body: Body = b"",
    *,
    credentials: Credentials,
    service: str,
    region: str,
    when: datetime | None = None,
    payload_hash: str | None = None,
    content_sha256: bool | None = None,
    also_sign: Iterable[str] = (),
    signed_headers: Iterable[str] | Literal["all"] | None = None,
    sign_session_token: bool = True,
    normalize_path: bool | None = None,
    double_encode: bool | None = None,
) -> SigV4Signature:
    """Sign a request with ``AWS4-HMAC-SHA256`` in the ``Authorization`` header.

    ``url`` is the request URL as sent (wire form; raw characters an HTTP client leaves in the
    query, such as space, ``/``, ``:``, ``*``, are fine). ``body`` is hashed unless
    ``payload_hash`` gives its lower-case hex SHA-256, ``UNSIGNED-PAYLOAD`` or
    ``STREAMING-UNSIGNED-PAYLOAD-TRAILER``; without either, an ``X-Amz-Content-Sha256`` header
    already in ``headers`` is taken as the payload hash (as botocore does).
    ``content_sha256`` adds (and signs) ``X-Amz-Content-Sha256``: on by default for ``s3`` only.
    ``sign_session_token=False`` sends the token without signing it. ``normalize_path`` and
    ``double_encode`` default to on except for ``s3``. ``when`` (timezone-aware) defaults to now.
    """
    selection = _checked_selection(credentials, service, region, when, also_sign, signed_headers)
    s3 = service == "s3"
    host, canonical_uri, canonical_query = _url_view(
        url, *_path_options(s3, normalize_path, double_encode)
    )
    x_amz_date, key, merged, caller_sha = _key_and_headers(
        credentials, service, region, when, headers, selection, host
    )
    payload = _payload_hash(caller_sha if payload_hash is None else payload_hash, body)
    merged["x-amz-date"] = x_amz_date
    token = credentials.session_token
    if token and sign_session_token:
        merged["x-amz-security-token"] = _canonical_token(token)
    emit_sha = s3 if content_sha256 is None else content_sha256
    if emit_sha:
        merged["x-amz-content-sha256"] = payload

    names = sorted(merged)
    signed = ";".join(names)
    canonical, to_sign, signature = _signature(
        key, x_amz_date, method, canonical_uri, canonical_query, merged, names, signed, payload
    )
    authorization = sigv4.authorization_value(
        ALGORITHM, credentials.access_key_id, key[2], signed, signature
    )
    if token:
        if emit_sha:
            out: tuple[tuple[str, str], ...] = (
                ("X-Amz-Date", x_amz_date),
                ("X-Amz-Security-Token", token),
                ("X-Amz-Content-Sha256", payload),
                ("Authorization", authorization),
            )
        else:
            out = (
                ("X-Amz-Date", x_amz_date),
                ("X-Amz-Security-Token", token),
                ("Authorization", authorization),
            )
    elif emit_sha:
        out = (
            ("X-Amz-Date", x_amz_date),
            ("X-Amz-Content-Sha256", payload),
            ("Authorization", authorization),
        )
    else:
        out = (("X-Amz-Date", x_amz_date), ("Authorization", authorization))
    return SigV4Signature(out, canonical, to_sign, signature, signed, x_amz_date, payload)


def presign(
    method: str,
    url: str,
    headers: HeadersInput = (),
    body: Body = b"",
    *,
    credentials: Credentials,
    service: str,
    region: str,
    when: datetime | None = None,
    expires: int = 3600,
    payload_hash: str | None = None,
    also_sign: Iterable[str] = (),
    signed_headers: Iterable[str] | Literal["all"] | None = None,
    sign_session_token: bool = True,
    normalize_path: bool | None = None,
    double_encode: bool | None = None,
) -> PresignedRequest:
    """Pre-sign a request: the signature goes in the query string (valid ``expires`` seconds).

    Same arguments as :func:`sign`, except that nothing is added to the headers. The payload
    hash defaults to the body's SHA-256 (``UNSIGNED-PAYLOAD`` for ``s3``).
    """
    selection = _checked_selection(
        credentials, service, region, when, also_sign, signed_headers, expires
    )
    s3 = service == "s3"
    host, path, query = _split_url(url)
    pairs = sigv4.canonical_query_pairs(query)
    if any(k in ("X-Amz-Signature", "X-Amz-Credential") for k, _ in pairs):
        raise InvalidParameterError("the URL is already pre-signed (it has X-Amz-Signature)")
    x_amz_date, key, merged, caller_sha = _key_and_headers(
        credentials, service, region, when, headers, selection, host
    )
    if payload_hash is None and caller_sha is None and s3:
        payload_hash = UNSIGNED_PAYLOAD
    payload = _payload_hash(caller_sha if payload_hash is None else payload_hash, body)
    names = sorted(merged)
    signed = ";".join(names)

    params: list[tuple[str, str]] = [
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", f"{credentials.access_key_id}/{key[2]}"),
        ("X-Amz-Date", x_amz_date),
        ("X-Amz-SignedHeaders", signed),
        ("X-Amz-Expires", str(expires)),
    ]
    token = credentials.session_token
    if token:
        params.append(("X-Amz-Security-Token", token))
    encoded = [(name, sigv4.uri_encode(value)) for name, value in params]
    in_signature = encoded if (sign_session_token or not token) else encoded[:-1]
    canonical, to_sign, signature = _signature(
        key,
        x_amz_date,
        method,
        _canonical_uri(path, *_path_options(s3, normalize_path, double_encode)),
        "&".join([f"{k}={v}" for k, v in sorted(pairs + in_signature)]),
        merged,
        names,
        signed,
        payload,
    )
    params.append(("X-Amz-Signature", signature))
    encoded.append(("X-Amz-Signature", signature))
    added = "&".join([f"{k}={v}" for k, v in encoded])
    base = url.partition("#")[0]
    separator = "" if base.endswith(("?", "&")) else ("&" if "?" in base else "?")
    return PresignedRequest(
        f"{base}{separator}{added}",
        tuple(params),
        added,
        canonical,
        to_sign,
        signature,
        signed,
        x_amz_date,
        payload,
    )
