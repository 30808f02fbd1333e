"""Ship log events to Amazon OpenSearch Ingestion, at least once: batching, retries, dead letters.

A sans-I/O core (:class:`~rolesanywhere.ship.core.Core`: batcher, the retry/split/bisect state
machine, settlement and counters; events encoded by :mod:`~rolesanywhere.ship.encoder`) driven by
two thin shells sharing :class:`~rolesanywhere.ship.shell.Shell`: :class:`Shipper` (worker
threads, ``httpx.Client``) and :class:`AsyncShipper` (worker tasks, ``httpx.AsyncClient``)::

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
import random
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import httpx

from rolesanywhere.errors import ShipperInterruptedError
from rolesanywhere.session.transport import aexchange, exchange
from rolesanywhere.ship.batch import Batch, Ticket
from rolesanywhere.ship.core import Action, Answer, Send, Sleep
from rolesanywhere.ship.encoder import Event
from rolesanywhere.ship.shell import Shell
from rolesanywhere.ship.shipperconfig import MAX_BATCH_BYTES, ShipperConfig
from rolesanywhere.ship.stats import ShipperStats

if TYPE_CHECKING:
    from rolesanywhere.ship.tail import Chunk

__all__ = [
    "MAX_BATCH_BYTES",
    "AsyncShipper",
    "Event",
    "Shipper",
    "ShipperConfig",
    "ShipperStats",
]

#: Seconds ``with`` waits for delivery when leaving on an exception (otherwise: until settled).
_EXIT_ON_ERROR_TIMEOUT = 5.0
#: Seconds between looks at ``submit``'s ``stop`` event while waiting for room.
_STOP_POLL = 0.05
#: Seconds ``close`` waits for each worker to end, before and after closing the connections:
#: a worker stuck in a request is a daemon thread and is left behind.
_JOIN_TIMEOUT = 0.5

SettleCallback = Callable[[list[Any]], object]
#: ``wait(event, seconds)``: pause up to ``seconds`` unless ``event`` is set; whether it is.
Wait = Callable[[threading.Event, float], bool]


def _wait(event: threading.Event, seconds: float) -> bool:
    return event.wait(seconds)


# --- the sync shell ---------------------------------------------------------------------------


class Shipper(Shell):
    """Ships events from any thread; ``max_in_flight`` worker threads do the HTTP.

    ``auth``: usually a :class:`~rolesanywhere.auth.sigv4auth.SigV4Auth` for service ``osis`` (any
    ``httpx.Auth``, or ``None`` for an unsigned endpoint). ``on_settled(tokens)`` is called once
    per token when all its events are delivered or quarantined. ``transport`` replaces the
    network (tests). ``clock`` drives batch timers and the refusal breaker, ``wait`` the pauses
    between tries (``wait(event, seconds)``: ``event`` is set when closing), ``rand`` the backoff
    jitter; ``flush`` and ``close`` timeouts are real time.
    """

    def __init__(
        self,
        config: ShipperConfig,
        auth: httpx.Auth | None = None,
        *,
        on_settled: SettleCallback | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        wait: Wait = _wait,
        rand: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(config, auth, on_settled, clock, rand)
        self._client = httpx.Client(**self._client_options(transport))
        self._wait = wait
        self._lock = threading.Lock()
        self._guard = self._lock
        self._work = threading.Condition(self._lock)  # workers wait here
        self._space = threading.Condition(self._lock)  # submitters and flushers wait here
        self._callback_lock = threading.Lock()
        self._abort = threading.Event()
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
        self._check_open()
        ticket = Ticket(token)
        for encoded in self._encoded(events, source, date):
            with self._lock:
                while self._no_room():
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
                if self._queue(encoded, ticket):
                    self._work.notify_all()
        self._call_back(self._seal(ticket))

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
        with self._lock:
            self._core.begin_flush()
            self._work.notify_all()
            try:
                while not self._idle():
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    if self._stopping:
                        return False
                    self._space.wait(remaining)
                return True
            finally:
                self._core.end_flush()

    def close(self, timeout: float | None = None) -> bool:
        """Flush (up to ``timeout`` seconds), then stop the workers and close the connections.

        Returns whether everything was settled. Events still pending after the timeout are
        abandoned (counted; their tokens never settle). Idempotent.
        """
        with self._lock:
            if self._closed:
                return self._core.settled()
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
        return self._closed_down(flushed)

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

    # --- workers ------------------------------------------------------------------------------

    def _worker(self) -> None:
        while True:
            with self._lock:
                while True:
                    if self._stopping:
                        return
                    batch, wake = self._next()
                    if batch is not None:
                        break
                    self._work.wait(wake)
            try:
                self._drive(batch)
            except Exception:  # a bug: keep the worker, say it loudly
                with self._lock:
                    self._core.worker_failed()

    def _drive(self, batch: Batch) -> None:
        flow = self._core.deliver(batch)
        with self._lock:
            action: Action | None = next(flow)
        while action is not None:
            outcome: object = None
            if isinstance(action, Send):
                if self._stopping:
                    with self._lock:
                        flow.close()
                    return
                outcome = self._send(action.batch)
            elif isinstance(action, Sleep):
                if self._wait(self._abort, action.seconds):
                    with self._lock:
                        flow.close()
                    return
            else:
                outcome = self._dead_letter_write(action)
            with self._lock:
                action, failure = self._advance(flow, outcome)
                done = self._take_completed()
                self._space.notify_all()
            self._call_back(done)
            if failure is not None:
                raise failure

    def _send(self, batch: Batch) -> Answer:
        body = self._core.body(batch)
        try:
            outcome = exchange(
                self._client, self._request(self._client, body), deadline=self._deadline()
            )
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
                self._core.callback_failed()
        finally:
            with self._lock:
                self._calling -= 1
                self._space.notify_all()


# --- the async shell ------------------------------------------------------------------------


class AsyncShipper(Shell):
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
        self._client = httpx.AsyncClient(**self._client_options(transport))
        self._guard = contextlib.nullcontext()  # one event loop: no lock
        self._cond = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self._abort = asyncio.Event()

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
        self._check_open()
        self.start()
        ticket = Ticket(token)
        for encoded in self._encoded(events, source, date):
            async with self._cond:
                while self._no_room():
                    await self._cond.wait()
                if self._queue(encoded, ticket):
                    self._cond.notify_all()
            await asyncio.sleep(0)
        await self._call_back(self._seal(ticket))

    async def submit_chunks(self, chunks: Iterable[Chunk]) -> None:
        for chunk in chunks:
            await self.submit(chunk.lines, chunk, source=chunk.path)

    async def flush(self, timeout: float | None = None) -> bool:
        """Send partial batches now; wait until everything submitted is settled."""
        if self._idle():
            return True
        self.start()

        async def settled() -> None:
            async with self._cond:
                self._cond.notify_all()
                while not self._idle() and not self._stopping:
                    await self._cond.wait()

        self._core.begin_flush()
        try:
            async with self._cond:
                self._cond.notify_all()
            await asyncio.wait_for(settled(), timeout)
        except TimeoutError:
            return False
        finally:
            self._core.end_flush()
        return self._idle()

    async def aclose(self, timeout: float | None = None) -> bool:
        """Flush (up to ``timeout``), stop the workers, close the connections. Idempotent."""
        if self._closed:
            return self._core.settled()
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
        return self._closed_down(flushed)

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

    async def _worker(self) -> None:
        while True:
            async with self._cond:
                while True:
                    if self._stopping:
                        return
                    batch, wake = self._next()
                    if batch is not None:
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._cond.wait(), wake)
            try:
                await self._drive(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                self._core.worker_failed()

    async def _drive(self, batch: Batch) -> None:
        flow = self._core.deliver(batch)
        action: Action | None = next(flow)
        try:
            while action is not None:
                outcome: object = None
                if isinstance(action, Send):
                    outcome = await self._send(action.batch)
                elif isinstance(action, Sleep):
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._abort.wait(), action.seconds)
                    if self._abort.is_set():
                        flow.close()
                        return
                else:
                    outcome = await asyncio.to_thread(self._dead_letter_write, action)
                action, failure = self._advance(flow, outcome)
                await self._call_back(self._take_completed())
                async with self._cond:
                    self._cond.notify_all()
                if failure is not None:
                    raise failure
        except asyncio.CancelledError:
            flow.close()
            raise

    async def _send(self, batch: Batch) -> Answer:
        core = self._core
        if self.config.gzip and batch.wire is None:
            await asyncio.to_thread(core.body, batch)
        body = core.body(batch)
        try:
            outcome = await aexchange(
                self._client, self._request(self._client, body), deadline=self._deadline()
            )
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
            self._core.callback_failed()
        finally:
            self._calling -= 1
            if not self._calling:
                async with self._cond:
                    self._cond.notify_all()
