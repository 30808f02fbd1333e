"""``OsisHandler``: a :class:`logging.Handler` shipping an application's log records to OSIS.

::

    auth = SigV4Auth.from_roles_anywhere(..., service="osis")
    handler = OsisHandler("https://pipe-abc.us-east-1.osis.amazonaws.com/log/ingest", auth,
                          extra_fields={"service": "billing"}, gzip=True)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)

Each record becomes one event (keys in this order)::

    {"date": record.created,          # epoch seconds (float), Fluent Bit's shape
     "log": handler.format(record),   # the formatter's output, traceback included
     "level": "INFO", "logger": "app.db", "thread": "MainThread",
     "extra": {...},                  # the record's non-standard attributes (logging's extra=)
     ...extra_fields}                 # fixed fields, e.g. {"service": "billing"}

``extra`` values are made JSON-safe when the record is emitted (``str()`` for other types);
``extra`` is left out when empty. Formatting happens in the logging thread, so the message is
what it was at that moment.

The application never waits for the network: ``emit`` puts the event in a bounded queue
(``max_queue``) and returns. When the queue is full it waits at most ``block_timeout`` seconds
(default 0) and then drops the *newest* record, counting it in :attr:`dropped`; a warning goes
to stderr at most every ``warn_interval`` seconds and once more at close. A background thread
hands queued events to a :class:`~rolesanywhere.ship.shipper.Shipper` (batching, retries, 413
splitting, 400 bisection, dead letters: see :mod:`rolesanywhere.ship.shipper`).

``close()`` (also run at interpreter exit, and by ``logging.shutdown``) delivers what it can
within ``close_timeout`` seconds (default 5), then gives up and says on stderr how many records
were not delivered: a down network never hangs the exit. ``flush()`` waits the same way.

No recursion: records from the ``rolesanywhere`` loggers, and records emitted on the shipper's
own threads (``rolesanywhere-*``: httpx's request log, credential refreshes) are ignored
(counted in :attr:`ignored`).
"""

from __future__ import annotations

import atexit
import logging
import math
import queue
import sys
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any, TextIO

import httpx

from rolesanywhere.errors import ShipperClosedError
from rolesanywhere.ship.shipper import Shipper
from rolesanywhere.ship.shipperconfig import ShipperConfig
from rolesanywhere.ship.stats import ShipperStats

__all__ = ["OsisHandler"]

#: Attributes every ``LogRecord`` has; anything else came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("n", logging.INFO, "p", 1, "m", None, None))) | {
    "message",
    "asctime",
    "taskName",
}
_INTERNAL_LOGGER = "rolesanywhere"
_INTERNAL_THREAD = "rolesanywhere-"
_DRAIN = 1000  # events handed to the shipper at once


def _plain(value: object, depth: int = 0) -> object:
    """A JSON-safe copy of ``value`` (snapshot at emit time)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth < 8:
        if isinstance(value, Mapping):
            return {str(k): _plain(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [_plain(v, depth + 1) for v in value]
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


class OsisHandler(logging.Handler):
    """Ships log records to an OpenSearch Ingestion pipeline from a background thread.

    ``auth``: a :class:`~rolesanywhere.auth.sigv4auth.SigV4Auth` for service ``osis`` (or any
    ``httpx.Auth``). ``shipper_options``: more
    :class:`~rolesanywhere.ship.shipperconfig.ShipperConfig` settings (``state_dir`` for the
    dead-letter file, ``batch_bytes``, ``retry_limit``...).
    ``stream``: where drop warnings go (default ``sys.stderr``). ``transport``: tests.
    """

    def __init__(
        self,
        url: str,
        auth: httpx.Auth | None = None,
        level: int | str = logging.NOTSET,
        *,
        max_queue: int = 10_000,
        block_timeout: float = 0.0,
        extra_fields: Mapping[str, Any] | None = None,
        gzip: bool = False,
        close_timeout: float = 5.0,
        warn_interval: float = 60.0,
        shipper_options: Mapping[str, Any] | None = None,
        stream: TextIO | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(level)
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, not {max_queue}")
        if block_timeout < 0 or close_timeout < 0:
            raise ValueError("block_timeout and close_timeout must not be negative")
        options: dict[str, Any] = {"flush_interval": 1.0}
        options.update(shipper_options or {})
        options["url"] = url
        options["gzip"] = gzip
        if extra_fields:
            options["fields"] = tuple(options.get("fields", ())) + tuple(extra_fields.items())
        self.config = ShipperConfig(**options)
        self.block_timeout = block_timeout
        self.close_timeout = close_timeout
        self.warn_interval = warn_interval
        self._stream = stream
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(max_queue)
        self._shipper = Shipper(self.config, auth, transport=transport)
        self._count_lock = threading.Lock()
        self._dropped = 0
        self._dropped_reported = 0
        self._last_warning = 0.0
        self._ignored = 0
        self._lost = 0  # taken from the queue but refused by a closed shipper
        self._closing = False
        self._closed = False
        self._close_lock = threading.Lock()
        self._feeder = threading.Thread(
            target=self._feed, name="rolesanywhere-loghandler", daemon=True
        )
        self._feeder.start()
        reference = weakref.ref(self)

        def close_at_exit() -> None:
            handler = reference()
            if handler is not None:
                handler.close()

        self._atexit = close_at_exit
        atexit.register(close_at_exit)

    # --- counters -----------------------------------------------------------------------------

    @property
    def dropped(self) -> int:
        """Records dropped because the queue was full (or the handler closed)."""
        return self._dropped

    @property
    def ignored(self) -> int:
        """Records ignored to avoid recursion (the shipper's own logging)."""
        return self._ignored

    @property
    def queued(self) -> int:
        """Records waiting in the queue."""
        return self._queue.qsize()

    def shipper_stats(self) -> ShipperStats:
        return self._shipper.stats()

    def status_line(self) -> str:
        return (
            f"{self._shipper.status_line()}; handler queue {self.queued}, "
            f"dropped {self._dropped}, ignored {self._ignored}"
        )

    # --- logging.Handler ----------------------------------------------------------------------

    def handle(self, record: logging.LogRecord) -> bool:
        """Filter and emit without the handler lock: the queue is thread-safe, and a full
        queue must not make other threads wait behind this one."""
        result: object = self.filter(record)
        if isinstance(result, logging.LogRecord):  # Python 3.12+: a filter may replace it
            record = result
        if result:
            self.emit(record)
        return bool(result)

    def emit(self, record: logging.LogRecord) -> None:
        name = record.name
        if (
            name == _INTERNAL_LOGGER
            or name.startswith(_INTERNAL_LOGGER + ".")
            or threading.current_thread().name.startswith(_INTERNAL_THREAD)
        ):
            with self._count_lock:
                self._ignored += 1
            return
        if self._closing:
            self._drop()
            return
        try:
            event = self._event(record)
        except Exception:
            self.handleError(record)
            return
        try:
            if self.block_timeout > 0:
                self._queue.put(event, timeout=self.block_timeout)
            else:
                self._queue.put_nowait(event)
        except queue.Full:
            self._drop()

    def _event(self, record: logging.LogRecord) -> dict[str, Any]:
        event: dict[str, Any] = {
            "date": record.created,
            "log": self.format(record),
            "level": record.levelname,
            "logger": record.name,
            "thread": record.threadName,
        }
        extra = {
            key: _plain(value)
            for key, value in vars(record).items()
            if key not in _STANDARD and not key.startswith("_")
        }
        if extra:
            event["extra"] = extra
        return event

    def flush(self, timeout: float | None = None) -> None:
        """Hand queued records to the shipper and wait for delivery, at most ``timeout``
        seconds (default ``close_timeout``)."""
        if self._closed:
            return
        budget = self.close_timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        self._drain_wait(deadline)
        self._shipper.flush(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        """Deliver what can be delivered within ``close_timeout`` seconds, then stop."""
        with self._close_lock:
            if self._closed:
                return
            self._closing = True
        try:
            deadline = time.monotonic() + self.close_timeout
            self._drain_wait(deadline)
            self._shipper.close(max(0.0, deadline - time.monotonic()))
            self._feeder.join(timeout=1.0)
            stats = self._shipper.stats()
            with self._count_lock:
                self._closed = True
                lost = self._lost + self._queue.qsize() + stats.pending_events
                unreported = self._dropped - self._dropped_reported
                self._dropped_reported = self._dropped
            if unreported:
                self._warn(
                    f"dropped {unreported} log record(s) since the last report (queue full); "
                    f"{self._dropped} in all"
                )
            if lost:
                self._warn(
                    f"{lost} log record(s) not delivered at close (after {self.close_timeout:g} "
                    f"s): {stats.last_error or 'no answer'}"
                )
        finally:
            self._closed = True
            atexit.unregister(self._atexit)
            super().close()

    # --- internals ----------------------------------------------------------------------------

    def _drop(self) -> None:
        now = time.monotonic()
        with self._count_lock:
            self._dropped += 1
            if now - self._last_warning < self.warn_interval:
                return
            self._last_warning = now
            count = self._dropped - self._dropped_reported
            self._dropped_reported = self._dropped
            total = self._dropped
        self._warn(
            f"dropped {count} log record(s): the queue of {self._queue.maxsize} is full "
            f"(the network is slow or down); {total} in all"
        )

    def _warn(self, message: str) -> None:
        stream = self._stream or sys.stderr
        try:
            stream.write(f"rolesanywhere.ship.loghandler: {message}\n")
            stream.flush()
        except Exception:  # stderr closed at exit: nothing else to tell
            return

    def _drain_wait(self, deadline: float) -> None:
        """Wait until the feeder handed every queued record to the shipper (or the deadline)."""
        done = self._queue.all_tasks_done
        with done:
            while self._queue.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                done.wait(remaining)

    def _feed(self) -> None:
        source = self._queue
        while True:
            try:
                first = source.get(timeout=0.2)
            except queue.Empty:
                if self._closing:
                    return
                continue
            events = [first]
            while len(events) < _DRAIN:
                try:
                    events.append(source.get_nowait())
                except queue.Empty:
                    break
            try:
                self._shipper.submit(events)
            except ShipperClosedError:
                with self._count_lock:
                    self._lost += len(events)
            except Exception:  # an event the shipper could not take: never kill the feeder
                with self._count_lock:
                    self._lost += len(events)
                self._warn("could not queue log records for shipping (internal error)")
            finally:
                for _ in events:
                    source.task_done()

    def __repr__(self) -> str:
        return f"<OsisHandler {self.config.url} ({logging.getLevelName(self.level)})>"
