"""Shared limits as pure objects: a service quota, a pipeline's capacity, and the counter that
admits or throttles calls against either, with a per-second history.

The emulators use them (:class:`~rolesanywhere.testing.emulator.RolesAnywhereEmulator`'s
``quota``, :class:`~rolesanywhere.testing.osis.OsisEmulator`'s ``capacity``), and so can a
simulation with no HTTP at all, on its own clock: the same code decides in both::

    counter = QuotaCounter(Quota(rate=10, burst=10), clock=lambda: sim.now)
    if counter.admit():  # one CreateSession call
        ...
    pipeline = QuotaCounter(Capacity(events_per_second=5000, buffer=20000), clock=lambda: sim.now)
    pipeline.admit(len(batch))  # False: the buffer is full, the request stores nothing
    counter.history()  # one QuotaSecond per second since the counter was made

A :class:`Quota` is a token bucket of ``burst`` calls refilled at ``rate`` per second, as the
service's CreateSession quota (10 per second per account and region by default). A
:class:`Capacity` is a pipeline buffer of ``buffer`` events drained at ``events_per_second``: a
request fits when its events fit in the free space. Both are a
:class:`~rolesanywhere.ratelimit.TokenBucket` underneath.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from rolesanywhere.errors import InvalidParameterError
from rolesanywhere.ratelimit import TokenBucket

__all__ = ["Capacity", "Quota", "QuotaCounter", "QuotaSecond", "QuotaStats"]


def _positive(owner: str, name: str, value: float, minimum: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidParameterError(f"{owner} {name} must be a number, got {value!r}")
    if not (math.isfinite(value) and value >= minimum and value > 0):
        raise InvalidParameterError(
            f"{owner} {name} must be a finite number of at least {minimum:g}, got {value!r}"
        )


@dataclass(frozen=True, slots=True)
class Quota:
    """``burst`` calls at once at most, refilled at ``rate`` calls per second (a service quota).

    ``burst`` is at least 1 (a smaller one would refuse every call).
    """

    rate: float
    burst: float

    def __post_init__(self) -> None:
        _positive("Quota", "rate", self.rate, 0.0)
        _positive("Quota", "burst", self.burst, 1.0)

    @property
    def size(self) -> float:
        """The bucket's size: ``burst``."""
        return self.burst


@dataclass(frozen=True, slots=True)
class Capacity:
    """A pipeline buffer of ``buffer`` events, drained at ``events_per_second``.

    A request is accepted when all its events fit in the free space, else refused whole.
    """

    events_per_second: float
    buffer: int

    def __post_init__(self) -> None:
        _positive("Capacity", "events_per_second", self.events_per_second, 0.0)
        _positive("Capacity", "buffer", self.buffer, 1.0)
        if not isinstance(self.buffer, int):
            raise InvalidParameterError(
                f"Capacity buffer is a number of events, a whole number, got {self.buffer!r}"
            )

    @property
    def rate(self) -> float:
        """Events drained per second: ``events_per_second``."""
        return self.events_per_second

    @property
    def size(self) -> float:
        """The bucket's size: ``buffer``."""
        return float(self.buffer)


@dataclass(frozen=True, slots=True)
class QuotaStats:
    """Calls admitted and throttled, and the units (events; 1 per call for a quota) they held."""

    accepted: int
    throttled: int
    accepted_units: int
    throttled_units: int


@dataclass(frozen=True, slots=True)
class QuotaSecond:
    """What happened in one second: ``second`` counts from the counter's :attr:`origin`."""

    second: int
    accepted: int
    throttled: int
    accepted_units: int
    throttled_units: int


class QuotaCounter:
    """Admits or throttles calls against a :class:`Quota` or :class:`Capacity` and counts them.

    ``limit`` ``None`` admits everything (still counted). ``clock`` returns monotonic seconds
    (a fake one in tests, the simulated time in a simulation); the history counts whole seconds
    from :attr:`origin`, the clock's value when the counter was made. Thread-safe: one lock
    around each decision and its counting.
    """

    def __init__(
        self,
        limit: Quota | Capacity | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self.origin = clock()
        self._lock = threading.Lock()
        self._limit: Quota | Capacity | None = None
        self._bucket: TokenBucket | None = None
        self._totals = [0, 0, 0, 0]  # accepted, throttled, accepted units, throttled units
        self._seconds: dict[int, list[int]] = {}
        self.set_limit(limit)

    @property
    def limit(self) -> Quota | Capacity | None:
        """The limit in force (``None``: none)."""
        with self._lock:
            return self._limit

    def set_limit(self, limit: Quota | Capacity | None) -> None:
        """Put ``limit`` in force with a full bucket (``None`` lifts it); counts are kept."""
        if limit is not None and not isinstance(limit, Quota | Capacity):
            raise InvalidParameterError(
                f"a limit is a Quota, a Capacity or None, not {type(limit).__name__}"
            )
        bucket = None if limit is None else TokenBucket(limit.rate, limit.size, clock=self.clock)
        with self._lock:
            self._limit, self._bucket = limit, bucket

    def admit(self, units: int = 1) -> bool:
        """Admit one call holding ``units`` (events; 1 for a quota) if they fit now, and count it
        either way; ``False``: throttled. A call larger than the whole bucket never fits."""
        if isinstance(units, bool) or not isinstance(units, int) or units < 0:
            raise InvalidParameterError(f"units must be a whole number >= 0, got {units!r}")
        with self._lock:
            ok = self._bucket is None or self._bucket.try_take(units)
            second = math.floor(self.clock() - self.origin)
            row = self._seconds.get(second)
            if row is None:
                row = self._seconds[second] = [0, 0, 0, 0]
            slot = 0 if ok else 1
            for counts in (self._totals, row):
                counts[slot] += 1
                counts[slot + 2] += units
            return ok

    def wait_time(self, units: int = 1) -> float:
        """Seconds until ``units`` would fit (0: now; infinite over the bucket's size)."""
        with self._lock:
            bucket, limit = self._bucket, self._limit
        if bucket is None or limit is None:
            return 0.0
        if units > limit.size:
            return math.inf
        return bucket.wait_time(units)

    def stats(self) -> QuotaStats:
        """The totals, consistently."""
        with self._lock:
            return QuotaStats(*self._totals)

    def history(self) -> list[QuotaSecond]:
        """One record per second from the first call to the last, quiet seconds included."""
        with self._lock:
            seconds = dict(self._seconds)
        if not seconds:
            return []
        empty = [0, 0, 0, 0]
        first, last = min(seconds), max(seconds)
        return [QuotaSecond(s, *seconds.get(s, empty)) for s in range(first, last + 1)]

    def reset(self) -> None:
        """Forget the counts and the history (the limit and its bucket stay)."""
        with self._lock:
            self._totals = [0, 0, 0, 0]
            self._seconds.clear()

    def __repr__(self) -> str:
        return f"QuotaCounter({self.limit!r}, {self.stats()})"
