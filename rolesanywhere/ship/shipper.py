"""Ship log events to Amazon OpenSearch Ingestion, at least once: batching, retries, dead letters.

A sans-I/O core (:class:`_Core`: encoder, batcher, the retry/split/bisect state machine,
settlement and counters) driven by two thin shells: :class:`Shipper` (worker threads,
``httpx.Client``) and :class:`AsyncShipper` (worker tasks, ``httpx.AsyncClient``)::

    config = ShipperConfig(url="https://pipe-abc.us-east-1.osis.amazonaws.com/log/ingest",
                           gzip=True, path_key="file", state_dir="/var/lib/ship")
    with Shipper(config, auth, on_settled=tailer.commit) as shipper:
        while running:
            shipper.submit_chunks(tailer.poll())   # token = Chunk; committed once settled

Events
------
``submit(events, token=None, *, source=None, date=None)`` takes an iterable of raw lines
(``bytes`` decoded as UTF-8 with replacement, counted in ``invalid_utf8_lines``; or ``str``) and
records (mappings). A line becomes Fluent Bit's record shape ``{"date": <epoch seconds>, "log":
<line>}`` followed by ``path_key: source``, ``host_key: <host name>`` and the fixed ``fields``,
in that order. A record is sent as given, with ``date_key`` (the submission time), ``path_key``,
``host_key`` and ``fields`` added where it lacks them. Lines are encoded with a per-submission
template and the C-accelerated ``json.encoder.encode_basestring_ascii``: bodies are pure ASCII.

Batching and limits
-------------------
A request body is one JSON array (compact). It is sent when adding an event would take it over
``batch_bytes`` (default and hard maximum 1 MiB, *before* compression: Data Prepper's persistent
buffer silently drops more), when it holds ``batch_events`` events, or ``flush_interval`` seconds
after its first event. No body ever exceeds ``batch_bytes``. An event whose own encoding exceeds
``batch_bytes - 2`` has its ``log`` cut to fit and ``truncated_key: true`` added
(``oversize="truncate"``, the default; a record without a string ``log`` cannot be cut) or is
quarantined (``oversize="quarantine"``); both are counted and logged. With ``gzip=True`` the body
is compressed (``gzip_level`` 1 by default) and sent with ``Content-Encoding: gzip``; SigV4
hashes the compressed bytes.

Answers (PROTOCOL.md §4)
------------------------
- 2xx: delivered.
- 413: the batch is split in halves, each sent on its own (recursively); a single event → dead
  letter. 400: the same bisection finds the refused events; halves answered 2xx are delivered,
  single events answered 400 go to the dead letter with the status and the server's reason.
  ``refusal_breaker`` 400s in a row mean the pipeline refuses everything (a configuration
  problem): refused batches are then held and retried, not bisected, for up to ``refusal_hold``
  seconds or until a 2xx.
- 401/403 (after ``SigV4Auth`` already re-signed once): retried with backoff. When the answer
  says the credentials are expired or invalid, ``SigV4Auth.refresh_if_stale`` forces a refresh,
  at most once per its ``forced_refresh_interval`` (60 s); any other 401/403 (``AccessDenied``:
  a permission problem) keeps the credentials, so it costs no CreateSession.
- 408, 429, other statuses, connection errors, timeouts and credential-source failures: retried
  with exponential backoff and full jitter (``backoff_base`` doubling up to ``backoff_max``;
  ``Retry-After`` honoured up to that cap). No limit unless ``retry_limit`` is set; a batch
  that exhausts it goes to the dead letter.
- Nothing is dropped silently: every event ends *delivered* or *quarantined* (a JSON line in
  ``dead_letter_path``: ``{"time", "reason", "status", "event"}``, appended, flushed and fsynced
  before the event counts as settled). Only a close that times out leaves events unsettled
  (``abandoned_events``): their tokens never settle, so a tailer re-reads them after a restart.

Settlement
----------
``submit(..., token=T)`` registers one *ticket*; ``on_settled([T, ...])`` is called once for
``T`` when every event of that submission is delivered or quarantined, never before and never
twice. A ticket may span batches and a batch may hold many tickets' events (runs of
``[ticket, count]`` follow events through splits). Callbacks come from worker threads (sync; one
at a time) or the event loop (async) and must not block for long nor call ``submit``.

Back-pressure: ``submit`` blocks (awaits) while more than ``max_pending_bytes`` of encoded events
are unsettled; ``Shipper.submit(..., stop=event)`` gives up (``ShipperInterruptedError``) soon
after ``event`` is set, e.g. by a signal handler (an ``AsyncShipper.submit`` is cancelled).
``max_in_flight`` workers send concurrently (default 2); the tailer's contiguous-prefix commit
makes out-of-order settlement safe.

Lifecycle: ``flush(timeout=None)`` sends partial batches at once and waits until everything
submitted is settled *and* its callbacks have returned (``False`` on timeout). ``close(timeout=
None)`` flushes, then stops the workers; events still unsettled are abandoned (counted, never
settled). ``with`` closes without a timeout, or within 5 s when leaving on an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import random
import socket
import threading
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from json.encoder import encode_basestring_ascii as _esc
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self
from urllib.parse import urlsplit

import httpx

from rolesanywhere.auth.sigv4auth import SigV4Auth, region_from_host
from rolesanywhere.errors import (
    InvalidParameterError,
    RolesAnywhereError,
    ShipperClosedError,
    ShipperInterruptedError,
    safe_text,
)
from rolesanywhere.retry import RetryPolicy
from rolesanywhere.session.transport import USER_AGENT, aexchange, exchange, resolve_verify

if TYPE_CHECKING:
    from rolesanywhere.ship.config import ShipConfig
    from rolesanywhere.ship.tail import Chunk

__all__ = [
    "MAX_BATCH_BYTES",
    "AsyncShipper",
    "DeadLetterFile",
    "Event",
    "Shipper",
    "ShipperClosedError",
    "ShipperConfig",
    "ShipperInterruptedError",
    "ShipperStats",
]

logger = logging.getLogger(__name__)

#: The largest request body (before compression) Data Prepper handles without silent drops.
MAX_BATCH_BYTES = 1 << 20
_MIN_BATCH_BYTES = 64
_SLICE_EVENTS = 2048  # events encoded per lock acquisition
_DETAIL_CHARS = 200
#: Seconds ``with`` waits for delivery when leaving on an exception (otherwise: until settled).
_EXIT_ON_ERROR_TIMEOUT = 5.0
#: Seconds between looks at ``submit``'s ``stop`` event while waiting for room.
_STOP_POLL = 0.05
#: Seconds ``close`` waits for each worker to end, before and after closing the connections:
#: a worker stuck in a request is a daemon thread and is left behind.
_JOIN_TIMEOUT = 0.5

Event = bytes | bytearray | memoryview | str | Mapping[str, Any]
"""One event: a raw line or a record."""

SettleCallback = Callable[[list[Any]], object]


# --- configuration --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShipperConfig:
    """Where and how to ship; validated on construction (one-line ``InvalidParameterError``)."""

    #: ``https://{host}{uri}`` (or ``http://`` for a local emulator).
    url: str
    #: Largest request body before compression, at most :data:`MAX_BATCH_BYTES`.
    batch_bytes: int = MAX_BATCH_BYTES
    #: Most events per request (``None``: only ``batch_bytes`` limits).
    batch_events: int | None = None
    #: Seconds after its first event that a partial batch is sent.
    flush_interval: float = 1.0
    #: Compress bodies (the pipeline must set ``compression: gzip``).
    gzip: bool = False
    #: 1 by default: ~2x faster than 6 on log lines for ~7% larger bodies.
    gzip_level: int = 1
    #: An event longer than a batch: ``"truncate"`` its log or ``"quarantine"`` it.
    oversize: Literal["truncate", "quarantine"] = "truncate"
    #: ``submit`` blocks while more than this many encoded bytes are unsettled.
    max_pending_bytes: int = 8 << 20
    #: Concurrent requests (worker threads or tasks).
    max_in_flight: int = 2
    #: Start a new batch rather than split a submission that would fit whole in one: with one
    #: submission per tail chunk, a chunk is then settled by a single request, which bounds the
    #: duplicates after a crash to what was in flight (``ship`` turns this on).
    whole_submissions: bool = False
    #: Retries of one request after its first attempt; ``None``: until delivered.
    retry_limit: int | None = None
    #: After this many 400 answers in a row (no 2xx between), the pipeline is taken to refuse
    #: everything (a configuration problem such as gzip without ``compression: gzip``), not bad
    #: events: refused batches are held and retried for ``refusal_hold`` seconds instead of
    #: bisected into the dead letter. ``0`` turns the breaker off.
    refusal_breaker: int = 32
    refusal_hold: float = 300.0
    #: First backoff ceiling (seconds), doubled per retry up to ``backoff_max``; full jitter.
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    #: Seconds one request may take, all of it (however slowly the server answers), and to
    #: connect.
    request_timeout: float = 30.0
    connect_timeout: float = 10.0
    #: TLS verification: ``True`` (system CAs, or ``AWS_CA_BUNDLE``), ``False``, or a PEM path.
    verify: bool | str = True
    #: Use proxies from the environment.
    trust_env: bool = True
    #: Extra request headers, in order.
    headers: tuple[tuple[str, str], ...] = ()
    # record shape
    log_key: str = "log"
    #: ``None``: records get no time field.
    date_key: str | None = "date"
    #: ``"double"`` (epoch seconds, fractional), ``"epoch"`` (whole seconds) or ``"iso8601"``.
    date_format: Literal["double", "epoch", "iso8601"] = "double"
    #: Field holding ``submit(source=...)`` (a file path); ``None``: not added.
    path_key: str | None = None
    #: Field holding ``hostname``; ``None``: not added.
    host_key: str | None = None
    #: Host name for ``host_key`` (default: ``socket.gethostname()``).
    hostname: str | None = None
    #: Fixed fields added to every event, in order.
    fields: tuple[tuple[str, Any], ...] = ()
    #: Marker added to truncated events.
    truncated_key: str = "truncated"
    # dead letters
    #: Directory for the default dead-letter file (default: ``shipconfig.default_state_dir()``).
    state_dir: str | None = None
    #: Dead-letter file (default: ``<state_dir>/dead-letter.jsonl``).
    dead_letter_path: str | None = None

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidParameterError(
                f"shipper url must be http(s)://host[:port]/path, not {self.url[:100]!r}"
            )
        if not _MIN_BATCH_BYTES <= self.batch_bytes <= MAX_BATCH_BYTES:
            raise InvalidParameterError(
                f"batch_bytes must be within {_MIN_BATCH_BYTES}..{MAX_BATCH_BYTES} (1 MiB: "
                f"OpenSearch Ingestion silently drops data over it), not {self.batch_bytes}"
            )
        if self.batch_events is not None and self.batch_events < 1:
            raise InvalidParameterError(f"batch_events must be at least 1, not {self.batch_events}")
        if not self.flush_interval > 0:
            raise InvalidParameterError(
                f"flush_interval must be positive, not {self.flush_interval}"
            )
        if not 0 <= self.gzip_level <= 9:
            raise InvalidParameterError(f"gzip_level must be within 0..9, not {self.gzip_level}")
        if self.oversize not in ("truncate", "quarantine"):
            raise InvalidParameterError(
                f"oversize must be 'truncate' or 'quarantine', not {self.oversize!r}"
            )
        if self.max_pending_bytes < self.batch_bytes:
            raise InvalidParameterError(
                f"max_pending_bytes ({self.max_pending_bytes}) must be at least batch_bytes "
                f"({self.batch_bytes})"
            )
        if self.max_in_flight < 1:
            raise InvalidParameterError(
                f"max_in_flight must be at least 1, not {self.max_in_flight}"
            )
        if self.retry_limit is not None and self.retry_limit < 0:
            raise InvalidParameterError(f"retry_limit must be >= 0 or None, not {self.retry_limit}")
        if self.backoff_base < 0 or self.backoff_max < 0:
            raise InvalidParameterError("backoff_base and backoff_max must not be negative")
        if self.refusal_breaker < 0 or self.refusal_hold < 0:
            raise InvalidParameterError(
                "refusal_breaker and refusal_hold must not be negative (0 turns the breaker off)"
            )
        if not (self.request_timeout > 0 and self.connect_timeout > 0):
            raise InvalidParameterError("request_timeout and connect_timeout must be positive")
        if self.date_format not in ("double", "epoch", "iso8601"):
            raise InvalidParameterError(
                f"date_format must be 'double', 'epoch' or 'iso8601', not {self.date_format!r}"
            )
        if not self.log_key:
            raise InvalidParameterError("log_key must not be empty")

    @classmethod
    def from_ship_config(cls, config: ShipConfig, **overrides: Any) -> ShipperConfig:
        """The shipper settings of a ``rolesanywhere ship`` :class:`ShipConfig`."""
        verify: bool | str = config.tls_verify
        if config.tls_verify and config.ca_bundle:
            verify = config.ca_bundle
        options: dict[str, Any] = {
            "url": config.url,
            "batch_bytes": config.batch_bytes,
            "batch_events": config.batch_events,
            "flush_interval": config.flush_interval,
            "gzip": config.compress,
            "retry_limit": config.retry_limit,
            "backoff_max": config.max_backoff,
            "request_timeout": config.request_timeout,
            "verify": verify,
            "headers": config.headers,
            "log_key": config.log_key,
            "date_key": config.date_key,
            "date_format": config.date_format,
            "path_key": config.path_key,
            "host_key": config.host_key,
            "fields": config.fields,
            "state_dir": config.state_dir or None,
        }
        options.update(overrides)
        return cls(**options)

    def resolved_dead_letter_path(self) -> str:
        if self.dead_letter_path:
            return self.dead_letter_path
        state_dir = self.state_dir
        if not state_dir:
            from rolesanywhere.ship.config import default_state_dir

            state_dir = default_state_dir()
        return os.path.join(state_dir, "dead-letter.jsonl")


# --- counters ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShipperStats:
    """A snapshot of the counters. Every submitted event is counted in exactly one of
    ``events_delivered``, ``events_quarantined`` or ``pending_events`` (of which
    ``abandoned_events`` were given up by a close that timed out)."""

    events_submitted: int
    events_delivered: int
    #: Uncompressed body bytes of delivered batches.
    bytes_delivered: int
    #: Body bytes put on the wire (compressed when gzip), retries included.
    bytes_sent: int
    requests: int
    #: Answers by status (``"conn"``, ``"timeout"``, ``"credentials"``, ``"error"`` for failures).
    answers: dict[str, int]
    #: Retries by cause (same keys).
    retries: dict[str, int]
    splits_413: int
    bisections_400: int
    #: Times the refusal breaker opened (``refusal_breaker`` 400 answers in a row).
    refusal_trips: int
    events_quarantined: int
    #: Quarantined events by cause: ``"400"``, ``"413"``, ``"retry_limit"``, ``"oversize"``,
    #: ``"unencodable"``, ``"error"`` (a bug in the shipper: reported in the log).
    quarantined: dict[str, int]
    truncated_events: int
    invalid_utf8_lines: int
    tokens_settled: int
    callback_errors: int
    dead_letter_errors: int
    in_flight: int
    pending_events: int
    pending_bytes: int
    abandoned_events: int
    last_error: str | None


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def _status_line(stats: ShipperStats) -> str:
    retries = " ".join(f"{k}x{v}" for k, v in sorted(stats.retries.items())) or "none"
    quarantined = ", ".join(f"{k}: {v}" for k, v in sorted(stats.quarantined.items()))
    line = (
        f"shipped {stats.events_delivered} events ({_size(stats.bytes_delivered)}) in "
        f"{stats.requests} requests; pending {stats.pending_events} "
        f"({_size(stats.pending_bytes)}), "
        f"in flight {stats.in_flight}; retries {retries}; 413 splits {stats.splits_413}; "
        f"400 bisections {stats.bisections_400}"
        + (f" (refusal breaker opened {stats.refusal_trips}x)" if stats.refusal_trips else "")
        + f"; quarantined {stats.events_quarantined}"
        + (f" ({quarantined})" if quarantined else "")
        + f"; truncated {stats.truncated_events}"
    )
    if stats.abandoned_events:
        line += f"; abandoned {stats.abandoned_events}"
    if stats.last_error:
        line += f"; last error: {stats.last_error}"
    return line


class _Throttle:
    """At most one log line per ``interval`` seconds per key; says how many were suppressed."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self._last: dict[str, tuple[float, int]] = {}

    def log(self, key: str, level: int, message: str, *args: object) -> None:
        now = time.monotonic()
        last, suppressed = self._last.get(key, (-1e18, 0))
        if now - last < self.interval:
            self._last[key] = (last, suppressed + 1)
            return
        self._last[key] = (now, 0)
        if suppressed:
            message += f" ({suppressed} similar messages suppressed)"
        logger.log(level, message, *args)


# --- encoding ---------------------------------------------------------------------------------


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False, default=str)


def _fallback_json(value: object) -> str:
    """Something JSON for the dead letter, whatever ``value`` is."""
    try:
        return json.dumps(value, ensure_ascii=True, separators=(",", ":"), default=repr)
    except (TypeError, ValueError, RecursionError):
        return _dumps({"repr": repr(value)[: 1 << 20]})


@dataclass(slots=True)
class _Encoded:
    items: list[str] = field(default_factory=list)
    #: ``(item, reason, counter key)`` for events that go straight to the dead letter.
    rejects: list[tuple[str, str, str]] = field(default_factory=list)
    truncated: int = 0
    invalid_utf8: int = 0
    nbytes: int = 0


class _Encoder:
    """Events → compact ASCII JSON objects (``str``; one byte per character)."""

    def __init__(self, config: ShipperConfig) -> None:
        self.config = config
        self.limit = config.batch_bytes - 2  # one event alone in "[...]"
        self.log_key = config.log_key
        self.date_key = config.date_key
        self.date_format = config.date_format
        self.path_key = config.path_key
        self.truncated_key = config.truncated_key
        fixed: list[tuple[str, Any]] = []
        if config.host_key:
            fixed.append((config.host_key, config.hostname or socket.gethostname()))
        fixed.extend(config.fields)
        self.fixed = tuple(fixed)
        self.fixed_keys = frozenset(k for k, _ in fixed)
        self.fixed_json = "".join(f",{_esc(k)}:{_dumps(v)}" for k, v in fixed)
        self.log_key_json = _esc(config.log_key)
        self.marker = f",{_esc(config.truncated_key)}:true"

    def date_value(self, when: float) -> float | int | str:
        if self.date_format == "double":
            return when
        if self.date_format == "epoch":
            return int(when)
        stamp = datetime.fromtimestamp(when, UTC)
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond:06d}Z"

    def encode(self, events: Iterable[Event], source: str | None, when: float) -> _Encoded:
        out = _Encoded()
        date = self.date_value(when)
        head = "{"
        if self.date_key is not None:
            head += f"{_esc(self.date_key)}:{_dumps(date)},"
        head += self.log_key_json + ":"
        tail = self.fixed_json + "}"
        if self.path_key is not None and source is not None:
            tail = f",{_esc(self.path_key)}:{_esc(source)}" + tail
        items = out.items
        append = items.append
        limit = self.limit
        nbytes = 0
        for event in events:
            kind = type(event)
            if kind is bytes:
                try:
                    text = event.decode()  # type: ignore[union-attr]
                except UnicodeDecodeError:
                    text = event.decode("utf-8", "replace")  # type: ignore[union-attr]
                    out.invalid_utf8 += 1
            elif kind is str:
                text = event
            elif isinstance(event, bytes | bytearray | memoryview):
                raw = bytes(event)
                try:
                    text = raw.decode()
                except UnicodeDecodeError:
                    text = raw.decode("utf-8", "replace")
                    out.invalid_utf8 += 1
            elif isinstance(event, str):
                text = str(event)
            elif isinstance(event, Mapping):
                self._record(event, source, date, out)
                continue
            else:
                raise TypeError(
                    f"events must be bytes, str or mappings, not {type(event).__name__}"
                )
            item = head + _esc(text) + tail
            if len(item) > limit:
                self._oversize_line(text, head, tail, item, out)
                continue
            nbytes += len(item)
            append(item)
        out.nbytes += nbytes
        return out

    def _oversize_line(self, text: str, head: str, tail: str, item: str, out: _Encoded) -> None:
        if self.config.oversize == "truncate":
            marked = tail[:-1] + self.marker + "}"
            cut = self._truncate(text, lambda s: head + _esc(s) + marked)
            if cut is not None:
                out.items.append(cut)
                out.nbytes += len(cut)
                out.truncated += 1
                return
        out.rejects.append((item, self._too_big(len(item)), "oversize"))

    def _too_big(self, size: int) -> str:
        return (
            f"event of {size} bytes encoded exceeds the {self.limit}-byte limit (batch_bytes - 2)"
        )

    def _truncate(self, text: str, build: Callable[[str], str]) -> str | None:
        """The longest ``build(text[:k])`` within the limit (``None`` if even ``k = 0`` is over)."""
        limit = self.limit
        if len(build("")) > limit:
            return None
        lo, hi = 0, len(text)  # build(text[:lo]) fits; the answer is in [lo, hi]
        # JSON escaping at most sextuples a character: start from a close guess.
        guess = min(hi, max(lo, (limit - len(build(""))) // 6))
        if len(build(text[:guess])) <= limit:
            lo = guess
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if len(build(text[:mid])) <= limit:
                lo = mid
            else:
                hi = mid - 1
        return build(text[:lo])

    def _record(
        self, record: Mapping[str, Any], source: str | None, date: object, out: _Encoded
    ) -> None:
        doc: dict[str, Any] = {}
        if self.date_key is not None and self.date_key not in record:
            doc[self.date_key] = date
        doc.update(record)
        if self.path_key is not None and source is not None and self.path_key not in doc:
            doc[self.path_key] = source
        for key, value in self.fixed:
            if key not in doc:
                doc[key] = value
        try:
            item = _dumps(doc)
        except (TypeError, ValueError, RecursionError) as exc:
            reason = f"cannot encode the record as JSON: {type(exc).__name__}: {exc}"[:300]
            out.rejects.append((_fallback_json(doc), reason, "unencodable"))
            return
        if len(item) <= self.limit:
            out.items.append(item)
            out.nbytes += len(item)
            return
        log = doc.get(self.log_key)
        if self.config.oversize == "truncate" and isinstance(log, str):
            marked = dict(doc)
            marked[self.truncated_key] = True

            def build(text: str) -> str:
                marked[self.log_key] = text
                return _dumps(marked)

            cut = self._truncate(log, build)
            if cut is not None:
                out.items.append(cut)
                out.nbytes += len(cut)
                out.truncated += 1
                return
        out.rejects.append((item, self._too_big(len(item)), "oversize"))


# --- batches, tickets and the core ------------------------------------------------------------


class _Ticket:
    """One ``submit`` call: settles when sealed and every one of its events is settled."""

    __slots__ = ("done", "outstanding", "sealed", "token")

    def __init__(self, token: Any) -> None:
        self.token = token
        self.outstanding = 0
        self.sealed = False
        self.done = False


_Run = list[Any]  # [ticket, count]


class _Batch:
    """Events to send together; ``runs`` says which ticket owns which consecutive events."""

    __slots__ = ("doomed", "items", "nbytes", "opened", "raw_len", "runs", "wire")

    def __init__(
        self,
        items: list[str],
        runs: list[_Run],
        nbytes: int,
        opened: float = 0.0,
        doomed: tuple[str, str] | None = None,
    ) -> None:
        self.items = items
        self.runs = runs
        self.nbytes = nbytes  # sum of item lengths
        self.opened = opened
        #: ``(reason, counter key)``: straight to the dead letter.
        self.doomed = doomed
        self.wire: bytes | None = None
        self.raw_len = 0

    @property
    def body_size(self) -> int:
        return self.nbytes + len(self.items) + 1 if self.items else 2


def _split_runs(runs: list[_Run], k: int) -> tuple[list[_Run], list[_Run]]:
    left: list[_Run] = []
    right: list[_Run] = []
    seen = 0
    for ticket, count in runs:
        if seen >= k:
            right.append([ticket, count])
        elif seen + count <= k:
            left.append([ticket, count])
        else:
            left.append([ticket, k - seen])
            right.append([ticket, seen + count - k])
        seen += count
    return left, right


def _split(batch: _Batch) -> tuple[_Batch, _Batch]:
    k = len(batch.items) // 2
    left_items, right_items = batch.items[:k], batch.items[k:]
    left_runs, right_runs = _split_runs(batch.runs, k)
    left_bytes = sum(map(len, left_items))
    return (
        _Batch(left_items, left_runs, left_bytes),
        _Batch(right_items, right_runs, batch.nbytes - left_bytes),
    )


# actions the delivery flow asks the shell to perform


@dataclass(frozen=True, slots=True)
class _Send:
    batch: _Batch


@dataclass(frozen=True, slots=True)
class _Sleep:
    seconds: float


@dataclass(frozen=True, slots=True)
class _Quarantine:
    batch: _Batch
    reason: str
    status: int | None


@dataclass(frozen=True, slots=True)
class _Answer:
    """An HTTP answer (``status``) or a failure (``status`` 0, ``kind`` says which)."""

    status: int
    kind: str
    detail: str
    retry_after: float | None = None


_Action = _Send | _Sleep | _Quarantine
_Flow = Generator[_Action, Any, None]


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


class _Core:
    """Everything but I/O. Not thread-safe: the sync shell calls it under one lock."""

    def __init__(
        self,
        config: ShipperConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.encoder = _Encoder(config)
        self.clock = clock
        self.rand = rand
        self.policy = RetryPolicy(
            max_attempts=1, base_delay=config.backoff_base, max_delay=config.backoff_max
        )
        self.open: _Batch | None = None
        self.ready: deque[_Batch] = deque()
        self.forcing = 0  # flushers waiting: send partial batches at once
        self.completed: list[Any] = []  # tokens settled, for the shell to call back
        self.throttle = _Throttle()
        # counters
        self.events_submitted = 0
        self.events_delivered = 0
        self.bytes_delivered = 0
        self.bytes_sent = 0
        self.requests = 0
        self.answers: dict[str, int] = {}
        self.retries: dict[str, int] = {}
        self.splits_413 = 0
        self.bisections_400 = 0
        # the refusal breaker: 400 answers in a row, whether it is open, when it opened (clock)
        self.refusal_streak = 0
        self.refusal_open = False
        self.refusal_opened_at = 0.0
        self.refusal_trips = 0
        # Held batches are retried at most this often, however small the backoff settings.
        self._hold_pause = min(1.0, config.refusal_hold / 10)
        self.events_quarantined = 0
        self.quarantined: dict[str, int] = {}
        self.truncated_events = 0
        self.invalid_utf8_lines = 0
        self.tokens_settled = 0
        self.callback_errors = 0
        self.dead_letter_errors = 0
        self.in_flight = 0
        self.pending_events = 0
        self.pending_bytes = 0
        self.abandoned_events = 0
        self.last_error: str | None = None

    # --- producer side ------------------------------------------------------------------------

    def add(self, encoded: _Encoded, ticket: _Ticket, now: float) -> bool:
        """Queue encoded events of ``ticket``; ``True`` when workers should look again."""
        items = encoded.items
        n = len(items) + len(encoded.rejects)
        ticket.outstanding += n
        self.events_submitted += n
        self.pending_events += n
        self.truncated_events += encoded.truncated
        self.invalid_utf8_lines += encoded.invalid_utf8
        if encoded.truncated:
            self.throttle.log(
                "truncated",
                logging.WARNING,
                "truncated %d event(s) over the %d-byte limit (marked %s: true)",
                encoded.truncated,
                self.encoder.limit,
                self.config.truncated_key,
            )
        wake = False
        for item, reason, key in encoded.rejects:
            self.pending_bytes += len(item)
            self.ready.append(_Batch([item], [[ticket, 1]], len(item), now, (reason, key)))
            wake = True
        if not items:
            return wake
        self.pending_bytes += encoded.nbytes
        limit = self.config.batch_bytes
        max_events = self.config.batch_events or 1 << 62
        batch = self.open
        i, total = 0, len(items)
        if batch is not None and batch.items and self.config.whole_submissions:
            need = encoded.nbytes + total  # the items and their separators
            fits_alone = need + 1 <= limit and total <= max_events
            fits_here = batch.body_size + need <= limit and len(batch.items) + total <= max_events
            if fits_alone and not fits_here:
                self.ready.append(batch)
                batch = None
                wake = True
        while i < total:
            if batch is None:
                batch = _Batch([], [], 0, now)
                wake = True  # a new timer
            size, count, start = batch.body_size, len(batch.items), i
            added = 0
            while i < total and count < max_events:
                grow = len(items[i]) + (1 if count else 0)
                if size + grow > limit:
                    break
                size += grow
                added += len(items[i])
                count += 1
                i += 1
            if i == start and not batch.items:  # pragma: no cover - every item fits alone
                raise AssertionError("an encoded event does not fit in an empty batch")
            if i > start:
                batch.items.extend(items[start:i])
                batch.nbytes += added
                runs = batch.runs
                if runs and runs[-1][0] is ticket:
                    runs[-1][1] += i - start
                else:
                    runs.append([ticket, i - start])
            if i < total or count >= max_events:
                self.ready.append(batch)
                batch = None
                wake = True
        self.open = batch
        return wake

    def seal(self, ticket: _Ticket) -> None:
        ticket.sealed = True
        if ticket.outstanding == 0:
            self._complete(ticket)

    # --- worker side --------------------------------------------------------------------------

    def take(self, now: float) -> _Batch | None:
        if self.ready:
            return self.ready.popleft()
        batch = self.open
        if batch is not None and (self.forcing or now - batch.opened >= self.config.flush_interval):
            self.open = None
            return batch
        return None

    def wake_in(self, now: float) -> float | None:
        """Seconds until the open batch is due (``None``: no timer)."""
        if self.ready:
            return 0.0
        if self.open is None:
            return None
        return max(0.0, self.open.opened + self.config.flush_interval - now)

    def has_work(self, now: float) -> bool:
        return bool(self.ready) or (
            self.open is not None
            and (self.forcing > 0 or now - self.open.opened >= self.config.flush_interval)
        )

    def close_open(self) -> bool:
        """Queue the partial batch for sending now (a flush); ``True`` if there was one."""
        if self.open is None:
            return False
        self.ready.append(self.open)
        self.open = None
        return True

    def take_completed(self) -> list[Any]:
        done, self.completed = self.completed, []
        return done

    def body(self, batch: _Batch) -> bytes:
        """The bytes to send (computed once per batch; pure, safe outside the lock)."""
        if batch.wire is None:
            raw = ("[" + ",".join(batch.items) + "]").encode()
            batch.raw_len = len(raw)
            if self.config.gzip:
                batch.wire = zlib.compress(raw, self.config.gzip_level, wbits=31)
            else:
                batch.wire = raw
        return batch.wire

    def delay(self, attempt: int, retry_after: float | None) -> float:
        pause = self.policy.delay(attempt, self.rand)
        if retry_after is not None:
            pause = max(pause, min(retry_after, self.config.backoff_max))
        return pause

    # --- settlement ---------------------------------------------------------------------------

    def _complete(self, ticket: _Ticket) -> None:
        if ticket.done:  # pragma: no cover - a bug, never silently
            raise AssertionError("a ticket settled twice")
        ticket.done = True
        self.tokens_settled += 1
        if ticket.token is not None:
            self.completed.append(ticket.token)

    def _settle(self, batch: _Batch) -> None:
        self.pending_events -= len(batch.items)
        self.pending_bytes -= batch.nbytes
        for ticket, count in batch.runs:
            ticket.outstanding -= count
            if ticket.outstanding == 0 and ticket.sealed:
                self._complete(ticket)

    def _delivered(self, batch: _Batch) -> None:
        self.events_delivered += len(batch.items)
        self.bytes_delivered += batch.raw_len or batch.body_size
        self._settle(batch)

    def _quarantined(self, batch: _Batch, key: str) -> None:
        n = len(batch.items)
        self.events_quarantined += n
        self.quarantined[key] = self.quarantined.get(key, 0) + n
        self._settle(batch)

    def abandon(self, batches: Iterable[_Batch]) -> None:
        self.abandoned_events += sum(len(b.items) for b in batches)

    # --- the delivery state machine -----------------------------------------------------------

    def deliver(self, batch: _Batch) -> _Flow:
        """Settle every event of ``batch``: yields actions, receives their outcomes.

        ``_Send`` → an :class:`_Answer`; ``_Sleep`` → ``None``; ``_Quarantine`` → ``True`` when
        the dead letter was written (``False``: try again after a pause).
        """
        stack: list[_Batch] = [batch]
        current: _Batch | None = None
        try:
            while stack:
                current = part = stack.pop()
                if part.doomed is not None:
                    reason, key = part.doomed
                    yield from self._quarantine(part, reason, None, key)
                    continue
                attempt = 0
                while True:
                    self.in_flight += 1
                    try:
                        answer = yield _Send(part)
                    finally:
                        self.in_flight -= 1
                    assert isinstance(answer, _Answer)
                    key = str(answer.status) if answer.status else answer.kind
                    self.requests += 1
                    self.bytes_sent += len(part.wire or b"")
                    self.answers[key] = self.answers.get(key, 0) + 1
                    status = answer.status
                    if 200 <= status < 300:
                        self._accepted()
                        self._delivered(part)
                        break
                    if status == 400 and self._refusals_hold(answer.detail):
                        attempt += 1
                        pause = max(self.delay(attempt, answer.retry_after), self._hold_pause)
                        yield _Sleep(pause)
                        continue
                    if status in (400, 413):
                        what = "refused" if status == 400 else "too large"
                        self.last_error = f"HTTP {status}: {answer.detail}"
                        if len(part.items) == 1:
                            reason = f"HTTP {status} ({what}): {answer.detail}"
                            yield from self._quarantine(part, reason, status, str(status))
                            break
                        if status == 413:
                            self.splits_413 += 1
                        else:
                            self.bisections_400 += 1
                        left, right = _split(part)
                        stack.append(right)
                        stack.append(left)
                        break
                    attempt += 1
                    self.retries[key] = self.retries.get(key, 0) + 1
                    described = f"HTTP {status}" if status else answer.kind
                    self.last_error = (
                        f"{described}: {answer.detail}" if answer.detail else described
                    )
                    limit = self.config.retry_limit
                    if limit is not None and attempt > limit:
                        reason = f"retry limit ({limit}) reached; last: {self.last_error}"
                        yield from self._quarantine(part, reason, status or None, "retry_limit")
                        break
                    pause = self.delay(attempt, answer.retry_after)
                    if attempt & (attempt - 1) == 0:  # 1, 2, 4, 8, ...: not every time
                        logger.warning(
                            "batch of %d events not delivered (%s), attempt %d; retrying in %.2f s",
                            len(part.items),
                            self.last_error,
                            attempt,
                            pause,
                        )
                    yield _Sleep(pause)
                current = None
        except GeneratorExit:
            left_over = list(stack)
            if current is not None:
                left_over.append(current)
            self.abandon(left_over)
            raise
        except Exception as exc:
            # A bug. Never strand events (they would stay pending for ever and flush() would
            # never return): what is left goes to the dead letter, then the error goes on to
            # the worker, which logs it with its traceback.
            left_over = list(stack)
            if current is not None:
                left_over.append(current)
            reason = f"internal error ({type(exc).__name__}: {exc}): please report it"
            for part in left_over:
                yield from self._quarantine(part, reason, None, "error")
            raise

    def _accepted(self) -> None:
        self.refusal_streak = 0
        if self.refusal_open:
            self.refusal_open = False
            logger.warning("OpenSearch Ingestion accepts events again: the held events go on")

    def _refusals_hold(self, detail: str) -> bool:
        """Count a 400; ``True`` while the breaker holds refused batches (retry, no bisection).

        ``refusal_breaker`` 400s in a row open it; a 2xx closes it. ``refusal_hold`` seconds
        (by the clock, however many workers hold) after it opened, bisection resumes, so a burst
        of truly bad events cannot stall the stream for ever, and the count starts again.
        """
        self.refusal_streak += 1
        breaker = self.config.refusal_breaker
        if not self.refusal_open:
            if not breaker or self.refusal_streak < breaker:
                return False
            self.refusal_open = True
            self.refusal_opened_at = self.clock()
            self.refusal_trips += 1
            logger.error(
                "OpenSearch Ingestion refused the last %d requests in a row (HTTP 400: %s): "
                "a configuration problem (compression, pipeline path, record shape), not bad "
                "events; holding events and retrying for up to %g s instead of sending them "
                "to the dead letter",
                self.refusal_streak,
                detail,
                self.config.refusal_hold,
            )
        if self.clock() - self.refusal_opened_at < self.config.refusal_hold:
            self.last_error = f"HTTP 400 for every request (held): {detail}"
            return True
        self.refusal_open = False
        self.refusal_streak = 1
        logger.error(
            "still refused after holding for %g s: resuming bisection and the dead letter",
            self.config.refusal_hold,
        )
        return False

    def _quarantine(
        self, part: _Batch, reason: str, status: int | None, key: str
    ) -> Generator[_Action, Any, None]:
        attempt = 0
        while True:
            written = yield _Quarantine(part, reason, status)
            if written:
                break
            attempt += 1
            self.dead_letter_errors += 1
            self.last_error = "cannot write the dead-letter file"
            yield _Sleep(self.delay(attempt, None))
        self._quarantined(part, key)
        logger.warning(
            "quarantined %d event(s) to the dead-letter file: %s", len(part.items), reason
        )

    # --- reporting ----------------------------------------------------------------------------

    def stats(self) -> ShipperStats:
        return ShipperStats(
            events_submitted=self.events_submitted,
            events_delivered=self.events_delivered,
            bytes_delivered=self.bytes_delivered,
            bytes_sent=self.bytes_sent,
            requests=self.requests,
            answers=dict(self.answers),
            retries=dict(self.retries),
            splits_413=self.splits_413,
            bisections_400=self.bisections_400,
            refusal_trips=self.refusal_trips,
            events_quarantined=self.events_quarantined,
            quarantined=dict(self.quarantined),
            truncated_events=self.truncated_events,
            invalid_utf8_lines=self.invalid_utf8_lines,
            tokens_settled=self.tokens_settled,
            callback_errors=self.callback_errors,
            dead_letter_errors=self.dead_letter_errors,
            in_flight=self.in_flight,
            pending_events=self.pending_events,
            pending_bytes=self.pending_bytes,
            abandoned_events=self.abandoned_events,
            last_error=self.last_error,
        )


# --- the dead-letter file -----------------------------------------------------------------------


class DeadLetterFile:
    """JSON lines ``{"time", "reason", "status", "event"}``, appended, flushed and fsynced.

    The file is created with mode 0600 (its directory 0700) on the first write.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._lock = threading.Lock()

    @staticmethod
    def lines(batch_items: Sequence[str], reason: str, status: int | None) -> bytes:
        now = datetime.now(UTC)
        stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
        head = f'{{"time":"{stamp}","reason":{_esc(reason)},"status":{_dumps(status)},"event":'
        return "".join(f"{head}{item}}}\n" for item in batch_items).encode()

    def write(self, data: bytes) -> None:
        """Append ``data`` durably (raises ``OSError``)."""
        with self._lock:
            if self._fd is None:
                directory = os.path.dirname(os.path.abspath(self.path))
                os.makedirs(directory, mode=0o700, exist_ok=True)
                self._fd = os.open(
                    self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600
                )
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


# --- shared shell parts -------------------------------------------------------------------------


class _ShellBase:
    """What both shells share: configuration, core, dead letters, answers and callbacks."""

    def __init__(
        self,
        config: ShipperConfig,
        auth: httpx.Auth | None,
        on_settled: SettleCallback | None,
        clock: Callable[[], float],
        rand: Callable[[], float],
    ) -> None:
        if isinstance(auth, SigV4Auth) and auth.region is None:
            host = urlsplit(config.url).hostname or ""
            if region_from_host(host) is None:
                raise InvalidParameterError(
                    f"cannot tell the signing region from host {host!r}: create the SigV4Auth "
                    "with region='us-east-1' (or the pipeline's region)"
                )
        self.config = config
        self.auth = auth
        self.on_settled = on_settled
        self._core = _Core(config, clock=clock, rand=rand)
        #: Callbacks with tokens taken from the core but not yet called (``flush`` waits).
        self._calling = 0
        self._clock = clock
        self._dead_letter = DeadLetterFile(config.resolved_dead_letter_path())
        headers = {"Content-Type": "application/json", "User-Agent": f"{USER_AGENT} shipper"}
        if config.gzip:
            headers["Content-Encoding"] = "gzip"
        for name, value in config.headers:
            headers[name] = value
        self._headers = headers
        self._closed = False
        self._timeout = httpx.Timeout(config.request_timeout, connect=config.connect_timeout)

    @property
    def dead_letter_path(self) -> str:
        return self._dead_letter.path

    def _take_completed(self) -> list[Any]:
        """Settled tokens to call back (lock held); ``flush`` waits for their callback."""
        done = self._core.take_completed()
        if done and self.on_settled is not None:
            self._calling += 1
            return done
        return []

    def _client_options(self) -> dict[str, Any]:
        return {
            "auth": self.auth,
            "timeout": self._timeout,
            "verify": resolve_verify(self.config.verify),
            "trust_env": self.config.trust_env,
            "follow_redirects": False,
        }

    def _answer(self, outcome: tuple[httpx.Response, bytes, bool]) -> _Answer:
        response, body, _ = outcome  # a cut body still has its status: that decides
        status = response.status_code
        if status in (401, 403):
            self._invalidate(response)
        detail = ""
        if not 200 <= status < 300:
            try:
                detail = safe_text(
                    body.decode(response.encoding or "utf-8", "replace"), _DETAIL_CHARS
                )
            except Exception:
                detail = ""
        answer = _Answer(status, "http", detail, _retry_after(response.headers.get("retry-after")))
        # httpx leaves the response and its stream referring to each other: only the cycle
        # collector would free them, and the ~1 MiB request body hanging off them, so sent
        # bodies would pile up between collections. Cut the cycle now.
        response.stream = httpx.ByteStream(b"")
        return answer

    def _invalidate(self, response: httpx.Response) -> None:
        """After a 401/403 that ``SigV4Auth`` did not fix: refresh before the next attempt when
        the answer is about the credentials, under ``SigV4Auth``'s floor (its one decision)."""
        auth = self.auth
        if isinstance(auth, SigV4Auth):
            auth.refresh_if_stale(response)

    def _deadline(self) -> float:
        """When the post starting now must end (``request_timeout`` bounds the whole exchange:
        signing, sending and reading the answer)."""
        return time.monotonic() + self.config.request_timeout

    @staticmethod
    def _failure(exc: BaseException) -> _Answer:
        if isinstance(exc, httpx.TimeoutException):
            kind = "timeout"
        elif isinstance(exc, httpx.TransportError):
            kind = "conn"
        elif isinstance(exc, RolesAnywhereError):
            kind = "credentials"  # the credential source failed; its messages hold no secret
        else:
            kind = "error"
        text = safe_text(exc, _DETAIL_CHARS)
        return _Answer(0, kind, f"{type(exc).__name__}: {text}" if text else type(exc).__name__)

    def _dead_letter_write(self, action: _Quarantine) -> bool:
        try:
            self._dead_letter.write(
                DeadLetterFile.lines(action.batch.items, action.reason, action.status)
            )
        except OSError as exc:
            logger.error(
                "cannot write the dead-letter file %s: %s",
                self._dead_letter.path,
                os.strerror(exc.errno or errno.EIO),
            )
            return False
        return True

    def _callback_error(self) -> None:
        self._core.callback_errors += 1
        logger.exception("the on_settled callback failed")


def _slices(events: Iterable[Event]) -> Iterator[list[Event]]:
    if isinstance(events, list):
        for start in range(0, len(events), _SLICE_EVENTS):
            yield events[start : start + _SLICE_EVENTS]
        return
    iterator = iter(events)
    while piece := list(islice(iterator, _SLICE_EVENTS)):
        yield piece


# --- the sync shell ---------------------------------------------------------------------------


class Shipper(_ShellBase):
    """Ships events from any thread; ``max_in_flight`` worker threads do the HTTP.

    ``auth``: usually a :class:`~rolesanywhere.auth.sigv4auth.SigV4Auth` for service ``osis`` (any
    ``httpx.Auth``, or ``None`` for an unsigned endpoint). ``on_settled(tokens)`` is called once
    per token when all its events are delivered or quarantined. ``transport`` replaces the
    network (tests). ``clock``/``rand`` drive timers and backoff jitter.
    """

    def __init__(
        self,
        config: ShipperConfig,
        auth: httpx.Auth | None = None,
        *,
        on_settled: SettleCallback | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(config, auth, on_settled, clock, rand)
        options = self._client_options()
        if transport is not None:
            options["transport"] = transport
        self._client = httpx.Client(**options)
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # workers wait here
        self._space = threading.Condition(self._lock)  # submitters and flushers wait here
        self._callback_lock = threading.Lock()
        self._abort = threading.Event()
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._worker, name=f"rolesanywhere-shipper-{i}", daemon=True)
            for i in range(config.max_in_flight)
        ]
        for thread in self._threads:
            thread.start()

    # --- public API ---------------------------------------------------------------------------

    def submit(
        self,
        events: Iterable[Event],
        token: Any = None,
        *,
        source: str | None = None,
        date: float | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        """Queue events (lines or records); blocks while too much is pending.

        ``token`` comes back through ``on_settled`` once every one of these events is settled.
        ``source`` fills ``path_key``; ``date`` (epoch seconds) replaces the current time.
        ``stop``: when it is set (a signal handler may set it) while waiting for room,
        :class:`ShipperInterruptedError` is raised within :data:`_STOP_POLL` seconds.
        """
        core = self._core
        if self._closed:
            raise ShipperClosedError("the shipper is closed: cannot submit events")
        ticket = _Ticket(token)
        encoder = core.encoder
        limit = self.config.max_pending_bytes
        for piece in _slices(events):
            encoded = encoder.encode(piece, source, time.time() if date is None else date)
            with self._lock:
                while core.pending_bytes > limit and not self._closed:
                    if stop is None:
                        self._space.wait()
                        continue
                    # a signal handler cannot notify (it may run while this thread holds the
                    # lock): look at the event on a short period instead
                    if stop.is_set():
                        raise ShipperInterruptedError(
                            "stopped while waiting for room: the submission was not all queued"
                        )
                    self._space.wait(_STOP_POLL)
                if self._closed:
                    raise ShipperClosedError("the shipper is closed: cannot submit events")
                if core.add(encoded, ticket, self._clock()):
                    self._work.notify_all()
        with self._lock:
            core.seal(ticket)
            done = self._take_completed()
        self._call_back(done)

    def submit_chunks(
        self, chunks: Iterable[Chunk], *, stop: threading.Event | None = None
    ) -> None:
        """Submit each tailer chunk's lines with the chunk as token and its path as source."""
        for chunk in chunks:
            self.submit(chunk.lines, chunk, source=chunk.path, stop=stop)

    def flush(self, timeout: float | None = None) -> bool:
        """Send partial batches now and wait until everything submitted is settled.

        Returns ``False`` if ``timeout`` seconds passed first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        core = self._core
        with self._lock:
            core.forcing += 1
            core.close_open()
            self._work.notify_all()
            try:
                while core.pending_events > 0 or self._calling:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    if self._stopping:
                        return False
                    self._space.wait(remaining)
                return True
            finally:
                core.forcing -= 1

    def close(self, timeout: float | None = None) -> bool:
        """Flush (up to ``timeout`` seconds), then stop the workers and close the connections.

        Returns whether everything was settled. Events still pending after the timeout are
        abandoned (counted; their tokens never settle). Idempotent.
        """
        with self._lock:
            if self._closed:
                return self._core.pending_events == 0
        flushed = self.flush(timeout)
        with self._lock:
            self._closed = True
            self._stopping = True
            self._work.notify_all()
            self._space.notify_all()
        self._abort.set()
        for thread in self._threads:
            thread.join(timeout=_JOIN_TIMEOUT)
        self._client.close()
        for thread in self._threads:
            thread.join(timeout=_JOIN_TIMEOUT)
        self._dead_letter.close()
        if not flushed:
            with self._lock:
                core = self._core
                if core.open is not None:
                    core.ready.append(core.open)
                    core.open = None
                core.abandon(core.ready)
                core.ready.clear()
                stats = core.stats()
            logger.warning(
                "shipper closed with %d event(s) not delivered: %s",
                stats.pending_events,
                _status_line(stats),
            )
        return flushed

    def stats(self) -> ShipperStats:
        with self._lock:
            return self._core.stats()

    def status_line(self) -> str:
        """One line for a periodic status report."""
        return _status_line(self.stats())

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # leaving on an exception: deliver what can be delivered soon, never hang the unwinding
        self.close(None if exc is None else _EXIT_ON_ERROR_TIMEOUT)

    def __repr__(self) -> str:
        return f"Shipper(url={self.config.url!r})"

    # --- workers ------------------------------------------------------------------------------

    def _worker(self) -> None:
        core = self._core
        while True:
            with self._lock:
                while True:
                    if self._stopping:
                        return
                    now = self._clock()
                    batch = core.take(now)
                    if batch is not None:
                        break
                    self._work.wait(core.wake_in(now))
            try:
                self._drive(batch)
            except Exception:  # a bug: keep the worker, say it loudly
                logger.exception("shipper worker failed")
                with self._lock:
                    core.last_error = "internal error (see log)"

    def _drive(self, batch: _Batch) -> None:
        core = self._core
        flow = core.deliver(batch)
        with self._lock:
            action: _Action | None = next(flow)
        while action is not None:
            outcome: object = None
            if isinstance(action, _Send):
                if self._stopping:
                    with self._lock:
                        flow.close()
                    return
                outcome = self._send(action.batch)
            elif isinstance(action, _Sleep):
                if self._abort.wait(action.seconds):
                    with self._lock:
                        flow.close()
                    return
            else:
                outcome = self._dead_letter_write(action)
            failure: Exception | None = None
            with self._lock:
                try:
                    action = flow.send(outcome)
                except StopIteration:
                    action = None
                except Exception as exc:  # a bug: what the flow settled still counts
                    action, failure = None, exc
                done = self._take_completed()
                self._space.notify_all()
            self._call_back(done)
            if failure is not None:
                raise failure

    def _send(self, batch: _Batch) -> _Answer:
        body = self._core.body(batch)
        try:
            request = self._client.build_request(
                "POST", self.config.url, content=body, headers=self._headers
            )
            outcome = exchange(self._client, request, deadline=self._deadline())
        except Exception as exc:
            return self._failure(exc)
        return self._answer(outcome)

    def _call_back(self, tokens: list[Any]) -> None:
        if not tokens or self.on_settled is None:
            return
        try:
            with self._callback_lock:
                self.on_settled(tokens)
        except Exception:
            with self._lock:
                self._callback_error()
        finally:
            with self._lock:
                self._calling -= 1
                self._space.notify_all()


# --- the async shell ------------------------------------------------------------------------


class AsyncShipper(_ShellBase):
    """The asyncio twin of :class:`Shipper`: ``max_in_flight`` worker tasks on the running loop.

    ``on_settled`` may be a plain function or a coroutine function. Workers start on the first
    ``submit`` (or ``async with``).
    """

    def __init__(
        self,
        config: ShipperConfig,
        auth: httpx.Auth | None = None,
        *,
        on_settled: Callable[[list[Any]], object | Awaitable[object]] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(config, auth, on_settled, clock, rand)
        options = self._client_options()
        if transport is not None:
            options["transport"] = transport
        self._client = httpx.AsyncClient(**options)
        self._cond = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self._abort = asyncio.Event()
        self._stopping = False

    def start(self) -> None:
        """Start the worker tasks on the running event loop (done by ``submit`` if needed)."""
        if self._tasks or self._closed:
            return
        self._tasks = [
            asyncio.get_running_loop().create_task(
                self._worker(), name=f"rolesanywhere-shipper-{i}"
            )
            for i in range(self.config.max_in_flight)
        ]

    async def submit(
        self,
        events: Iterable[Event],
        token: Any = None,
        *,
        source: str | None = None,
        date: float | None = None,
    ) -> None:
        """Queue events; awaits while too much is pending (see :meth:`Shipper.submit`)."""
        if self._closed:
            raise ShipperClosedError("the shipper is closed: cannot submit events")
        self.start()
        core = self._core
        ticket = _Ticket(token)
        limit = self.config.max_pending_bytes
        for piece in _slices(events):
            encoded = core.encoder.encode(piece, source, time.time() if date is None else date)
            async with self._cond:
                while core.pending_bytes > limit and not self._closed:
                    await self._cond.wait()
                if self._closed:
                    raise ShipperClosedError("the shipper is closed: cannot submit events")
                if core.add(encoded, ticket, self._clock()):
                    self._cond.notify_all()
            await asyncio.sleep(0)
        core.seal(ticket)
        await self._call_back(self._take_completed())

    async def submit_chunks(self, chunks: Iterable[Chunk]) -> None:
        for chunk in chunks:
            await self.submit(chunk.lines, chunk, source=chunk.path)

    async def flush(self, timeout: float | None = None) -> bool:
        """Send partial batches now; wait until everything submitted is settled."""
        core = self._core
        if core.pending_events == 0 and not self._calling:
            return True
        self.start()

        async def settled() -> None:
            async with self._cond:
                self._cond.notify_all()
                while (core.pending_events > 0 or self._calling) and not self._stopping:
                    await self._cond.wait()

        core.forcing += 1
        core.close_open()
        try:
            async with self._cond:
                self._cond.notify_all()
            await asyncio.wait_for(settled(), timeout)
        except TimeoutError:
            return False
        finally:
            core.forcing -= 1
        return core.pending_events == 0 and not self._calling

    async def aclose(self, timeout: float | None = None) -> bool:
        """Flush (up to ``timeout``), stop the workers, close the connections. Idempotent."""
        if self._closed:
            return self._core.pending_events == 0
        flushed = await self.flush(timeout)
        self._closed = True
        self._stopping = True
        self._abort.set()
        async with self._cond:
            self._cond.notify_all()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self._client.aclose()
        self._dead_letter.close()
        if not flushed:
            core = self._core
            if core.open is not None:
                core.ready.append(core.open)
                core.open = None
            core.abandon(core.ready)
            core.ready.clear()
            logger.warning(
                "shipper closed with %d event(s) not delivered: %s",
                core.pending_events,
                _status_line(core.stats()),
            )
        return flushed

    def stats(self) -> ShipperStats:
        return self._core.stats()

    def status_line(self) -> str:
        return _status_line(self._core.stats())

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose(None if exc is None else _EXIT_ON_ERROR_TIMEOUT)

    def __repr__(self) -> str:
        return f"AsyncShipper(url={self.config.url!r})"

    async def _worker(self) -> None:
        core = self._core
        while True:
            async with self._cond:
                while True:
                    if self._stopping:
                        return
                    now = self._clock()
                    batch = core.take(now)
                    if batch is not None:
                        break
                    wait = core.wake_in(now)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._cond.wait(), wait)
            try:
                await self._drive(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("shipper worker failed")
                core.last_error = "internal error (see log)"

    async def _drive(self, batch: _Batch) -> None:
        core = self._core
        flow = core.deliver(batch)
        action: _Action | None = next(flow)
        try:
            while action is not None:
                outcome: object = None
                if isinstance(action, _Send):
                    outcome = await self._send(action.batch)
                elif isinstance(action, _Sleep):
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._abort.wait(), action.seconds)
                    if self._abort.is_set():
                        flow.close()
                        return
                else:
                    outcome = await asyncio.to_thread(self._dead_letter_write, action)
                failure: Exception | None = None
                try:
                    action = flow.send(outcome)
                except StopIteration:
                    action = None
                except Exception as exc:  # a bug: what the flow settled still counts
                    action, failure = None, exc
                await self._call_back(self._take_completed())
                async with self._cond:
                    self._cond.notify_all()
                if failure is not None:
                    raise failure
        except asyncio.CancelledError:
            flow.close()
            raise

    async def _send(self, batch: _Batch) -> _Answer:
        core = self._core
        if self.config.gzip and batch.wire is None:
            await asyncio.to_thread(core.body, batch)
        body = core.body(batch)
        try:
            request = self._client.build_request(
                "POST", self.config.url, content=body, headers=self._headers
            )
            outcome = await aexchange(self._client, request, deadline=self._deadline())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return self._failure(exc)
        return self._answer(outcome)

    async def _call_back(self, tokens: list[Any]) -> None:
        if not tokens or self.on_settled is None:
            return
        try:
            result = self.on_settled(tokens)
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                await result
        except asyncio.CancelledError:
            raise
        except Exception:
            self._callback_error()
        finally:
            self._calling -= 1
            if not self._calling:
                async with self._cond:
                    self._cond.notify_all()
