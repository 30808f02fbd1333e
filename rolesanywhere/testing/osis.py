"""A local Amazon OpenSearch Ingestion (OSIS) pipeline endpoint for offline tests and benchmarks.

A real HTTP(S) server on 127.0.0.1 that behaves like a pipeline's Data Prepper ``http`` source
behind the OSIS front end (PROTOCOL.md §3–4), checks SigV4 (service ``osis``) against the
credentials a :class:`~rolesanywhere.testing.emulator.RolesAnywhereEmulator` issued, and writes what
it accepts to an embedded SQLite database that answers a small part of the OpenSearch query API::

    with OsisEmulator(credentials=roles_anywhere_emulator) as osis:
        ...  # POST {osis.ingest_url}, SigV4-signed for service "osis"
        osis.count(), osis.logs(), osis.search("logs-*", {"sort": [{"@timestamp": "desc"}]})

Ingest (``POST`` to :attr:`OsisEmulator.path` only; other methods there 405, other paths 404),
checked in this order, the first failure answering:

1. a scripted status (:meth:`OsisEmulator.script`), else a seeded random fault (``fault_rate``):
   the status is answered before anything else is looked at and nothing is stored;
2. the body as received over ``max_body_bytes`` (10 MiB): 413;
3. SigV4 (unless ``verify_signatures=False``), recomputed from the wire (raw path and query,
   the signed headers' values, SHA-256 of the body bytes as received or the
   ``X-Amz-Content-SHA256`` value, ``UNSIGNED-PAYLOAD`` honoured), compared in constant time:

   - 403 ``Authorization`` missing or malformed, not ``AWS4-HMAC-SHA256``, scope not
     ``AKID/<date of X-Amz-Date>/<region>/osis/aws4_request``; ``X-Amz-Date`` missing or
     malformed; ``SignedHeaders`` not lower-case and sorted, or naming a header not sent;
     ``host`` and ``x-amz-date`` not signed, nor ``x-amz-content-sha256`` and
     ``x-amz-security-token`` when sent (nor ``content-type`` when sent, only with
     ``require_signed_content_type=True``: SigV4 does not require it, and opensearch-py's
     ``Urllib3AWSV4SignerAuth`` and aws-requests-auth leave it unsigned);
   - 401 unknown access key (``UnrecognizedClientException``), expired credentials at
     :attr:`OsisEmulator.clock` (``ExpiredTokenException``, "The security token included in the
     request is expired");
   - 403 token missing for temporary credentials, or wrong; ``X-Amz-Content-SHA256`` not the
     body's hash; signature mismatch ("The request signature we calculated does not match…");
     ``X-Amz-Date`` more than 5 minutes away from the clock.

   These answers are AWS-shaped (``{"message": …}``, ``X-Amzn-ErrorType``) and never contain a
   secret; :attr:`OsisEmulator.rejections` keeps them, with the canonical request (token
   redacted) for signature mismatches;
4. ``Content-Encoding``: ``gzip`` only with ``compression="gzip"``; otherwise 400, which is what
   Data Prepper answers (it does not decode the body and the JSON parser fails on it). gzip is
   decompressed as a stream and refused with 413 as soon as it passes ``max_body_bytes`` (the
   front end's 10 MiB applies to the decompressed body too), so a gzip bomb costs at most that;
5. the uncompressed body over ``split_threshold`` (when set): 413, to exercise client splitting;
   more than ``max_json_values`` JSON values and keys (default 1,000,000, ``None``: no limit),
   counted before parsing: 413, so that a small body of tiny events (``[{},{},…]`` builds a
   Python object per 1.5 bytes) cannot take gigabytes of memory;
6. the body: UTF-8, one JSON array of JSON objects (a bare object, NDJSON, trailing data,
   ``NaN``, non-object elements, invalid UTF-8 or JSON: 400); more than ``max_batch_events``
   events (when set): 413 (the buffer cannot hold them); an event for which ``reject_if(event)``
   is true (when set): 400, as Data Prepper refuses a record it cannot process;
7. with ``persistent_buffering=True``, an uncompressed body over ``persistent_chunk_bytes``
   (1 MiB) is re-split into chunks and every event whose own JSON exceeds that size is dropped
   *silently*, still answering 200 (counted in :attr:`OsisEmulator.dropped_events`);
8. 200 ``200 OK``. Data Prepper errors have plain-text bodies.

Accepted events get ``@timestamp`` (ISO 8601 UTC with milliseconds, from the event's ``date``
when it is epoch seconds or an ISO 8601 string, else the receive time) and go to the index named by
``index`` (``logs-%{yyyy.MM.dd}``) for the receive time, in UTC, as Data Prepper's OpenSearch sink
does (``index_time="event"`` uses each event's ``@timestamp`` instead).

The query endpoints (``GET /_cat/indices[/PATTERN][?v][&format=json]``,
``GET|POST /{index}/_search``, ``GET|POST /{index}/_count``, index lists and wildcards) need no
signature here; real OpenSearch would require one (service ``es`` or ``aoss``).
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import http
import json
import random
import re
import sqlite3
import threading
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol, Self, cast, overload
from urllib.parse import parse_qs, unquote

from rolesanywhere.sigv4 import canonical as sigv4
from rolesanywhere.testing._server import (
    Answer,
    Handler,
    ServedEmulator,
    authorization_parameters,
    clock_skew_error,
    origin_form,
)
from rolesanywhere.testing.emulator import RecordedRequest
from rolesanywhere.testing.pki import IssuedCert

__all__ = [
    "DEFAULT_INDEX",
    "DEFAULT_PATH",
    "FAULT_STATUSES",
    "MAX_BODY_BYTES",
    "MAX_JSON_VALUES",
    "PERSISTENT_CHUNK_BYTES",
    "AcceptedBatch",
    "CredentialLookup",
    "CredentialRecord",
    "CredentialRegistry",
    "CredentialSource",
    "OsisEmulator",
    "OsisStats",
    "Rejection",
    "StaticCredentials",
]

DEFAULT_PATH = "/log/ingest"
DEFAULT_INDEX = "logs-%{yyyy.MM.dd}"
MAX_BODY_BYTES = 10 * 1024 * 1024
PERSISTENT_CHUNK_BYTES = 1024 * 1024
MAX_JSON_VALUES = 1_000_000
_GZIP_PIECE = 4096  # gzip input fed per call: bounds the copy of the rest after each member
MAX_QUERY_BODY_BYTES = 1024 * 1024
MAX_RESULT_WINDOW = 10_000
FAULT_STATUSES: tuple[int, ...] = (408, 429, 500, 503)
SERVICE = "osis"
ALGORITHM = "AWS4-HMAC-SHA256"
MAX_CLOCK_SKEW = timedelta(minutes=5)
_DRAIN_SLACK = 64 * 1024 * 1024  # read and discard this much past the limit, then hang up
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z", re.ASCII)
_SHA256_HEX = re.compile(r"[0-9a-f]{64}", re.ASCII)
_MAX_EPOCH = 253402300799  # 9999-12-31T23:59:59Z
# Always matches (possibly empty): typed so.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_WHITESPACE = cast(Callable[[str, int], re.Match[str]], re.compile(r"[ \t\n\r]*").match)
_INSERT = "INSERT INTO docs (idx, ts, log, source) VALUES (?, ?, ?, ?)"
_PHRASES: Mapping[int, str] = {
    405: "Method Not Allowed",
    408: "Request Timeout: the pipeline buffer is full or the write timed out",
    413: "Request Entity Too Large",
    429: "Too Many Requests: the pipeline has too many pending requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)
_JAVA_DATE_TOKENS: Mapping[str, str] = {
    "yyyy": "%Y",
    "uuuu": "%Y",
    "yy": "%y",
    "MM": "%m",
    "dd": "%d",
    "HH": "%H",
}


def _utcnow() -> datetime:
    return datetime.now(UTC)


# --- credentials ---------------------------------------------------------------------------------


class CredentialRecord(Protocol):
    """What the verifier needs to know about an access key (``IssuedCredentials`` qualifies, and
    so does :class:`rolesanywhere.credentials.Credentials`)."""

    @property
    def access_key_id(self) -> str: ...

    @property
    def secret_access_key(self) -> str: ...

    @property
    def session_token(self) -> str | None: ...

    @property
    def expiration(self) -> datetime | None: ...


class CredentialSource(Protocol):
    """Anything with ``lookup(access_key_id)``, such as a ``RolesAnywhereEmulator``."""

    def lookup(self, access_key_id: str) -> CredentialRecord | None: ...


CredentialLookup = Callable[[str], CredentialRecord | None]


@dataclass(frozen=True, slots=True)
class StaticCredentials:
    """Credentials registered by hand (``repr`` hides the secret and the token)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    expiration: datetime | None = None


class CredentialRegistry:
    """A thread-safe registry of credentials, falling back on other sources in order.

    ``CredentialRegistry(roles_anywhere_emulator)`` knows everything that emulator issued, plus
    whatever :meth:`add` registers (long-term ``AKIA…`` keys have no token).
    """

    def __init__(self, *fallbacks: CredentialSource | CredentialLookup) -> None:
        self._lock = threading.Lock()
        self._known: dict[str, CredentialRecord] = {}
        self._fallbacks = [_as_lookup(source) for source in fallbacks]

    def add(self, credentials: CredentialRecord) -> None:
        """Register credentials (any object with the :class:`CredentialRecord` attributes)."""
        with self._lock:
            self._known[credentials.access_key_id] = credentials

    def add_key(
        self,
        access_key_id: str,
        secret_access_key: str,
        session_token: str | None = None,
        expiration: datetime | None = None,
    ) -> StaticCredentials:
        """Register an access key; return the record."""
        record = StaticCredentials(access_key_id, secret_access_key, session_token, expiration)
        self.add(record)
        return record

    def remove(self, access_key_id: str) -> None:
        """Forget an access key registered with :meth:`add` (fallbacks are not touched)."""
        with self._lock:
            self._known.pop(access_key_id, None)

    def lookup(self, access_key_id: str) -> CredentialRecord | None:
        with self._lock:
            record = self._known.get(access_key_id)
        if record is not None:
            return record
        for fallback in self._fallbacks:
            record = fallback(access_key_id)
            if record is not None:
                return record
        return None


def _as_lookup(source: CredentialSource | CredentialLookup) -> CredentialLookup:
    lookup = getattr(source, "lookup", None)
    if callable(lookup):
        return lookup  # type: ignore[no-any-return]
    if callable(source):
        return source
    raise TypeError(f"not a credential source: {type(source).__name__} (needs lookup(akid))")


# --- records -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AcceptedBatch:
    """One request answered 200 after normal handling, with the events as stored."""

    #: The events kept (``@timestamp`` added), in body order; dropped events are not here.
    events: tuple[dict[str, Any], ...]
    #: The index written for the receive time (``index_time="event"``: the first event's).
    index: str
    received_at: datetime
    #: Body size as received, and after decompression.
    body_bytes: int
    content_bytes: int
    gzip: bool
    #: Persistent buffering: the chunks the body was re-split into (1 when not re-split).
    chunks: int
    #: Persistent buffering: events over the chunk size, silently dropped.
    dropped: int
    #: The access key that signed the request (``None`` when signatures are not verified).
    access_key_id: str | None


@dataclass(frozen=True, slots=True)
class Rejection:
    """An authentication failure, for debugging a signer (no secret; the token is redacted)."""

    status: int
    error_type: str
    message: str
    #: The canonical request and string to sign the emulator computed, when it got that far.
    canonical_request: str | None = None
    string_to_sign: str | None = None


@dataclass(frozen=True, slots=True)
class OsisStats:
    """A snapshot of the ingest counters."""

    requests: int
    accepted_requests: int
    events_accepted: int
    bytes_received: int
    bytes_accepted: int
    dropped_events: int
    resplit_requests: int
    status_counts: dict[int, int]


_Answer = Answer


class _Reject(Exception):
    """An authentication failure raised from inside the checks."""

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        canonical_request: str | None = None,
        string_to_sign: str | None = None,
    ) -> None:
        super().__init__(message)
        self.rejection = Rejection(status, error_type, message, canonical_request, string_to_sign)


class _BadBody(Exception):
    """A Data Prepper error (plain text)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _denied(message: str, error_type: str = "IncompleteSignatureException") -> _Reject:
    return _Reject(403, error_type, message)


def _plain(status: int, message: str, *, close: bool = False) -> _Answer:
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "text/plain; charset=utf-8"),)
    if status == 405:
        headers += (("Allow", "POST"),)
    return _Answer(status, headers, message.encode(), close)


def _json_answer(status: int, payload: object, extra: Sequence[tuple[str, str]] = ()) -> _Answer:
    headers = (("Content-Type", "application/json; charset=UTF-8"), *extra)
    return _Answer(status, headers, json.dumps(payload, separators=(",", ":")).encode())


def _phrase(status: int) -> str:
    if status in _PHRASES:
        return _PHRASES[status]
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def _index_formatter(pattern: str) -> str:
    """``logs-%{yyyy.MM.dd}`` → ``logs-%Y.%m.%d`` for :func:`time.strftime`."""
    out: list[str] = []
    rest = pattern
    while rest:
        start = rest.find("%{")
        if start < 0:
            out.append(rest.replace("%", "%%"))
            break
        out.append(rest[:start].replace("%", "%%"))
        end = rest.find("}", start)
        if end < 0:
            raise ValueError(f"unterminated %{{…}} in index pattern {pattern!r}")
        inner = rest[start + 2 : end]
        for match in re.finditer(r"([A-Za-z])\1*|[^A-Za-z]+", inner):
            text = match.group()
            if text[0].isalpha():
                if text not in _JAVA_DATE_TOKENS:
                    raise ValueError(
                        f"unsupported date token {text!r} in index pattern {pattern!r} "
                        f"(supported: {', '.join(_JAVA_DATE_TOKENS)})"
                    )
                out.append(_JAVA_DATE_TOKENS[text])
            else:
                out.append(text.replace("%", "%%"))
        rest = rest[end + 1 :]
    return "".join(out)


def _format_size(size: int) -> str:
    """OpenSearch ``_cat`` sizes: ``208b``, ``12.3kb``, ``1.2mb``."""
    value = float(size)
    for unit in ("b", "kb", "mb", "gb"):
        if value < 1024 or unit == "gb":
            return f"{size}b" if unit == "b" else f"{value:.1f}{unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _index_uuid(name: str) -> str:
    digest = hashlib.sha256(name.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()[:22]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# The C scanner behind json.loads, called once per array element (each call holds the GIL).
_DECODER: Any = json.JSONDecoder(parse_constant=_reject_constant)
_SCAN_ONCE: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once


def _gunzip(data: bytes, cap: int) -> bytes:
    """Decompress one or more gzip members; 413 past ``cap`` bytes, 400 when corrupt.

    Streams: the input is fed in small pieces and the output is never allowed past ``cap + 1``
    bytes, so a gzip bomb costs at most ``cap`` bytes of memory and stops at the first byte over
    it; members are found without copying the rest of the body after each one.
    """
    out = bytearray()
    view = memoryview(data)
    pos, end = 0, len(data)
    while pos < end:
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        while not decoder.eof:
            if pos >= end:
                raise _BadBody(400, "Bad request: the gzip data ends early")
            piece = view[pos : pos + _GZIP_PIECE]
            pos += len(piece)
            try:
                out += decoder.decompress(piece, cap - len(out) + 1)
            except zlib.error:
                raise _BadBody(400, "Bad request: the body is not valid gzip data") from None
            if len(out) > cap:
                raise _BadBody(413, f"Request Entity Too Large: over {cap} bytes once decompressed")
        pos -= len(decoder.unused_data)
    return bytes(out)


def _json_values(content: bytes, limit: int) -> int:
    """An upper bound on the values and keys parsing ``content`` would build, exact up to ``limit``.

    Every one but the outermost value comes right after a ``{``, ``[``, ``,`` or ``:`` outside a
    string. The plain byte counts are tried first (no copy); only when they exceed ``limit`` are
    strings cut out and the count made again, so brackets in log text never cause a 413.
    """

    def count(text: bytes) -> int:
        return sum(text.count(mark) for mark in (b"{", b"[", b",", b":")) + 1

    total = count(content)
    if total > limit:
        total = count(_JSON_STRING.sub(b"", content))
    return total


def _not_an_array(text: str) -> _BadBody:
    """The 400 for a body that does not start with ``[``: say what it is instead."""
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        detail = str(exc)[:200] if isinstance(exc, ValueError) else "nested too deeply"
        return _BadBody(400, f"Bad request: the body is not valid JSON: {detail}")
    kind = "null" if value is None else type(value).__name__
    return _BadBody(
        400, f"Bad request: the body must be a JSON array of JSON objects, not a JSON {kind}"
    )


def _parse_events(content: bytes, keep_raw: bool) -> tuple[list[dict[str, Any]], list[str]]:
    """One JSON array of JSON objects, UTF-8, nothing after it (else 400).

    With ``keep_raw`` also the text of each element as it was sent (so storing it needs no
    re-encoding); otherwise the second list is empty.
    """
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise _BadBody(400, "Bad request: the body is not valid UTF-8") from None
    ws = _WHITESPACE
    pos = ws(text, 0).end()
    if not text.startswith("[", pos):
        raise _not_an_array(text)
    events: list[dict[str, Any]] = []
    raws: list[str] = []
    if not keep_raw:
        try:
            value = json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            detail = str(exc)[:200] if isinstance(exc, ValueError) else "nested too deeply"
            raise _BadBody(400, f"Bad request: the body is not valid JSON: {detail}") from None
        events = value
    else:
        scan = _SCAN_ONCE
        try:
            pos = ws(text, pos + 1).end()
            if text.startswith("]", pos):
                pos += 1
            else:
                while True:
                    event, end = scan(text, pos)
                    events.append(event)
                    raws.append(text[pos:end])
                    pos = ws(text, end).end()
                    if text.startswith(",", pos):
                        pos = ws(text, pos + 1).end()
                    elif text.startswith("]", pos):
                        pos += 1
                        break
                    else:
                        raise ValueError(f"Expecting ',' delimiter: char {pos}")
            if ws(text, pos).end() != len(text):
                raise ValueError(f"Extra data: char {pos}")
        except StopIteration as stop:
            raise _BadBody(
                400, f"Bad request: the body is not valid JSON: Expecting value: char {stop.value}"
            ) from None
        except (ValueError, RecursionError) as exc:
            detail = str(exc)[:200] if isinstance(exc, ValueError) else "nested too deeply"
            raise _BadBody(400, f"Bad request: the body is not valid JSON: {detail}") from None
    for position, event in enumerate(events):
        if type(event) is not dict:
            raise _BadBody(
                400, f"Bad request: element {position} of the array is not a JSON object"
            )
    return events, raws


def _event_size(event: Mapping[str, Any]) -> int:
    text = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    return len(text.encode("utf-8", "surrogatepass"))


def _sanitize(text: str | None) -> str | None:
    if text is None:
        return None
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def _sort_spec(value: Any) -> list[tuple[str, str]]:
    """``[(field, "asc"|"desc")]`` from every ``sort`` form OpenSearch accepts for one field."""
    items = value if isinstance(value, list) else [value]
    spec: list[tuple[str, str]] = []
    for item in items:
        if isinstance(item, str):
            name, _, order = item.partition(":")
            order = order or ("desc" if name == "_score" else "asc")
        elif isinstance(item, dict) and len(item) == 1:
            ((name, options),) = item.items()
            if isinstance(options, str):
                order = options
            elif isinstance(options, dict):
                order = str(options.get("order", "asc"))
            else:
                raise ValueError(f"malformed sort option for [{name}]")
        else:
            raise ValueError("malformed [sort]")
        order = order.lower()
        if order not in ("asc", "desc"):
            raise ValueError(f"unknown sort order [{order}]")
        if name not in ("@timestamp", "_doc", "_id"):
            raise ValueError(f"sorting on [{name}] is not supported by this emulator")
        spec.append((name, order))
    return spec


# --- the emulator --------------------------------------------------------------------------------

_REQ, _ACC, _EVENTS, _BYTES, _BYTES_ACC, _DROPPED, _RESPLIT = range(7)  # OsisEmulator._counts


class _Counter:
    """A read-only ingest counter: one slot of ``OsisEmulator._counts``, read under the lock."""

    def __init__(self, slot: int, doc: str) -> None:
        self._slot = slot
        self._name = ""
        self.__doc__ = doc

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self._name = name

    @overload
    def __get__(self, emulator: None, owner: type[Any]) -> Self: ...

    @overload
    def __get__(self, emulator: OsisEmulator, owner: type[Any]) -> int: ...

    def __get__(self, emulator: OsisEmulator | None, owner: type[Any]) -> Self | int:
        if emulator is None:
            return self
        with emulator._lock:
            return emulator._counts[self._slot]

    def __set__(self, emulator: OsisEmulator, value: object) -> None:
        owner = type(emulator).__name__
        raise AttributeError(f"property {self._name!r} of {owner!r} object has no setter")


class OsisEmulator(ServedEmulator):
    """An OpenSearch Ingestion pipeline endpoint on ``127.0.0.1``, plain HTTP or TLS.

    ``credentials``: a ``RolesAnywhereEmulator`` (or any object with ``lookup(akid)``), a
    :class:`CredentialRegistry`, or a callable ``lookup(akid)``; required unless
    ``verify_signatures=False``. ``store=False`` verifies and counts (requests, bytes, events)
    without writing anything or keeping the batches: the benchmark mode. ``clock`` returns the
    current time (timezone-aware) and is read once per request; tests may replace :attr:`clock`.
    ``database`` is ``":memory:"`` or a file path. The database stays readable after
    :meth:`stop`; :meth:`close` (and leaving the ``with`` block) stops and closes it.
    """

    _LABEL = "OSIS emulator"
    _THREAD_NAME = "osis-emulator"
    _CA_FILE = "osis-ca.pem"
    _BACKLOG = 256

    def __init__(
        self,
        *,
        credentials: CredentialSource | CredentialLookup | None = None,
        region: str = "us-east-1",
        path: str = DEFAULT_PATH,
        verify_signatures: bool = True,
        require_signed_content_type: bool = False,
        store: bool = True,
        keep_batches: bool | None = None,
        database: str | Path = ":memory:",
        index: str = DEFAULT_INDEX,
        index_time: Literal["received", "event"] = "received",
        compression: Literal["none", "gzip"] = "none",
        max_body_bytes: int = MAX_BODY_BYTES,
        persistent_buffering: bool = False,
        persistent_chunk_bytes: int = PERSISTENT_CHUNK_BYTES,
        split_threshold: int | None = None,
        max_batch_events: int | None = None,
        max_json_values: int | None = MAX_JSON_VALUES,
        reject_if: Callable[[Mapping[str, Any]], bool] | None = None,
        fault_rate: float = 0.0,
        fault_statuses: Sequence[int] = FAULT_STATUSES,
        seed: int | None = None,
        record_requests: bool = False,
        tls: IssuedCert | None = None,
        clock: Callable[[], datetime] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        if verify_signatures and credentials is None:
            raise ValueError("verify_signatures=True needs credentials= (a registry or lookup)")
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/', not {path!r}")
        if compression not in ("none", "gzip"):
            raise ValueError(f"compression must be 'none' or 'gzip', not {compression!r}")
        if index_time not in ("received", "event"):
            raise ValueError(f"index_time must be 'received' or 'event', not {index_time!r}")
        if not 0.0 <= fault_rate <= 1.0:
            raise ValueError(f"fault_rate must be within [0, 1], not {fault_rate}")
        if fault_rate and not fault_statuses:
            raise ValueError("fault_rate needs at least one fault status")
        for status in fault_statuses:
            _check_status(status)
        super().__init__(host, tls)
        self.region = region
        self.path = path
        self.verify_signatures = verify_signatures
        #: Also refuse a request whose ``Content-Type`` is sent but not signed (off by default:
        #: AWS and common signers such as opensearch-py's and aws-requests-auth leave it unsigned).
        self.require_signed_content_type = require_signed_content_type
        self.store = store
        self.keep_batches = store if keep_batches is None else keep_batches
        self.index_pattern = index
        self.index_time = index_time
        self.compression = compression
        self.max_body_bytes = max_body_bytes
        self.persistent_buffering = persistent_buffering
        self.persistent_chunk_bytes = persistent_chunk_bytes
        self.split_threshold = split_threshold
        self.max_batch_events = max_batch_events
        #: Most JSON values (and keys) one request body may hold before it is parsed: 413 over it.
        self.max_json_values = max_json_values
        #: Called with each parsed event; true: the request is answered 400 (poisoned record).
        self.reject_if = reject_if
        self.fault_rate = fault_rate
        self.fault_statuses = tuple(fault_statuses)
        self.record_requests = record_requests
        self.clock: Callable[[], datetime] = clock or _utcnow
        self._lookup: CredentialLookup | None = (
            _as_lookup(credentials) if credentials is not None else None
        )
        self._index_format = _index_formatter(index)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._script: deque[int] = deque()
        self._counts = [0, 0, 0, 0, 0, 0, 0]  # see _REQ … _RESPLIT
        self._status_counts: dict[int, int] = {}
        self._batches: list[AcceptedBatch] = []
        self._rejections: deque[Rejection] = deque(maxlen=1000)
        self._requests: list[tuple[RecordedRequest, int]] = []
        self._signing_keys: dict[tuple[str, str, str], bytes] = {}
        self._ts_prefix: dict[int, str] = {}
        self._index_names: dict[str, str] = {}
        self._db_lock = threading.Lock()
        self._db = sqlite3.connect(str(database), check_same_thread=False, isolation_level=None)
        self._db_closed = False
        self._index_docs: dict[str, list[int]] = {}  # index -> [documents, bytes of JSON]
        self._init_db(database)

    # --- database ---------------------------------------------------------------------------------

    def _init_db(self, database: str | Path) -> None:
        db = self._db
        if str(database) != ":memory:":
            db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=OFF")
        db.execute(
            "CREATE TABLE IF NOT EXISTS docs ("
            "id INTEGER PRIMARY KEY, idx TEXT NOT NULL, ts TEXT NOT NULL, log TEXT, "
            "source TEXT NOT NULL)"
        )
        rows = db.execute("SELECT idx, COUNT(*), SUM(LENGTH(source)) FROM docs GROUP BY idx")
        self._index_docs = {name: [int(n), int(size)] for name, n, size in rows.fetchall()}

    # --- configuration and fault injection --------------------------------------------------------

    def script(self, statuses: Iterable[int]) -> None:
        """Queue statuses, one consumed per ingest request before anything else.

        A 200 entry means "handle this request normally"; any other status is answered as it is
        (plain-text body) and the request is otherwise ignored: nothing verified or stored.
        """
        items = [_check_status(status) for status in statuses]
        with self._lock:
            self._script.extend(items)

    @property
    def pending_script(self) -> list[int]:
        """Scripted statuses not consumed yet."""
        with self._lock:
            return list(self._script)

    # --- counters ---------------------------------------------------------------------------------

    def stats(self) -> OsisStats:
        """All counters at once, consistently."""
        with self._lock:
            c = self._counts
            return OsisStats(c[0], c[1], c[2], c[3], c[4], c[5], c[6], dict(self._status_counts))

    requests = _Counter(_REQ, "Ingest requests received (any answer).")
    accepted_requests = _Counter(_ACC, "Ingest requests answered 200 after normal handling.")
    events_accepted = _Counter(
        _EVENTS, "Events accepted (stored, or counted with ``store=False``); dropped ones excluded."
    )
    bytes_received = _Counter(
        _BYTES, "Body bytes of every ingest request, as received (compressed when gzip)."
    )
    bytes_accepted = _Counter(
        _BYTES_ACC, "Body bytes of the accepted ingest requests, as received."
    )
    dropped_events = _Counter(
        _DROPPED,
        "Events silently dropped by persistent buffering (over ``persistent_chunk_bytes``).",
    )
    resplit_requests = _Counter(_RESPLIT, "Accepted bodies persistent buffering had to re-split.")

    @property
    def status_counts(self) -> dict[int, int]:
        """Ingest answers by status (a copy)."""
        with self._lock:
            return dict(self._status_counts)

    @property
    def batches(self) -> list[AcceptedBatch]:
        """Accepted batches, in the order they were accepted (a copy; empty with ``store=False``
        unless ``keep_batches=True``)."""
        with self._lock:
            return list(self._batches)

    def iter_batches(self) -> Iterator[AcceptedBatch]:
        """Iterate over a snapshot of :attr:`batches`."""
        return iter(self.batches)

    @property
    def rejections(self) -> list[Rejection]:
        """The last 1000 authentication failures, oldest first."""
        with self._lock:
            return list(self._rejections)

    @property
    def recorded_requests(self) -> list[tuple[RecordedRequest, int]]:
        """``(request, status)`` for every ingest request, with ``record_requests=True``."""
        with self._lock:
            return list(self._requests)

    def reset(self, *, clear_store: bool = False) -> None:
        """Forget counters, batches, rejections, recorded requests and the script.

        The stored documents stay unless ``clear_store``. The fault generator is not reseeded.
        """
        with self._lock:
            self._counts = [0] * len(self._counts)
            self._status_counts.clear()
            self._batches.clear()
            self._rejections.clear()
            self._requests.clear()
            self._script.clear()
        if clear_store:
            with self._db_lock:
                self._db.execute("DELETE FROM docs")
                self._index_docs.clear()

    # --- stored documents -------------------------------------------------------------------------

    def _where(self, index: str | None) -> tuple[str, list[str]]:
        if index is None:
            return "", []
        names = self._resolve(index)
        if not names:
            return " WHERE 0", []
        return f" WHERE idx IN ({','.join('?' * len(names))})", names

    def count(self, index: str | None = None) -> int:
        """Stored documents, in every index or those ``index`` names (list, wildcards)."""
        with self._db_lock:
            if index is None:
                return sum(n for n, _ in self._index_docs.values())
            return sum(self._index_docs[name][0] for name in self._resolve(index))

    def logs(self, index: str | None = None) -> list[str | None]:
        """The stored ``log`` values in insertion order (``None`` for events without one)."""
        where, params = self._where(index)
        with self._db_lock:
            rows = self._db.execute(f"SELECT log FROM docs{where} ORDER BY id", params).fetchall()  # noqa: S608
        return [row[0] for row in rows]

    def duplicates(self, index: str | None = None) -> dict[str, int]:
        """``log`` values stored more than once, with their counts (empty: no duplicate)."""
        where, params = self._where(index)
        sql = (
            f"SELECT log, COUNT(*) FROM docs{where}{' AND' if where else ' WHERE'} "  # noqa: S608
            "log IS NOT NULL GROUP BY log HAVING COUNT(*) > 1"
        )
        with self._db_lock:
            rows = self._db.execute(sql, params).fetchall()
        return {log: int(n) for log, n in rows}

    def documents(self, index: str | None = None, *, limit: int | None = None) -> list[Any]:
        """The stored documents (``_source``), in insertion order."""
        where, params = self._where(index)
        sql = f"SELECT source FROM docs{where} ORDER BY id"  # noqa: S608
        args: list[Any] = list(params)
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with self._db_lock:
            rows = self._db.execute(sql, args).fetchall()
        return [json.loads(row[0]) for row in rows]

    def indices(self) -> dict[str, int]:
        """Index name → stored documents, sorted by name."""
        with self._db_lock:
            return {name: stats[0] for name, stats in sorted(self._index_docs.items())}

    def index_name(self, when: datetime) -> str:
        """The index the configured pattern names for ``when`` (timezone-aware; UTC is used)."""
        if when.tzinfo is None:
            raise ValueError("index_name needs a timezone-aware datetime")
        return time.strftime(self._index_format, when.astimezone(UTC).timetuple())

    def _resolve(self, expression: str) -> list[str]:
        """Index names matching ``a,b,logs-*`` (``_all``/``*``: all); call with the db lock."""
        known = self._index_docs
        names: list[str] = []
        for part in expression.split(","):
            part = part.strip()
            if not part:
                continue
            if part in ("_all", "*"):
                matched = list(known)
            elif "*" in part or "?" in part:
                matched = [name for name in known if fnmatch.fnmatchcase(name, part)]
            else:
                matched = [part] if part in known else []
            names.extend(name for name in matched if name not in names)
        return sorted(names)

    def search(self, index: str = "_all", body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """What ``POST /{index}/_search`` answers (raises ``ValueError`` for a 400 or 404)."""
        status, payload = self._search(index, dict(body or {}), {})
        if status != 200:
            raise ValueError(json.dumps(payload))
        return payload

    # --- server lifecycle: start, stop, url, port, with (ServedEmulator) --------------------------

    def start(self) -> Self:
        """Bind a random port and serve in a daemon thread."""
        if self._server is None and self._db_closed:
            raise RuntimeError("the OSIS emulator was closed")
        return super().start()

    def close(self) -> None:
        """Stop and close the database."""
        self.stop()
        with self._db_lock:
            if not self._db_closed:
                self._db.close()
                self._db_closed = True

    def _leave(self) -> None:
        self.close()

    @property
    def ingest_url(self) -> str:
        """:attr:`url` followed by the ingest :attr:`path`."""
        return self.url + self.path

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "stopped"
        return f"OsisEmulator(region={self.region!r}, path={self.path!r}, {where})"

    # --- request handling (ingest or query) -------------------------------------------------------

    def _respond(self, handler: Handler) -> None:
        target = origin_form(handler.path)
        is_ingest = target.partition("?")[0] == self.path
        limit = self.max_body_bytes if is_ingest else MAX_QUERY_BODY_BYTES
        try:
            body, size, complete = handler.read_body(limit, limit + _DRAIN_SLACK)
        except (ValueError, OSError):
            handler.close_connection = True
            handler.write(_plain(400, "Bad request: malformed body framing", close=True))
            return
        try:
            if not is_ingest:
                answer = self._query(handler.command, target, body)
            else:
                answer = self._ingest(handler.command, target, handler.headers.items(), body, size)
        except Exception as exc:  # a bug: say so rather than drop the connection
            answer = _plain(500, f"emulator error: {type(exc).__name__}"[:200])
        if not complete:
            handler.close_connection = True
        handler.write(answer)

    # --- ingest -----------------------------------------------------------------------------------

    def _now(self) -> datetime:
        now = self.clock()
        return now.replace(tzinfo=UTC) if now.tzinfo is None else now

    def _ingest(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        size: int,
    ) -> _Answer:
        forced: int | None = None
        with self._lock:
            self._counts[_REQ] += 1
            self._counts[_BYTES] += size
            if method != "POST":
                forced = 405
            elif self._script:
                forced = self._script.popleft()
            elif self.fault_rate and self._rng.random() < self.fault_rate:
                forced = self._rng.choice(self.fault_statuses)
        if forced is not None and forced != 200:
            answer = _plain(forced, _phrase(forced))
        else:
            answer = self._handle_ingest(method, target, headers, body, size)
        with self._lock:
            self._status_counts[answer.status] = self._status_counts.get(answer.status, 0) + 1
            if self.record_requests:
                request = RecordedRequest(method, target, tuple(headers), body or b"")
                self._requests.append((request, answer.status))
        return answer

    def _handle_ingest(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        size: int,
    ) -> _Answer:
        if body is None:
            return _plain(
                413, f"Request Entity Too Large: the limit is {self.max_body_bytes} bytes"
            )
        lowered = {name.lower(): value for name, value in reversed(headers)}
        now = self._now()
        access_key_id: str | None = None
        if self.verify_signatures:
            try:
                access_key_id = self._verify(method, target, headers, lowered, body, now)
            except _Reject as reject:
                rejection = reject.rejection
                with self._lock:
                    self._rejections.append(rejection)
                return _json_answer(
                    rejection.status,
                    {"message": rejection.message},
                    [
                        ("x-amzn-ErrorType", rejection.error_type),
                        ("x-amzn-RequestId", str(uuid.uuid4())),
                    ],
                )
        try:
            content, gzipped = self._decode(body, lowered.get("content-encoding"))
            if self.split_threshold is not None and len(content) > self.split_threshold:
                raise _BadBody(
                    413,
                    f"Request Entity Too Large: over the {self.split_threshold}-byte limit "
                    "(uncompressed)",
                )
            max_values = self.max_json_values
            if max_values is not None and _json_values(content, max_values) > max_values:
                raise _BadBody(
                    413,
                    f"Request Entity Too Large: over {max_values} JSON values in one request "
                    "(the emulator's max_json_values)",
                )
            events, raws = _parse_events(content, self.store)
            if self.max_batch_events is not None and len(events) > self.max_batch_events:
                raise _BadBody(
                    413,
                    f"Request Entity Too Large: {len(events)} records, the buffer holds "
                    f"{self.max_batch_events}",
                )
            reject_if = self.reject_if
            if reject_if is not None:
                for position, event in enumerate(events):
                    if reject_if(event):
                        raise _BadBody(
                            400, f"Bad request: element {position} of the array was refused"
                        )
        except _BadBody as bad:
            return _plain(bad.status, bad.message)
        chunks, dropped = 1, 0
        if self.persistent_buffering and len(content) > self.persistent_chunk_bytes:
            events, raws, chunks, dropped = self._resplit(events, raws)
        index = ""
        if self.store or self.keep_batches:
            index = self._accept(events, raws, now)
        batch = None
        if self.keep_batches:
            batch = AcceptedBatch(
                events=tuple(events),
                index=index,
                received_at=now,
                body_bytes=size,
                content_bytes=len(content),
                gzip=gzipped,
                chunks=chunks,
                dropped=dropped,
                access_key_id=access_key_id,
            )
        with self._lock:
            counts = self._counts
            counts[_ACC] += 1
            counts[_EVENTS] += len(events)
            counts[_BYTES_ACC] += size
            if dropped:
                counts[_DROPPED] += dropped
            if chunks > 1 or dropped:
                counts[_RESPLIT] += 1
            if batch is not None:
                self._batches.append(batch)
        return _plain(200, "200 OK")

    def _decode(self, body: bytes, encoding: str | None) -> tuple[bytes, bool]:
        name = (encoding or "").strip().lower()
        if name in ("", "identity"):
            return body, False
        if name in ("gzip", "x-gzip"):
            if self.compression != "gzip":
                raise _BadBody(
                    400,
                    "Bad request: the body is not valid JSON (Content-Encoding: gzip, but this "
                    "pipeline's source has compression: none)",
                )
            return _gunzip(body, self.max_body_bytes), True
        raise _BadBody(400, f"Bad request: unsupported Content-Encoding {name[:40]!r}")

    def _resplit(
        self, events: list[dict[str, Any]], raws: list[str]
    ) -> tuple[list[dict[str, Any]], list[str], int, int]:
        """Persistent buffering: chunks of at most the chunk size; larger events dropped."""
        limit = self.persistent_chunk_bytes
        kept: list[dict[str, Any]] = []
        kept_raws: list[str] = []
        chunks = dropped = 0
        used = 0  # bytes in the current chunk, 0 = no chunk open
        for position, event in enumerate(events):
            size = len(raws[position].encode()) if raws else _event_size(event)
            if size > limit:
                dropped += 1
                continue
            if used and used + 1 + size > limit:
                used = 0
            if not used:
                chunks += 1
                used = 2 + size  # "[" + event + "]"
            else:
                used += 1 + size  # "," + event
            kept.append(event)
            if raws:
                kept_raws.append(raws[position])
        return kept, kept_raws, chunks, dropped

    def _prefix(self, second: int) -> str | None:
        """``YYYY-MM-DDTHH:MM:SS`` for an epoch second (cached); ``None`` out of range."""
        if not 0 <= second <= _MAX_EPOCH:
            return None
        prefix = self._ts_prefix.get(second)
        if prefix is None:
            if len(self._ts_prefix) > 4096:
                self._ts_prefix.clear()
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._ts_prefix[second] = prefix
        return prefix

    @staticmethod
    def _timestamp(value: Any, received: str) -> str:
        """``@timestamp`` from a ``date`` that is not a number (:meth:`_accept` does epoch
        seconds): an ISO 8601 string, else ``received``."""
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.strip())
            except ValueError:
                return received
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return _iso_ms(parsed)
        return received

    def _accept(self, events: list[dict[str, Any]], raws: list[str], now: datetime) -> str:
        """Add ``@timestamp`` to the events, store them when storing; the receive-time index."""
        received = _iso_ms(now)
        index = self._index_for(received)
        per_event = self.index_time == "event"
        if per_event and events:
            index = ""  # set from the first event below
        store = self.store
        prefixes = self._ts_prefix
        slow = self._timestamp
        index_for = self._index_for
        rows: list[tuple[str, str, str | None, str]] = []
        append = rows.append
        for position, event in enumerate(events):
            value: Any = event.get("date")
            kind = type(value)
            if kind is float or kind is int:
                try:
                    second, ms = divmod(round(value * 1000), 1000)
                except (OverflowError, ValueError):
                    ts = received
                else:
                    prefix = prefixes.get(second) or self._prefix(second)
                    ts = received if prefix is None else f"{prefix}.{ms:03d}Z"
            elif value is None:
                ts = received
            else:
                ts = slow(value, received)
            event["@timestamp"] = ts
            name = index
            if per_event:
                name = index_for(ts)
                index = index or name
            if store:
                raw = raws[position]
                if len(event) == 1 and not raw[1:-1].strip():
                    source = f'{{"@timestamp":"{ts}"}}'
                else:
                    source = f'{raw[:-1]},"@timestamp":"{ts}"}}'
                log = event.get("log")
                append((name, ts, log if type(log) is str else None, source))
        if rows:
            self._insert(rows)
        return index

    def _index_for(self, ts: str) -> str:
        """The index for an ``@timestamp`` string (cached by hour)."""
        key = ts[:13]
        name = self._index_names.get(key)
        if name is None:
            when = datetime.fromisoformat(ts)
            name = time.strftime(self._index_format, when.astimezone(UTC).timetuple())
            if len(self._index_names) > 4096:
                self._index_names.clear()
            self._index_names[key] = name
        return name

    def _insert(self, rows: list[tuple[str, str, str | None, str]]) -> None:
        """Write one request's documents in one transaction."""
        with self._db_lock:
            if self._db_closed:
                return
            try:
                self._write(rows)
            except UnicodeEncodeError:  # a lone surrogate from a "\\udXXX" escape in `log`
                self._write([(i, t, _sanitize(log), s) for i, t, log, s in rows])
            stats_by_index = self._index_docs
            for name, _, _, source in rows:
                stats = stats_by_index.get(name)
                if stats is None:
                    stats = stats_by_index[name] = [0, 0]
                stats[0] += 1
                stats[1] += len(source)

    def _write(self, rows: list[tuple[str, str, str | None, str]]) -> None:
        db = self._db
        db.execute("BEGIN")
        try:
            db.executemany(_INSERT, rows)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # --- SigV4 ------------------------------------------------------------------------------------

    def _signing_key(self, secret: str, date: str, region: str) -> bytes:
        cache_key = (secret, date, region)
        key = self._signing_keys.get(cache_key)
        if key is None:
            key = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
            for part in (region, SERVICE, "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            if len(self._signing_keys) > 1024:
                self._signing_keys.clear()
            self._signing_keys[cache_key] = key
        return key

    def _verify(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        lowered: Mapping[str, str],
        body: bytes,
        now: datetime,
    ) -> str:
        """Check the SigV4 signature; return the access key id (or raise :class:`_Reject`)."""
        authorization = lowered.get("authorization", "").strip()
        if not authorization:
            raise _denied("Missing Authentication Token", "MissingAuthenticationTokenException")
        algorithm, _, rest = authorization.partition(" ")
        if algorithm != ALGORITHM:
            raise _denied(f"Unsupported Authorization algorithm {algorithm[:40]!r}")
        parts = authorization_parameters(rest, _denied)
        scope_parts = parts["Credential"].split("/")
        if len(scope_parts) != 5:
            raise _denied(
                "Credential should be scoped to a valid region, service and terminator: "
                "AKID/yyyymmdd/region/osis/aws4_request"
            )
        access_key_id, date, region, service, terminator = scope_parts
        x_amz_date = lowered.get("x-amz-date", "").strip()
        if not x_amz_date:
            raise _denied(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' "
                "header."
            )
        if not _AMZ_DATE.fullmatch(x_amz_date):
            raise _denied(f"X-Amz-Date must be in the form YYYYMMDDTHHMMSSZ: {x_amz_date[:40]!r}")
        if date != x_amz_date[:8]:
            raise _denied(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
                f"from HTTP: '{date[:16]}' != '{x_amz_date[:8]}', from '{x_amz_date}'."
            )
        if region != self.region:
            raise _denied(
                f"Credential should be scoped to a valid region, not '{region[:40]}'.",
                "InvalidSignatureException",
            )
        if service != SERVICE:
            raise _denied(
                f"Credential should be scoped to correct service: '{SERVICE}', "
                f"not '{service[:40]}'.",
                "InvalidSignatureException",
            )
        if terminator != "aws4_request":
            raise _denied(
                "Credential should be scoped with a valid terminator: 'aws4_request', "
                f"not '{terminator[:40]}'."
            )
        signed_text = parts["SignedHeaders"]
        signed = signed_text.split(";")
        if signed != sorted(set(signed)) or signed_text != signed_text.lower() or "" in signed:
            raise _denied("SignedHeaders must be lower-case names, sorted, separated by ';'.")
        signed_set = set(signed)
        required = ["host", "x-amz-date"]
        optional = ["x-amz-content-sha256", "x-amz-security-token"]
        if self.require_signed_content_type:
            optional.append("content-type")
        required += [name for name in optional if name in lowered]
        for name in required:
            if name not in signed_set:
                raise _denied(f"'{name}' must be a 'SignedHeader' in the AWS Authorization.")
        for name in signed:
            if name not in lowered:
                raise _denied(f"Signed header '{name[:64]}' is not in the request.")

        record = self._lookup(access_key_id) if self._lookup is not None else None
        if record is None:
            raise _Reject(
                401,
                "UnrecognizedClientException",
                "The security token included in the request is invalid: the access key id "
                f"{access_key_id[:32]!r} does not exist in our records.",
            )
        if record.expiration is not None and now >= record.expiration:
            raise _Reject(
                401,
                "ExpiredTokenException",
                "The security token included in the request is expired",
            )
        token = record.session_token
        sent_token = lowered.get("x-amz-security-token")
        if token:
            if sent_token is None:
                raise _denied(
                    "The request has no X-Amz-Security-Token, which temporary credentials need.",
                    "MissingAuthenticationTokenException",
                )
            if not hmac.compare_digest(sent_token.strip().encode(), token.encode()):
                raise _denied(
                    "The security token included in the request is invalid.",
                    "UnrecognizedClientException",
                )
        elif sent_token is not None:
            raise _denied(
                "The security token included in the request is invalid.",
                "UnrecognizedClientException",
            )

        declared = lowered.get("x-amz-content-sha256")
        if declared is None:
            payload_hash = hashlib.sha256(body).hexdigest()
        elif declared.strip() == sigv4.UNSIGNED_PAYLOAD:
            payload_hash = sigv4.UNSIGNED_PAYLOAD
        else:
            payload_hash = declared.strip()
            if not _SHA256_HEX.fullmatch(payload_hash) or not hmac.compare_digest(
                payload_hash, hashlib.sha256(body).hexdigest()
            ):
                raise _denied(
                    "The provided 'x-amz-content-sha256' header does not match what was computed.",
                    "XAmzContentSHA256Mismatch",
                )

        raw_path, _, raw_query = target.partition("?")
        block, signed_names = sigv4.canonical_headers(headers, signed)
        canonical = sigv4.canonical_request(
            method,
            sigv4.canonical_path(raw_path),
            sigv4.canonical_query(raw_query),
            block,
            signed_names,
            payload_hash,
        )
        scope = sigv4.credential_scope(date, region, SERVICE)
        to_sign = sigv4.string_to_sign(ALGORITHM, x_amz_date, scope, canonical)
        signing_key = self._signing_key(record.secret_access_key, date, region)
        expected = hmac.new(signing_key, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), parts["Signature"].encode()):
            if token:
                canonical = canonical.replace(token, "<redacted>")
            raise _Reject(403, "InvalidSignatureException", _BAD_SIGNATURE, canonical, to_sign)

        skew = clock_skew_error(x_amz_date, now, MAX_CLOCK_SKEW)
        if skew is not None:
            raise _denied(skew, "InvalidSignatureException")
        return access_key_id

    # --- query API --------------------------------------------------------------------------------

    def _query(self, method: str, target: str, body: bytes | None) -> _Answer:
        raw_path, _, raw_query = target.partition("?")
        params = {k: v[-1] for k, v in parse_qs(raw_query, keep_blank_values=True).items()}
        segments = [unquote(s) for s in raw_path.split("/") if s]
        if method == "GET" and segments[:2] == ["_cat", "indices"] and len(segments) <= 3:
            pattern = segments[2] if len(segments) == 3 else "_all"
            return self._cat_indices(pattern, params)
        operation = segments[-1] if segments else ""
        if method in ("GET", "POST") and operation in ("_search", "_count") and len(segments) <= 2:
            index = segments[0] if len(segments) == 2 else "_all"
            if body is None:
                return _json_answer(413, _os_error(413, "too_long_http_request", "body too large"))
            try:
                request = json.loads(body.decode("utf-8")) if body.strip() else {}
            except (UnicodeDecodeError, ValueError, RecursionError):
                return _json_answer(
                    400, _os_error(400, "parse_exception", "request body is not valid JSON")
                )
            if not isinstance(request, dict):
                return _json_answer(
                    400, _os_error(400, "parse_exception", "request body must be an object")
                )
            if operation == "_count":
                status, payload = self._count_query(index, request)
            else:
                status, payload = self._search(index, request, params)
            return _json_answer(status, payload)
        return _plain(404, "404 Not Found")

    def _cat_indices(self, pattern: str, params: Mapping[str, str]) -> _Answer:
        with self._db_lock:
            names = self._resolve(pattern)
            stats = {name: list(self._index_docs[name]) for name in names}
        rows = [
            {
                "health": "green",
                "status": "open",
                "index": name,
                "uuid": _index_uuid(name),
                "pri": "1",
                "rep": "0",
                "docs.count": str(stats[name][0]),
                "docs.deleted": "0",
                "store.size": _format_size(stats[name][1]),
                "pri.store.size": _format_size(stats[name][1]),
            }
            for name in names
        ]
        if params.get("format") == "json":
            return _json_answer(200, rows)
        columns = list(rows[0]) if rows else [
            "health", "status", "index", "uuid", "pri", "rep", "docs.count", "docs.deleted",
            "store.size", "pri.store.size",
        ]  # fmt: skip
        right = {"pri", "rep", "docs.count", "docs.deleted", "store.size", "pri.store.size"}
        table: list[list[str]] = [[row[c] for c in columns] for row in rows]
        if "v" in params:
            table.insert(0, columns)
        widths = [max((len(line[i]) for line in table), default=0) for i in range(len(columns))]
        lines = []
        for number, line in enumerate(table):
            header = number == 0 and "v" in params
            cells = [
                cell.rjust(width) if column in right and not header else cell.ljust(width)
                for cell, width, column in zip(line, widths, columns, strict=True)
            ]
            lines.append(" ".join(cells).rstrip() + "\n")
        return _plain(200, "".join(lines))

    def _count_query(self, index: str, request: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        error = _check_query(request.get("query"))
        if error is not None:
            return 400, error
        with self._db_lock:
            missing = _missing_index(index, self._index_docs)
            if missing is not None:
                return 404, missing
            count = sum(self._index_docs[name][0] for name in self._resolve(index))
        shards = {"total": 1, "successful": 1, "skipped": 0, "failed": 0}
        return 200, {"count": count, "_shards": shards}

    def _search(
        self, index: str, request: dict[str, Any], params: Mapping[str, str]
    ) -> tuple[int, dict[str, Any]]:
        started = time.perf_counter()
        error = _check_query(request.get("query"))
        if error is not None:
            return 400, error
        try:
            size = int(params.get("size", request.get("size", 10)))
            offset = int(params.get("from", request.get("from", 0)))
            sort_value = params.get("sort") or request.get("sort")
            if isinstance(sort_value, str) and "," in sort_value:
                sort_value = sort_value.split(",")
            spec = _sort_spec(sort_value) if sort_value else []
        except (TypeError, ValueError) as exc:
            return 400, _os_error(400, "illegal_argument_exception", str(exc)[:200])
        if size < 0 or offset < 0:
            return 400, _os_error(400, "illegal_argument_exception", "[size] and [from] >= 0")
        if size + offset > MAX_RESULT_WINDOW:
            return 400, _os_error(
                400,
                "illegal_argument_exception",
                f"Result window is too large, from + size must be less than or equal to: "
                f"[{MAX_RESULT_WINDOW}] but was [{size + offset}].",
            )
        order = []
        for name, direction in spec:
            column = "ts" if name == "@timestamp" else "id"
            order.append(f"{column} {direction.upper()}")
        # ties (one batch shares a read time) in the direction of the first key: newest last in
        order.append(f"id {spec[0][1].upper()}" if spec else "id ASC")
        with self._db_lock:
            missing = _missing_index(index, self._index_docs)
            if missing is not None:
                return 404, missing
            names = self._resolve(index)
            total = sum(self._index_docs[name][0] for name in names)
            rows: list[tuple[int, str, str, str]] = []
            if names and size:
                where = (
                    ""
                    if len(names) == len(self._index_docs)
                    else (f" WHERE idx IN ({','.join('?' * len(names))})")
                )
                sql = (
                    f"SELECT id, idx, ts, source FROM docs{where} "  # noqa: S608
                    f"ORDER BY {', '.join(order)} LIMIT ? OFFSET ?"
                )
                args: list[Any] = [*(names if where else []), size, offset]
                rows = self._db.execute(sql, args).fetchall()
        hits = []
        for row_id, name, ts, source in rows:
            hit: dict[str, Any] = {
                "_index": name,
                "_id": str(row_id),
                "_score": None if spec else 1.0,
                "_source": json.loads(source),
            }
            if spec:
                hit["sort"] = [
                    _epoch_millis(ts) if field_name == "@timestamp" else row_id
                    for field_name, _ in spec
                ]
            hits.append(hit)
        took = int((time.perf_counter() - started) * 1000)
        return 200, {
            "took": took,
            "timed_out": False,
            "_shards": {
                "total": max(1, len(names)),
                "successful": max(1, len(names)),
                "skipped": 0,
                "failed": 0,
            },
            "hits": {
                "total": {"value": total, "relation": "eq"},
                "max_score": None if spec or not hits else 1.0,
                "hits": hits,
            },
        }


def _check_status(status: int) -> int:
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        raise ValueError(f"a scripted or fault status must be an int in 200..599, not {status!r}")
    return status


def _iso_ms(when: datetime) -> str:
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _epoch_millis(ts: str) -> int:
    return round(datetime.fromisoformat(ts).timestamp() * 1000)


def _os_error(status: int, error_type: str, reason: str, **extra: str) -> dict[str, Any]:
    cause = {"type": error_type, "reason": reason, **extra}
    return {"error": {"root_cause": [cause], **cause}, "status": status}


def _check_query(query: Any) -> dict[str, Any] | None:
    """``None`` when the query is absent or ``match_all``; else an OpenSearch 400 body."""
    if query is None or query == {"match_all": {}}:
        return None
    if isinstance(query, dict) and len(query) == 1 and isinstance(query.get("match_all"), dict):
        return None
    return _os_error(
        400, "parsing_exception", 'this emulator supports only {"match_all": {}} queries'
    )


def _missing_index(expression: str, known: Mapping[str, Any]) -> dict[str, Any] | None:
    """404 body for a concrete (non-wildcard) index name that does not exist."""
    for part in expression.split(","):
        part = part.strip()
        concrete = part and part not in ("_all", "*") and "*" not in part and "?" not in part
        if concrete and part not in known:
            return _os_error(
                404,
                "index_not_found_exception",
                f"no such index [{part}]",
                index=part,
                **{"resource.type": "index_or_alias", "resource.id": part},
            )
    return None
