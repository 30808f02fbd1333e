"""The shipping engine without I/O: batching, the delivery state machine, settlement, counters.

:class:`Core` queues encoded events into batches (by size, count and age) and drives each batch
to settlement with :meth:`Core.deliver`, a generator that yields what the shell must do
(:class:`Send`, :class:`Sleep`, :class:`Quarantine`) and receives the outcome: retries with
backoff and full jitter, 413 splits, 400 bisection down to the refused events, the refusal
breaker (``refusal_breaker`` 400s in a row hold batches instead of bisecting them, by the clock),
and the retry limit. Time comes from an injected ``clock``; jitter from ``rand``.
"""

from __future__ import annotations

import logging
import random
import time
import zlib
from collections import deque
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rolesanywhere.retry import RetryPolicy
from rolesanywhere.ship.batch import Batch, Ticket, split
from rolesanywhere.ship.encoder import Encoded, Encoder
from rolesanywhere.ship.stats import ShipperStats

if TYPE_CHECKING:
    from rolesanywhere.ship.shipperconfig import ShipperConfig

__all__ = ["Action", "Answer", "Core", "Flow", "Quarantine", "Send", "Sleep"]

#: One logger for the whole engine (core and shells), as before the split.
logger = logging.getLogger("rolesanywhere.ship.shipper")


class _Throttle:
    """At most one log line per ``interval`` seconds per key; says how many were suppressed."""

    def __init__(self, clock: Callable[[], float], interval: float = 10.0) -> None:
        self.clock = clock
        self.interval = interval
        self._last: dict[str, tuple[float, int]] = {}

    def log(self, key: str, level: int, message: str, *args: object) -> None:
        now = self.clock()
        last, suppressed = self._last.get(key, (-1e18, 0))
        if now - last < self.interval:
            self._last[key] = (last, suppressed + 1)
            return
        self._last[key] = (now, 0)
        if suppressed:
            message += f" ({suppressed} similar messages suppressed)"
        logger.log(level, message, *args)


# actions the delivery flow asks the shell to perform


@dataclass(frozen=True, slots=True)
class Send:
    """POST the batch's body; the outcome is an :class:`Answer`."""

    batch: Batch


@dataclass(frozen=True, slots=True)
class Sleep:
    """Pause (the shell ends the flow if it is closing meanwhile); the outcome is ``None``."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Quarantine:
    """Write the batch to the dead letter; the outcome says whether it was written."""

    batch: Batch
    reason: str
    status: int | None


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer (``status``) or a failure (``status`` 0, ``kind`` says which)."""

    status: int
    kind: str
    detail: str
    retry_after: float | None = None


Action = Send | Sleep | Quarantine
Flow = Generator[Action, Any, None]


class Core:
    """Everything but I/O. Not thread-safe: the sync shell calls it under one lock."""

    def __init__(
        self,
        config: ShipperConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.encoder = Encoder(config)
        self.clock = clock
        self.rand = rand
        self.policy = RetryPolicy(
            max_attempts=1, base_delay=config.backoff_base, max_delay=config.backoff_max
        )
        self.open: Batch | None = None
        self.ready: deque[Batch] = deque()
        self.forcing = 0  # flushers waiting: send partial batches at once
        self.completed: list[Any] = []  # tokens settled, for the shell to call back
        self.throttle = _Throttle(clock)
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

    def add(self, encoded: Encoded, ticket: Ticket, now: float) -> bool:
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
            self.ready.append(Batch([item], [[ticket, 1]], len(item), now, (reason, key)))
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
                batch = Batch([], [], 0, now)
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

    def seal(self, ticket: Ticket) -> None:
        ticket.sealed = True
        if ticket.outstanding == 0:
            self._complete(ticket)

    # --- worker side --------------------------------------------------------------------------

    def take(self, now: float) -> Batch | None:
        if self.ready:
            return self.ready.popleft()
        batch = self.open
        if batch is not None and (self.forcing or self._due(batch, now)):
            self.open = None
            return batch
        return None

    def _due(self, batch: Batch, now: float) -> bool:
        # The same sum as ``wake_in``'s: ``now - opened >= interval`` can be false when
        # ``opened + interval - now`` rounds to 0 (3.4 + 1.0 vs 4.4), and a worker told to wait
        # 0 s would find nothing due, again and again while the clock stands still.
        return now >= batch.opened + self.config.flush_interval

    def wake_in(self, now: float) -> float | None:
        """Seconds until the open batch is due (``None``: no timer)."""
        if self.ready:
            return 0.0
        if self.open is None:
            return None
        return max(0.0, self.open.opened + self.config.flush_interval - now)

    def has_work(self, now: float) -> bool:
        return bool(self.ready) or (
            self.open is not None and (self.forcing > 0 or self._due(self.open, now))
        )

    def close_open(self) -> bool:
        """Queue the partial batch for sending now (a flush); ``True`` if there was one."""
        if self.open is None:
            return False
        self.ready.append(self.open)
        self.open = None
        return True

    def begin_flush(self) -> None:
        """A flusher waits: partial batches go at once (the open one now) until ``end_flush``."""
        self.forcing += 1
        self.close_open()

    def end_flush(self) -> None:
        self.forcing -= 1

    def settled(self) -> bool:
        """Nothing submitted is left to deliver or quarantine."""
        return self.pending_events == 0

    def full(self, limit: int) -> bool:
        """More than ``limit`` encoded bytes are unsettled (``submit`` waits for room)."""
        return self.pending_bytes > limit

    def abandon_queued(self) -> None:
        """A close gave up: count what was never sent as abandoned (it never settles)."""
        self.close_open()
        self.abandon(self.ready)
        self.ready.clear()

    def callback_failed(self) -> None:
        self.callback_errors += 1
        logger.exception("the on_settled callback failed")

    def worker_failed(self) -> None:
        """A bug in a shell's worker (the flow already quarantined its batch)."""
        logger.exception("shipper worker failed")
        self.last_error = "internal error (see log)"

    def take_completed(self) -> list[Any]:
        done, self.completed = self.completed, []
        return done

    def body(self, batch: Batch) -> bytes:
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

    def _complete(self, ticket: Ticket) -> None:
        if ticket.done:  # pragma: no cover - a bug, never silently
            raise AssertionError("a ticket settled twice")
        ticket.done = True
        self.tokens_settled += 1
        if ticket.token is not None:
            self.completed.append(ticket.token)

    def _settle(self, batch: Batch) -> None:
        self.pending_events -= len(batch.items)
        self.pending_bytes -= batch.nbytes
        for ticket, count in batch.runs:
            ticket.outstanding -= count
            if ticket.outstanding == 0 and ticket.sealed:
                self._complete(ticket)

    def _delivered(self, batch: Batch) -> None:
        self.events_delivered += len(batch.items)
        self.bytes_delivered += batch.raw_len or batch.body_size
        self._settle(batch)

    def _quarantined(self, batch: Batch, key: str) -> None:
        n = len(batch.items)
        self.events_quarantined += n
        self.quarantined[key] = self.quarantined.get(key, 0) + n
        self._settle(batch)

    def abandon(self, batches: Iterable[Batch]) -> None:
        self.abandoned_events += sum(len(b.items) for b in batches)

    # --- the delivery state machine -----------------------------------------------------------

    def deliver(self, batch: Batch) -> Flow:
        """Settle every event of ``batch``: yields actions, receives their outcomes.

        ``Send`` → an :class:`Answer`; ``Sleep`` → ``None``; ``Quarantine`` → ``True`` when
        the dead letter was written (``False``: try again after a pause).
        """
        stack: list[Batch] = [batch]
        current: Batch | None = None
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
                        answer = yield Send(part)
                    finally:
                        self.in_flight -= 1
                    assert isinstance(answer, Answer)
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
                        yield Sleep(pause)
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
                        left, right = split(part)
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
                    yield Sleep(pause)
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
        self, part: Batch, reason: str, status: int | None, key: str
    ) -> Generator[Action, Any, None]:
        attempt = 0
        while True:
            written = yield Quarantine(part, reason, status)
            if written:
                break
            attempt += 1
            self.dead_letter_errors += 1
            self.last_error = "cannot write the dead-letter file"
            yield Sleep(self.delay(attempt, None))
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
