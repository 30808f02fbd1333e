"""The OSIS emulator's pipeline capacity (:mod:`rolesanywhere.testing.osis`, ingest step 8).

A pipeline's buffer holds ``buffer`` events and drains at ``events_per_second``
(:class:`~rolesanywhere.testing.quota.Capacity`). A request is accepted when all its events fit
in the free space now; otherwise it is answered 429 with Data Prepper's plain-text message and
stores nothing, and a request with more events than the whole buffer is answered 413 (it would
never fit; PROTOCOL.md: "more records than the buffer holds", split the batch). The decision is
:class:`~rolesanywhere.testing.quota.QuotaCounter`'s, the one a simulation calls directly.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from rolesanywhere.testing._server import Answer, text_answer
from rolesanywhere.testing.osis_ingest import phrase
from rolesanywhere.testing.quota import Capacity, QuotaCounter, QuotaSecond, QuotaStats

__all__ = ["PipelineCapacity"]


class PipelineCapacity:
    """The capacity part of :class:`~rolesanywhere.testing.osis.OsisEmulator`."""

    #: The buffer's decisions and counts.
    capacity_counter: QuotaCounter
    #: Add ``Retry-After`` (whole seconds until the request would fit, rounded up) to
    #: capacity 429s; off by default (PROTOCOL.md gives none for OSIS).
    retry_after: bool

    def _init_capacity(
        self, capacity: Capacity | None, retry_after: bool, monotonic: Callable[[], float]
    ) -> None:
        self.capacity_counter = QuotaCounter(capacity, clock=monotonic)
        self.retry_after = retry_after

    @property
    def capacity(self) -> Capacity | None:
        """The pipeline capacity in force (``None``: unlimited)."""
        limit = self.capacity_counter.limit
        return limit if isinstance(limit, Capacity) else None

    def set_capacity(
        self, events_per_second: float | Capacity | None, buffer: int | None = None
    ) -> None:
        """A buffer of ``buffer`` events (default: one second's worth, rounded up) drained at
        ``events_per_second``, the buffer starting empty; ``None`` lifts the limit. Counts are
        kept."""
        if events_per_second is None or isinstance(events_per_second, Capacity):
            self.capacity_counter.set_limit(events_per_second)
            return
        size = math.ceil(events_per_second) if buffer is None else buffer
        self.capacity_counter.set_limit(Capacity(events_per_second, size))

    def capacity_stats(self) -> QuotaStats:
        """Requests (``accepted``, ``throttled``) and their events (``accepted_units``,
        ``throttled_units``) the capacity let through or refused with 429 (everything is
        accepted without a capacity). 413s for oversized requests are not counted."""
        return self.capacity_counter.stats()

    def capacity_history(self) -> list[QuotaSecond]:
        """The same per second of the ``monotonic`` clock, from the first request to the last
        (quiet seconds included)."""
        return self.capacity_counter.history()

    def _over_capacity(self, n_events: int) -> Answer | None:
        """413 when ``n_events`` exceed the whole buffer, 429 when they do not fit now, else
        ``None`` (admitted: the events are in the buffer)."""
        limit = self.capacity_counter.limit
        if isinstance(limit, Capacity) and n_events > limit.buffer:
            held = f"{n_events} records, the buffer holds {limit.buffer}"
            return text_answer(413, f"Request Entity Too Large: {held}")
        if self.capacity_counter.admit(n_events):
            return None
        extra: list[tuple[str, str]] = []
        if self.retry_after:
            wait = self.capacity_counter.wait_time(n_events)
            extra.append(("Retry-After", str(math.ceil(wait))))
        return text_answer(429, phrase(429), extra=extra)
