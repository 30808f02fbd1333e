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
8. with a ``capacity`` (:class:`~rolesanywhere.testing.quota.Capacity`: a buffer of ``buffer``
   events drained at ``events_per_second``), a request with more events than the whole buffer
   is 413 (it never fits), and one whose events do not fit in the free space now is 429 (plain
   text, ``Retry-After`` only with ``retry_after=True``); either way nothing is stored;
9. 200 ``200 OK``. Data Prepper errors have plain-text bodies.

Accepted events get ``@timestamp`` (ISO 8601 UTC with milliseconds, from the event's ``date``
when it is epoch seconds or an ISO 8601 string, else the receive time) and go to the index named by
``index`` (``logs-%{yyyy.MM.dd}``) for the receive time, in UTC, as Data Prepper's OpenSearch sink
does (``index_time="event"`` uses each event's ``@timestamp`` instead).

The query endpoints (``GET /_cat/indices[/PATTERN][?v][&format=json]``,
``GET|POST /{index}/_search``, ``GET|POST /{index}/_count``, index lists and wildcards) need no
signature by default; with ``query_service="es"`` (or ``"aoss"``) they check SigV4 for that
service as real OpenSearch does (step 3's checks and answers), counted in
:attr:`OsisEmulator.signed_queries`.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Self

from rolesanywhere.testing._server import (
    Answer,
    Handler,
    ServedEmulator,
    json_answer,
    origin_form,
    text_answer,
)
from rolesanywhere.testing.emulator import RecordedRequest
from rolesanywhere.testing.osis_capacity import PipelineCapacity
from rolesanywhere.testing.osis_ingest import (
    DEFAULT_INDEX,
    DEFAULT_PATH,
    FAULT_STATUSES,
    MAX_BODY_BYTES,
    MAX_JSON_VALUES,
    PERSISTENT_CHUNK_BYTES,
    BadBody,
    Stamper,
    check_status,
    decode,
    phrase,
    read_events,
    resplit,
)
from rolesanywhere.testing.osis_records import AcceptedBatch, OsisStats, SlotCounter
from rolesanywhere.testing.osis_store import MAX_QUERY_BODY_BYTES, DocumentStore
from rolesanywhere.testing.osis_verifier import (
    CredentialLookup,
    CredentialRecord,
    CredentialRegistry,
    CredentialSource,
    Reject,
    Rejection,
    SigV4Verifier,
    StaticCredentials,
    as_lookup,
)
from rolesanywhere.testing.pki import IssuedCert
from rolesanywhere.testing.quota import Capacity

__all__ = [
    "DEFAULT_INDEX",
    "DEFAULT_PATH",
    "FAULT_STATUSES",
    "MAX_BODY_BYTES",
    "MAX_JSON_VALUES",
    "PERSISTENT_CHUNK_BYTES",
    "AcceptedBatch",
    "Capacity",
    "CredentialLookup",
    "CredentialRecord",
    "CredentialRegistry",
    "CredentialSource",
    "OsisEmulator",
    "OsisStats",
    "Rejection",
    "StaticCredentials",
]

_DRAIN_SLACK = 64 * 1024 * 1024  # read and discard this much past the limit, then hang up


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _plain(status: int, message: str, *, close: bool = False) -> Answer:
    extra = (("Allow", "POST"),) if status == 405 else ()
    return text_answer(status, message, close=close, extra=extra)


# --- the emulator --------------------------------------------------------------------------------

_REQ, _ACC, _EVENTS, _BYTES, _BYTES_ACC, _DROPPED, _RESPLIT, _QUERIES = range(
    8
)  # OsisEmulator._counts


class OsisEmulator(PipelineCapacity, ServedEmulator):
    """An OpenSearch Ingestion pipeline endpoint on ``127.0.0.1``, plain HTTP or TLS.

    ``credentials``: a ``RolesAnywhereEmulator`` (or any object with ``lookup(akid)``), a
    :class:`CredentialRegistry`, or a callable ``lookup(akid)``; required unless
    ``verify_signatures=False``. ``store=False`` verifies and counts (requests, bytes, events)
    without writing anything or keeping the batches: the benchmark mode. ``clock`` returns the
    current time (timezone-aware) and is read once per request; tests may replace :attr:`clock`.
    ``database`` is ``":memory:"`` or a file path. The database stays readable after
    :meth:`stop`; :meth:`close` (and leaving the ``with`` block) stops and closes it.
    ``capacity`` (or :meth:`set_capacity`) bounds the pipeline's buffer (429 when a request does
    not fit); ``monotonic`` (seconds) is its clock, injectable; :meth:`capacity_stats` and
    :meth:`capacity_history` count requests and events accepted and throttled.
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
        query_service: str | None = None,
        capacity: Capacity | None = None,
        retry_after: bool = False,
        monotonic: Callable[[], float] = time.monotonic,
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
            check_status(status)
        super().__init__(host, tls)
        self.region = region
        self.path = path
        self.verify_signatures = verify_signatures
        if query_service is not None and credentials is None:
            raise ValueError("query_service needs credentials= (a registry or lookup)")
        #: The SigV4 service the query endpoints check (``None``: they take any request).
        self.query_service = query_service
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
        self._verifier = SigV4Verifier(as_lookup(credentials) if credentials is not None else None)
        self._stamper = Stamper(index)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._script: deque[int] = deque()
        self._counts = [0] * 8  # see _REQ … _QUERIES
        self._status_counts: dict[int, int] = {}
        self._batches: list[AcceptedBatch] = []
        self._rejections: deque[Rejection] = deque(maxlen=1000)
        self._requests: list[tuple[RecordedRequest, int]] = []
        self._store = DocumentStore(database)
        self._init_capacity(capacity, retry_after, monotonic)

    # --- configuration and fault injection --------------------------------------------------------

    def script(self, statuses: Iterable[int]) -> None:
        """Queue statuses, one consumed per ingest request before anything else.

        A 200 entry means "handle this request normally"; any other status is answered as it is
        (plain-text body) and the request is otherwise ignored: nothing verified or stored.
        """
        items = [check_status(status) for status in statuses]
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

    requests = SlotCounter(_REQ, "Ingest requests received (any answer).")
    accepted_requests = SlotCounter(_ACC, "Ingest requests answered 200 after normal handling.")
    events_accepted = SlotCounter(
        _EVENTS, "Events accepted (stored, or counted with ``store=False``); dropped ones excluded."
    )
    bytes_received = SlotCounter(
        _BYTES, "Body bytes of every ingest request, as received (compressed when gzip)."
    )
    bytes_accepted = SlotCounter(
        _BYTES_ACC, "Body bytes of the accepted ingest requests, as received."
    )
    dropped_events = SlotCounter(
        _DROPPED,
        "Events silently dropped by persistent buffering (over ``persistent_chunk_bytes``).",
    )
    resplit_requests = SlotCounter(
        _RESPLIT, "Accepted bodies persistent buffering had to re-split."
    )
    signed_queries = SlotCounter(
        _QUERIES, "Query requests whose signature verified (query_service)."
    )

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
        """Forget counters (the capacity's too), batches, rejections, recorded requests and the
        script.

        The stored documents stay unless ``clear_store``. The fault generator is not reseeded.
        """
        with self._lock:
            self._counts = [0] * len(self._counts)
            self._status_counts.clear()
            self._batches.clear()
            self._rejections.clear()
            self._requests.clear()
            self._script.clear()
        self.capacity_counter.reset()
        if clear_store:
            self._store.clear()

    # --- stored documents -------------------------------------------------------------------------

    def count(self, index: str | None = None) -> int:
        """Stored documents, in every index or those ``index`` names (list, wildcards)."""
        return self._store.count(index)

    def logs(self, index: str | None = None) -> list[str | None]:
        """The stored ``log`` values in insertion order (``None`` for events without one)."""
        return self._store.logs(index)

    def duplicates(self, index: str | None = None) -> dict[str, int]:
        """``log`` values stored more than once, with their counts (empty: no duplicate)."""
        return self._store.duplicates(index)

    def documents(self, index: str | None = None, *, limit: int | None = None) -> list[Any]:
        """The stored documents (``_source``), in insertion order."""
        return self._store.documents(index, limit=limit)

    def indices(self) -> dict[str, int]:
        """Index name → stored documents, sorted by name."""
        return self._store.indices()

    def index_name(self, when: datetime) -> str:
        """The index the configured pattern names for ``when`` (timezone-aware; UTC is used)."""
        if when.tzinfo is None:
            raise ValueError("index_name needs a timezone-aware datetime")
        return self._stamper.index_name(when)

    def search(self, index: str = "_all", body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """What ``POST /{index}/_search`` answers (raises ``ValueError`` for a 400 or 404)."""
        return self._store.search(index, body)

    # --- server lifecycle: start, stop, url, port, with (ServedEmulator) --------------------------

    def start(self) -> Self:
        """Bind a random port and serve in a daemon thread."""
        if self._server is None and self._store.closed:
            raise RuntimeError("the OSIS emulator was closed")
        return super().start()

    def close(self) -> None:
        """Stop and close the database."""
        self.stop()
        self._store.close()

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
                answer = self._query(handler.command, target, handler.headers.items(), body)
            else:
                answer = self._ingest(handler.command, target, handler.headers.items(), body, size)
        except Exception as exc:  # a bug: say so rather than drop the connection
            answer = _plain(500, f"emulator error: {type(exc).__name__}"[:200])
        if not complete:
            handler.close_connection = True
        handler.write(answer)

    def _query(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes | None
    ) -> Answer:
        if self.query_service is not None and body is not None:
            lowered = {name.lower(): value for name, value in reversed(headers)}
            checked = self._check_signature(
                self.query_service, method, target, headers, lowered, body, self._now()
            )
            if isinstance(checked, Answer):
                return checked
            with self._lock:
                self._counts[_QUERIES] += 1
        return self._store.query(method, target, body)

    def _check_signature(self, service: str, *request: Any) -> str | Answer:
        """The access key id when the SigV4 signature of ``request`` (the verifier's ``method,
        target, headers, lowered, body, now``) verifies for ``service``, else the AWS-shaped
        refusal (kept in :attr:`rejections`)."""
        try:
            return self._verifier.verify(
                *request,
                expected_region=self.region,
                require_signed_content_type=self.require_signed_content_type,
                expected_service=service,
            )
        except Reject as reject:
            rejection = reject.rejection
            with self._lock:
                self._rejections.append(rejection)
            return json_answer(
                rejection.status,
                {"message": rejection.message},
                [
                    ("Content-Type", "application/json; charset=UTF-8"),
                    ("x-amzn-ErrorType", rejection.error_type),
                    ("x-amzn-RequestId", str(uuid.uuid4())),
                ],
            )

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
    ) -> Answer:
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
            answer = _plain(forced, phrase(forced))
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
    ) -> Answer:
        if body is None:
            return _plain(
                413, f"Request Entity Too Large: the limit is {self.max_body_bytes} bytes"
            )
        lowered = {name.lower(): value for name, value in reversed(headers)}
        now = self._now()
        access_key_id: str | None = None
        if self.verify_signatures:
            checked = self._check_signature("osis", method, target, headers, lowered, body, now)
            if isinstance(checked, Answer):
                return checked
            access_key_id = checked
        try:
            content, gzipped = decode(
                body, lowered.get("content-encoding"), self.compression, self.max_body_bytes
            )
            events, raws = read_events(
                content,
                keep_raw=self.store,
                split_threshold=self.split_threshold,
                max_json_values=self.max_json_values,
                max_batch_events=self.max_batch_events,
                reject_if=self.reject_if,
            )
        except BadBody as bad:
            return _plain(bad.status, bad.message)
        chunks, dropped = 1, 0
        if self.persistent_buffering and len(content) > self.persistent_chunk_bytes:
            events, raws, chunks, dropped = resplit(events, raws, self.persistent_chunk_bytes)
        refused = self._over_capacity(len(events))
        if refused is not None:
            return refused
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

    def _accept(self, events: list[dict[str, Any]], raws: list[str], now: datetime) -> str:
        """Add ``@timestamp`` to the events, store them when storing; the receive-time index."""
        index, rows = self._stamper.stamp(
            events, raws, now, per_event=self.index_time == "event", documents=self.store
        )
        if rows:
            self._store.insert(rows)
        return index
